"""Latency and throughput of ``skclap serve`` under concurrent text queries.

    python benchmarks/serve_latency.py [--rows 100000] [--requests 1000] [--concurrency 200]

Writes a collection of ``--rows`` random unit embeddings in ``skclap embed``'s output layout
(``embeddings.json``, ``embeddings/part-K.parquet``, ``matrix/part-K.npy``) for the ``small``
architecture (random weights: speed depends on the architecture, not on the weights), starts
``skclap serve`` on 127.0.0.1 in its own process, and sends ``--requests`` distinct text queries,
``--concurrency`` at a time (a bounded load: every request has a timeout, and the run ends when all
are answered). Side by side in one run: one query at a time (the default) and batched
(``--max-batch 64``). Latency is measured by the client, from sending to the full answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = "dog cat bird rain wind engine siren piano violin drum bell water crowd train door glass guitar flute horn thunder".split()
PLACES = "in the rain|far away|in a hall|outside|at night|in a kitchen|on a street|in the forest|under water|in a car".split("|")


def write_collection(out: Path, rows: int, model_dir: Path, dim: int, shard_rows: int = 20000) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    (out / "embeddings").mkdir(parents=True)
    (out / "matrix").mkdir()
    shards = []
    for k, start in enumerate(range(0, rows, shard_rows)):
        n = min(shard_rows, rows - start)
        x = rng.standard_normal((n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(out / "matrix" / f"part-{k:05d}.npy", x)
        table = pd.DataFrame(
            {
                "path": [f"/data/sounds/clip{start + i:07d}.wav" for i in range(n)],
                "duration": 5.0,
                "sample_rate": 44100,
                "n_windows": 1,
            }
        )
        table.to_parquet(out / "embeddings" / f"part-{k:05d}.parquet", index=False)
        shards.append({"parquet": f"embeddings/part-{k:05d}.parquet", "npy": f"matrix/part-{k:05d}.npy", "rows": n})
    meta = {"format": "skclap-embeddings", "model": str(model_dir), "settings": {"windows": False}, "dim": dim, "shards": shards}
    (out / "embeddings.json").write_text(json.dumps(meta))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, queries: list[str], concurrency: int, timeout: float) -> tuple[list[float], float]:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def one(q: str) -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.get("/search", params={"q": q, "k": 10})
                r.raise_for_status()
                assert len(r.json()["results"]) == 10
                latencies.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(q) for q in queries))
        return latencies, time.perf_counter() - t0


def serve(directory: Path, port: int, max_batch: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "skclap", "serve", str(directory), "--port", str(port), "--max-batch", str(max_batch)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "serving ..." once the collection and the model are loaded
    if "serving" not in line:
        proc.kill()
        raise RuntimeError(f"skclap serve did not start: {line}{proc.stdout.read()}")
    return proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=200)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import httpx
    import torch
    from _table import print_table

    from skclap import CLAPModel

    rng = np.random.default_rng(1)
    queries = list({f"{rng.choice(WORDS)} and {rng.choice(WORDS)} {rng.choice(PLACES)} {i}" for i in range(args.requests)})
    rows = [
        ("collection", f"{args.rows} rows", "random unit vectors, exact blocked search"),
        ("load", f"{len(queries)} distinct text queries", f"{args.concurrency} at a time"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model = CLAPModel.from_preset("small", seed=0)
        model.save_pretrained(model_dir)
        write_collection(Path(tmp) / "coll", args.rows, model_dir, model.config.proj_dim)
        for label, max_batch in (("one at a time", 1), ("batched (up to 64)", 64)):
            port = free_port()
            proc = serve(Path(tmp) / "coll", port, max_batch)
            try:
                url = f"http://127.0.0.1:{port}"
                httpx.get(url + "/search", params={"q": "warm up", "k": 10}, timeout=60).raise_for_status()
                latencies, seconds = asyncio.run(load(url, queries, args.concurrency, timeout=120))
            finally:
                proc.terminate()
                proc.wait(10)
            ms = np.array(latencies) * 1000
            rows.append((f"{label}: p50 / p95 latency", f"{np.percentile(ms, 50):.0f} / {np.percentile(ms, 95):.0f} ms", ""))
            rows.append(
                (f"{label}: queries/s", f"{len(latencies) / seconds:.0f}", f"{torch.get_num_threads()} torch threads, small preset")
            )
    print_table(rows)


if __name__ == "__main__":
    main()
