"""The faiss IVF-PQ index searched from disk: rows read by id equal the matrix's; a search that
scans every partition is exact search, in the same form; filters go into the scan (a bitmap) or,
when they leave few rows, to exact search of those rows; the shards are never mapped into memory;
a stale or corrupt index is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skclap import search
from skclap.retrieval import Collection, exact_topk, read_embeddings

from .played_collection import embed_played

faiss = pytest.importorskip("faiss")

from skclap import pq_index  # noqa: E402
from skclap.pq_index import PQIndex, build_pq_index, index_parameters  # noqa: E402
from skclap.rows import ShardRows  # noqa: E402

QUERIES = ["a flute", "a kick drum", "a chord on a piano"]
PARTITIONS = 4


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """300 user-played clips in shards of 128 rows, with a manifest's columns: the instrument (text)
    and the take (an integer)."""
    out = embed_played(tmp_path_factory.mktemp("pq"), 300, seed=9)
    build_pq_index(out, partitions=PARTITIONS)
    return out


def test_rows_read_by_id_are_the_matrix_rows(collection, tmp_path):
    whole = np.asarray(read_embeddings(collection, matrix=True))
    shards = sorted((collection / "matrix").glob("*.npy"))
    rows = ShardRows(shards)
    assert len(shards) == 3 and len(rows) == len(whole) == 300
    ids = np.array([299, 0, 127, 128, 128, 5, 256, 6, 7, 255])  # across shards, out of order, repeated
    np.testing.assert_array_equal(rows.take(ids), whole[ids])
    assert rows.take([]).shape == (0, whole.shape[1])
    with pytest.raises(IndexError):
        rows.take([300])
    few = ShardRows(shards)
    few_open = 2
    import skclap.rows

    skclap.rows.MAX_OPEN, kept = few_open, skclap.rows.MAX_OPEN
    try:
        for ids in ([0, 130, 290], [5, 299], [200, 1]):  # every shard, twice
            np.testing.assert_array_equal(few.take(ids), whole[ids])
            assert len(few._open) <= few_open  # the least recently read closed
    finally:
        skclap.rows.MAX_OPEN = kept
    cut = tmp_path / shards[-1].name
    cut.write_bytes(shards[-1].read_bytes()[:-1000])  # the header still says 44 rows
    with pytest.raises(OSError, match=cut.name):
        ShardRows([*shards[:-1], cut]).take([299])


def test_a_search_of_every_partition_is_exact_search(collection):
    pq = PQIndex(collection, nprobe=PARTITIONS, refine=60)
    matrix = read_embeddings(collection, matrix=True)
    q = np.asarray(matrix)[[3, 100, 250]]
    scores, ids = pq.topk(q, 5)
    want_scores, want_ids = exact_topk(matrix, q, 5)
    np.testing.assert_array_equal(ids, want_ids)
    assert np.abs(scores - want_scores).max() <= 1e-5  # re-ranked on the full vectors: exact scores


@pytest.mark.parametrize("exact_below", [pq_index.EXACT_BELOW, 0], ids=["few rows: exact", "bitmap in the scan"])
def test_results_have_the_exact_form_and_filters_keep_their_rows(collection, monkeypatch, exact_below):
    monkeypatch.setattr(pq_index, "EXACT_BELOW", exact_below)
    coll = Collection(collection, nprobe=PARTITIONS)
    assert coll.index == "faiss-pq"  # the only index the collection has: auto picks it
    exact = search(collection, QUERIES, k=4, index="exact", device="cpu")
    got = search(coll, QUERIES, k=4, device="cpu")
    assert list(got.columns) == list(exact.columns)
    assert list(got["path"]) == list(exact["path"]) and np.abs(got["score"] - exact["score"]).max() <= 1e-5
    wanted = {"instrument": ["flute", "piano"], "take": 1}
    filtered = search(coll, QUERIES, k=4, filters=wanted, device="cpu")
    same = search(collection, QUERIES, k=4, index="exact", filters=wanted, device="cpu")
    assert set(filtered["instrument"]) <= {"flute", "piano"} and set(filtered["take"]) == {1}
    assert list(filtered["path"]) == list(same["path"])


def test_a_search_reads_rows_without_mapping_the_shards(collection):
    """The candidates' vectors come from positional reads: no page of a shard's mapping is resident."""
    smaps = Path("/proc/self/smaps")
    if not smaps.is_file():
        pytest.skip("needs Linux's /proc/self/smaps")
    coll = Collection(collection, index="faiss-pq", nprobe=PARTITIONS)
    coll.topk(np.asarray(coll.vectors(np.arange(0, 300, 7))), 10)
    resident, mapping = {}, None
    for line in smaps.read_text().splitlines():
        if f"{collection}/matrix/part-" in line:  # this collection's (another test's may be mapped too)
            mapping = line.split()[-1]
        elif line.startswith("Rss:") and mapping:
            resident[mapping] = int(line.split()[1])
            mapping = None
    assert len(resident) == 3 and sum(resident.values()) == 0  # mapped (for exact search), never read through


def test_the_search_service_reads_the_index(collection):
    """``skclap serve``'s service on a collection with an IVF-PQ index: it says so, its answers are
    exact search's (every partition read), similar-to-a-row leaves the row out, and filters keep
    only the matching rows."""
    from skclap.search_service import SearchService

    with SearchService(collection, index="faiss-pq", device="cpu") as pq, SearchService(collection, index="exact", device="cpu") as exact:
        assert pq.info()["index"] == "faiss-pq" and exact.info()["index"] == "exact"
        pq.collection.pq.nprobe = PARTITIONS
        got, want = pq.search("a trumpet", k=5), exact.search("a trumpet", k=5)
        assert [r["path"] for r in got["results"]] == [r["path"] for r in want["results"]]
        like = pq.similar(17, k=5)["results"]
        assert [r["id"] for r in like] == [r["id"] for r in exact.similar(17, k=5)["results"]] and 17 not in [r["id"] for r in like]
        kept = pq.search("a trumpet", k=5, filters=["instrument:organ"])["results"]
        assert kept and {r["instrument"] for r in kept} == {"organ"}


def test_a_stale_or_corrupt_index_is_named(collection, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(collection, other)
    meta = (other / "embeddings.json").read_text()
    import json

    record = json.loads(meta)
    record["shards"] = record["shards"][:2]  # the collection as it was before its last shard
    record["n_embedded"] = sum(s["rows"] for s in record["shards"])
    (other / "embeddings.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="rebuild it"):
        PQIndex(other)
    (other / "index-ivfpq.faiss").write_bytes(b"IxPQ" + bytes(200))
    with pytest.raises(OSError, match="index-ivfpq.faiss"):
        PQIndex(other)
    record["shards"] = record["shards"][:1]
    record["n_embedded"] = record["shards"][0]["rows"]
    (other / "embeddings.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="256 or more"):
        build_pq_index(other)


def test_records_are_plain_python_values(collection):
    """A hit's metadata as JSON takes it, whatever the column's type: missing values as None, times
    as datetime and timedelta, numbers as Python numbers."""
    import datetime
    import json

    coll = Collection(collection, index="exact")
    n = len(coll)
    coll.table = pd.DataFrame(
        {
            "path": [f"clip-{i}" for i in range(n)],
            "recorded": pd.to_datetime(["2024-05-01"] * (n - 1) + [None]),
            "length": pd.to_timedelta([1.5] * (n - 1) + [None], unit="s"),
            "take": pd.array([1] * (n - 1) + [None], dtype="Int64"),
            "gain": [0.5] * (n - 1) + [float("nan")],
            "note": ["soft"] * (n - 1) + [None],
        }
    )
    first, last = coll.records([0, n - 1])
    assert first == {
        "path": "clip-0",
        "recorded": datetime.datetime(2024, 5, 1),
        "length": datetime.timedelta(seconds=1.5),
        "take": 1,
        "gain": 0.5,
        "note": "soft",
    }
    assert type(first["recorded"]) is datetime.datetime and type(first["take"]) is int and type(first["gain"]) is float
    assert set(last.values()) == {None, f"clip-{n - 1}"}
    json.dumps([first, last], default=str)


def test_the_commands(collection, capsys):
    from skclap.cli import main

    assert main(["index", str(collection), "--store", "faiss-pq", "--nlist", str(PARTITIONS)]) == 0
    assert "index-ivfpq.faiss" in capsys.readouterr().out
    assert (
        main(["search", str(collection), "a flute", "-k", "3", "--index", "faiss-pq", "--where", "instrument=flute", "--device", "cpu"])
        == 0
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "clip-" in line]
    flutes = set(read_embeddings(collection).query("instrument == 'flute'")["path"].map(lambda p: p.rsplit("/", 1)[1]))
    assert len(lines) == 3 and all(any(name in line for name in flutes) for line in lines)


def test_the_default_store_follows_the_memory_the_vectors_take(collection):
    from skclap.retrieval import default_store

    size = 300 * read_embeddings(collection, matrix=True).shape[1] * 4
    assert default_store(collection, memory=4 * size) == "faiss"  # a quarter of memory: IVF-Flat holds them
    assert default_store(collection, memory=4 * size - 1) == "faiss-pq"


def test_index_parameters_follow_the_rows():
    assert index_parameters(10**7, 256) == (3162, 64)
    assert index_parameters(300, 512) == (1, 128)
    assert index_parameters(10**6, 1024) == (1000, 256)
