"""Synthetic short texts for near-duplicate benchmarks: a Zipf vocabulary and injected near-copies.

    make_texts(n, dup_rate=0.05, seed=0) -> (texts, pairs)

`pairs` are `(original_index, copy_index)`: each copy is its original with 1–2 word edits
(a substitution, an insertion or a deletion), placed after it.
"""
import numpy as np


def make_texts(n: int, dup_rate: float = 0.05, vocab: int = 20_000, zipf_a: float = 1.15,
               min_words: int = 6, max_words: int = 18, seed: int = 0):
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)])
    ranks = np.arange(1, vocab + 1)
    p = 1.0 / ranks**zipf_a; p /= p.sum()
    n_copies = int(n*dup_rate)
    n_orig = n - n_copies
    lengths = rng.integers(min_words, max_words + 1, n_orig)
    flat = rng.choice(vocab, size=int(lengths.sum()), p=p)
    texts, at = [], 0
    for L in lengths:
        texts.append(list(words[flat[at:at+L]])); at += L
    pairs = []
    for src in rng.choice(n_orig, size=n_copies, replace=False):
        t = list(texts[src])
        for _ in range(rng.integers(1, 3)):
            op = rng.integers(3)
            if op == 0: t[rng.integers(len(t))] = words[rng.choice(vocab, p=p)]
            elif op == 1: t.insert(rng.integers(len(t) + 1), words[rng.choice(vocab, p=p)])
            elif len(t) > 3: del t[rng.integers(len(t))]
        pairs.append((int(src), len(texts)))
        texts.append(t)
    # shuffle, keeping each copy after its original
    order = rng.permutation(len(texts))
    pos = np.empty_like(order); pos[order] = np.arange(len(order))
    out = [" ".join(texts[i]) for i in order]
    pairs = [tuple(sorted((int(pos[a]), int(pos[b])))) for a, b in pairs]
    return out, pairs


def make_template_texts(n: int, around: int = 2_000, template_words: int = 14, seed: int = 0):
    """`n` texts: `n - around` as `make_texts` (no injected copies), and `around` texts that each follow one template
    with 1–2 word edits, spread through the file — a case that fills any top-n neighbour list."""
    rng = np.random.default_rng(seed + 1)
    base, _ = make_texts(n - around, dup_rate=0.0, seed=seed)
    vocab = sorted({w for t in base[:5_000] for w in t.split()})
    template = [f"t{i}" for i in range(template_words)]
    variants = []
    for _ in range(around):
        t = list(template)
        for _ in range(rng.integers(1, 3)):
            op = rng.integers(3)
            if op == 0: t[rng.integers(len(t))] = vocab[rng.integers(len(vocab))]
            elif op == 1: t.insert(rng.integers(len(t) + 1), vocab[rng.integers(len(vocab))])
            else: del t[rng.integers(len(t))]
        variants.append(" ".join(t))
    out = list(base)
    for v, at in zip(variants, np.sort(rng.integers(0, n - around, around))[::-1]): out.insert(int(at), v)
    return out


def write_jsonl(path, n: int, labels: int = 20, flip: float = 0.05, seed: int = 0):
    "A JSONL file of `n` synthetic texts (`make_texts`) with `label`s; a near copy keeps its original's label, `flip` of them not."
    import json
    texts, pairs = make_texts(n, seed=seed)
    rng = np.random.default_rng(seed + 2)
    lab = rng.integers(0, labels, n)
    for a, b in pairs: lab[b] = lab[a] if rng.random() >= flip else rng.integers(0, labels)
    with open(path, "w") as f:
        for t, l in zip(texts, lab): f.write(json.dumps({"text": t, "label": f"intent_{l}"}) + "\n")
    return path
