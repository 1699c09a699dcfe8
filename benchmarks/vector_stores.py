"""Search from disk at scale: a LanceDB table (IVF-PQ) against skclap's faiss IVF-PQ index
(``skclap index --store faiss-pq``), side by side in one run, on the same vectors and queries.

    python benchmarks/vector_stores.py [--rows 10000000] [--dim 256] [--queries 200] [--work DIR]

The vectors are synthetic unit vectors in 1 000 clusters (as embeddings are), written as an skclap
collection (Parquet with a path column, float32 matrices). The queries are other points of the same
clusters. For each store: ingest (rows/s, LanceDB's table from the collection; faiss needs none),
index build time (both about sqrt(rows) partitions and 4-dimension PQ sub-vectors, as
:func:`skclap.pq_index.index_parameters` chooses), then, in a fresh process that opens the
collection as ``skclap search`` does (:class:`skclap.retrieval.Collection`: the metadata table in
memory, the index from disk), one query at a time: the top 10 with their metadata records, p50/p95
latency, recall@10 against exact search (on ``--exact-queries`` of the queries) and the process's
peak RSS, for each number of partitions scanned and of candidates re-ranked on their full vectors.
faiss-pq reads the candidates' vectors from the collection's shards by positional reads, LanceDB
from its table. No model is loaded: the figures are the store's; a query's embedding is the model's.
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
from _table import print_table  # benchmarks/_table.py (run as: python benchmarks/NAME.py)
from _vectors import clustered_unit_vectors

CLUSTERS = 1000
CENTRES = 12345


def write_collection(root: Path, rows: int, dim: int, block: int) -> float:
    """An skclap collection of synthetic vectors (shards of ``block`` rows); returns seconds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "matrix").mkdir(parents=True)
    (root / "embeddings").mkdir()
    shards, start = [], 0
    t = time.perf_counter()
    for k, vectors in enumerate(clustered_unit_vectors(rows, dim, CLUSTERS, seed=1, block=block, centre_seed=CENTRES)):
        np.save(root / "matrix" / f"part-{k:05d}.npy", vectors)
        paths = pa.array([f"/data/sounds/{i:09d}.flac" for i in range(start, start + len(vectors))])
        pq.write_table(pa.table({"path": paths}), root / "embeddings" / f"part-{k:05d}.parquet")
        shards.append({"parquet": f"embeddings/part-{k:05d}.parquet", "npy": f"matrix/part-{k:05d}.npy", "rows": len(vectors)})
        start += len(vectors)
    meta = {"format": "skclap-embeddings", "model": "synthetic", "dim": dim, "n_embedded": start, "shards": shards, "settings": {}}
    (root / "embeddings.json").write_text(json.dumps(meta))
    return time.perf_counter() - t


def build_stores(root: Path, n: int, dim: int, partitions: int, sub: int, rows: list[tuple[str, str, str]]) -> None:
    """Both stores from the collection at ``root``, their ingest and build times added to ``rows``."""
    from skclap.lance_store import build_lance_index, write_lance
    from skclap.pq_index import build_pq_index

    t = time.perf_counter()
    write_lance(root)
    ingest = time.perf_counter() - t
    rows.append(("LanceDB: ingest", f"{n / ingest:,.0f} rows/s", f"{ingest:.0f} s for {n:,} rows from the collection"))
    t = time.perf_counter()
    build_lance_index(root, partitions=partitions, sub_vectors=sub)
    build = time.perf_counter() - t
    rows.append(
        (
            "LanceDB: IVF-PQ build",
            f"{build:.0f} s",
            f"{partitions} partitions, {sub} sub-vectors of 8 bits ({dim // sub} dimensions each)",
        )
    )
    print(f"lance: ingest {ingest:.0f} s, index {build:.0f} s", flush=True)
    t = time.perf_counter()
    build_pq_index(root, partitions, sub)
    faiss_build = time.perf_counter() - t
    rows.append(("faiss-pq: IVF-PQ build", f"{faiss_build:.0f} s", f"{partitions} cells, {sub} sub-quantizers of 8 bits; written to disk"))
    print(f"faiss: index {faiss_build:.0f} s", flush=True)


def peak_rss_mib() -> int:
    """This process's peak resident memory (VmHWM: since its exec, unlike ru_maxrss, which Linux
    carries over from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def serve_queries(store: str, root: str, queries_path: str, k: int, nprobes: int, refine: int, out: str) -> None:
    """In a fresh process: open the collection with ``store`` as its index, answer the queries one
    at a time (``refine`` times ``k`` candidates re-ranked on full vectors, then the hits' metadata),
    save ids and latencies, print the peak RSS (MiB)."""
    from skclap.retrieval import Collection

    queries = np.load(queries_path)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    latency = np.zeros(len(queries))
    coll = Collection(root, index=store, nprobe=nprobes)
    (coll.pq or coll.lance).refine = refine
    coll.records(coll.topk(queries[:1], k)[1][0])  # the index's first read
    for i, q in enumerate(queries):
        t = time.perf_counter()
        _, found = coll.topk(q[None], k)
        coll.records(found[0])
        ids[i] = found[0]
        latency[i] = time.perf_counter() - t
    np.savez(out, ids=ids, latency=latency)
    print(peak_rss_mib())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact-queries", type=int, default=100, help="queries whose exact top 10 is computed, for recall")
    ap.add_argument("--nprobes", default="16,32", help="partitions probed, one run of queries each")
    ap.add_argument("--refine", default="20,50,100", help="candidates re-ranked on full vectors, in multiples of k: one run each")
    ap.add_argument("--sub-vectors", type=int, help="PQ sub-vectors of both stores (default: dim / 8, as skclap index chooses)")
    ap.add_argument("--work", help="folder for the collection and stores (default: a temporary one, removed)")
    ap.add_argument(
        "--reuse-indexes", action="store_true", help="with --work: search the stores an earlier run built there (no ingest or build rows)"
    )
    ap.add_argument("--serve", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        store, root, queries, nprobes, refine, out = args.serve
        serve_queries(store, root, queries, 10, int(nprobes), int(refine), out)
        return

    from skclap.layout import LANCE_NAME, PQ_INDEX_NAME
    from skclap.pq_index import index_parameters
    from skclap.retrieval import exact_topk, read_embeddings

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="skclap-stores-"))
    root = work / "collection"
    rows: list[tuple[str, str, str]] = []
    try:
        if not (root / "embeddings.json").is_file():
            shutil.rmtree(root, ignore_errors=True)
            seconds = write_collection(root, args.rows, args.dim, block=250_000)
            print(f"wrote {args.rows:,} x {args.dim} vectors in {seconds:.0f} s", flush=True)
        partitions, sub = index_parameters(args.rows, args.dim)
        sub = args.sub_vectors or sub
        built = (root / LANCE_NAME).is_dir() and (root / PQ_INDEX_NAME).is_file()
        if args.reuse_indexes and built:
            print("searching the stores an earlier run built", flush=True)
        else:
            build_stores(root, args.rows, args.dim, partitions, sub, rows)
        queries = next(clustered_unit_vectors(args.queries, args.dim, CLUSTERS, seed=2, block=args.queries, centre_seed=CENTRES))
        np.save(work / "queries.npy", queries)
        t = time.perf_counter()
        _, truth = exact_topk(read_embeddings(root, matrix=True), queries[: args.exact_queries], 10)
        exact = time.perf_counter() - t
        rows.append(
            ("exact search (truth)", f"{exact / args.exact_queries * 1000:.0f} ms/query", f"{args.exact_queries} queries at once, blocked")
        )
        for store in ("lance", "faiss-pq"):
            for nprobes in (int(x) for x in args.nprobes.split(",")):
                for refine in (int(x) for x in args.refine.split(",")):
                    out = work / f"{store}-{nprobes}-{refine}.npz"
                    done = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--serve",
                            store,
                            str(root),
                            str(work / "queries.npy"),
                            str(nprobes),
                            str(refine),
                            str(out),
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    rss = int(done.stdout.strip().splitlines()[-1])
                    got = np.load(out)
                    recall = np.mean([len(set(got["ids"][i]) & set(truth[i])) / 10 for i in range(len(truth))])
                    p50, p95 = (np.percentile(got["latency"], p) * 1000 for p in (50, 95))
                    rows.append(
                        (
                            f"{'LanceDB' if store == 'lance' else 'faiss-pq'}: {nprobes} partitions, {refine} x k re-ranked",
                            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
                            f"recall@10 {recall:.3f}; peak RSS {rss} MiB",
                        )
                    )
                    print(rows[-1], flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.rows:,} rows of {args.dim}-d unit vectors in {CLUSTERS} clusters; {args.queries} queries, other points of the same "
        f"clusters, one at a time in a fresh process per row; recall on {args.exact_queries} of them"
    )
    print_table(rows)


if __name__ == "__main__":
    os.environ.setdefault("RUST_LOG", "error")  # lance's deprecation notices
    main()
