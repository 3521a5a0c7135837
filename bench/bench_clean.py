"""Benchmark of the cleaning step (01_clean). Prints a table and saves it to bench/results/clean.md.

    .venv/bin/python bench/bench_clean.py [--quick]

Cases, each in a fresh process (so peak memory is that case's own):
- the whole step (read → publish) on the bundled sample and on the full banking77 train file
  (from ../shared/data, skipped when absent);
- the near-duplicate search alone on 10k and 100k synthetic short texts (bench/synth.py: Zipf
  vocabulary, 5% injected copies with 1–2 word edits), with precision and recall of the injected
  pairs: this step's chunked search (`similar_pairs`), `sparse_dot_topn` called directly on the
  whole matrix, and scikit-learn/scipy's plain sparse product in chunks (10k only: it took over
  two minutes at 100k).
Run it on an otherwise idle machine: timings on 2 shared cores move with any other load.
"""
import json, platform, subprocess, sys, textwrap, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BANKING = ROOT.parent/"shared"/"data"/"banking77"/"train.jsonl"

PRELUDE = """
import json, resource, sys, time, tempfile
sys.path.insert(0, {bench!r})
def peak_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024
"""

WHOLE = """
from finetune_nb.clean import CleanSettings, run_clean
kw = json.loads({kw!r})
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    res, pub = run_clean(CleanSettings(target=d + "/ds", **kw))
    dt = time.perf_counter() - t0
print(json.dumps(dict(seconds=dt, peak_mb=peak_mb(), rows_in=res.stats["input"]["lines"],
                      train=len(res.train), test=len(res.test), dropped=len(res.ledger),
                      near=res.stats["dropped"].get("near_duplicate", 0))))
"""

SEARCH = """
import numpy as np
from synth import make_texts
from finetune_nb.clean import tfidf_vectors, similar_pairs, normalize_text, _threads
texts, pairs = make_texts({n})
X = tfidf_vectors([normalize_text(t) for t in texts])
t0 = time.perf_counter()
method = {method!r}
if method == "finetune_nb":
    i, j, _ = similar_pairs(X, 0.8)
elif method == "sparse_dot_topn":
    from sparse_dot_topn import sp_matmul_topn
    C = sp_matmul_topn(X, X.T.tocsr(), top_n=51, threshold=0.8 - 1e-9, n_threads=_threads()).tocoo()
    m = C.col > C.row; i, j = C.row[m], C.col[m]
else:
    XT = X.T.tocsr(); I, J = [], []
    for s in range(0, X.shape[0], 2048):
        S = (X[s:s + 2048] @ XT).tocoo()
        m = (S.data >= 0.8 - 1e-9) & (S.col > S.row + s); I.append(S.row[m] + s); J.append(S.col[m])
    i, j = np.concatenate(I), np.concatenate(J)
dt = time.perf_counter() - t0
found = set(zip(i.tolist(), j.tolist())); truth = set(pairs); tp = len(found & truth)
print(json.dumps(dict(seconds=dt, peak_mb=peak_mb(), pairs=len(found), precision=tp/max(1, len(found)), recall=tp/len(truth))))
"""


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(PRELUDE.format(bench=str(ROOT/"bench")) + code)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode: raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(quick: bool = False):
    rows = []
    whole = [("bundled sample", {})]
    if BANKING.exists(): whole.append(("banking77 train (10,003 lines)", {"input_path": str(BANKING)}))
    for name, kw in whole:
        r = run(WHOLE.format(kw=json.dumps(kw)))
        rows.append(f"| whole step | {name} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | in {r['rows_in']}, train {r['train']}, "
                    f"test {r['test']}, dropped {r['dropped']} ({r['near']} near dup.) |")
        print(rows[-1], flush=True)
    for n in ([10_000] if quick else [10_000, 100_000]):
        for method in ("finetune_nb", "sparse_dot_topn", "scipy"):
            if method == "scipy" and n > 10_000: continue
            r = run(SEARCH.format(n=n, method=method))
            label = {"finetune_nb": "similar_pairs (chunked, progress bar)", "sparse_dot_topn": "sparse_dot_topn direct",
                     "scipy": "scipy sparse product, chunked"}[method]
            rows.append(f"| near-dup search | {n:,} synthetic: {label} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | "
                        f"{r['pairs']} pairs, precision {r['precision']:.3f}, recall {r['recall']:.3f} |")
            print(rows[-1], flush=True)
    head = ["| what | data | seconds | peak MB | result |", "|---|---|---|---|---|"]
    note = (f"\n{time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, {platform.machine()}, "
            f"{len(__import__('os').sched_getaffinity(0))} cores; threshold 0.8, word-unigram TF-IDF. "
            "Peak MB is the process's peak RSS (Python, libraries and data included).\n")
    table = "\n".join(["# Cleaning step benchmark", "", *head, *rows, note])
    print("\n" + table)
    if not quick: (ROOT/"bench"/"results"/"clean.md").write_text(table)


if __name__ == "__main__": main("--quick" in sys.argv)
