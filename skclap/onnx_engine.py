"""The ONNX engine: a model exported by :func:`skclap.onnx_export.export_onnx` run by onnxruntime,
with no torch imported.

``CLAPEmbedder(engine="onnxruntime", model=FOLDER)`` embeds through :class:`OnnxEncoder`, which has
the :class:`~skclap.Encoder`'s surface (``.audio``, ``.text``, ``.model``, ``.logit_scale``) and runs
the torch path's own streaming loop (:mod:`skclap.batching`): the same reading, resampling, windows,
padding, quiet-window gate and mean, as the folder's ``skclap-onnx.json`` records them. Texts are
tokenised from the folder's ``tokenizer.json`` by the Hugging Face ``tokenizers`` library, as the
model's tokenizer does (a text past the token limit cut before the model's suffix).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .batching import PIPELINE_VERSION, WindowPlan, embed_items, embed_texts, normalize_rows
from .cache import DiskCache, MemoryCache, get_cache
from .exceptions import CheckpointError

__all__ = ["MANIFEST", "OnnxCLAP", "OnnxConfig", "OnnxEncoder", "clear_loaded", "load_onnx"]

#: The description file an export writes beside its graphs (:data:`skclap.onnx_export.MANIFEST`).
MANIFEST = "skclap-onnx.json"
_FILES = ("audio.onnx", "text.onnx", "tokenizer.json", MANIFEST)


@dataclass(frozen=True)
class OnnxConfig:
    """What consumers read of a model's config: its rate, window and embedding width."""

    sample_rate: int
    window_samples: int
    proj_dim: int


def _runtime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("the ONNX engine needs onnxruntime: pip install 'skclap[onnx]'") from None
    return onnxruntime


class OnnxCLAP:
    """An exported CLAP: its manifest, its two graphs (opened on first use, CPU) and its tokenizer.

    Use :func:`load_onnx` (one object per folder and process)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder)
        missing = [f for f in _FILES if not (self.path / f).is_file()]
        if missing:
            raise CheckpointError(
                f"{os.fspath(self.path)!r} is not an ONNX export (skclap export MODEL OUT --format onnx): it lacks {', '.join(missing)}"
            )
        try:
            spec = json.loads((self.path / MANIFEST).read_text())
            if spec.get("format") != "skclap-onnx" or spec.get("version") != 1:
                raise ValueError(f"format {spec.get('format')!r} version {spec.get('version')!r}, not skclap-onnx version 1")
            self.config = OnnxConfig(int(spec["sample_rate"]), int(spec["window_samples"]), int(spec["proj_dim"]))
            self.window_padding: str = spec["audio"]["window_padding"]
            self.quiet_window_db: float | None = spec["audio"]["quiet_window_db"]
            self.logit_scale = float(spec["logit_scale"])
            text = spec["text"]
            self._text_inputs: list[str] = list(text["input_names"])
            self._suffix: str = text["suffix"]
            self._pad_id = int(text["pad_token_id"])
            self._limit = int(text["max_tokens"])
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{os.fspath(self.path / MANIFEST)!r} cannot be read as an skclap ONNX manifest: {err}") from None
        self.spec = spec
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._tokenizers: tuple[Any, Any, Any, list[int]] | None = None
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"OnnxCLAP({os.fspath(self.path)!r})"

    def _session(self, which: str) -> Any:
        with self._lock:
            if which not in self._sessions:
                ort = _runtime()
                try:
                    self._sessions[which] = ort.InferenceSession(str(self.path / f"{which}.onnx"), providers=["CPUExecutionProvider"])
                except Exception as err:  # onnxruntime raises its own types for a broken graph
                    raise CheckpointError(f"{os.fspath(self.path / f'{which}.onnx')!r} cannot be loaded by onnxruntime: {err}") from None
            return self._sessions[which]

    def encode_windows(self, waves: np.ndarray) -> np.ndarray:
        """Windows ``(batch, window_samples)`` float32 at the model's rate -> embeddings, before L2."""
        out = self._session("audio").run(None, {"waveform": np.ascontiguousarray(waves, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float32)

    def _tokenizer(self) -> tuple[Any, Any, Any, list[int]]:
        """Tokenizers cut at the token limit, uncut, and cut to leave room for the suffix; the
        suffix's own tokens. (Cut by the tokenizer, as transformers cuts: special tokens kept.)"""
        with self._lock:
            if self._tokenizers is None:
                from tokenizers import Tokenizer

                cut, whole, head = (Tokenizer.from_file(str(self.path / "tokenizer.json")) for _ in range(3))
                for tok in (cut, whole, head):
                    tok.no_padding()
                    tok.no_truncation()
                tail = whole.encode(self._suffix, add_special_tokens=False).ids if self._suffix else []
                cut.enable_truncation(self._limit)
                head.enable_truncation(max(self._limit - len(tail), 1))
                self._tokenizers = (cut, whole, head, tail)
            return self._tokenizers

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The text graph's inputs for ``texts``, int64, right-padded (as the model's ``tokenize``)."""
        cut, whole, head, tail = self._tokenizer()
        if not self._suffix:
            encodings = cut.encode_batch(list(texts))
            rows = [(e.ids, e.type_ids) for e in encodings]
        else:
            rows = []
            for text, enc in zip(texts, whole.encode_batch([t + self._suffix for t in texts])):
                ids = enc.ids
                if len(ids) > self._limit:  # cut before the suffix, whose last token a "last" pooling reads
                    ids = head.encode(text).ids + tail
                rows.append((ids, [0] * len(ids)))
        width = max(len(ids) for ids, _ in rows)
        arrays = {
            "input_ids": np.full((len(rows), width), self._pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(rows), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(rows), width), dtype=np.int64),
        }
        for i, (ids, types) in enumerate(rows):
            arrays["input_ids"][i, : len(ids)] = ids
            arrays["attention_mask"][i, : len(ids)] = 1
            arrays["token_type_ids"][i, : len(ids)] = types
        return {k: arrays[k] for k in self._text_inputs}

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> embeddings, before L2."""
        return np.asarray(self._session("text").run(None, self.tokenize(texts))[0], dtype=np.float32)

    @property
    def fingerprint(self) -> str:
        """The cache identity of this export's audio vectors: the audio graph's bytes (with any
        external data file), the settings outside it and the windowing and pooling."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=20)
            for f in sorted(self.path.glob("audio.onnx*")):
                h.update(f.name.encode())
                with open(f, "rb") as stream:
                    for block in iter(lambda: stream.read(1 << 22), b""):
                        h.update(block)
            settings = json.dumps(self.spec["audio"], sort_keys=True)
            h.update(f"{PIPELINE_VERSION}|{settings}|{self.config}|onnxruntime-float32".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


_LOADED: dict[tuple, OnnxCLAP] = {}
_LOADED_LOCK = threading.Lock()


def load_onnx(folder: str | os.PathLike) -> OnnxCLAP:
    """The export in ``folder``, loaded once per process (again when its files change)."""
    path = Path(folder).resolve()
    stamp = tuple((f, (path / f).stat().st_mtime_ns) if (path / f).is_file() else (f, None) for f in _FILES)
    with _LOADED_LOCK:
        model = _LOADED.get((path, stamp))
        if model is None:
            model = OnnxCLAP(path)
            for key in [k for k in _LOADED if k[0] == path]:
                del _LOADED[key]
            _LOADED[(path, stamp)] = model
        return model


def clear_loaded() -> None:
    """Forget the loaded exports."""
    with _LOADED_LOCK:
        _LOADED.clear()


class OnnxEncoder:
    """Audio items and texts -> L2-normalised embeddings by an exported model, as
    :class:`~skclap.Encoder` gives them from the model itself (within float rounding).

    ``model``: an export folder or an :class:`OnnxCLAP`; ``device``: ``"auto"`` or ``"cpu"`` (the
    graphs run on onnxruntime's CPU provider); ``precision``: None, ``"auto"`` or ``"fp32"`` (the
    graphs are float32); ``batch_size``, ``cache``, ``progress``, ``sample_rate``, ``workers``: as
    the Encoder's.
    """

    def __init__(
        self,
        model: Any,
        *,
        device: Any = "auto",
        precision: str | None = None,
        batch_size: int = 32,
        cache: Any = True,
        progress: bool = False,
        sample_rate: int | None = None,
        workers: int = 2,
    ) -> None:
        if str(device) not in ("auto", "cpu"):
            raise ValueError(f"the ONNX engine runs on the CPU (device='auto' or 'cpu'); got device={device!r}")
        if precision not in (None, "auto", "fp32"):
            raise ValueError(f"the ONNX engine's graphs are float32 (precision=None, 'auto' or 'fp32'); got precision={precision!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if isinstance(model, OnnxCLAP):
            self.model = model
        elif isinstance(model, (str, os.PathLike)):
            if not Path(model).is_dir():
                raise CheckpointError(
                    f"the ONNX engine takes the folder an ONNX export wrote (skclap export MODEL OUT --format onnx); {os.fspath(model)!r} is not a folder"
                )
            self.model = load_onnx(model)
        else:
            raise TypeError(f"the ONNX engine takes an export folder; got {type(model).__name__}")
        self.precision = "fp32"
        self.batch_size = int(batch_size)
        self.cache: MemoryCache | DiskCache | None = get_cache(cache)
        self.progress = bool(progress)
        self.sample_rate = sample_rate
        self.workers = workers

    device = "cpu"

    @property
    def dim(self) -> int:
        return self.model.config.proj_dim

    @property
    def logit_scale(self) -> float:
        """The model's temperature, exponentiated (recorded in the manifest)."""
        return self.model.logit_scale

    def audio(self, items: Any, *, normalize: bool = True, sample_rate: int | None = None, on_error: Any = None) -> np.ndarray:
        """One vector per audio item: the mean of its windows' embeddings (``on_error(i, exc)``
        skips an unreadable item, leaving a NaN row)."""
        out = embed_items(
            items,
            self.model.encode_windows,
            self.dim,
            WindowPlan.of(self.model),
            cache=self.cache,
            fingerprint=lambda: self.model.fingerprint,
            sample_rate=sample_rate if sample_rate is not None else self.sample_rate,
            batch_size=self.batch_size,
            progress=self.progress,
            workers=self.workers,
            on_error=on_error,
        )
        return normalize_rows(out) if normalize else out

    def text(self, texts: Any, *, normalize: bool = True) -> np.ndarray:
        """One vector per text."""
        emb = embed_texts(list(texts), self.model.encode_texts, self.dim, batch_size=self.batch_size, progress=self.progress)
        return normalize_rows(emb) if normalize else emb

    def __repr__(self) -> str:
        cache = type(self.cache).__name__ if self.cache is not None else None
        return f"OnnxEncoder({self.model!r}, batch_size={self.batch_size}, cache={cache})"
