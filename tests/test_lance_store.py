"""A collection in LanceDB: the table holds every row in order; its IVF-PQ search, re-ranked on the
full vectors, gives exact search's results in the same form; metadata filters go into the query;
a corrupt table is named."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from skclap import search
from skclap.retrieval import Collection, exact_topk, read_embeddings

from .played_collection import embed_played

lancedb = pytest.importorskip("lancedb")

from skclap.lance_store import LanceIndex, build_lance_index, where_clause  # noqa: E402

QUERIES = ["a flute", "a kick drum", "a chord on a piano"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """300 user-played clips (enough rows to train 256 PQ centroids), with a manifest's columns:
    the instrument (text) and the take (an integer)."""
    out = embed_played(tmp_path_factory.mktemp("lance"), 300, seed=8)
    build_lance_index(out, partitions=4)
    return out


def test_the_table_holds_every_row_in_order(collection):
    table = lancedb.connect(collection).open_table("collection").to_pandas()
    frame = read_embeddings(collection)
    assert list(table["id"]) == list(range(len(frame))) and list(table["path"]) == list(frame["path"])
    assert list(table["take"]) == list(frame["take"]) and table["take"].dtype.kind == "i"
    np.testing.assert_array_equal(np.stack(table["vector"]), np.stack(frame["embedding"]))


def test_search_reading_every_partition_is_exact_search(collection):
    lance = LanceIndex(collection, nprobes=4, refine=60)
    matrix = read_embeddings(collection, matrix=True)
    q = np.stack([np.asarray(matrix)[i] for i in (3, 100, 250)])
    scores, ids = lance.topk(q, 5)
    want_scores, want_ids = exact_topk(matrix, q, 5)
    np.testing.assert_array_equal(ids, want_ids)
    assert np.abs(scores - want_scores).max() <= 1e-5  # re-ranked on the full vectors: exact scores


def test_search_results_have_the_exact_form_and_filters_go_into_the_query(collection):
    exact = search(collection, QUERIES, k=4, index="exact", device="cpu")
    lance = search(Collection(collection, index="lance", nprobe=4), QUERIES, k=4, device="cpu")
    assert list(lance.columns) == list(exact.columns)
    assert list(lance["path"]) == list(exact["path"]) and np.abs(lance["score"] - exact["score"]).max() <= 1e-5
    wanted = {"instrument": ["flute", "piano"], "take": 1}
    filtered = search(Collection(collection, index="lance", nprobe=4), QUERIES, k=4, filters=wanted, device="cpu")
    same = search(collection, QUERIES, k=4, index="exact", filters=wanted, device="cpu")
    assert set(filtered["instrument"]) <= {"flute", "piano"} and set(filtered["take"]) == {1}
    assert list(filtered["path"]) == list(same["path"])
    assert "`take` IN (1)" in where_clause({"take": "1"}, LanceIndex(collection).schema)  # typed as the column is
    with pytest.raises(ValueError, match="not a column"):
        search(Collection(collection, index="lance"), "a flute", filters={"colour": "red"}, device="cpu")


def test_the_commands(collection, capsys):
    from skclap.cli import main

    assert main(["index", str(collection), "--store", "lance", "--nlist", "4"]) == 0
    assert "collection.lance" in capsys.readouterr().out
    assert (
        main(["search", str(collection), "a flute", "-k", "3", "--index", "lance", "--where", "instrument=flute", "--device", "cpu"]) == 0
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "clip-" in line]
    flutes = set(read_embeddings(collection).query("instrument == 'flute'")["path"].map(lambda p: p.rsplit("/", 1)[1]))
    assert len(lines) == 3 and all(any(name in line for name in flutes) for line in lines)


def test_a_corrupt_table_is_named(collection, tmp_path):
    import shutil

    copy = tmp_path / "emb"
    shutil.copytree(collection, copy)
    for data in (copy / "collection.lance" / "data").glob("*.lance"):
        data.write_bytes(b"\0" * 64)
    with pytest.raises(OSError, match="collection.lance"):
        LanceIndex(copy, nprobes=4).topk(np.ones((1, 128), np.float32) / np.sqrt(128), 3)


def test_the_search_service_reads_the_table(collection):
    """``skclap serve``'s service on a collection whose store is Lance: its answers are exact
    search's (every partition read), and its filters keep only the matching rows."""
    from skclap.search_service import SearchService

    with SearchService(collection, index="lance", device="cpu") as lance, SearchService(collection, index="exact", device="cpu") as exact:
        assert lance.collection.lance is not None and exact.collection.lance is None
        lance.collection.lance.nprobes = 4
        got, want = lance.search("a trumpet", k=5), exact.search("a trumpet", k=5)
        assert [r["path"] for r in got["results"]] == [r["path"] for r in want["results"]]
        kept = lance.search("a trumpet", k=5, filters=["instrument:organ"])["results"]
        assert kept and {r["instrument"] for r in kept} == {"organ"}


def test_a_reader_keeps_its_version_while_rows_are_appended(collection, tmp_path):
    """Rows appended batch by batch by another writer while a reader searches: the reader answers
    from the version it opened (whole, its ids only), and a reader opened after sees every batch."""
    import shutil
    import threading

    copy = tmp_path / "emb"
    shutil.copytree(collection, copy)
    reader = LanceIndex(copy, nprobes=4)
    n = len(reader)
    table = lancedb.connect(copy).open_table("collection")
    rows = table.to_arrow().slice(0, 50)
    appended = threading.Event()

    def append() -> None:
        import pyarrow as pa

        for j in range(4):
            ids = pa.array(range(n + 50 * j, n + 50 * (j + 1)), pa.int64())
            table.add(rows.set_column(rows.schema.get_field_index("id"), "id", ids))
        appended.set()

    writer = threading.Thread(target=append)
    q = np.stack(rows.column("vector").to_numpy(zero_copy_only=False)[:3]).astype(np.float32)
    writer.start()
    seen = []
    while not appended.is_set() or not seen:
        _, ids = reader.topk(q, 5)
        seen.append((len(reader), int(ids.max())))
    writer.join()
    assert all(count == n and top < n for count, top in seen)  # never a row of a later version
    assert len(LanceIndex(copy)) == n + 200


def test_embed_writes_the_table_when_asked(tmp_path):
    """``skclap embed --format lance``: the finished collection, and its Lance table of the same rows."""
    from skclap.datasets import make_played_set
    from skclap.embed import main

    (tmp_path / "in").mkdir()
    for i, (wave, rate) in enumerate(make_played_set(6, seed=2).items()):
        sf.write(tmp_path / "in" / f"{i}.flac", wave, rate)
    out = tmp_path / "emb"
    assert (
        main(
            [
                str(tmp_path / "in"),
                "--out",
                str(out),
                "--model",
                "skclap-instruments",
                "--shard-size",
                "4",
                "--format",
                "lance",
                "--no-progress",
            ]
        )
        == 0
    )
    table = lancedb.connect(out).open_table("collection").to_pandas()
    frame = read_embeddings(out)
    assert list(table["path"]) == list(frame["path"]) and list(table["id"]) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(np.stack(table["vector"]), np.stack(frame["embedding"]))
