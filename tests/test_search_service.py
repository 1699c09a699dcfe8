"""The search service behind skclap serve, called as plain Python (no web framework, no HTTP), on the
serve tests' collection: real sampled-instrument recordings, with corrupt, missing and out-of-folder
files mixed in."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import skclap.search_service as search_service
from skclap import search
from skclap.exceptions import AudioError
from skclap.search_service import SearchService


@pytest.fixture(scope="module")
def service(collection):  # noqa: F811
    with SearchService(collection[0], max_batch=8) as s:
        yield s


def row_of(service: SearchService, name: str) -> int:
    return next(i for i, p in enumerate(service.collection.table["path"]) if p.endswith(name))


def test_text_search_equals_the_library_search(service, collection):  # noqa: F811
    got = service.search("a loud trumpet", k=5)
    expected = search(collection[0], "a loud trumpet", k=5, device="cpu")
    assert got["query"] == "a loud trumpet"
    assert [r["path"] for r in got["results"]] == list(expected["path"])
    np.testing.assert_allclose([r["score"] for r in got["results"]], expected["score"], atol=1e-6)
    assert [r["rank"] for r in got["results"]] == [1, 2, 3, 4, 5] and "query" not in got["results"][0]
    assert asyncio.run(service.search_async("a loud trumpet", k=5)) == got


def test_concurrent_text_queries_share_one_forward_pass(collection, monkeypatch):  # noqa: F811
    queries = ["piano", "a kick drum", "violin high", "flute", "marimba notes", "trumpet"]
    with SearchService(collection[0], max_batch=8) as fresh:
        alone = {q: fresh.search(q, k=4) for q in queries}
    passes: list[list[str]] = []
    real = search_service.query_vectors

    def counted(clap, query=None, like=None):
        passes.append(list(query) if like is None else ["<audio>"])
        return real(clap, query, like)

    monkeypatch.setattr(search_service, "query_vectors", counted)

    async def together(s: SearchService) -> list[dict]:
        return await asyncio.gather(*(s.search_async(q, k=4) for q in queries))

    with SearchService(collection[0], max_batch=8) as s:
        got = asyncio.run(together(s))
        assert passes == [queries]  # one batch, one forward pass
        for q, body in zip(queries, got):
            assert [r["id"] for r in body["results"]] == [r["id"] for r in alone[q]["results"]]
            np.testing.assert_allclose([r["score"] for r in body["results"]], [r["score"] for r in alone[q]["results"]], atol=1e-6)
        s.search("piano", k=2)
        assert len(passes) == 1  # a query seen before is not embedded again
    with SearchService(collection[0], cache_size=1) as small:
        passes.clear()
        for q in ("piano", "flute", "piano"):
            small.search(q, k=2)
        assert passes == [["piano"], ["flute"], ["piano"]]  # the cache keeps only the latest query


def test_more_like_this_leaves_the_row_itself_out(service):
    first = service.search("piano", k=1)["results"][0]["id"]
    got = service.similar(first, k=5)
    assert got["query"] == f"like #{first}"
    assert len(got["results"]) == 5 and first not in [r["id"] for r in got["results"]]
    assert [r["rank"] for r in got["results"]] == [1, 2, 3, 4, 5]
    assert asyncio.run(service.similar_async(first, k=5)) == got


def test_filters_become_row_sets_and_restrict_the_results(service):
    assert service.rows(None) is None and service.rows([]) is None
    violins = service.rows(["family:violin"])
    assert len(violins) == 2 and set(service.collection.table["family"].iloc[violins]) == {"violin"}
    assert len(service.rows(["family:violin", "take:take 1"])) == 1
    assert len(service.rows(["family:tuba"])) == 0  # a value no row has: no rows, not an error
    got = service.search("a sound", k=10, filters=["family:violin"])["results"]
    assert {r["id"] for r in got} == set(violins.tolist())
    assert service.similar(0, filters=["family:tuba"])["results"] == []
    for bad in ("path:/etc/passwd", "family", "colour:red"):
        with pytest.raises(ValueError, match=f"filter '{bad}': give column:value with a column of"):
            service.rows([bad])


def test_unknown_rows_and_bad_arguments_are_refused(service):
    n = len(service)
    for row in (n, 10**6, -1):
        with pytest.raises(LookupError, match=f"no row {row}: the collection has {n}"):
            service.similar(row)
        with pytest.raises(LookupError, match=f"no row {row}"):
            service.audio_file(row)
    with pytest.raises(ValueError, match="the query is empty"):
        service.search("   ")
    with pytest.raises(ValueError, match="k must be 1 or more"):
        service.search("piano", k=0)
    with pytest.raises(ValueError, match="max_batch must be 1 or more; got 0"):
        SearchService(service.collection.root, max_batch=0)


def test_only_files_inside_the_collection_are_handed_out(service, collection):  # noqa: F811
    path, name = service.audio_file(row_of(service, "violin-07.wav"))
    assert name == "violin-07.wav" and sf.info(path).samplerate == 16000
    with pytest.raises(PermissionError, match="resolves outside the collection's folder"):
        service.audio_file(row_of(service, "link.wav"))  # a symlink to a file beside the folder
    with pytest.raises(FileNotFoundError, match="'gone.wav'"):
        service.audio_file(row_of(service, "gone.wav"))
    with pytest.raises(AudioError, match="cannot be decoded"):
        service.audio_file(row_of(service, "spoiled.wav"))
    assert os.path.exists(collection[1])  # nothing was touched


def test_search_by_example_from_bytes_or_a_path(service):
    first = service.search("piano", k=1)["results"][0]
    path = Path(first["path"])
    for got in (
        service.search_audio(path.read_bytes(), k=3, name=path.name),
        asyncio.run(service.search_audio_async(path.read_bytes(), k=3, name=path.name)),
        service.search_audio(path, k=3),
    ):
        assert got["results"][0]["id"] == first["id"] and got["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert service.search_audio(path.read_bytes(), k=1, name=path.name)["query"] == f"like {path.name}"
    with pytest.raises(AudioError, match="'my notes.txt'") as err:  # named as uploaded, not by its temporary file
        service.search_audio(b"not audio at all", name="my notes.txt")
    assert "/tmp" not in str(err.value) and "skclap-serve-" not in str(err.value)
    with pytest.raises(ValueError, match="the upload is empty"):
        service.search_audio(b"", name="x.wav")


def test_info_describes_the_collection(service):
    info = service.info()
    assert info["rows"] == len(service) == 15 and info["windows"] is True and info["index"] == "exact"
    assert "family" in info["filters"] and "path" not in info["filters"]
    assert info["example"] == "describe a sound"  # a model given as a directory: no registry entry
