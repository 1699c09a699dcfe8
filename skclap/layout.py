"""Where a finished collection's readers find its parts: the run's record, the Lance table and the
IVF-PQ index.

:mod:`skclap.embed` writes a collection; :mod:`skclap.retrieval` and :mod:`skclap.lance_store`
read it. The names they share live here, below all three.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["INDEXES", "LANCE_NAME", "META_NAME", "PQ_INDEX_NAME", "read_meta"]

#: The run's record, written once every shard is done (model, settings, width, shards).
META_NAME = "embeddings.json"
#: The LanceDB table's folder (``skclap embed --format lance``, ``skclap index --store lance``).
LANCE_NAME = "collection.lance"
#: The faiss IVF-PQ index searched from disk (``skclap index --store faiss-pq``).
PQ_INDEX_NAME = "index-ivfpq.faiss"
#: The stores a search reads (``auto``: the first the collection has of faiss, faiss-pq, lance).
INDEXES = ("auto", "exact", "faiss", "faiss-pq", "lance")


def read_meta(directory: str | os.PathLike) -> dict:
    """A finished collection's record, or a FileNotFoundError that says how to finish it."""
    path = Path(directory) / META_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{os.fspath(directory)!r} has no {META_NAME}: not a finished `skclap embed` output "
            f"(an interrupted run is finished by running the same command again)"
        )
    return json.loads(path.read_text())
