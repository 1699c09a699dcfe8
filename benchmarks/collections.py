"""Collections at scale: skclap embed vs CLAPEmbedder.transform, 1 vs 2 processes, memory, and search.

    python benchmarks/collections.py [--files 2000] [--preset small] [--rows 1000000] [--dim 1024]

Measured side by side in one run, on this machine:

- files/s of ``skclap embed`` (one process, 2 threads; and ``torchrun --nproc_per_node=2``, one
  thread each) and of one ``CLAPEmbedder.transform`` call, on the same mixed files: wav, flac and
  mp3 at 44.1 or 48 kHz, 2-30 s long, decoded, downmixed and resampled to the model's rate. The model
  is a preset at random weights (default ``small``: 16 kHz, 2 s windows), so that the run takes
  minutes; it is a model of the real size for decoding and I/O, not for the network;
- peak RSS of fresh ``skclap embed`` processes over a quarter of the files and over all of them:
  flat means memory does not grow with the collection;
- search over ``--rows`` synthetic unit vectors (clustered, as embeddings are, 1000 clusters):
  exact blocked search over memory-mapped shards, the faiss IVF index (build time, query time,
  recall@10 against exact search at several ``nprobe``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _table import machine, print_table  # benchmarks/_table.py (run as: python benchmarks/NAME.py)
from _vectors import clustered_unit_vectors

FORMATS = [("WAV", ".wav", 44100), ("FLAC", ".flac", 48000), ("MP3", ".mp3", 44100), ("WAV", ".wav", 48000), ("FLAC", ".flac", 44100)]


def write_files(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        fmt, ext, rate = FORMATS[i % len(FORMATS)]
        seconds = rng.uniform(2, 30)
        t = np.arange(int(seconds * rate)) / rate
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.03 * rng.standard_normal(len(t))
        channels = 2 if i % 3 == 0 else 1
        data = np.stack([x, 0.9 * x], axis=1) if channels == 2 else x
        path = folder / f"{i // 500:02d}" / f"clip{i:05d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, data.astype(np.float32), rate, format=fmt)
        paths.append(path)
    return paths


def run_embed(cmd: list[str], env: dict) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB, the largest process) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) // 1024


def peak_rss_of(code: str, env: dict) -> int:
    """Peak RSS (MiB) of a fresh Python process running ``code``."""
    probe = code + "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", probe], check=True, env=env, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1]) // 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--skip-embed", action="store_true")
    args = ap.parse_args()

    import torch

    from skclap import CLAPModel
    from skclap.retrieval import EmbeddingMatrix, build_index, exact_topk

    print(f"{machine()}, torch {torch.__version__}")
    rows: list[tuple[str, str, str]] = []
    work = Path(tempfile.mkdtemp(prefix="skclap-bench-"))
    try:
        if not args.skip_embed:
            model_dir = work / "model"
            CLAPModel.from_preset(args.preset, seed=0).save_pretrained(model_dir)
            t = time.perf_counter()
            files = write_files(work / "audio", args.files)
            hours = sum(sf.info(p).duration for p in files) / 3600
            print(f"wrote {len(files)} files ({hours:.1f} h of audio) in {time.perf_counter() - t:.0f} s")
            env = {**os.environ, "OMP_NUM_THREADS": "2"}
            base = ["--model", str(model_dir), "--no-progress", "--device", "cpu", "--shard-size", "250", "--decode-workers", "2"]
            s1, rss1 = run_embed([sys.executable, "-m", "skclap.embed", str(work / "audio"), "--out", str(work / "one"), *base], env)
            torchrun = shutil.which("torchrun")
            env1 = {**os.environ, "OMP_NUM_THREADS": "1"}
            s2, _ = run_embed(
                [
                    torchrun,
                    "--standalone",
                    "--nproc_per_node=2",
                    "-m",
                    "skclap.embed",
                    str(work / "audio"),
                    "--out",
                    str(work / "two"),
                    *base[:-2],
                    "--decode-workers",
                    "1",
                ],
                env1,
            )
            code = (
                f"from skclap import CLAPEmbedder; import glob; f = sorted(glob.glob({str(work / 'audio')!r} + '/*/*'));"
                f"CLAPEmbedder(model={str(model_dir)!r}, progress=False, device='cpu', cache=False).fit_transform(f)"
            )
            t = time.perf_counter()
            rss_est = peak_rss_of(code, env)
            s3 = time.perf_counter() - t
            quarter = sorted(str(p) for p in files)[: len(files) // 4]
            (work / "quarter.txt").write_text("\n".join(quarter))
            rss_q = peak_rss_of(
                f"from skclap import embed_collection; embed_collection({str(work / 'quarter.txt')!r}, {str(work / 'q')!r}, "
                f"{str(model_dir)!r}, shard_size=250, decode_workers=2, progress=False, device='cpu')",
                env,
            )
            rss_all = peak_rss_of(
                f"from skclap import embed_collection; embed_collection({str(work / 'audio')!r}, {str(work / 'all')!r}, "
                f"{str(model_dir)!r}, shard_size=250, decode_workers=2, progress=False, device='cpu')",
                env,
            )
            n = len(files)
            rows += [
                (
                    f"skclap embed, 1 process (2 threads), {args.preset}",
                    f"{n / s1:.1f} files/s",
                    f"{s1:.0f} s for {n} files ({hours:.1f} h)",
                ),
                ("skclap embed, torchrun 2 processes (1 thread each)", f"{n / s2:.1f} files/s", f"{s1 / s2:.2f}x one process"),
                ("CLAPEmbedder.transform, one call", f"{n / s3:.1f} files/s", f"skclap embed / transform: {s3 / s1:.2f}x"),
                (
                    f"peak RSS, skclap embed over {len(quarter)} / {n} files",
                    f"{rss_q} / {rss_all} MiB",
                    "flat: shards are written and freed",
                ),
                ("peak RSS, CLAPEmbedder.transform over all files", f"{rss_est} MiB", "holds every embedding (small) and nothing else"),
            ]
            del rss1

        # ----------------------------------------------------------------------------- search
        coll = work / "vectors"
        (coll / "matrix").mkdir(parents=True)
        shards, n_rows = [], 0
        t = time.perf_counter()
        for k, block in enumerate(clustered_unit_vectors(args.rows, args.dim, 1000, seed=1, block=250_000)):
            np.save(coll / "matrix" / f"part-{k:05d}.npy", block)
            shards.append({"npy": f"matrix/part-{k:05d}.npy", "parquet": f"embeddings/part-{k:05d}.parquet", "rows": len(block)})
            n_rows += len(block)
        (coll / "embeddings.json").write_text(json.dumps({"shards": shards, "model": "synthetic", "dim": args.dim}))
        print(f"wrote {n_rows} x {args.dim} synthetic vectors in {time.perf_counter() - t:.0f} s")
        matrix = EmbeddingMatrix([np.load(coll / s["npy"], mmap_mode="r") for s in shards])
        queries = next(clustered_unit_vectors(args.queries, args.dim, 1000, seed=2))
        exact_topk(matrix, queries[:1], 10)  # page the shards in once
        t = time.perf_counter()
        exact_topk(matrix, queries[:1], 10)
        t_one = time.perf_counter() - t
        t = time.perf_counter()
        _, truth = exact_topk(matrix, queries, 10)
        t_many = time.perf_counter() - t
        rows += [
            (f"exact search, {n_rows:,} x {args.dim}, 1 query", f"{t_one * 1000:.1f} ms", "blocked products over memory-mapped shards"),
            (f"exact search, {args.queries} queries at once", f"{t_many * 1000 / args.queries:.1f} ms/query", f"{t_many:.1f} s in all"),
        ]
        try:
            import faiss
        except ImportError:
            rows.append(("faiss IVF index", "not measured", "pip install faiss-cpu"))
        else:
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            t = time.perf_counter()
            build_index(coll)
            t_build = time.perf_counter() - t
            index = faiss.read_index(str(coll / "index.faiss"))
            trained = min(n_rows, max(65536, 39 * index.nlist))
            rows.append((f"faiss IVF-Flat build ({index.nlist} cells)", f"{t_build:.0f} s", f"k-means on {trained:,} rows, then add all"))
            for nprobe in (8, 32, 128):
                index.nprobe = nprobe
                t = time.perf_counter()
                _, got = index.search(queries, 10)
                dt = time.perf_counter() - t
                recall = np.mean([len(set(got[i]) & set(truth[i])) / 10 for i in range(len(queries))])
                rows.append(
                    (
                        f"faiss search, nprobe {nprobe}",
                        f"{dt * 1000 / len(queries):.2f} ms/query",
                        f"recall@10 {recall:.3f}; {t_many / dt:.0f}x exact",
                    )
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()
