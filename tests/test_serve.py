"""skclap serve: the JSON API (FastAPI's test client), its limits and its refusals, and the page in a
real browser, on a folder of real sampled-instrument recordings (General MIDI soundfont) with corrupt,
missing and out-of-folder files mixed in."""

from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from skclap import embed_collection, search

from .conftest import TINY_DIR
from .serve_fixtures import FAMILIES, RATE, render


@pytest.fixture(scope="module")
def client(collection):
    from fastapi.testclient import TestClient

    from skclap.serve import create_app

    with TestClient(create_app(collection[0], max_batch=8)) as c:  # batches, so that the test below sees them
        yield c


def row_of(client, name: str) -> int:
    hits = client.get("/search", params={"q": "a sound", "k": 100}).json()["results"]
    return next(h["id"] for h in hits if h["path"].endswith(name))


def test_info_describes_the_collection(client):
    info = client.get("/info").json()
    assert info["rows"] == 15  # 12 recordings, the files spoiled and removed later, the symlink; not the corrupt one
    assert info["windows"] is True and info["index"] == "exact"
    assert info["filters"]["family"] == sorted({*FAMILIES, "organ", "harp", "cello"})
    assert "take" in info["filters"] and "path" not in info["filters"]
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/search", "/similar", "/search/audio", "/audio/{id}", "/info"}


def test_text_search_equals_the_library_search_and_names_segments(client, collection):
    body = client.get("/search", params={"q": "a loud trumpet", "k": 5}).json()
    got = body["results"]
    expected = search(collection[0], "a loud trumpet", k=5, device="cpu")
    assert [r["path"] for r in got] == list(expected["path"])
    np.testing.assert_allclose([r["score"] for r in got], expected["score"], atol=1e-6)
    np.testing.assert_allclose([r["segment_start"] for r in got], expected["segment_start"])
    assert [r["rank"] for r in got] == [1, 2, 3, 4, 5]
    assert all(a["score"] >= b["score"] for a, b in zip(got, got[1:]))
    for r in got:  # the best window of each file lies inside it
        assert 0.0 <= r["segment_start"] < r["segment_end"] <= r["duration"] + 1e-6
    long = [r for r in client.get("/search", params={"q": "violin", "k": 15}).json()["results"] if r["duration"] > 4]
    assert long and all(r["segment_end"] - r["segment_start"] == pytest.approx(1.0) for r in long)  # tiny's 1 s windows


def test_a_segment_is_the_window_closest_to_the_query(client, collection):
    """The segment of a 5 s file is the window whose own embedding is closest to the query."""
    windows = pd.read_parquet(collection[0] / "windows")
    hit = next(r for r in client.get("/search", params={"q": "piano", "k": 15}).json()["results"] if r["duration"] > 4)
    mine = windows[windows["path"] == hit["path"]]
    from skclap import load_model
    from skclap.inference import embed_text

    q = embed_text(load_model(TINY_DIR), ["piano"])[0]
    best = mine.iloc[int(np.argmax(np.stack(mine["embedding"]) @ (q / np.linalg.norm(q))))]
    assert (hit["segment_start"], hit["segment_end"]) == (best["start"], best["end"])


def test_concurrent_queries_get_the_answers_they_would_get_alone(client):
    """Queries that arrive together are embedded and searched as one batch; each still gets its own."""
    from concurrent.futures import ThreadPoolExecutor

    queries = ["piano", "a kick drum", "violin high", "flute", "marimba notes", "trumpet"]
    alone = {q: client.get("/search", params={"q": q, "k": 4}).json()["results"] for q in queries}
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda q: client.get("/search", params={"q": q, "k": 4}).json()["results"], queries * 3))
    for q, got in zip(queries * 3, together):
        assert [r["id"] for r in got] == [r["id"] for r in alone[q]]
        np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in alone[q]], atol=1e-6)


def test_the_api_page_and_its_scripts_are_served_from_here(client):
    import fastapi_offline

    html = client.get("/docs").text
    assert "/openapi.json" in html and "https://" not in html and "http://" not in html  # nothing from a CDN
    assets = Path(fastapi_offline.__file__).parent / "static"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert f"/static-offline-docs/{name}" in html
        got = client.get(f"/static-offline-docs/{name}")
        assert got.status_code == 200 and got.content == (assets / name).read_bytes(), name
    assert client.get("/static-offline-docs/..%2F__init__.py").status_code == 404
    assert client.get("/redoc").status_code == 404  # one page


def test_a_batch_size_below_one_is_refused(collection):
    from skclap.serve import create_app

    with pytest.raises(ValueError, match="max_batch must be 1 or more; got 0"):
        create_app(collection[0], max_batch=0)


def test_building_the_app_leaves_the_process_settings_alone(collection):
    """gc.freeze and the GIL switch interval are for `skclap serve`'s own process: an application built
    inside another program (a test, a notebook) changes neither."""
    import gc
    import sys

    from skclap.serve import create_app

    interval, frozen = sys.getswitchinterval(), gc.get_freeze_count()
    app = create_app(collection[0])
    assert sys.getswitchinterval() == interval and gc.get_freeze_count() == frozen
    assert len(app.state.service) == 15


def test_the_command_settles_its_own_process_for_serving(collection, monkeypatch, capsys):
    import argparse
    import gc
    import sys

    import uvicorn

    import skclap.serve as serve

    served = []

    class Server:  # stands in for uvicorn's: records what it was given instead of listening
        def __init__(self, config):
            self.config = config

        def run(self, sockets):
            served.append((self.config.app, sys.getswitchinterval(), gc.get_freeze_count()))
            for sock in sockets:
                sock.close()

    monkeypatch.setattr(uvicorn, "Server", Server)
    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    interval, frozen = sys.getswitchinterval(), gc.get_freeze_count()
    try:
        assert serve.run(p.parse_args([str(collection[0]), "--port", "0"])) == 0
    finally:
        sys.setswitchinterval(interval)
        if frozen == 0:
            gc.unfreeze()
    [(app, during, frozen_during)] = served
    assert during == pytest.approx(0.0005) and frozen_during > 0
    assert len(app.state.service) == 15 and "(15 files)" in capsys.readouterr().out


def test_more_like_this_and_search_by_example(client, collection):
    first = client.get("/search", params={"q": "piano", "k": 1}).json()["results"][0]
    similar = client.get("/similar", params={"id": first["id"], "k": 5}).json()["results"]
    assert len(similar) == 5 and first["id"] not in [r["id"] for r in similar]
    # uploading the file of a row finds that row first, with cosine 1
    path = Path(first["path"])
    up = client.post("/search/audio", params={"k": 3}, files={"file": (path.name, path.read_bytes(), "audio/wav")}).json()["results"]
    assert up[0]["id"] == first["id"] and up[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_filters_restrict_the_results(client):
    got = client.get("/search", params={"q": "a sound", "k": 10, "filter": "family:violin"}).json()["results"]
    assert len(got) == 2 and {r["family"] for r in got} == {"violin"}
    both = client.get("/search", params={"q": "a sound", "k": 10, "filter": ["family:violin", "take:take 1"]}).json()["results"]
    assert [r["family"] for r in both] == ["violin"] and both[0]["take"] == "take 1"
    none = client.get("/search", params={"q": "a sound", "filter": "family:tuba"})  # a filter no row matches
    assert none.status_code == 200 and none.json()["results"] == []
    nothing_like = client.get("/similar", params={"id": 0, "filter": "family:tuba"})
    assert nothing_like.status_code == 200 and nothing_like.json()["results"] == []
    bad = client.get("/search", params={"q": "x", "filter": "path:/etc/passwd"})
    assert bad.status_code == 400 and "filter" in bad.json()["detail"]


def test_audio_is_served_with_range_requests(client):
    rid = row_of(client, "violin-07.wav")
    whole = client.get(f"/audio/{rid}")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    part = client.get(f"/audio/{rid}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    wave, rate = sf.read(io.BytesIO(whole.content))
    assert rate == RATE and len(wave) == int(1.5 * RATE)


def test_only_listed_files_inside_the_collection_are_served(client, collection):
    n = client.get("/info").json()["rows"]
    assert client.get(f"/audio/{n}").status_code == 404
    assert client.get("/audio/-1").status_code == 404
    for probe in ("/audio/..%2F..%2Fetc%2Fpasswd", "/audio/%2Fetc%2Fpasswd", "/audio/../../etc/passwd"):  # ids only, never paths
        r = client.get(probe)
        assert r.status_code in (404, 422) and "root:" not in r.text
    assert client.get("/audio/1e3").status_code == 422
    link = client.get(f"/audio/{row_of(client, 'link.wav')}")
    assert link.status_code == 403 and "outside" in link.json()["detail"]
    missing = client.get(f"/audio/{row_of(client, 'gone.wav')}")
    assert missing.status_code == 404 and "gone.wav" in missing.json()["detail"]
    spoiled = client.get(f"/audio/{row_of(client, 'spoiled.wav')}")
    assert spoiled.status_code == 422 and "cannot be decoded" in spoiled.json()["detail"]
    assert client.post("/audio/0").status_code == 405  # read-only
    assert os.path.exists(collection[1])  # nothing was touched


def test_bounds_and_bad_input_give_json_errors(client):
    assert client.get("/search", params={"q": "x" * 501}).status_code == 422
    assert client.get("/search", params={"q": "dog", "k": 101}).status_code == 422
    assert client.get("/search", params={"q": "dog", "k": 0}).status_code == 422
    assert client.get("/search").status_code == 422
    blank = client.get("/search", params={"q": "   "})
    assert blank.status_code == 422 and blank.json()["detail"] == "the query is empty"
    assert client.get("/similar", params={"id": 10**6}).status_code == 404
    junk = client.post("/search/audio", files={"file": ("notes.txt", b"not audio at all", "text/plain")})
    assert junk.status_code == 415 and "notes.txt" in junk.json()["detail"] and "/tmp" not in junk.json()["detail"]
    empty = client.post("/search/audio", files={"file": ("x.wav", b"", "audio/wav")})
    assert empty.status_code == 422
    big = client.post("/search/audio", files={"file": ("big.wav", b"\0" * (20 * 2**20 + 1), "audio/wav")})
    assert big.status_code == 413


def test_a_collection_without_filters_and_an_upload_are_said_plainly(client, tmp_path):
    # an upload that is not audio is named as uploaded, quoted once
    junk = client.post("/search/audio", files={"file": ("my notes.txt", b"not audio at all", "text/plain")})
    detail = junk.json()["detail"]
    assert junk.status_code == 415 and "'my notes.txt'" in detail and "''" not in detail
    # a folder embedded without a manifest has no columns to filter on: said so, not "a column of []"
    from fastapi.testclient import TestClient

    from skclap.serve import create_app

    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"{i}.wav", render(FAMILIES[i], i, 1.0), RATE)
    embed_collection(folder, tmp_path / "emb", model=str(TINY_DIR), device="cpu", progress=False)
    with TestClient(create_app(tmp_path / "emb")) as plain:
        bad = plain.get("/search", params={"q": "a sound", "filter": "family:violin"})
        assert bad.status_code == 400 and "no columns to filter on" in bad.json()["detail"]
        assert "[]" not in bad.json()["detail"]


def test_the_example_query_is_one_the_model_can_read(client):
    from skclap import load_model
    from skclap.registry import BUNDLED, PRETRAINED, example_query
    from skclap.vocabulary import unknown_words

    assert client.get("/info").json()["example"] == example_query(str(TINY_DIR)) == "describe a sound"  # no card: no claim
    for name in BUNDLED:
        example = example_query(name)
        assert example and unknown_words(load_model(name), [example]) == [], (name, example)
    assert all(example_query(name) for name in PRETRAINED)


def test_a_taken_port_is_said_before_anything_loads(collection, monkeypatch, capsys):
    import argparse
    import socket

    import skclap.serve as serve

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the port was checked")

    monkeypatch.setattr(serve, "create_app", must_not_load)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = argparse.ArgumentParser()
        serve.add_arguments(p)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}.*pass --port"):
            serve.run(p.parse_args([str(collection[0]), "--port", str(port)]))
    assert "serving" not in capsys.readouterr().out


def test_the_command_binds_this_machine_only_by_default():
    import argparse

    from skclap.serve import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["DIR"])
    assert args.host == "127.0.0.1" and args.port == 8000


# ------------------------------------------------------------------------------ in a browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Chromium's own connections would be refused by a closed network; these keep it to the page.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def server(collection):
    import uvicorn

    from skclap.serve import create_app

    config = uvicorn.Config(create_app(collection[0]), host="127.0.0.1", port=0, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(600):  # wait for the server to listen (the state the page needs), at most 30 s
        if srv.started:
            started.set()
            break
        threading.Event().wait(0.05)
    assert started.is_set(), "the server did not start"
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.mark.browser
def test_the_api_page_lists_every_route_in_a_browser(page, server):
    """The OpenAPI page renders offline: Chromium here reaches nothing but this server."""
    api = page.context.browser.new_page()
    try:
        api.goto(server + "/docs")
        api.wait_for_selector(".opblock-summary-path", timeout=20000)
        paths = {p.strip().replace("\u200b", "") for p in api.locator(".opblock-summary-path").all_text_contents()}
        assert {"/search", "/similar", "/search/audio", "/audio/{id}", "/info"} <= paths
    finally:
        api.close()


@pytest.fixture(scope="module")
def page(server):
    from playwright import sync_api

    if not Path(CHROMIUM).exists():
        raise RuntimeError("the browser test needs Debian's chromium, which bash scripts/setup.sh installs (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1100, "height": 900})
        pg.goto(server)
        pg.wait_for_function("document.getElementById('about').textContent.includes('files')")
        yield pg
        browser.close()


@pytest.mark.browser
def test_in_a_browser_query_play_filter_more_like_this_and_example(page, tmp_path):
    """In Debian's headless Chromium, driven by Playwright: type a query, get results, play one until
    its time advances (from its best segment), filter, follow \"more like this\", search by an example."""
    page.wait_for_function("document.getElementById('q').placeholder !== ''")
    assert page.get_attribute("#q", "placeholder") == "describe a sound"  # the model's own example: none for a directory
    page.fill("#q", "a loud trumpet")
    page.click("#go")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('10 results')")
    results = page.locator("li.result")
    assert results.count() == 10
    first = results.first
    assert first.locator(".path").text_content().endswith(".wav")
    assert "best segment" in first.locator(".meta").text_content()

    # play the first result: its time advances (the file is served with range requests)
    page.evaluate("document.querySelector('li.result audio').play()")
    page.wait_for_function("document.querySelector('li.result audio').currentTime > 0.3", timeout=20000)
    assert page.evaluate("document.querySelector('li.result audio').error") is None
    # a player starts at its result's best segment (a media fragment, #t=start)
    start = page.evaluate("[...document.querySelectorAll('li.result audio')].map(a => a.src).find(s => s.includes('#t='))")
    assert start is not None
    page.evaluate(
        f"(() => {{ const a = [...document.querySelectorAll('li.result audio')].find(a => a.src === '{start}'); a.id = 'seg'; a.play(); }})()"
    )
    page.wait_for_function("document.getElementById('seg').currentTime > 0")
    assert page.evaluate("document.getElementById('seg').currentTime") >= float(start.split("#t=")[1]) - 0.05

    # a filter from the collection's columns
    page.select_option("select[data-column='family']", "violin")
    page.click("#go")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('2 results')")
    assert {t.split("family: ")[1].split(" ·")[0] for t in page.locator("li.result .meta").all_text_contents()} == {"violin"}
    page.select_option("select[data-column='family']", "")

    # more like this: the file itself is left out, every result is another file
    page.click("#go")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('10 results')")
    first_id = page.locator("li.result").first.get_attribute("data-id")
    page.locator("li.result button.more").first.click()
    page.wait_for_function("document.getElementById('status').textContent.includes('results for files like')")
    ids = [li.get_attribute("data-id") for li in page.locator("li.result").all()]
    assert len(ids) == 10 and first_id not in ids

    # search by an example: the upload of a listed file finds that file first
    example = Path(page.locator("li.result .path").first.text_content())
    page.set_input_files("#upload", str(example))
    page.wait_for_function(f"document.getElementById('status').textContent.includes('results for files like {example.name}')")
    assert page.locator("li.result .path").first.text_content() == str(example)
    assert float(page.locator("li.result .score").first.text_content().split()[1]) == pytest.approx(1.0, abs=1e-3)

    # an error is shown on the page, not thrown
    page.fill("#q", "   ")
    page.click("#go")
    page.wait_for_function("document.getElementById('status').className === 'error'")
    assert "empty" in page.text_content("#status")

    page.fill("#q", "a loud trumpet")
    page.click("#go")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('10 results')")
    shot = Path(os.environ.get("SKCLAP_SCREENSHOT", tmp_path / "serve.png"))
    page.screenshot(path=str(shot), full_page=False)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
