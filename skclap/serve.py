"""``skclap serve DIR``: search an embedded collection in the browser, by text or by sound, and listen.

A FastAPI application whose routes call a :class:`skclap.search_service.SearchService`: a
:class:`skclap.retrieval.Collection` (embeddings memory-mapped; exact blocked search, or the faiss
index when the collection has one) and one model, loaded once. The routes map its refusals to HTTP
errors:

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
import gc
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Annotated, Any

from .encoder import add_runtime_arguments
from .exceptions import AudioError
from .layout import INDEXES
from .search_service import SearchService

__all__ = ["create_app", "add_arguments", "run"]

MAX_QUERY_CHARS = 500
MAX_K = 100
MAX_UPLOAD_BYTES = 20 * 2**20


def create_app(directory: str | os.PathLike, model: Any = None, *, device: str = "auto", index: str = "auto", max_batch: int = 256) -> Any:
    """The web application over the collection in ``directory`` (the output of ``skclap embed``);
    ``model`` defaults to the one recorded in its metadata; ``max_batch``: the most concurrent text
    queries embedded and searched together (one forward pass, one matrix product; 1: each on its
    own). The routes call a :class:`~skclap.search_service.SearchService` (``app.state.service``)."""
    from fastapi import File, HTTPException, Query, UploadFile
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    service = SearchService(directory, model, device=device, index=index, max_batch=max_batch)
    K = Annotated[int, Query(ge=1, le=MAX_K, description="how many results")]
    Filters = Annotated[list[str] | None, Query(description="column:value, repeatable")]
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
        return service.info()

    @app.get("/search")
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="what to listen for")],
        k: K = 10,
        filter: Filters = None,  # noqa: A002
    ) -> dict:
        """The ``k`` files closest to a text query."""
        if not q.strip():  # 422 as the other bounds of q, before any filter is read (the service's ValueError would be 400)
            raise HTTPException(422, "the query is empty")
        with _http_errors():
            return await service.search_async(q, k, filter)

    @app.get("/similar")
    async def similar(id: Annotated[int, Query(ge=0)], k: K = 10, filter: Filters = None) -> dict:  # noqa: A002
        """The ``k`` files closest to file ``id`` of the collection (itself left out)."""
        with _http_errors():
            return await service.similar_async(id, k, filter)

    @app.post("/search/audio")
    async def search_audio(file: Annotated[UploadFile, File()], k: K = 10, filter: Filters = None) -> dict:  # noqa: A002
        """The ``k`` files closest to an uploaded example (any format soundfile reads)."""
        data = await file.read(MAX_UPLOAD_BYTES + 1)  # never more than the bound is read
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"the upload is over {MAX_UPLOAD_BYTES // 2**20} MB")
        if not data:
            raise HTTPException(422, "the upload is empty")
        with _http_errors(audio=415):  # an upload that is not audio: unsupported media type
            return await service.search_audio_async(data, k, filter, name=str(file.filename))

    @app.get("/audio/{id}")
    async def audio(id: int) -> FileResponse:
        """The audio file of row ``id`` (range requests answered, so a player can seek)."""
        with _http_errors():
            path, name = service.audio_file(id)
        return FileResponse(path, filename=name)

    app.state.service = service
    app.state.collection = service.collection
    return app


@contextmanager
def _http_errors(audio: int = 422) -> Iterator[None]:
    """The service's refusals as HTTP errors, ``{"detail": message}``: a row that does not exist or a
    missing file 404, a file outside the collection 403, audio that cannot be decoded ``audio``, a
    bad filter or argument 400."""
    from fastapi import HTTPException

    try:
        yield
    except AudioError as err:
        raise HTTPException(audio, str(err)) from None
    except PermissionError as err:
        raise HTTPException(403, str(err)) from None
    except (LookupError, FileNotFoundError) as err:
        raise HTTPException(404, str(err)) from None
    except ValueError as err:
        raise HTTPException(400, str(err)) from None


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
    p.add_argument("--index", choices=list(INDEXES), default="auto")
    add_runtime_arguments(p, ("device",))
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
    print(f"serving {args.dir} ({len(app.state.service)} files) on http://{args.host}:{port}/")
    _settle_for_serving()
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


def _settle_for_serving() -> None:
    """Process-wide settings for a process that does nothing but serve: called by :func:`run` only,
    never by :func:`create_app` (an application built inside another program leaves it as it was)."""
    # What is loaded now (the collection's table, the model) lives as long as the server: frozen out
    # of the garbage collector, so that no full collection traverses it and pauses every query.
    gc.collect()
    gc.freeze()
    # The model runs on a worker thread while the event loop serves connections; a short GIL switch
    # interval lets the worker's many small torch calls resume promptly under load.
    sys.setswitchinterval(0.0005)
