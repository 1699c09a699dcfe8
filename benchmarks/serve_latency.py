"""Latency and throughput of ``skclap serve`` under concurrent text queries.

    python benchmarks/serve_latency.py [--rows 100000] [--requests 5000] [--concurrency 200]

Writes a collection of ``--rows`` random unit embeddings in ``skclap embed``'s output layout
(``embeddings.json``, ``embeddings/part-K.parquet``, ``matrix/part-K.npy``) recorded as embedded
with the bundled model (``skclap-instruments``), starts ``skclap serve`` on 127.0.0.1 in its own
process, opens ``--concurrency`` connections and sends ``--requests`` distinct text queries,
``--concurrency`` at a time (a bounded load: every request has a timeout, and the run ends when all
are answered). Latency is measured by the client (aiohttp), from sending to the full answer. Side by
side in one run: the HTTP stack alone (``/info``), one query at a time (``--max-batch 1``) and
batched (``--max-batch 64``, and the default 256).
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
from typing import Any

import numpy as np

MODEL = "skclap-instruments"
WORDS = "dog cat bird rain wind engine siren piano violin drum bell water crowd train door glass guitar flute horn thunder".split()
PLACES = "in the rain|far away|in a hall|outside|at night|in a kitchen|on a street|in the forest|under water|in a car".split("|")


def write_collection(out: Path, rows: int, model: str, dim: int, shard_rows: int = 20000) -> None:
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
    meta = {"format": "skclap-embeddings", "model": model, "settings": {"windows": False}, "dim": dim, "shards": shards}
    (out / "embeddings.json").write_text(json.dumps(meta))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, path: str, queries: list[str], concurrency: int, timeout: float) -> tuple[list[float], float]:
    """Send each query to ``path`` (``?q=...&k=10``), ``concurrency`` at a time; every answer is
    checked. aiohttp is the client: the load generator shares the cores with the server, and its
    cost per request is a small part of the server's."""
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as client:

        async def one(q: str) -> None:
            async with sem:
                t = time.perf_counter()
                async with client.get(path, params={"q": q, "k": "10"}) as r:
                    body = await r.json()
                    assert r.status == 200, body
                    assert path != "/search" or len(body["results"]) == 10
                latencies.append(time.perf_counter() - t)

        # every client's connection is opened first (one /info each), as a browser's stays open
        async def connect() -> None:
            async with client.get("/info") as r:
                assert r.status == 200

        await asyncio.gather(*(connect() for _ in range(concurrency)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(q) for q in queries))
        return latencies, time.perf_counter() - t0


def run_async(coro: Any) -> Any:
    """``coro`` on uvloop where it is installed (the client's own cost is then smaller)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def serve(directory: Path, port: int, max_batch: int, timeout: float = 120.0) -> subprocess.Popen:
    """``skclap serve`` in its own process, returned once it answers ``/info``."""
    import httpx

    cmd = [sys.executable, "-m", "skclap", "serve", str(directory), "--port", str(port), "--max-batch", str(max_batch)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"skclap serve exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/info", timeout=5).status_code == 200:
                return proc
        except httpx.TransportError:  # not listening yet
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"skclap serve did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=200)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise SystemExit("the load generator needs aiohttp: pip install 'skclap[bench]'") from None
    import httpx
    import torch
    from _table import print_table

    from skclap import load_model

    rng = np.random.default_rng(1)
    queries = list({f"{rng.choice(WORDS)} and {rng.choice(WORDS)} {rng.choice(PLACES)} {i}" for i in range(args.requests)})
    rows = [
        ("collection", f"{args.rows} rows", "random unit vectors, exact blocked search"),
        ("load", f"{len(queries)} distinct text queries", f"{args.concurrency} at a time"),
    ]

    def measure(label: str, url: str, path: str, note: str) -> None:
        latencies, seconds = run_async(load(url, path, queries, args.concurrency, timeout=120))
        ms = np.array(latencies) * 1000
        rows.append((f"{label}: p50 / p95 latency", f"{np.percentile(ms, 50):.0f} / {np.percentile(ms, 95):.0f} ms", ""))
        rows.append((f"{label}: queries/s", f"{len(latencies) / seconds:.0f}", note))

    with tempfile.TemporaryDirectory() as tmp:
        write_collection(Path(tmp) / "coll", args.rows, MODEL, load_model(MODEL).config.proj_dim)
        for label, max_batch in (("one at a time", 1), ("batched, up to 64", 64), ("batched, up to 256 (default)", 256)):
            port = free_port()
            proc = serve(Path(tmp) / "coll", port, max_batch)
            try:
                url = f"http://127.0.0.1:{port}"
                httpx.get(url + "/search", params={"q": "warm up", "k": 10}, timeout=60).raise_for_status()
                if max_batch == 1:  # the same load on /info: what the HTTP stack and the client cost alone
                    measure("HTTP alone (/info)", url, "/info", "no search: the ceiling of server and client on these cores")
                measure(label, url, "/search", f"{torch.get_num_threads()} torch threads, {MODEL}")
            finally:
                proc.terminate()
                proc.wait(10)
    print_table(rows)


if __name__ == "__main__":
    main()
