"""Search one embedded collection with one model, loaded once: what ``skclap serve``'s routes call.

:class:`SearchService` answers text queries, "more like this row", search by an example, metadata
filters and the audio file of a row, as plain Python (no web framework). Its answers are the JSON
bodies of ``skclap serve``; its refusals are ordinary exceptions (``ValueError`` for a bad filter or
argument, ``LookupError`` for a row that does not exist, ``PermissionError`` for a file outside the
collection's folder, ``FileNotFoundError`` for a missing one, :class:`~skclap.exceptions.AudioError`
for audio that cannot be decoded).

Each search has a blocking form (``search``, ``similar``, ``search_audio``: all the work on the
calling thread) and an ``async`` form for an event loop (``search_async``, ...): those run the model
and the matrix products on the service's one worker thread, and batch concurrent text queries.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .audio import prepare
from .exceptions import AudioError
from .registry import example_query
from .retrieval import Collection, collection_encoder, query_vectors

__all__ = ["SearchService", "filterable_columns"]

#: Columns with at most this many distinct values can be filtered on.
MAX_FILTER_VALUES = 50
#: Bookkeeping columns of ``skclap embed``: never offered as filters.
_NOT_FILTERS = frozenset({"path", "duration", "sample_rate", "n_windows"})

Hits = tuple[np.ndarray, np.ndarray, np.ndarray]  # (query vectors, scores, row ids)
Example = bytes | str | os.PathLike  # an uploaded file's bytes, or a path


def filterable_columns(coll: Collection) -> dict[str, list[str]]:
    """The metadata columns with 2 to :data:`MAX_FILTER_VALUES` distinct values, each with its values
    (as strings, sorted)."""
    out = {}
    for col in coll.table.columns:
        if col in _NOT_FILTERS:
            continue
        values = coll.table[col].dropna().astype(str).unique()
        if 1 < len(values) <= MAX_FILTER_VALUES:
            out[col] = sorted(values.tolist())
    return out


class _Batcher:
    """Text queries that arrive while a batch is being served wait and go together as the next one:
    their embeddings in one forward pass, their top-k in one matrix product."""

    def __init__(self, search: Callable[[list[str], int], Hits], executor: ThreadPoolExecutor, max_batch: int) -> None:
        self._search = search  # (texts, k) -> Hits, run on the worker thread
        self._executor = executor
        self._max_batch = max_batch
        self._pending: list[tuple[str, int, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def __call__(self, text: str, k: int) -> Hits:
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((text, k, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            k = max(b[1] for b in batch)
            try:
                vecs, scores, ids = await loop.run_in_executor(self._executor, self._search, [b[0] for b in batch], k)
            except Exception as err:  # every waiting query gets the error
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            for i, (_, kk, fut) in enumerate(batch):
                if not fut.done():
                    fut.set_result((vecs[i : i + 1], scores[i : i + 1, :kk], ids[i : i + 1, :kk]))


class SearchService:
    """The collection in ``directory`` (the output of ``skclap embed``) searched with ``model``
    (default: the one recorded in its metadata).

    ``index``: "exact", "faiss" or "auto" (as :class:`~skclap.retrieval.Collection`);
    ``max_batch``: the most concurrent text queries of ``search_async`` embedded and searched
    together; ``cache_size``: the text queries whose embeddings are kept (least recently used out).
    Results are ``{"query": ..., "results": [{"rank", "score", "id", "path", ...}]}``.

    Examples
    --------
    >>> service = SearchService("sounds-emb")  # doctest: +SKIP
    >>> service.search("a dog barking", k=5, filters=["label:dog"])["results"][0]["path"]  # doctest: +SKIP
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        model: Any = None,
        *,
        device: str = "auto",
        index: str = "auto",
        max_batch: int = 256,
        cache_size: int = 4096,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be 1 or more; got {max_batch}")
        self.collection = Collection(directory, index=index)
        self.model_name = str(self.collection.meta.get("model") if model is None else model)
        self.encoder = collection_encoder(self.collection, model, device)
        self.clap = self.encoder.model
        self.rate = int(self.clap.config.sample_rate)
        self.filters = filterable_columns(self.collection)
        self._paths = [os.path.abspath(p) for p in self.collection.table["path"].astype(str)]
        # the folder the listed files share: the only one whose files are handed out
        self._root = os.path.realpath(os.path.commonpath([os.path.dirname(p) for p in self._paths])) if self._paths else ""
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        # one worker: the model and the searches never run concurrently with each other
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skclap-serve")
        self._batcher = _Batcher(self._search_texts, self._executor, max_batch)

    def __len__(self) -> int:
        return len(self.collection)

    def close(self) -> None:
        """Stop the worker thread (after the work it was given)."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> SearchService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------- describing
    def info(self) -> dict:
        """The collection: rows, width, model, columns, the filters offered, the index, an example query."""
        coll = self.collection
        return {
            "rows": len(coll),
            "dim": int(coll.matrix.shape[1]),
            "model": str(coll.meta.get("model")),
            "columns": list(coll.table.columns),
            "filters": self.filters,
            "windows": coll.has_windows,
            "index": coll.index,
            "example": example_query(self.model_name),
        }

    def rows(self, filters: Sequence[str] | None) -> np.ndarray | None:
        """The row ids that match every ``column:value`` filter (None without filters: all rows).
        A filter on a column not in :attr:`filters`, or not written ``column:value``, is a ValueError."""
        if not filters:
            return None
        mask = np.ones(len(self), dtype=bool)
        for f in filters:
            col, sep, value = f.partition(":")
            if not self.filters:
                raise ValueError(
                    f"filter {f!r}: this collection has no columns to filter on (a manifest's column with 2 to "
                    f"{MAX_FILTER_VALUES} distinct values becomes one, when the collection is embedded)"
                )
            if not sep or col not in self.filters:
                raise ValueError(f"filter {f!r}: give column:value with a column of {sorted(self.filters)}")
            mask &= self.collection.column_mask(col, [value])
        return np.flatnonzero(mask)

    def audio_file(self, row: int) -> tuple[str, str]:
        """The file of ``row`` to hand out: ``(resolved path, file name as listed)``. Refused when it
        resolves outside the collection's folder (PermissionError), is missing (FileNotFoundError)
        or cannot be decoded (AudioError)."""
        self._check_row(row)
        listed = self._paths[row]
        real = os.path.realpath(listed)
        if not (real == self._root or real.startswith(self._root + os.sep)):
            raise PermissionError(f"row {row} resolves outside the collection's folder")
        if not os.path.isfile(real):
            raise FileNotFoundError(f"the file of row {row} is missing: {os.path.basename(listed)!r}")
        try:
            sf.info(real)
        except Exception as err:  # noqa: BLE001 - any decoding failure is the same answer
            raise AudioError(f"the file of row {row} cannot be decoded: {err}") from None
        return real, os.path.basename(listed)

    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised embeddings of ``texts``; repeated queries come from the cache."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for t, v in zip(missing, query_vectors(self.encoder, missing)):
                self._cache[t] = v
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack([self._cache[t] for t in texts])

    # ---------------------------------------------------------------------------- blocking
    def search(self, query: str, k: int = 10, filters: Sequence[str] | None = None) -> dict:
        """The ``k`` rows closest to a text query, among those the filters keep."""
        rows = self._text_rows(query, k, filters)
        if rows is None:
            vec, scores, ids = self._search_texts([query], min(k, len(self)))
        else:
            vec = self.text_vectors([query])
            scores, ids = self._top(vec, k, rows)
        return self._respond(query, vec, scores, ids)

    def similar(self, row: int, k: int = 10, filters: Sequence[str] | None = None) -> dict:
        """The ``k`` rows closest to row ``row`` (itself left out), among those the filters keep."""
        vec, rows = self._similar_rows(row, k, filters)
        return self._like_row(row, k, vec, *self._top(vec, k + 1, rows))

    def search_audio(self, audio: Example, k: int = 10, filters: Sequence[str] | None = None, *, name: str | None = None) -> dict:
        """The ``k`` rows closest to an example: the bytes of an uploaded file (``name``: its file
        name) or a path. Audio that cannot be decoded is an AudioError that names it as ``name``."""
        wave, rows, label = self._example(audio, k, filters, name)
        vec = query_vectors(self.encoder, None, [(wave, self.rate)])
        return self._respond(label, vec, *self._top(vec, k, rows))

    # ---------------------------------------------------------------------------- on an event loop
    async def search_async(self, query: str, k: int = 10, filters: Sequence[str] | None = None) -> dict:
        """:meth:`search` with the work on the worker thread; without filters, batched with the
        text queries that arrive meanwhile."""
        rows = self._text_rows(query, k, filters)
        if rows is None:
            vec, scores, ids = await self._batcher(query, min(k, len(self)))
        else:
            vec = await self._on_worker(self.text_vectors, [query])
            scores, ids = await self._on_worker(self._top, vec, k, rows)
        return self._respond(query, vec, scores, ids)

    async def similar_async(self, row: int, k: int = 10, filters: Sequence[str] | None = None) -> dict:
        """:meth:`similar` with the search on the worker thread."""
        vec, rows = self._similar_rows(row, k, filters)
        return self._like_row(row, k, vec, *await self._on_worker(self._top, vec, k + 1, rows))

    async def search_audio_async(
        self, audio: Example, k: int = 10, filters: Sequence[str] | None = None, *, name: str | None = None
    ) -> dict:
        """:meth:`search_audio` with the model and the search on the worker thread."""
        wave, rows, label = self._example(audio, k, filters, name)
        vec = await self._on_worker(query_vectors, self.encoder, None, [(wave, self.rate)])
        return self._respond(label, vec, *await self._on_worker(self._top, vec, k, rows))

    # ---------------------------------------------------------------------------- the steps
    def _on_worker(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _check_row(self, row: int) -> None:
        if not 0 <= row < len(self):
            raise LookupError(f"no row {row}: the collection has {len(self)}")

    @staticmethod
    def _check_k(k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be 1 or more; got {k}")

    def _text_rows(self, query: str, k: int, filters: Sequence[str] | None) -> np.ndarray | None:
        """The checks of a text search, in the order the server reports them, then the filtered rows."""
        if not query.strip():
            raise ValueError("the query is empty")
        self._check_k(k)
        return self.rows(filters)

    def _similar_rows(self, row: int, k: int, filters: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray | None]:
        self._check_row(row)
        self._check_k(k)
        rows = self.rows(filters)
        return self.collection.vectors([row]), rows

    def _like_row(self, row: int, k: int, vec: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> dict:
        out = self._respond(f"like #{row}", vec, scores, ids, exclude=row)
        out["results"] = out["results"][:k]
        return out

    def _example(
        self, audio: Example, k: int, filters: Sequence[str] | None, name: str | None
    ) -> tuple[np.ndarray, np.ndarray | None, str]:
        """The checks of a search by example, the filtered rows, the decoded waveform, the query's label."""
        if isinstance(audio, (bytes, bytearray)) and not audio:
            raise ValueError("the upload is empty")
        self._check_k(k)
        rows = self.rows(filters)
        if isinstance(audio, (bytes, bytearray)):
            name = "upload" if name is None else name
            return self._decode_upload(bytes(audio), name), rows, f"like {name}"
        name = os.fspath(audio) if name is None else name
        return prepare(os.fspath(audio), self.rate, name=name), rows, f"like {name}"

    def _decode_upload(self, data: bytes, name: str) -> np.ndarray:
        """The waveform of an uploaded file, decoded from a temporary file that is removed at once."""
        with tempfile.TemporaryDirectory(prefix="skclap-serve-") as tmp:
            path = Path(tmp) / f"upload{Path(name).suffix[:10]}"
            path.write_bytes(data)
            try:
                return prepare(str(path), self.rate, name=f"upload {name!r}")
            except AudioError as err:
                # the error names the temporary file, quoted: the user knows it by the name uploaded
                raise AudioError(str(err).replace(repr(str(path)), repr(name)).replace(str(path), name)) from None

    def _search_texts(self, texts: list[str], k: int) -> Hits:
        q = self.text_vectors(texts)
        scores, ids = self.collection.topk(q, k)
        return q, scores, ids

    def _top(self, vec: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` of the candidate rows (all, or a filter's) for each query."""
        n = min(k, len(self) if rows is None else len(rows))
        return self.collection.topk(vec, n, rows)

    def _respond(self, query: str, q: np.ndarray, scores: np.ndarray, ids: np.ndarray, exclude: int | None = None) -> dict:
        records = [r for r in self.collection.hits([query], scores, ids, q) if r["id"] != exclude]
        for rank, r in enumerate(records, start=1):
            del r["query"]
            r["rank"] = rank
        return {"query": query, "results": records}
