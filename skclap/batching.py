"""The streaming batcher: many audio items (or texts) through any window encoder, one vector each.

Audio items are decoded and resampled on worker threads (soundfile and soxr release the GIL) while
the encoder runs; every item is cut into fixed windows (:func:`skclap.audio.windows`), windows from
consecutive items share batches, and each item's window embeddings are averaged. The encoder is a
plain function from a float32 array of windows to their embeddings, so the torch models
(:func:`skclap.inference.embed_audio`) and the ONNX engine (:mod:`skclap.onnx_engine`) run the same
loop; nothing here imports torch.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import audio
from .cache import DiskCache, MemoryCache, item_key
from .progress import progress_bar

__all__ = ["PIPELINE_VERSION", "WindowPlan", "embed_items", "embed_texts", "embed_windows", "item_windows", "normalize_rows"]

#: Bump when the meaning of a cached vector changes (windowing, pooling).
PIPELINE_VERSION = "audio-v1:repeat-pad,consecutive-end-aligned,mean"

#: Windows -> their embeddings: float32 ``(rows, window_samples)`` in, ``(rows, dim)`` out.
WindowEncoder = Callable[[np.ndarray], np.ndarray]
Windowing = Callable[[int, Any], "np.ndarray | Iterable[np.ndarray]"]


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (a zero row stays zero), as float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class WindowPlan:
    """How a model hears a clip: its rate, window length, the filling of a short clip
    (:data:`skclap.audio.PADDINGS`), and the quiet-window gate (dB under the clip's loudest window
    that a window may be and still count in the mean; None: every window counts)."""

    sample_rate: int
    window_samples: int
    padding: str
    quiet_window_db: float | None

    @classmethod
    def of(cls, model: Any) -> WindowPlan:
        return cls(int(model.config.sample_rate), int(model.config.window_samples), model.window_padding, model.quiet_window_db)


def _item_name(i: int, item: Any) -> str:
    return f"item {i} ({audio.describe(item)})"


def item_windows(item: Any, i: int, plan: WindowPlan, sample_rate: int | None = None, block: int = 16) -> Iterable[np.ndarray]:
    """Item ``i``'s windows as the loop reads them: one chunk, or for a long file
    (:func:`skclap.audio.long_file_seconds`) a lazy stream of chunks of ``block`` windows. A file
    that cannot be read raises an error that names it as item ``i``."""
    name = _item_name(i, item)
    if audio.long_file_seconds(item) is not None:
        return audio.stream_windows(item, plan.sample_rate, plan.window_samples, block=block, name=name, padding=plan.padding)
    return (audio.windows(audio.prepare(item, plan.sample_rate, sample_rate, name=name), plan.window_samples, plan.padding),)


def _prepared(
    items: Sequence[Any],
    idx: list[int],
    plan: WindowPlan,
    sample_rate: int | None,
    workers: int,
    block: int,
    capture: bool = False,
    windowing: Windowing | None = None,
) -> Iterator[tuple[int, Iterable[np.ndarray] | Exception]]:
    """Yield ``(index, chunks of windows)`` in order, decoding up to ``2 * workers`` items ahead.

    An item is one chunk; a long file (:func:`skclap.audio.long_file_seconds`) is a lazy stream of
    chunks of ``block`` windows, decoded as the encoder consumes them, so memory stays flat. With
    ``capture``, an item that fails to decode yields its exception instead of raising it.
    ``windowing(i, item)``, when given, makes an item's windows in place of the plan's own.
    """

    def work(i: int) -> Iterable[np.ndarray] | Exception:
        try:
            if windowing is not None:
                made = windowing(i, items[i])
                return (made,) if isinstance(made, np.ndarray) else made
            return item_windows(items[i], i, plan, sample_rate, block)
        except Exception as err:
            if capture:
                return err
            raise

    if workers <= 1:
        for i in idx:
            yield i, work(i)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="skclap-decode") as pool:
        ahead = 2 * workers
        futures = [(i, pool.submit(work, i)) for i in idx[:ahead]]
        nxt = ahead
        while futures:
            i, fut = futures.pop(0)
            if nxt < len(idx):
                futures.append((idx[nxt], pool.submit(work, idx[nxt])))
                nxt += 1
            try:
                yield i, fut.result()
            except BaseException:
                for _, f in futures:
                    f.cancel()
                raise


def _cached_rows(
    items: Sequence[Any], out: np.ndarray, cache: MemoryCache | DiskCache | None, fingerprint: str, sample_rate: int | None
) -> tuple[list[str | None], list[int]]:
    """Fill ``out``'s rows the cache holds; return every item's cache key (None: not cacheable) and
    the indices still to embed."""
    keys: list[str | None] = [None] * len(items)
    if cache is None:
        return keys, list(range(len(items)))
    todo = []
    for i, item in enumerate(items):
        k = item_key(item, sample_rate)
        key = keys[i] = None if k is None else f"{fingerprint}-{k}"
        hit = cache.get(key) if key else None
        if hit is not None and hit.shape == (out.shape[1],):
            out[i] = hit
        else:
            todo.append(i)
    return keys, todo


def embed_items(
    items: Sequence[Any],
    encode: WindowEncoder,
    dim: int,
    plan: WindowPlan,
    *,
    cache: MemoryCache | DiskCache | None = None,
    fingerprint: Callable[[], str] | None = None,
    sample_rate: int | None = None,
    batch_size: int = 32,
    **loop: Any,
) -> np.ndarray:
    """One vector per item, ``(n, dim)`` float32 before L2: the rows ``cache`` holds under
    ``fingerprint()`` (the encoder's identity, computed only with a cache) and each item's identity,
    the rest by :func:`embed_windows` (``loop``: its other options), each stored once final."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    out = np.empty((len(items), dim), dtype=np.float32)
    keys, todo = _cached_rows(items, out, cache, fingerprint() if cache is not None and fingerprint else "", sample_rate)

    def store(i: int) -> None:
        key = keys[i]
        if cache is not None and key:
            cache.put(key, out[i])

    if todo:
        embed_windows(items, todo, encode, out, plan, sample_rate=sample_rate, batch_size=batch_size, on_done=store, **loop)
    return out


def embed_windows(
    items: Sequence[Any],
    todo: list[int],
    encode: WindowEncoder,
    out: np.ndarray,
    plan: WindowPlan,
    *,
    sample_rate: int | None = None,
    batch_size: int = 32,
    progress: bool = True,
    workers: int = 2,
    on_error: Callable[[int, Exception], None] | None = None,
    window_sink: Callable[[int, np.ndarray], None] | None = None,
    windowing: Windowing | None = None,
    on_done: Callable[[int], None] | None = None,
) -> None:
    """Write into ``out[i]``, for each ``i`` in ``todo``, the mean of item ``i``'s window embeddings
    by ``encode``, before L2 normalisation; with a quiet-window gate, the windows that much quieter
    than the item's loudest are left out. Batches of ``batch_size`` windows, across items.

    The batching state (windows queued from consecutive items, each item's running sum) lives in
    the closures below, which share it: one streaming loop, kept in one function to keep it so.

    - ``on_error(i, exc)``: when given, an item that cannot be read is reported to it and skipped
      (its row is NaN) instead of raising.
    - ``window_sink(i, windows)``: when given, receives each item's window embeddings.
    - ``windowing(i, item)``: item ``i``'s windows in place of the plan's own (items are windowed
      in order when ``workers`` is 1).
    - ``on_done(i)``: called once ``out[i]`` is final (a cache stores it).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    dim = out.shape[1]
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}  # windows of each item
    left: dict[int, int] = {}  # windows of each item not yet through the encoder
    reading: set[int] = set()  # items whose windows are still being read
    queue: deque[tuple[int, np.ndarray]] = deque()  # (item, windows) waiting for a batch
    per_window: dict[int, list[np.ndarray]] = {}
    gate = plan.quiet_window_db
    levels: dict[int, list[tuple[float, np.ndarray]]] = {}  # with a gate: each window's level (dB) and embedding
    queued = 0

    def run(rows: int) -> None:
        nonlocal queued
        owners: list[int] = []
        chunks: list[np.ndarray] = []
        while len(owners) < rows:
            i, w = queue[0]
            use = min(len(w), rows - len(owners))
            owners.extend([i] * use)
            chunks.append(w[:use])
            if use == len(w):
                queue.popleft()
            else:
                queue[0] = (i, w[use:])
        queued -= rows
        waves = np.concatenate(chunks)
        emb = encode(waves)
        db = 10 * np.log10(np.mean(np.square(waves, dtype=np.float64), axis=1) + 1e-20) if gate is not None else None
        for row, i in enumerate(owners):
            sums[i] += emb[row]
            if db is not None:
                levels[i].append((float(db[row]), emb[row]))
            if window_sink is not None:
                per_window[i].append(emb[row])
        for i, c in Counter(owners).items():
            left[i] -= c
            if left[i] == 0 and i not in reading:
                finish(i)

    def finish(i: int) -> None:
        out[i] = sums.pop(i) / counts.pop(i)
        if gate is not None:
            db, emb = zip(*levels.pop(i))
            loud = np.asarray(db) >= max(db) - gate
            out[i] = np.mean(np.asarray(emb, dtype=np.float64)[loud], axis=0)
        del left[i]
        if window_sink is not None:
            window_sink(i, np.stack(per_window.pop(i)).astype(np.float32))
        if on_done is not None:
            on_done(i)

    def fail(i: int, err: Exception) -> None:
        nonlocal queue, queued
        if on_error is None:
            raise err
        for table in (sums, counts, left, per_window, levels):
            table.pop(i, None)
        reading.discard(i)
        kept = deque((j, w) for j, w in queue if j != i)
        queued -= sum(len(w) for j, w in queue if j == i)
        queue = kept
        out[i] = np.nan
        on_error(i, err)

    with progress_bar(total=len(todo), desc="embedding audio", unit="clip", disable=not progress, delay=2.0) as bar:
        for i, chunks in _prepared(items, todo, plan, sample_rate, workers, batch_size, on_error is not None, windowing):
            bar.update(1)
            if isinstance(chunks, Exception):
                fail(i, chunks)
                continue
            sums[i] = np.zeros(dim, dtype=np.float64)
            counts[i] = left[i] = 0
            per_window[i] = []
            levels[i] = []
            reading.add(i)
            try:
                for wins in chunks:
                    counts[i] += len(wins)
                    left[i] += len(wins)
                    queue.append((i, wins))
                    queued += len(wins)
                    while queued >= batch_size:
                        run(batch_size)
            except Exception as err:  # a long file that fails part-way through its stream
                fail(i, err)
                continue
            reading.discard(i)
            if left[i] == 0:
                finish(i)
        if queued:
            run(queued)


def embed_texts(
    texts: Sequence[str], encode: Callable[[list[str]], np.ndarray], dim: int, *, batch_size: int = 256, progress: bool = False
) -> np.ndarray:
    """Texts -> ``(n, dim)`` float32 by ``encode`` (a list of texts -> their embeddings), in batches
    of similar lengths (less padding; the attention mask keeps a text's vector its own)."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text item {i} must be a string; got {type(t).__name__}: {t!r}")
    out = np.empty((len(texts), dim), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    for s in progress_bar(range(0, len(order), batch_size), desc="embedding text", disable=not progress, delay=2.0):
        idx = order[s : s + batch_size]
        out[idx] = encode([texts[j] for j in idx])
    return out
