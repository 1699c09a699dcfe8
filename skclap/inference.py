"""Batched, cached inference: many audio items or texts in, one embedding per item out.

Audio items are decoded and resampled on worker threads (soundfile and soxr release the GIL) while
the model runs; every item is cut into fixed windows (:func:`skclap.audio.windows`), windows from
consecutive items share batches, and each item's window embeddings are averaged.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from . import audio
from .cache import DiskCache, MemoryCache, item_key, model_fingerprint
from .devices import autocast_dtype, resolve_precision
from .models.fused import fused_audio_encoder
from .models.protocol import ClapLike
from .models.state import eval_mode
from .progress import progress_bar

__all__ = ["audio_fingerprint", "embed_audio", "embed_text", "normalize_rows", "precision_label"]


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (a zero row stays zero), as float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


#: Bump when the meaning of a cached vector changes (windowing, pooling).
_PIPELINE_VERSION = "audio-v1:repeat-pad,consecutive-end-aligned,mean"


def precision_label(model: Any, precision: str = "fp32") -> str:
    """The arithmetic an embedding is computed in (a resolved precision on the model's device):
    ``"float16-autocast"``, ``"bfloat16-autocast"``, ``"float32"``, or ``"float32-tf32"`` on a CUDA
    device whose matrix units round float32 inputs to TF32."""
    if precision in ("fp16", "bf16"):
        return {"fp16": "float16-autocast", "bf16": "bfloat16-autocast"}[precision]
    dtype = str(model.logit_scale.dtype).replace("torch.", "")
    if model.device.type == "cuda" and dtype == "float32" and (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32):
        return "float32-tf32"
    return dtype


def audio_fingerprint(model: Any, precision: str = "float32") -> str:
    """The cache identity of a model's audio embeddings: its audio tower's weights, every setting
    that changes an embedding (front-end, windows, tower; :meth:`audio_settings`) and the precision."""
    settings = json.dumps(model.audio_settings(), sort_keys=True, default=str)
    return model_fingerprint(model.audio_encoder, f"{_PIPELINE_VERSION}|{settings}|{precision}")


def _item_name(i: int, item: Any) -> str:
    return f"item {i} ({audio.describe(item)})"


def _prepared(
    items: Sequence[Any],
    idx: list[int],
    model: ClapLike,
    sample_rate: int | None,
    workers: int,
    block: int,
    capture: bool = False,
    windowing: Callable[[int, Any], np.ndarray | Iterable[np.ndarray]] | None = None,
) -> Iterator[tuple[int, Iterable[np.ndarray] | Exception]]:
    """Yield ``(index, chunks of windows)`` in order, decoding up to ``2 * workers`` items ahead.

    An item is one chunk; a long file (:func:`skclap.audio.long_file_seconds`) is a lazy stream of
    chunks of ``block`` windows, decoded as the model consumes them, so memory stays flat. With
    ``capture``, an item that fails to decode yields its exception instead of raising it.
    ``windowing(i, item)``, when given, makes an item's windows in place of the model's own.
    """
    rate, length = model.config.sample_rate, model.config.window_samples
    padding = model.window_padding

    def work(i: int) -> Iterable[np.ndarray] | Exception:
        name = _item_name(i, items[i])
        try:
            if windowing is not None:
                made = windowing(i, items[i])
                return (made,) if isinstance(made, np.ndarray) else made
            if audio.long_file_seconds(items[i]) is not None:
                return audio.stream_windows(items[i], rate, length, block=block, name=name, padding=padding)
            return (audio.windows(audio.prepare(items[i], rate, sample_rate, name=name), length, padding),)
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


@torch.inference_mode()
def embed_audio(
    model: ClapLike,
    items: Sequence[Any],
    *,
    sample_rate: int | None = None,
    batch_size: int = 32,
    cache: MemoryCache | DiskCache | None = None,
    progress: bool = True,
    workers: int = 2,
    precision: str | None = None,
    on_error: Callable[[int, Exception], None] | None = None,
    window_sink: Callable[[int, np.ndarray], None] | None = None,
    windowing: Callable[[int, Any], np.ndarray | Iterable[np.ndarray]] | None = None,
) -> np.ndarray:
    """Embed audio items (paths, waveforms, ``(array, rate)`` pairs...) -> ``(n, proj_dim)`` float32.

    The batching state (windows queued from consecutive items, each item's running sum) lives in
    the closures below, which share it: one streaming loop, kept in one function to keep it so.

    Vectors are the mean of the item's window embeddings, before L2 normalisation; a model whose
    ``quiet_window_db`` is set leaves out the windows that much quieter than the item's loudest.

    - ``precision``: None (fp16 autocast on CUDA, fp32 elsewhere), ``"auto"`` (also bf16 on a CPU
      with native bf16), ``"fp32"``, ``"bf16"``, ``"fp16"``; see :func:`skclap.devices.resolve_precision`.
    - ``workers``: threads decoding and resampling ahead of the model.
    - ``on_error(i, exc)``: when given, an item that cannot be read is reported to it and skipped
      (its row is NaN) instead of raising.
    - ``window_sink(i, windows)``: when given, receives each item's window embeddings
      ``(n_windows, proj_dim)`` (cache hits have none: pass ``cache=None`` with it).
    - ``windowing(i, item)``: when given, returns item ``i``'s windows ``(n_windows, window_samples)``
      (or an iterable of such blocks) in place of the model's own loading and windowing (a published protocol's; no cache with it).
      Items are windowed in order when ``workers`` is 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if windowing is not None and cache is not None:
        raise ValueError("the embedding cache keys the model's own windowing: pass cache=None with windowing")
    mode = resolve_precision(precision, model.device)
    half = autocast_dtype(mode)
    n = len(items)
    out = np.empty((n, model.config.proj_dim), dtype=np.float32)
    keys: list[str | None] = [None] * n
    todo = list(range(n))
    if cache is not None:
        fp = audio_fingerprint(model, precision_label(model, mode))
        todo = []
        for i, item in enumerate(items):
            k = item_key(item, sample_rate)
            keys[i] = None if k is None else f"{fp}-{k}"
            key = keys[i]
            hit = cache.get(key) if key else None
            if hit is not None and hit.shape == (out.shape[1],):
                out[i] = hit
            else:
                todo.append(i)
    if not todo:
        return out

    dim = out.shape[1]
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}  # windows of each item
    left: dict[int, int] = {}  # windows of each item not yet through the model
    reading: set[int] = set()  # items whose windows are still being read
    queue: deque[tuple[int, np.ndarray]] = deque()  # (item, windows) waiting for a batch
    per_window: dict[int, list[np.ndarray]] = {}
    gate = model.quiet_window_db
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
        batch = torch.from_numpy(waves).to(model.device)
        with torch.autocast(model.device.type, dtype=half or torch.float32, enabled=half is not None):
            emb = encode(batch).float().cpu().numpy()
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
        key = keys[i]
        if cache is not None and key:
            cache.put(key, out[i])

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

    encode = fused_audio_encoder(model)
    with eval_mode(model), progress_bar(total=len(todo), desc="embedding audio", unit="clip", disable=not progress, delay=2.0) as bar:
        for i, chunks in _prepared(items, todo, model, sample_rate, workers, batch_size, on_error is not None, windowing):
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
    return out


@torch.inference_mode()
def embed_text(model: ClapLike, texts: Sequence[str], *, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Embed texts -> ``(n, proj_dim)`` float32 (before L2 normalisation). Batches group similar lengths."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text item {i} must be a string; got {type(t).__name__}: {t!r}")
    out = np.empty((len(texts), model.config.proj_dim), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    with eval_mode(model):
        starts = range(0, len(order), batch_size)
        for s in progress_bar(starts, desc="embedding text", disable=not progress, delay=2.0):
            idx = order[s : s + batch_size]
            out[idx] = model.encode_text([texts[j] for j in idx]).float().cpu().numpy()
    return out
