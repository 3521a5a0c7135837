"""Benchmark of the cleaning step (01_clean) and its near-duplicate search (01a_pairs). Prints a table and saves it to
bench/results/clean.md, with bench/results/clean_similarity.png.

    .venv/bin/python bench/bench_clean.py [--quick]
    .venv/bin/python bench/bench_clean.py --scale [1000000 3000000 10000000] [--limit-gib 20] [--limit-minutes M]   # -> clean_scale.md

Every case runs in a fresh process, so its peak memory is its own. Run it on an otherwise idle machine.

1. The whole step (read -> publish) on the bundled sample, banking77 train (../shared/data; skipped when absent) and
   synthetic JSONL files of 100k, 300k and 1M short texts (bench/synth.py: Zipf vocabulary, 5% injected near copies,
   20 labels). Target at 1M on 2 cores: under 5 minutes and 4 GiB peak.
2. banking77 train before/after: rows dropped by reason when groups are connected components of the pairs (the old rule)
   and when they form around kept rows (now), and the cosines the ledger states.
3. The near-duplicate search alone, at threshold 0.8 on the same TF-IDF vectors, at 10k / 100k / 300k / 1M synthetic texts
   and on 100k texts of which 2,000 follow one template (it fills any top-n list). Ground truth: every pair with cosine
   >= 0.8 from every dot product (`brute_force_pairs`, at 10k and 100k); at 300k and 1M, the exact all-pairs search,
   which equals it wherever both ran. Methods: this step's `leaders` and `similar_pairs`; sparse_dot_topn top-50 (at
   1M extrapolated from 100k and 300k by a power law, and marked so); datasketch MinHash LSH (256 permutations,
   Jaccard threshold 0.55, candidates confirmed by their cosine). Rows dropped: under the leader rule, from each
   method's pairs.
"""
import json, os, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"bench"))
BANKING = ROOT.parent/"shared"/"data"/"banking77"/"train.jsonl"
RESULTS = ROOT/"bench"/"results"
THRESHOLD = 0.8


def peak_mb() -> float:
    "This process's peak resident memory: VmHWM (ru_maxrss would carry the parent's peak across fork and exec)."
    try: return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))/1024
    except (OSError, StopIteration): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024


def reset_peak():
    "Start this process's peak-memory count afresh (Linux: writing 5 to /proc/self/clear_refs resets VmHWM)."
    try:
        with open("/proc/self/clear_refs", "w") as f: f.write("5")
    except OSError: pass


def run_case(case: dict) -> dict:
    "Run one case in a fresh process; its last output line is a JSON object."
    out = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode: raise RuntimeError(f"{case}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the cases, each in its own process ---------------------------------------------------------------------------

def whole(case):
    from finetune_nb.clean import CleanSettings, run_clean
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res, _ = run_clean(CleanSettings(target=d + "/ds", **case["settings"]))
        dt = time.perf_counter() - t0
    return dict(seconds=dt, peak_mb=peak_mb(), lines=res.stats["input"]["lines"], train=len(res.train), test=len(res.test),
                dropped=res.stats["dropped"], search_seconds=res.stats["near_duplicates"].get("seconds"),
                candidates=res.stats["near_duplicates"].get("candidates_verified"))


def before_after(case):
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt, numpy as np, pandas as pd
    from finetune_nb.clean import drop_duplicates, normalize_text, read_jsonl, resolve_groups, tfidf_vectors
    from finetune_nb.pairs import component_leaders, similar_pairs
    rows = read_jsonl(case["path"], "text", "category")[0]
    codes, uniq = pd.factorize(rows.text.map(normalize_text))
    V = tfidf_vectors(list(uniq))
    i, j, _ = similar_pairs(V, THRESHOLD)
    lead = component_leaders(len(uniq), i, j)
    cosine = lambda a, b: V[a].multiply(V[b]).sum(axis=1).A1
    chain_sim = V.multiply(V[lead]).sum(axis=1).A1
    old = pd.DataFrame(resolve_groups(rows, codes, lambda keys: (lead, chain_sim), "drop", cosine)[1])
    new = pd.DataFrame(drop_duplicates(rows, THRESHOLD)[1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
    for ax, (name, led) in zip(axes, [("connected components (old)", old), ("groups around kept rows (now)", new)]):
        for reason, part in led.dropna(subset=["similarity"]).groupby("reason"):
            ax.hist(part.similarity, bins=np.linspace(0, 1, 41), alpha=0.7, label=f"{reason} ({len(part)})")
        ax.axvline(THRESHOLD, color="k", ls="--", lw=1); ax.set_title(f"banking77 train: {name}", fontsize=9)
        ax.set_xlabel("ledger similarity (cosine to duplicate_of)"); ax.legend(fontsize=7)
    axes[0].set_ylabel("ledger lines"); plt.tight_layout(); fig.savefig(case["png"], dpi=110)
    def summary(led):
        near = led[led.reason == "near_duplicate"]
        return dict(reasons=led.reason.value_counts().to_dict(), total=len(led), below=int((near.similarity < THRESHOLD).sum()),
                    min_near=float(near.similarity.min()))
    return dict(lines=len(rows), old=summary(old), new=summary(new))


def texts_for(case):
    from synth import make_template_texts, make_texts
    return make_template_texts(case["n"]) if case["data"] == "template" else make_texts(case["n"])[0]


def search(case):
    import numpy as np
    from finetune_nb.clean import normalize_text, tfidf_vectors
    from finetune_nb.pairs import brute_force_pairs, leaders, pair_leaders, similar_pairs
    texts = texts_for(case)
    X = tfidf_vectors([normalize_text(t) for t in texts])
    reset_peak()  # the search's own peak: not the synthetic data's making
    n, method, t0 = X.shape[0], case["method"], time.perf_counter()
    if method == "leaders":
        lead, _ = leaders(X, THRESHOLD)
        dt = time.perf_counter() - t0
        return dict(seconds=dt, peak_mb=peak_mb(), dropped=int((lead != np.arange(n)).sum()))
    if method == "brute": i, j, _ = brute_force_pairs(X, THRESHOLD, block=1024)
    elif method == "exact": i, j, _ = similar_pairs(X, THRESHOLD)
    elif method == "topn":
        from sparse_dot_topn import sp_matmul_topn
        C = sp_matmul_topn(X, X.T.tocsr(), top_n=51, threshold=THRESHOLD - 1e-9, n_threads=len(os.sched_getaffinity(0))).tocoo()
        keep = C.row != C.col
        i, j = np.minimum(C.row[keep], C.col[keep]).astype(np.int64), np.maximum(C.row[keep], C.col[keep]).astype(np.int64)
        key = np.unique(i*n + j); i, j = key // n, key % n  # a pair found from either side, once
    else:  # MinHash LSH, candidates confirmed by their cosine, a batch of queries at a time
        from datasketch import MinHash, MinHashLSH
        keys = [normalize_text(t) for t in texts]
        mhs = MinHash.bulk([[w.encode() for w in set(k.split())] for k in keys], num_perm=256)
        lsh = MinHashLSH(threshold=0.55, num_perm=256)
        with lsh.insertion_session() as s:
            for r, m in enumerate(mhs): s.insert(r, m, check_duplication=False)
        I, J = [], []
        for lo in range(0, n, 20_000):
            qi, qj = [], []
            for r in range(lo, min(lo + 20_000, n)):
                cand = [c for c in lsh.query(mhs[r]) if c > r]
                qi += [r]*len(cand); qj += cand
            qi, qj = np.array(qi, dtype=np.int64), np.array(qj, dtype=np.int64)
            if len(qi):
                ok = np.asarray(X[qi].multiply(X[qj]).sum(axis=1)).ravel() >= THRESHOLD - 1e-9
                I.append(qi[ok]); J.append(qj[ok])
        i, j = (np.concatenate(I), np.concatenate(J)) if I else (np.empty(0, np.int64),)*2
    dt = time.perf_counter() - t0
    np.savez(case["out"], i=i, j=j)
    return dict(seconds=dt, peak_mb=peak_mb(), pairs=len(i), dropped=int((pair_leaders(n, i, j) != np.arange(n)).sum()))


# --- the report -----------------------------------------------------------------------------------------------------

def scores(found: Path, truth: Path) -> tuple[float, float]:
    import numpy as np
    f, t = np.load(found), np.load(truth)
    a, b = set(zip(f["i"].tolist(), f["j"].tolist())), set(zip(t["i"].tolist(), t["j"].tolist()))
    tp = len(a & b)
    return tp/max(1, len(a)), tp/max(1, len(b))


def run_case_limited(case: dict, limit_bytes: int, limit_seconds: float = float("inf")) -> dict:
    "`run_case`, stopped when the process's resident memory passes `limit_bytes` (`{'stopped': rss}` then) or it runs past `limit_seconds` (`{'timed_out': s}`)."
    import threading
    p = subprocess.Popen([sys.executable, __file__, "--case", json.dumps(case)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT)
    over, t0, late = [], time.time(), []
    def watch():
        while p.poll() is None:
            if time.time() - t0 > limit_seconds: late.append(time.time() - t0); p.kill(); break
            try: rss = next(int(l.split()[1]) for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS:"))*1024
            except (OSError, StopIteration): break
            if rss > limit_bytes: over.append(rss); p.kill(); break
            time.sleep(0.5)
    threading.Thread(target=watch, daemon=True).start()
    out, err = p.communicate()
    if over: return {"stopped": over[0]}
    if late: return {"timed_out": late[0]}
    if p.returncode: raise RuntimeError(f"{case}: {err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def scale_report(rows: list, limit_gib: float, end: str = "") -> str:
    "clean_scale.md from the measured `rows` (dicts of `lines` and `whole`'s result), `end` the line of a size that did not fit."
    import math
    lines = [f"# Cleaning at scale (`bench/bench_clean.py --scale`, {time.strftime('%Y-%m-%d')})", "",
             "The whole step (read -> publish) on synthetic JSONL of short texts (bench/synth.py: Zipf vocabulary, 5% injected "
             f"near copies, 20 labels), each size in a fresh process, stopped if it passes {limit_gib:g} GiB resident "
             f"(this machine: {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES')*os.sysconf('SC_PAGE_SIZE')/2**30:.0f} GiB).", "",
             "| lines | seconds | peak MB | near-duplicate rows dropped | exact duplicates dropped | deduplication s | candidates verified |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        c, d = r.get("candidates"), r.get("search_seconds")
        lines.append(f"| {r['lines']:,} | {r['seconds']:.1f} | {r['peak_mb']:,.0f} | {r['dropped'].get('near_duplicate', 0):,} | "
                     f"{r['dropped'].get('exact_duplicate', 0):,} | {'–' if d is None else f'{d:.1f}'} | "
                     f"{'–' if c is None else f'{c:,}'} |")
    if end: lines.append(end)
    if len(rows) > 1:  # growth as n^k between the smallest and the largest size measured
        a, b = rows[0], rows[-1]
        k = lambda f: math.log(f(b)/f(a))/math.log(b["lines"]/a["lines"])
        lines += ["", f"Growth from {a['lines']:,} to {b['lines']:,} lines, as n^k: seconds k = {k(lambda r: r['seconds']):.2f}, "
                  f"deduplication seconds k = {k(lambda r: r['search_seconds']):.2f}, candidates verified "
                  f"k = {k(lambda r: r['candidates']):.2f}, peak memory k = {k(lambda r: r['peak_mb']):.2f}."]
    return "\n".join(lines) + "\n"


def scale(sizes, limit_gib: float, limit_minutes: float = float("inf")):
    "The whole step at growing sizes until one does not fit: seconds, peak memory, rows dropped as duplicates. Saves clean_scale.md."
    from synth import write_jsonl
    work = Path(os.environ.get("BENCH_CLEAN_WORK", tempfile.gettempdir()))/"bench_clean_scale"
    work.mkdir(parents=True, exist_ok=True)
    rows, end = [], ""
    for n in sizes:
        f = work/f"synth{n}.jsonl"
        if not f.exists(): write_jsonl(f, n)
        r = run_case_limited({"kind": "whole", "settings": {"input_path": str(f), "label_field": "label"}}, int(limit_gib*2**30),
                             limit_minutes*60)
        if "timed_out" in r: end = f"| {n:,} | over {r['timed_out']:,.0f} (stopped) | – | – | – | – | – |"
        elif "stopped" in r: end = f"| {n:,} | – | over {r['stopped']/2**20:,.0f} (stopped) | – | – | – | – |"
        else: rows.append({"lines": n, **r})
        print(end or json.dumps(rows[-1]), flush=True)
        if end: break
    report = scale_report(rows, limit_gib, end)
    (RESULTS/"clean_scale.md").write_text(report)
    print(report)


def main(quick: bool = False):
    rows, lines = [], []
    def out(line=""):
        print(line, flush=True); lines.append(line)
    tmp = Path(tempfile.mkdtemp(prefix="bench_clean_"))
    from synth import write_jsonl
    # 1. the whole step
    out("## The whole step (read -> publish)\n")
    out("| data | lines | seconds | peak MB | train | test | dropped (by reason) | deduplication s | target |")
    out("|---|---|---|---|---|---|---|---|---|")
    cases = [("bundled sample", {})]
    if BANKING.exists(): cases.append(("banking77 train", {"input_path": str(BANKING)}))
    for n in ([100_000] if quick else [100_000, 300_000, 1_000_000]):
        cases.append((f"synthetic {n:,}", {"input_path": str(write_jsonl(tmp/f"synth{n}.jsonl", n)), "label_field": "label"}))
    for name, settings in cases:
        r = run_case({"kind": "whole", "settings": settings})
        target = ("met" if r["seconds"] < 300 and r["peak_mb"] < 4096 else "**missed**") if r["lines"] == 1_000_000 else ""
        out(f"| {name} | {r['lines']:,} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['train']:,} | {r['test']:,} | "
            + ", ".join(f"{k} {v:,}" for k, v in r["dropped"].items()) + f" | {r['search_seconds']} | {target} |")
    # 2. banking77 before/after
    if BANKING.exists():
        r = run_case({"kind": "before_after", "path": str(BANKING), "png": str(RESULTS/"clean_similarity.png")})
        out("\n## banking77 train: chains (old) vs groups around kept rows (now)\n")
        out(f"Same exact pairs at cosine >= {THRESHOLD}, {r['lines']:,} lines, noise 'drop'.\n")
        out("| reason | connected components (old) | groups around kept rows (now) |")
        out("|---|---|---|")
        for reason in sorted(set(r["old"]["reasons"]) | set(r["new"]["reasons"])):
            out(f"| {reason} | {r['old']['reasons'].get(reason, 0):,} | {r['new']['reasons'].get(reason, 0):,} |")
        out(f"| **rows dropped** | **{r['old']['total']:,}** ({r['old']['total']/r['lines']:.1%}) | "
            f"**{r['new']['total']:,}** ({r['new']['total']/r['lines']:.1%}) |")
        out(f"| near_duplicate with similarity < {THRESHOLD} | {r['old']['below']:,} (lowest {r['old']['min_near']:.3f}) | "
            f"{r['new']['below']:,} (lowest {r['new']['min_near']:.3f}) |")
        out("\n![ledger similarities, old and new](clean_similarity.png)")
    # 3. the search alone
    out(f"\n## Near-duplicate search alone (threshold {THRESHOLD}, same TF-IDF vectors, vectorising excluded)\n")
    out("| data | method | seconds | peak MB | pairs | precision | recall | rows dropped | truth |")
    out("|---|---|---|---|---|---|---|---|---|")
    grid = [(10_000, "zipf")] if quick else [(10_000, "zipf"), (100_000, "zipf"), (100_000, "template"), (300_000, "zipf"), (1_000_000, "zipf")]
    labels = {"leaders": "**this step: `leaders`** (groups around kept rows)", "exact": "this step: `similar_pairs` (every pair)",
              "brute": "every dot product (`brute_force_pairs`)", "topn": "sparse_dot_topn, top-50", "minhash": "MinHash LSH + cosine"}
    topn_times = {}
    for n, data in grid:
        name = f"{n:,} {'synthetic' if data == 'zipf' else 'synthetic, 2,000 on one template'}"
        truth_name = "brute force" if n <= 100_000 else "exact all-pairs"
        res = {}
        for method in ["brute"] if n <= 100_000 else []: res[method] = run_case({"kind": "search", "n": n, "data": data, "method": method, "out": str(tmp/f"{n}{data}{method}.npz")})
        for method in ("exact", "leaders", "topn", "minhash"):
            if method == "topn" and n > 300_000: continue
            res[method] = run_case({"kind": "search", "n": n, "data": data, "method": method, "out": str(tmp/f"{n}{data}{method}.npz")})
        truth = tmp/f"{n}{data}{'brute' if n <= 100_000 else 'exact'}.npz"
        for method, r in res.items():
            p, rc = scores(tmp/f"{n}{data}{method}.npz", truth) if method != "leaders" else (None, None)
            if method == "topn" and data == "zipf": topn_times[n] = r["seconds"]
            pr = "–" if p is None else f"{p:.4f}" if p in (0, 1) or p < 0.9999 else f"{p:.6f}"
            re_ = "–" if rc is None else f"{rc:.4f}" if rc in (0, 1) or rc < 0.9999 else f"{rc:.6f}"  # 23,610 of 23,611 is not 1.0000
            out(f"| {name} | {labels[method]} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {r.get('pairs', '–')} | {pr} | {re_} | "
                f"{r['dropped']:,} | {'–' if method == ('brute' if n <= 100_000 else 'exact') else truth_name} |")
        if n == 1_000_000 and {100_000, 300_000} <= set(topn_times):
            import math
            k = math.log(topn_times[300_000]/topn_times[100_000])/math.log(3)
            est = topn_times[300_000]*(n/300_000)**k
            out(f"| {name} | sparse_dot_topn, top-50 (**extrapolated**: n^{k:.2f} from 100k and 300k) | ~{est:.0f} | – | – | – | – | – | – |")
    note = (f"\n{time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, {platform.machine()}, "
            f"{len(os.sched_getaffinity(0))} cores. Peak MB: the process's peak RSS (Python, libraries and data included). "
            "Peak MB of the search alone is measured from after the texts were made and vectorised. "
            "Precision and recall are of pairs at cosine >= 0.8 against the truth column: every dot product at 10k and 100k; at "
            "300k and 1M, `similar_pairs`, which shares its prefix filter with `leaders` and so is not independent of it (it "
            "equals every dot product wherever both ran). `leaders` finds each row's first similar leader rather than every "
            "pair; rows dropped is how many rows join a leader under that rule, from each method's pairs (the tests check "
            "that `leaders` and the rule on every cosine drop the same rows, on up to 3,000 real rows).\n")
    out(note)
    table = "\n".join(["# Cleaning step benchmark", "", "Made by `bench/bench_clean.py`; its docstring says what each case does.", "", *lines])
    if not quick:  # a hand-written "## Reading the tables" section (what the numbers mean) is kept across reruns
        old = (RESULTS/"clean.md").read_text() if (RESULTS/"clean.md").exists() else ""
        notes = old[old.find("## Reading the tables"):old.find("\n## ", old.find("## Reading the tables") + 1)] if "## Reading the tables" in old else ""
        if notes: table = table.replace("\n## The whole step", "\n" + notes.strip() + "\n\n## The whole step", 1)
        (RESULTS/"clean.md").write_text(table + "\n")


if __name__ == "__main__":
    if "--case" in sys.argv:
        case = json.loads(sys.argv[sys.argv.index("--case") + 1])
        print(json.dumps({"whole": whole, "before_after": before_after, "search": search}[case["kind"]](case)))
    elif "--scale" in sys.argv:  # --scale [N ...] [--limit-gib G] [--limit-minutes M]
        from itertools import takewhile
        sizes = [int(x) for x in takewhile(str.isdigit, sys.argv[sys.argv.index("--scale") + 1:])] or [1_000_000, 3_000_000, 10_000_000]
        scale(sizes, float(sys.argv[sys.argv.index("--limit-gib") + 1]) if "--limit-gib" in sys.argv else 20.0,
              float(sys.argv[sys.argv.index("--limit-minutes") + 1]) if "--limit-minutes" in sys.argv else float("inf"))
    else: main("--quick" in sys.argv)
