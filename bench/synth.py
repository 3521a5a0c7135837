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
