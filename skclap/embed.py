"""Embed collections of audio files into sharded Parquet: resumable, fault-tolerant, on many processes.

``skclap embed INPUT --out DIR`` (and :func:`embed_collection`) lists the inputs (a folder searched
recursively, a CSV/Parquet manifest whose other columns are carried through, or a list file), cuts
the list into shards of ``shard_size`` files, and writes :data:`OUTPUT_LAYOUT`: for shard ``k``

- ``embeddings/part-k.parquet``: ``path``, the manifest's columns, ``duration`` (s), ``sample_rate``
  (the file's), ``n_windows``, ``embedding`` (L2-normalised float32, fixed-size list), so that
  ``pd.read_parquet("DIR/embeddings")`` reads the whole collection;
- ``matrix/part-k.npy``: the same embeddings as one float32 matrix, memory-mapped by search;
- ``windows/part-k.parquet`` with ``windows=True``: per-window embeddings with start and end seconds;
- ``errors/part-k.csv``: files that could not be read (path, error type, message), skipped;

and ``plan.json`` (the run's inputs, model and settings) before the first shard.

A shard's ``embeddings`` file is renamed into place last, so its presence means the shard is complete:
a restarted run skips finished shards and redoes the one it was killed in, from its start, which
gives output identical to an uninterrupted run. Under ``torchrun`` every process takes the shards
``k % world_size == rank``; processes share nothing but the output folder, so none waits on
another, and the last to finish writes ``embeddings.json`` (model, fingerprint, settings, shards)
and the merged ``errors.csv``. Files are decoded and resampled by ``decode_workers`` threads
ahead of the model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from .audio import describe, window_spans
from .batching import WindowPlan, item_windows, normalize_rows
from .devices import resolve_device
from .embed_ray import RayOptions
from .encoder import Encoder, add_runtime_arguments
from .fileio import write_atomic
from .layout import META_NAME
from .version import __version__

__all__ = ["AUDIO_EXTENSIONS", "MODEL_HELP", "OUTPUT_LAYOUT", "EmbedSummary", "embed_collection", "list_inputs", "main"]

#: What a finished run leaves: the Parquet shards and matrices, and with "lance" a LanceDB table of them too.
FORMATS = ("parquet", "lance")
#: Where the shards are embedded: this process (alone, or one rank of torchrun), or a Ray cluster.
ENGINES = ("local", "ray")

PLAN_NAME = "plan.json"
ERRORS_NAME = "errors.csv"
_ERROR_COLUMNS = ["path", "error", "message"]

#: The help of a command's --model option with a default (this one's and ``skclap evaluate``'s, ``skclap score``'s):
#: what the default is, and the model that needs no download.
MODEL_HELP = (
    "a model name (skclap info lists them), a checkpoint directory or a .pth/.pt file (default: %(default)s, "
    "released weights fetched from the hub on first use; --model skclap-instruments is inside the package)"
)

#: What ``skclap embed`` writes in its output folder (``skclap embed --help`` prints it; docs/collections.md
#: describes each file).
OUTPUT_LAYOUT = """\
The output folder (--out) holds, for each shard of --shard-size files (part-00000, part-00001, ...):
  embeddings/part-*.parquet   path, the manifest's other columns, duration, sample_rate, n_windows and
                              embedding (L2-normalised float32); pd.read_parquet("OUT/embeddings") reads all
  matrix/part-*.npy           the same embeddings as float32 matrices, memory-mapped by skclap search
  windows/part-*.parquet      with --windows: one row per window (path, window, start, end, embedding)
  errors/part-*.csv           the shard's unreadable files (path, error, message), skipped
and for the run:
  plan.json                   the inputs, model and settings: a rerun resumes the same run, or stops
  embeddings.json             once every shard is done: model, settings, width, rows, the shards
  errors.csv                  once every shard is done: every unreadable file
  collection.lance/           with --format lance, once every shard is done: the collection as a LanceDB table
A shard's embeddings/ file is written last, so a rerun skips the shards that have one.
skclap index adds index.faiss (or, with --store lance, the Lance table's index)."""

#: File extensions searched for in a folder: what libsndfile decodes.
AUDIO_EXTENSIONS = frozenset(
    {f".{ext.lower()}" for ext in sf.available_formats() if ext != "RAW"} | {".mp3", ".oga", ".opus", ".aif", ".wave"}
)
_PATH_COLUMNS = ("path", "audio", "file", "filename")


def list_inputs(source: Any) -> pd.DataFrame:
    """The files to embed, as a DataFrame with a ``path`` column (absolute) and any metadata columns.

    ``source``: a folder (searched recursively for :data:`AUDIO_EXTENSIONS`, sorted), a CSV or
    Parquet manifest (a ``path``/``audio``/``file`` column, relative paths taken from the manifest's
    folder; other columns are kept), a text file with one path per line, or a list of paths.
    """
    if isinstance(source, (list, tuple)):
        return pd.DataFrame({"path": [str(Path(p).expanduser().absolute()) for p in source]})
    src = Path(source).expanduser()
    if src.is_dir():
        files = sorted(str(p.absolute()) for p in src.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        return pd.DataFrame({"path": files})
    if not src.is_file():
        raise FileNotFoundError(f"input not found: {os.fspath(source)!r} (a folder, a CSV/Parquet manifest or a list file)")
    if src.suffix.lower() in (".csv", ".parquet", ".pq"):
        table = pd.read_parquet(src) if src.suffix.lower() != ".csv" else pd.read_csv(src)
        column = next((c for c in _PATH_COLUMNS if c in table.columns), None)
        if column is None:
            raise ValueError(f"{src} has no path column: name one of {list(_PATH_COLUMNS)} (columns: {list(table.columns)})")
        paths = [str((src.parent / str(p)).absolute()) if not os.path.isabs(str(p)) else str(p) for p in table[column]]
        rest = table.drop(columns=[column]).reset_index(drop=True)
        rest = rest.drop(columns=[c for c in ("duration", "sample_rate", "n_windows", "embedding") if c in rest.columns])
        return pd.concat([pd.DataFrame({"path": paths}), rest], axis=1)
    lines = [ln.strip() for ln in src.read_text().splitlines()]
    paths = [ln for ln in lines if ln and not ln.startswith("#")]
    return pd.DataFrame({"path": [str((src.parent / p).absolute()) if not os.path.isabs(p) else p for p in paths]})


def calibration_files(source: Any) -> list[str]:
    """The audio files of ``source`` (anything :func:`list_inputs` takes) that an int8 model is
    calibrated on (``--calibration``)."""
    if not source:
        raise ValueError("int8 is calibrated on audio the model will hear: --calibration FOLDER (or a manifest or a list file)")
    files = list(list_inputs(source)["path"])
    if not files:
        raise ValueError(f"no audio files in {os.fspath(source)!r} to calibrate int8 on")
    return files


@dataclass
class EmbedSummary:
    """What a call of :func:`embed_collection` did (this process's share)."""

    out_dir: str
    n_inputs: int
    n_shards: int
    shards_written: list[int]
    shards_skipped: list[int]
    embedded: int
    errors: int
    seconds: float
    complete: bool  # all shards of the run exist (embeddings.json written)

    def __str__(self) -> str:
        done = "complete" if self.complete else "this process's shards done"
        return (
            f"embedded {self.embedded} files into {len(self.shards_written)} shards "
            f"({len(self.shards_skipped)} already done) in {self.seconds:.1f} s; {self.errors} unreadable "
            f"files skipped; {self.n_inputs} inputs in {self.n_shards} shards, {done}: {self.out_dir}"
        )


_PARTS = {"shard": ("embeddings", "parquet"), "npy": ("matrix", "npy"), "windows": ("windows", "parquet"), "errors": ("errors", "csv")}


def _part(out: Path, kind: str, k: int) -> Path:
    """Where shard ``k``'s file of a kind lives (its folder is created)."""
    folder, ext = _PARTS[kind]
    (out / folder).mkdir(parents=True, exist_ok=True)
    return out / folder / f"part-{k:05d}.{ext}"


def _info(path: str) -> tuple[float, int]:
    info = sf.info(path)
    return (info.frames / info.samplerate if info.samplerate else 0.0), int(info.samplerate)


def _write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _embedding_column(matrix: np.ndarray) -> Any:
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])


def _plan(out: Path, inputs: pd.DataFrame, shard_size: int, model_name: str, fingerprint: str, settings: dict) -> dict:
    """The run's identity: a restart must see the same inputs, shards and model, or stop."""
    digest = hashlib.blake2b("\n".join(inputs["path"]).encode(), digest_size=16).hexdigest()
    plan = {
        "n_inputs": len(inputs),
        "shard_size": shard_size,
        "inputs_digest": digest,
        "model": model_name,
        "fingerprint": fingerprint,
        "settings": settings,
    }
    path = out / PLAN_NAME
    if path.is_file():
        old = json.loads(path.read_text())
        if old != plan:
            changed = sorted(k for k in plan if old.get(k) != plan[k])
            raise ValueError(
                f"{out} holds a run with other {', '.join(changed)}; resume with the same input and options, or write to a new --out folder"
            )
    else:
        write_atomic(path, lambda p: Path(p).write_text(json.dumps(plan, indent=1)))
    return plan


def _embed_shard(
    encoder: Encoder, rows: pd.DataFrame, k: int, out: Path, *, windows: bool, on_error: str, decoded: list[Any] | None = None
) -> tuple[int, int]:
    """Write shard ``k`` of ``rows``. ``decoded``: each file's windows (an array), the error that
    reading it raised, or None (a long file, streamed here), as :func:`skclap.batching.item_windows`
    gave them in another process; without it the encoder reads the files itself."""
    paths = list(rows["path"])
    errors: list[tuple[str, str, str]] = []
    per_window: dict[int, np.ndarray] = {}

    def record(i: int, err: Exception) -> None:
        # the embedding loop names an item by its place in this shard ("item 3 (...)"), which means
        # nothing in a table of the whole collection: the path column names the file
        message = str(err)
        prefix = f"item {i} ({describe(paths[i])})"
        if message.startswith(prefix):
            message = message[len(prefix) :].lstrip(": ")
        errors.append((paths[i], type(err).__name__, message))

    windowing = None
    if decoded is not None:
        plan = WindowPlan.of(encoder.model)

        def windowing(i: int, path: Any) -> Any:
            got = decoded[i]
            if isinstance(got, Exception):
                raise got
            return item_windows(path, i, plan, block=encoder.batch_size) if got is None else got

    emb = encoder.audio(
        paths, on_error=record if on_error == "skip" else None, window_sink=lambda i, w: per_window.__setitem__(i, w), windowing=windowing
    )
    ok = [i for i in range(len(paths)) if i in per_window]
    info: dict[int, tuple[float, int]] = {}
    for i in ok:
        try:
            info[i] = _info(paths[i])
        except (sf.LibsndfileError, RuntimeError, OSError) as err:  # decoded, but no header: unusual
            if on_error != "skip":
                raise
            record(i, err)
    ok = [i for i in ok if i in info]
    vectors = emb[ok]

    import pyarrow as pa

    table = pa.Table.from_pandas(rows.iloc[ok].reset_index(drop=True), preserve_index=False)
    table = table.append_column("duration", pa.array([info[i][0] for i in ok], pa.float64()))
    table = table.append_column("sample_rate", pa.array([info[i][1] for i in ok], pa.int32()))
    table = table.append_column("n_windows", pa.array([len(per_window[i]) for i in ok], pa.int32()))
    table = table.append_column("embedding", _embedding_column(vectors))
    if windows:
        window_s = float(encoder.model.config.window_samples) / encoder.model.config.sample_rate
        w_path, w_idx, w_start, w_end, w_vec = [], [], [], [], []
        for i in ok:
            # as many bounds as windows were embedded: the header's duration could round to another count
            bounds = window_spans(info[i][0], window_s, len(per_window[i]))
            for j, (a, b) in enumerate(bounds):
                w_path.append(paths[i])
                w_idx.append(j)
                w_start.append(a)
                w_end.append(b)
            w_vec.append(normalize_rows(per_window[i]))
        dim = emb.shape[1]
        wtable = pa.table(
            {
                "path": w_path,
                "window": pa.array(w_idx, pa.int32()),
                "start": w_start,
                "end": w_end,
                "embedding": _embedding_column(np.concatenate(w_vec) if w_vec else np.zeros((0, dim), np.float32)),
            }
        )
        _write_parquet(wtable, _part(out, "windows", k))
    err_frame = pd.DataFrame(errors, columns=_ERROR_COLUMNS)
    write_atomic(_part(out, "errors", k), lambda p: err_frame.to_csv(p, index=False))

    def save_npy(p: str) -> None:
        with open(p, "wb") as f:
            np.save(f, np.ascontiguousarray(vectors, dtype=np.float32))

    write_atomic(_part(out, "npy", k), save_npy)
    _write_parquet(table, _part(out, "shard", k))  # last: marks the shard done
    return len(ok), len(errors)


def _write_shard(
    encoder: Encoder,
    inputs: pd.DataFrame,
    k: int,
    decoded: list[Any] | None = None,
    *,
    out: Path,
    shard_size: int,
    windows: bool,
    on_error: str,
) -> tuple[int, int]:
    """Shard ``k``'s files (from its files' ``decoded`` windows where given: :func:`_embed_shard`),
    or, where an earlier attempt wrote them (a retried Ray task), its counts: ``(rows, errors)``."""
    if _part(out, "shard", k).is_file():
        import pyarrow.parquet as pq

        return pq.ParquetFile(_part(out, "shard", k)).metadata.num_rows, len(pd.read_csv(_part(out, "errors", k)))
    rows = inputs.iloc[k * shard_size : (k + 1) * shard_size].reset_index(drop=True)
    return _embed_shard(encoder, rows, k, out, windows=windows, on_error=on_error, decoded=decoded)


def _finish(out: Path, plan: dict, n_shards: int) -> bool:
    """Write embeddings.json and errors.csv once every shard exists (any process may; idempotent)."""
    import pyarrow.parquet as pq

    shards = [_part(out, "shard", k) for k in range(n_shards)]
    if not all(p.is_file() for p in shards):
        return False
    errs = [pd.read_csv(_part(out, "errors", k)) for k in range(n_shards)]
    merged = pd.concat(errs, ignore_index=True) if errs else pd.DataFrame(columns=_ERROR_COLUMNS)
    write_atomic(out / ERRORS_NAME, lambda p: merged.to_csv(p, index=False))
    rows = [pq.ParquetFile(p).metadata.num_rows for p in shards]
    meta = {
        "format": "skclap-embeddings",
        "skclap": __version__,
        **plan,
        "dim": int(np.load(_part(out, "npy", 0), mmap_mode="r").shape[1]) if n_shards else 0,
        "n_embedded": int(sum(rows)),
        "n_errors": len(merged),
        "shards": [
            {
                "parquet": _part(out, "shard", k).relative_to(out).as_posix(),
                "npy": _part(out, "npy", k).relative_to(out).as_posix(),
                "rows": r,
            }
            for k, r in enumerate(rows)
        ],
    }
    write_atomic(out / META_NAME, lambda p: Path(p).write_text(json.dumps(meta, indent=1)))
    return True


def embed_collection(
    source: Any,
    out_dir: str | os.PathLike,
    model: Any = "msclap-2022",
    *,
    shard_size: int = 2000,
    windows: bool = False,
    on_error: str = "skip",
    batch_size: int = 32,
    decode_workers: int = 4,
    precision: str | None = None,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    engine: str = "local",
    ray: RayOptions | None = None,
    format: str = "parquet",
) -> EmbedSummary:
    """Embed every file of ``source`` into sharded Parquet under ``out_dir`` (see the module docs).

    ``model``: any name of :mod:`skclap.registry`, a path or a model object. ``on_error``: "skip"
    (log to ``errors.csv`` and go on) or "raise". ``rank``/``world_size`` default to torchrun's
    ``RANK``/``WORLD_SIZE`` (one process: 0/1); on CUDA each process uses ``cuda:LOCAL_RANK``.
    ``engine``: "local" (this process: alone, or one rank of torchrun) or "ray" (the pending shards
    on a Ray cluster's actors, :mod:`skclap.embed_ray`; ``ray`` says where and how wide).
    ``format="lance"``: once every shard is done, the collection is also written as a LanceDB table
    (``collection.lance``, :func:`skclap.lance_store.write_lance`; ``skclap index --store lance``
    adds its index).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; got {format!r}")
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise'; got {on_error!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1; got {shard_size}")
    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    dev = device
    if world_size > 1 and resolve_device(device).type == "cuda":  # one GPU per rank
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count()))))
    t0 = time.perf_counter()
    inputs = list_inputs(source)
    encoder = Encoder(model, device=dev, precision=precision, batch_size=batch_size, cache=False, progress=progress, workers=decode_workers)
    clap = encoder.model
    name = model if isinstance(model, (str, os.PathLike)) else (getattr(clap, "source", None) or type(clap).__name__)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"windows": bool(windows), "precision": encoder.precision_label, "audio": clap.audio_settings()}
    plan = _plan(out, inputs, shard_size, os.fspath(name), encoder.audio_fingerprint, json.loads(json.dumps(settings, default=str)))
    n_shards = -(-len(inputs) // shard_size)
    mine = range(rank, n_shards, world_size) if engine == "local" else range(n_shards)
    written_before = {k for k in mine if _part(out, "shard", k).is_file()}
    skipped = [k for k in mine if k in written_before]
    pending = [k for k in mine if k not in written_before]
    written, embedded, n_err = [], 0, 0
    write = partial(_write_shard, out=out, shard_size=shard_size, windows=windows, on_error=on_error)
    if engine == "ray":
        from .embed_ray import embed_shards

        run = {"model": model, "device": device, "precision": precision, "batch_size": batch_size, "workers": decode_workers}
        done = embed_shards(
            inputs,
            pending,
            encoder.audio_fingerprint,
            {**run, "progress": progress},
            write,
            ray or RayOptions(),
            WindowPlan.of(clap),
            shard_size,
        )
    else:
        done = [(k, *write(encoder, inputs, k)) for k in pending]
    for k, got, bad in done:
        written.append(k)
        embedded += got
        n_err += bad
    complete = _finish(out, plan, n_shards)
    if complete and format == "lance":
        from .lance_store import write_lance

        write_lance(out)
    return EmbedSummary(str(out), len(inputs), n_shards, written, skipped, embedded, n_err, time.perf_counter() - t0, complete)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a folder (recursive), a CSV/Parquet manifest (path column + metadata) or a list file")
    p.add_argument("--out", required=True, help="output folder (its files are listed below)")
    p.add_argument("--model", default="msclap-2022", help=MODEL_HELP)
    p.add_argument("--shard-size", type=int, default=2000, help="files per shard (default 2000)")
    p.add_argument("--windows", action="store_true", help="also write per-window embeddings with start/end seconds")
    p.add_argument("--on-error", choices=["skip", "raise"], default="skip", help="unreadable files: log and skip (default) or stop")
    p.add_argument("--decode-workers", type=int, default=4, help="threads decoding and resampling ahead of the model")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this process (or one torchrun rank); ray: the shards on a Ray cluster's actors",
    )
    p.add_argument("--ray-address", help="with --engine ray: the cluster (default: RAY_ADDRESS, or a local cluster of this machine)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="parquet",
        help="lance: also write the finished collection as a LanceDB table (collection.lance)",
    )
    p.add_argument("--ray-actors", type=int, help="with --engine ray: model actors (default: one per GPU, or one without GPUs)")
    add_runtime_arguments(p, int8=True)


def run(args: argparse.Namespace) -> int:
    model = args.model
    if args.precision == "int8":
        from .int8 import calibrate_int8

        layers = {} if args.float_layers is None else {"float_layers": args.float_layers}
        model = calibrate_int8(args.model, calibration_files(args.calibration), **layers)
    elif args.calibration or args.float_layers is not None:
        raise ValueError("--calibration and --float-layers go with --precision int8")
    summary = embed_collection(
        args.input,
        args.out,
        model,
        shard_size=args.shard_size,
        windows=args.windows,
        on_error=args.on_error,
        batch_size=args.batch_size,
        decode_workers=args.decode_workers,
        precision=args.precision,
        device=args.device,
        progress=not args.no_progress,
        engine=args.engine,
        ray=RayOptions(address=args.ray_address, actors=args.ray_actors),
        format=args.format,
    )
    print(summary)
    if summary.errors:
        print(
            f"unreadable files are listed in {Path(args.out) / ERRORS_NAME}"
            if summary.complete
            else f"unreadable files are listed in {Path(args.out) / 'errors'}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m skclap.embed`` (and ``torchrun ... -m skclap.embed``): the same as ``skclap embed``."""
    parser = argparse.ArgumentParser(
        prog="skclap.embed", description=__doc__.splitlines()[0], epilog=OUTPUT_LAYOUT, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
