"""Prediction at scale (issue 25): peak memory and throughput of `finetune-nb --model M --examples FILE` as the file grows.

    .venv/bin/python bench/bench_eval_scale.py [--sizes 10000 100000 1000000] [--before REF] [--work DIR] [--threads 1] [--repeats 1]

Each case is the whole command in a fresh process (`finetune-nb --model M --examples F`: preflight, reading, prediction,
records, metrics, label issues), its peak resident memory taken from the kernel (`wait4`'s ru_maxrss of that process).
Model: the tiny DeBERTa-v2 of the tests (`finetune_nb.testing.tiny_deberta`, 2 layers of 32, 77 labels), so that the
figures show the pipeline's own memory, not a large model's. Examples: banking77's train texts (CC BY 4.0,
../shared/data) with their labels, repeated to the size wanted, gzip-compressed (`.jsonl.gz`, as large files travel).
`--before REF` runs the same sizes on the code of a git commit (its `finetune_nb` on PYTHONPATH): the baseline, measured
in the same run. Sizes a case cannot reach within `--limit-gib` of memory are stopped and reported as such.
Target: peak memory at 1M within 1.2x of 100k, and under 2 GiB. Saves bench/results/eval_scale.md.
"""
import argparse, gzip, json, os, shutil, statistics, subprocess, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/"shared"/"data"/"banking77"


def examples(path: Path, n: int) -> Path:
    "`n` labelled lines from banking77's train texts, repeated, gzip-compressed."
    if path.exists(): return path
    rows = [json.loads(l) for l in (SHARED/"train.jsonl").read_text().splitlines() if l.strip()]
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as f:
        for i in range(n):
            r = rows[i % len(rows)]
            f.write(json.dumps({"text": r["text"], "label": r["category"]}) + "\n")
    return path


def model(path: Path) -> Path:
    "The tests' tiny DeBERTa-v2 with banking77's 77 labels."
    if (path/"config.json").exists(): return path
    from finetune_nb.testing import tiny_deberta
    labels = sorted({json.loads(l)["category"] for l in (SHARED/"train.jsonl").read_text().splitlines() if l.strip()})
    return tiny_deberta(path, labels)


def run(cmd: list[str], env: dict, limit: int, log: Path) -> dict:
    "Run `cmd`; its wall seconds, exit code and peak RSS (MiB), killed if its RSS passes `limit` bytes."
    t0 = time.time()
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        killed = []
        def watch():  # stop a case that would take the machine's memory
            while p.poll() is None:
                try: rss = int(Path(f"/proc/{p.pid}/statm").read_text().split()[1])*os.sysconf("SC_PAGE_SIZE")
                except (OSError, IndexError): break
                if rss > limit: killed.append(rss); p.kill(); break
                time.sleep(0.5)
        threading.Thread(target=watch, daemon=True).start()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": round(time.time() - t0, 1), "rc": p.returncode, "peak_mib": round(usage.ru_maxrss/1024), "stopped": bool(killed)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--before", default="", help="a git commit whose code runs the same sizes (the baseline)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir())/"bench_eval_scale")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit-gib", type=float, default=12.0)
    ap.add_argument("--before-max", type=int, default=100_000, help="the largest size the --before code runs (its memory grows with the file)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each case, taken round by round (a peak is one moment: it varies from run to run)")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    m = model(a.work/"model")
    codes = [("this commit", str(ROOT))]
    if a.before:
        old = a.work/f"code-{a.before}"
        if not old.exists():
            old.mkdir()
            subprocess.run(f"git -C {ROOT} archive {a.before} finetune_nb | tar -x -C {old}", shell=True, check=True)
        codes.insert(0, (f"before ({a.before})", str(old)))
    rows = []
    for rep, n in ((rep, n) for rep in range(1, a.repeats + 1) for n in a.sizes):
        f = examples(a.work/f"examples-{n}.jsonl.gz", n)
        for name, code in codes:
            if name != "this commit" and n > a.before_max: continue
            out = a.work/f"run-{n}-{Path(code).name}"
            shutil.rmtree(out, ignore_errors=True)  # a new run folder each time
            env = {**os.environ, "PYTHONPATH": code, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
            cmd = [str(ROOT/".venv"/"bin"/"finetune-nb"), "--model", str(m), "--examples", str(f), "--label-field", "label",
                   "--threads", str(a.threads), "--wandb-mode", "disabled", "--no-baseline", "--run-dir", str(out), "--overwrite"]
            r = run(cmd, env, int(a.limit_gib*2**30), a.work/f"run-{n}-{Path(code).name}.log")
            metrics = out/"eval"/"metrics.json"
            m_ = json.loads(metrics.read_text()) if metrics.exists() and r["rc"] == 0 else {}
            tp = (m_.get("throughput") or {}).get("texts_per_second")
            rows.append({"code": name, "examples": n, "run": rep, **r, "texts_per_s_prediction": tp,
                         "texts_per_s_whole": round(n/r["seconds"], 1) if r["rc"] == 0 else None,
                         "top1": (m_.get("fine_tuned") or {}).get("top1_accuracy")})
            print(json.dumps(rows[-1]), flush=True)
    lines = [f"# Prediction at scale (`bench/bench_eval_scale.py`, {time.strftime('%Y-%m-%d')})", "",
             f"`finetune-nb --model M --examples F.jsonl.gz --threads {a.threads}`, each a fresh process: peak resident memory "
             "(the kernel's ru_maxrss), wall seconds of the whole command, and texts/s (of prediction alone, and of the whole "
             "command). Model: the tests' tiny DeBERTa-v2 (77 labels); examples: banking77 train texts repeated. "
             f"Machine: {os.cpu_count()} cores. Each case ran {a.repeats} time(s), round by round.", "",
             "| code | examples | run | peak RSS MiB | seconds | texts/s (prediction) | texts/s (whole command) | exit |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['code']} | {r['examples']:,} | {r['run']} | {r['peak_mib']:,}{' (stopped: over the limit)' if r['stopped'] else ''} | "
                     f"{r['seconds']:,} | {r['texts_per_s_prediction'] or '–'} | {r['texts_per_s_whole'] or '–'} | {r['rc']} |")
    now = {}  # this commit's peaks by size, run by run
    for r in rows:
        if r["code"] == "this commit" and r["rc"] == 0: now.setdefault(r["examples"], []).append(r["peak_mib"])
    if 100_000 in now and 1_000_000 in now:
        big, small = statistics.median(now[1_000_000]), statistics.median(now[100_000])
        lines += ["", f"Peak memory at 1M / at 100k, medians of {len(now[1_000_000])} and {len(now[100_000])} runs: {big/small:.2f}x "
                      f"(target <= 1.2x, and under 2 GiB: {big:,.0f} MiB; peaks at 1M {now[1_000_000]}, at 100k {now[100_000]})."]
    (ROOT/"bench"/"results").mkdir(exist_ok=True)
    (ROOT/"bench"/"results"/"eval_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
