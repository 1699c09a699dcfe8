"""``skclap serve DIR``: search an embedded collection in the browser, by text or by sound, and listen.

A FastAPI application over a :class:`skclap.retrieval.Collection` (embeddings memory-mapped; exact
blocked search, or the faiss index when the collection has one) and one model, loaded once:

- ``GET /``: the page (plain HTML and JavaScript shipped in the package: works offline);
- ``GET /search?q=&k=`` (text), ``GET /similar?id=&k=`` (more like this), ``POST /search/audio``
  (search by an uploaded example), each with ``filter=column:value`` (repeatable);
- ``GET /audio/{id}``: the file of row ``id``, with range requests so that a player can seek;
- ``GET /info``: rows, model, columns and their filterable values; ``GET /openapi.json``.

Results name the best-matching window (``segment_start``/``segment_end``) when the collection was
embedded with ``--windows``. The model and the search run on one worker thread; with ``--max-batch N``
concurrent text queries are embedded and searched N at a time. Safe by default: it binds 127.0.0.1; it serves only the files listed in
the collection, by row id, and refuses one that resolves (through a symlink) outside the folder the
collection's files share; queries, ``k`` and uploads are bounded; it writes nothing.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.
import argparse
import asyncio
import gc
import os
import socket
import sys
import tempfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import soundfile as sf

from .audio import AudioError, prepare
from .registry import example_query
from .retrieval import Collection, query_vectors

__all__ = ["create_app", "add_arguments", "run"]

MAX_QUERY_CHARS = 500
MAX_K = 100
MAX_UPLOAD_BYTES = 20 * 2**20
#: Columns with at most this many distinct values get a filter on the page.
MAX_FILTER_VALUES = 50


class _Batcher:
    """Text queries that arrive while a batch is being served wait and go together as the next one:
    their embeddings in one forward pass, their top-k in one matrix product."""

    def __init__(self, search: Any, max_batch: int = 64) -> None:
        self._search = search  # (texts, k) -> (vectors, scores, ids), run on the worker thread
        self._max_batch = max_batch
        self._pending: list[tuple[str, int, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def __call__(self, executor: ThreadPoolExecutor, text: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((text, k, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(executor))
        return await fut

    async def _drain(self, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            k = max(b[1] for b in batch)
            try:
                vecs, scores, ids = await loop.run_in_executor(executor, self._search, [b[0] for b in batch], k)
            except Exception as err:  # every waiting query gets the error
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for i, (_, kk, fut) in enumerate(batch):
                if not fut.done():
                    fut.set_result((vecs[i : i + 1], scores[i : i + 1, :kk], ids[i : i + 1, :kk]))


def _filterable(coll: Collection) -> dict[str, list[str]]:
    skip = {"path", "duration", "sample_rate", "n_windows"}
    out = {}
    for col in coll.table.columns:
        if col in skip:
            continue
        values = coll.table[col].dropna().astype(str).unique()
        if 1 < len(values) <= MAX_FILTER_VALUES:
            out[col] = sorted(values.tolist())
    return out


def create_app(directory: str | os.PathLike, model: Any = None, *, device: str = "cpu", index: str = "auto", max_batch: int = 256) -> Any:
    """The web application over the collection in ``directory`` (the output of ``skclap embed``);
    ``model`` defaults to the one recorded in its metadata; ``max_batch``: the most concurrent text
    queries embedded and searched together (one forward pass, one matrix product; 1: each on its
    own)."""
    from fastapi import File, HTTPException, Query, UploadFile
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    from .checkpoints import resolve_model

    if max_batch < 1:
        raise ValueError(f"max_batch must be 1 or more; got {max_batch}")
    coll = Collection(directory, index=index)
    clap = resolve_model(model if model is not None else coll.meta["model"], device)
    rate = int(clap.config.sample_rate)
    paths = [os.path.abspath(p) for p in coll.table["path"].astype(str)]
    root = os.path.realpath(os.path.commonpath([os.path.dirname(p) for p in paths])) if paths else ""
    filters = _filterable(coll)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skclap-serve")
    cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def text_vectors(texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            for t, v in zip(missing, query_vectors(clap, missing)):
                cache[t] = v
                while len(cache) > 4096:
                    cache.popitem(last=False)
        return np.stack([cache[t] for t in texts])

    def search_texts(texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = text_vectors(texts)
        scores, ids = coll.topk(q, k)
        return q, scores, ids

    batcher = _Batcher(search_texts, max_batch=max_batch)

    def rows_for(filter_args: Any) -> np.ndarray | None:
        if not filter_args:
            return None
        mask = np.ones(len(coll), dtype=bool)
        for f in filter_args:
            col, sep, value = f.partition(":")
            if not filters:
                raise HTTPException(
                    400,
                    f"filter {f!r}: this collection has no columns to filter on (a manifest's column with 2 to "
                    f"{MAX_FILTER_VALUES} distinct values becomes one, when the collection is embedded)",
                )
            if not sep or col not in filters:
                raise HTTPException(400, f"filter {f!r}: give column:value with a column of {sorted(filters)}")
            mask &= (coll.table[col].astype(str) == value).to_numpy()
        return np.flatnonzero(mask)

    def respond(query: str, q: np.ndarray, scores: np.ndarray, ids: np.ndarray, exclude: int | None = None) -> dict:
        records = [r for r in coll.hits([query], scores, ids, q) if r["id"] != exclude]
        for rank, r in enumerate(records, start=1):
            del r["query"]
            r["rank"] = rank
        return {"query": query, "results": records}

    K = Annotated[int, Query(ge=1, le=MAX_K, description="how many results")]
    Filters = Annotated[list[str] | None, Query(description="column:value, repeatable")]

    async def top(vec: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` of the candidate rows (all, or a filter's) for each query, on the worker."""
        n = min(k, len(coll) if rows is None else len(rows))
        return await asyncio.get_running_loop().run_in_executor(executor, coll.topk, vec, n, rows)

    app = _fastapi(title="skclap serve", summary="Search an embedded audio collection by text or by sound")

    @app.exception_handler(AudioError)
    async def audio_error(request: Any, err: AudioError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("skclap").joinpath("static/serve.html").read_text(encoding="utf-8")

    @app.get("/info")
    async def info() -> dict:
        """The collection: rows, width, model, columns, the filters the page offers."""
        return {
            "rows": len(coll),
            "dim": int(coll.matrix.shape[1]),
            "model": str(coll.meta.get("model")),
            "columns": [c for c in coll.table.columns],
            "filters": filters,
            "windows": coll.has_windows,
            "index": "faiss" if coll.use_faiss else "exact",
            "example": example_query(str(coll.meta.get("model") if model is None else model)),
        }

    @app.get("/search")
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="what to listen for")],
        k: K = 10,
        filter: Filters = None,  # noqa: A002
    ) -> dict:
        """The ``k`` files closest to a text query."""
        if not q.strip():
            raise HTTPException(422, "the query is empty")
        rows = rows_for(filter)
        if rows is None:
            vec, scores, ids = await batcher(executor, q, min(k, len(coll)))
        else:
            vec = await asyncio.get_running_loop().run_in_executor(executor, text_vectors, [q])
            scores, ids = await top(vec, k, rows)
        return respond(q, vec, scores, ids)

    @app.get("/similar")
    async def similar(id: Annotated[int, Query(ge=0)], k: K = 10, filter: Filters = None) -> dict:  # noqa: A002
        """The ``k`` files closest to file ``id`` of the collection (itself left out)."""
        if id >= len(coll):
            raise HTTPException(404, f"no row {id}: the collection has {len(coll)}")
        rows = rows_for(filter)
        vec = coll.vectors([id])
        scores, ids = await top(vec, k + 1, rows)
        out = respond(f"like #{id}", vec, scores, ids, exclude=id)
        out["results"] = out["results"][:k]
        return out

    @app.post("/search/audio")
    async def search_audio(file: Annotated[UploadFile, File()], k: K = 10, filter: Filters = None) -> dict:  # noqa: A002
        """The ``k`` files closest to an uploaded example (any format soundfile reads)."""
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MB")
        if not data:
            raise HTTPException(422, "the upload is empty")
        rows = rows_for(filter)
        suffix = Path(file.filename or "upload").suffix[:10]
        with tempfile.TemporaryDirectory(prefix="skclap-serve-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            name = f"upload {file.filename!r}"
            try:
                wave = prepare(str(path), rate, name=name)
            except AudioError as err:
                # the error names the temporary file, quoted: the user knows it by the name uploaded
                raise HTTPException(
                    415, str(err).replace(repr(str(path)), repr(file.filename)).replace(str(path), str(file.filename))
                ) from None
        vec = await asyncio.get_running_loop().run_in_executor(executor, query_vectors, clap, None, [(wave, rate)])
        scores, ids = await top(vec, k, rows)
        return respond(f"like {file.filename}", vec, scores, ids)

    @app.get("/audio/{id}")
    async def audio(id: int) -> FileResponse:
        """The audio file of row ``id`` (range requests answered, so a player can seek)."""
        if not 0 <= id < len(coll):
            raise HTTPException(404, f"no row {id}: the collection has {len(coll)}")
        listed = paths[id]
        real = os.path.realpath(listed)
        if not (real == root or real.startswith(root + os.sep)):
            raise HTTPException(403, f"row {id} resolves outside the collection's folder")
        if not os.path.isfile(real):
            raise HTTPException(404, f"the file of row {id} is missing: {os.path.basename(listed)!r}")
        try:
            sf.info(real)
        except Exception as err:  # noqa: BLE001 - any decoding failure is the same answer
            raise HTTPException(422, f"the file of row {id} cannot be decoded: {err}") from None
        return FileResponse(real, filename=os.path.basename(listed))

    app.state.collection = coll
    app.state.executor = executor
    return app


def _fastapi(**kwargs: Any) -> Any:
    """The application, with its interactive OpenAPI page at ``/docs`` whose scripts this server
    serves (fastapi-offline, in the ``serve`` extra; FastAPI's own page loads them from a CDN).
    Without fastapi-offline, ``/openapi.json`` alone."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        from fastapi import FastAPI

        return FastAPI(docs_url=None, redoc_url=None, **kwargs)
    return FastAPIOffline(redoc_url=None, **kwargs)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="the output folder of skclap embed")
    p.add_argument("--model", help="default: the model the collection was embedded with")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--index", choices=["auto", "exact", "faiss"], default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--max-batch", type=int, default=256, help="the most concurrent text queries embedded and searched together (default 256)"
    )


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or an error that says the port is taken and what to do."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port left in TIME_WAIT is free
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({err.strerror or err}): another program holds that port; "
            f"stop it, or pass --port with another number"
        ) from None
    return sock


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise SystemExit('skclap serve needs the web extra: pip install "skclap[serve]"') from None
    sock = listen(args.host, args.port)  # before the model loads: a taken port is said at once
    app = create_app(args.dir, args.model, device=args.device, index=args.index, max_batch=args.max_batch)
    port = sock.getsockname()[1]
    print(f"serving {args.dir} ({len(app.state.collection)} files) on http://{args.host}:{port}/")
    # What is loaded now (the collection's table, the model) lives as long as the server: frozen out
    # of the garbage collector, so that no full collection traverses it and pauses every query.
    gc.collect()
    gc.freeze()
    # The model runs on a worker thread while the event loop serves connections; a short GIL switch
    # interval lets the worker's many small torch calls resume promptly under load.
    sys.setswitchinterval(0.0005)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0
