"""Retrieval measures beyond embedding: the time of :func:`skclap.metrics.retrieval_metrics` under
each protocol for an AudioCaps/Clotho-sized test set (1 000 clips, five captions each).

    python benchmarks/retrieval_metrics.py [--clips 1000] [--captions 5] [--dim 1024] [--repeats 7]

The embeddings are random unit vectors (float32, as the encoders return them; and float64), each
caption near its clip so that the ranks are spread as a trained model's are. Each figure is the
median of ``--repeats`` calls, measured side by side in one run; the score matrix (one matrix
product) is timed on its own, as the part every protocol shares.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _table import print_table  # benchmarks/_table.py (run as: python benchmarks/NAME.py)


def unit_vectors(clips: int, captions: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((clips, dim))
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    # noise about 11 times the clip's length, so that a caption's clip lands anywhere from the top to
    # far down its ranking, as with a trained model, rather than always first
    text = np.repeat(audio, captions, axis=0) + rng.standard_normal((clips * captions, dim)) * (11 / np.sqrt(dim))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return audio, text, np.repeat(np.arange(clips), captions)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--captions", type=int, default=5)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    from skclap.metrics import RETRIEVAL_PROTOCOLS, retrieval_metrics

    audio64, text64, owner = unit_vectors(args.clips, args.captions, args.dim)
    size = f"{args.clips} clips × {args.captions} captions, {args.dim}-d"
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    rows: list[tuple[str, str, str]] = []
    for dtype in (np.float32, np.float64):
        audio, text = audio64.astype(dtype), text64.astype(dtype)
        name = np.dtype(dtype).name
        scores = median_seconds(lambda a=audio, t=text: t @ a.T, args.repeats)
        rows.append((f"score matrix only, {name}", f"{scores * 1e3:.1f} ms", f"{size}; BLAS threads: {threads}"))
        for protocol in RETRIEVAL_PROTOCOLS:
            seconds = median_seconds(lambda a=audio, t=text, p=protocol: retrieval_metrics(a, t, owner, protocol=p), args.repeats)
            rows.append((f"{protocol}, {name}", f"{seconds * 1e3:.1f} ms", f"{seconds / scores:.1f}× the score matrix"))
    m = retrieval_metrics(audio64, text64, owner)
    print(f"the set (standard): t2a R@1 {m['t2a_R@1']:.3f}, a2t R@1 {m['a2t_R@1']:.3f}, t2a median rank {m['t2a_median_rank']:.0f}")
    print_table(rows)


if __name__ == "__main__":
    main()
