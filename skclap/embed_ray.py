"""Embed a collection's shards with Ray Data: the same shards and files as ``skclap embed``, on a
Ray cluster (``skclap embed --engine ray``).

A pure map, as clip-retrieval distributes inference: the run's pending shards are a dataset, each
shard one row (its files). CPU tasks decode and window each shard's files
(:func:`skclap.batching.item_windows`, the single process's own reading; a file that cannot be read
carries its error along); an actor pool holds the model (one actor per GPU where the cluster has
GPUs, CPU actors otherwise), and an actor turns a decoded shard into its files exactly as a single
process does (the function :mod:`skclap.embed` gives it: unreadable files skipped and listed, files
longer than :data:`skclap.audio.STREAM_SECONDS` streamed by the actor itself, the ``embeddings``
file renamed into place last). A shard that is written is never written again, so a killed run
resumes from the shards it lacks, and an actor that dies has its shard retried on a restarted
actor, which rewrites it from its start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .batching import WindowPlan, item_windows

__all__ = ["RayOptions", "ShardWriter", "embed_shards"]

#: How often an actor that dies is restarted, and its shard retried, before the run fails.
RETRIES = 3


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: ``address`` (None: ``RAY_ADDRESS``, or a local cluster of this machine's
    CPUs), ``actors`` (None: one per GPU, or one on a cluster without GPUs), ``cpus_per_actor``
    (None: one on a GPU, else the cluster's CPUs shared among the actors, less
    :data:`DECODE_CPUS` kept for the decoding tasks)."""

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float | None = None


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("skclap embed --engine ray needs Ray Data: pip install 'skclap[ray]'") from None
    return ray


#: Writes shard ``k`` of the inputs with an encoder from its files' decoded windows, or reads its
#: counts where an earlier attempt wrote it: ``(encoder, inputs, k, decoded) -> (rows, errors)`` (the
#: single-process path's own function).
ShardWriter = Callable[[Any, pd.DataFrame, int, list], tuple[int, int]]
#: Logical CPUs a decoding task asks of Ray: several decode beside each model actor.
DECODE_CPUS = 0.5


class _Decoded:
    """A shard's decoded files, handed from a decoding task to a model actor as one object: each
    file's windows, the error reading it raised, or None (a long file, streamed by the actor)."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items


def _decode_shard(row: dict[str, Any], plan: WindowPlan) -> dict[str, Any]:
    """One CPU task: shard ``row["shard"]``'s files read and windowed as the single process reads them."""
    items: list[Any] = []
    for i, path in enumerate(row["paths"]):
        try:
            chunks = item_windows(str(path), i, plan)
            items.append(chunks[0] if isinstance(chunks, tuple) else None)  # a long file's lazy stream: read by the actor
        except Exception as err:  # carried to the actor, which lists it as the single process does
            items.append(err)
    return {"shard": row["shard"], "decoded": _Decoded(items)}


class _ShardEmbedder:
    """One actor: the model loaded once, then shard after shard."""

    def __init__(self, inputs: Any, settings: dict[str, Any], fingerprint: str, write: ShardWriter) -> None:
        import ray
        import torch

        from .encoder import Encoder

        inputs = ray.get(inputs[0])  # the run's file list, put in the object store once for every actor
        threads = settings.pop("threads")
        if threads:
            torch.set_num_threads(threads)
        self.inputs = inputs
        self.write = write
        self.encoder = Encoder(cache=False, progress=False, **settings)
        if self.encoder.audio_fingerprint != fingerprint:  # another node resolved the name to other weights
            raise RuntimeError(
                f"the model on {os.uname().nodename} is not the run's (fingerprint {self.encoder.audio_fingerprint} != {fingerprint})"
            )

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        counts = [self.write(self.encoder, self.inputs, int(k), d.items) for k, d in zip(batch["shard"], batch["decoded"])]
        return {
            "shard": np.asarray(batch["shard"]),
            "rows": np.asarray([c[0] for c in counts]),
            "errors": np.asarray([c[1] for c in counts]),
        }


def embed_shards(
    inputs: pd.DataFrame,
    shards: list[int],
    fingerprint: str,
    settings: dict[str, Any],
    write: ShardWriter,
    options: RayOptions,
    plan: WindowPlan,
    shard_size: int,
) -> list[tuple[int, int, int]]:
    """Embed ``shards`` (of ``shard_size`` files) of ``inputs`` on Ray: decoded by ``plan`` in CPU
    tasks, each written by ``write`` in an actor; return ``(shard, rows, errors)`` for each.
    ``settings``: the Encoder's (model, device, precision, batch_size, workers) and ``progress``;
    ``fingerprint``: the run's model, which every actor's must be."""
    ray = _ray()
    if not shards:
        return []
    progress = settings.pop("progress", False)
    ray.data.DataContext.get_current().enable_progress_bars = bool(progress)
    if not progress:  # Ray Data's own lines on each run; its warnings and errors stay
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.util").setLevel(logging.ERROR)  # "progress bars disabled"
    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # Ray's C++ notices, not the run's errors
        address = options.address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        actors = options.actors or max(1, gpus)
        total = float(resources.get("CPU", 1))
        # the actors leave room for a decoding task at least (on a GPU an actor needs one CPU), and
        # a CPU actor computes on its share of the machine's cores
        room = (total - DECODE_CPUS) / actors
        cpus = options.cpus_per_actor or (min(1.0, room) if gpus else room)
        if cpus <= 0 or actors * cpus + DECODE_CPUS > total:
            raise ValueError(
                f"{actors} actors of {cpus:g} CPUs leave no room on a cluster of {total:g} CPUs for the tasks that decode "
                f"({DECODE_CPUS:g} CPU each): fewer actors (--ray-actors) or fewer CPUs each"
            )
        settings = {**settings, "threads": max(1, int(cpus if gpus else total / actors))}
        paths = list(inputs["path"])
        rows = [{"shard": k, "paths": paths[k * shard_size : (k + 1) * shard_size]} for k in shards]
        data = ray.data.from_items(rows, override_num_blocks=len(shards))
        data = data.map(_decode_shard, fn_kwargs={"plan": plan}, num_cpus=DECODE_CPUS)
        done = data.map_batches(
            _ShardEmbedder,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus,
            num_gpus=1 if gpus else 0,
            fn_constructor_kwargs={"inputs": [ray.put(inputs)], "settings": settings, "fingerprint": fingerprint, "write": write},
            max_restarts=RETRIES,
            max_task_retries=RETRIES,
        ).take_all()
    finally:
        if started:
            ray.shutdown()
    return sorted((int(r["shard"]), int(r["rows"]), int(r["errors"])) for r in done)
