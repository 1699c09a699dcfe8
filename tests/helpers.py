"""Helpers shared by the test modules (no test module imports another)."""

from __future__ import annotations

import atexit
import io
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from skclap import CLAPModel
from skclap.datasets import make_corpus
from skclap.datasets.instruments import SOUNDFONTS
from skclap.training import contrastive_backward, objective_backward
from skclap.training.distributed import DistInfo, average_gradients, close_distributed

#: Classes made of parts (a pitch, an instrument; a drum has no pitch), for the compositional classifiers.
PARTS = {
    "high flute": ("high", "flute"),
    "low flute": ("low", "flute"),
    "high cello": ("high", "cello"),
    "low cello": ("low", "cello"),
    "snare drum": (None, "snare drum"),
}


needs_debian_soundfonts = pytest.mark.skipif(
    not all(Path(where).is_file() for _, where in SOUNDFONTS.values() if where),
    reason="the Debian soundfonts (musescore-general-soundfont-small, csound-soundfont) are not installed: bash scripts/setup.sh installs them",
)


def _memory_available() -> int:
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["MemAvailable"].split()[0]) << 10


@contextmanager
def large_files(tmp_path_factory: Any, name: str, size: int) -> Iterator[Path]:
    """A directory for up to ``size`` bytes of large files (full-size checkpoints, caches): on the
    memory file system ``/dev/shm`` where it has room for them and memory is left for the rest of
    the suite, else a directory of ``tmp_path_factory``. On a disk, their write-back would take most
    of the time of the tests that write them; nothing those tests assert depends on the medium. A
    directory in memory is removed on exit (the file system would keep it after the run)."""
    shm = Path("/dev/shm")
    try:
        roomy = shm.is_dir() and shutil.disk_usage(shm).free > 2 * size and _memory_available() > 3 * size
    except OSError:
        roomy = False
    if not roomy:
        yield tmp_path_factory.mktemp(name)
        return
    root = Path(tempfile.mkdtemp(prefix=f"skclap-{name}-", dir=shm))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


CAPTIONS = [f"caption number {i} about a {w} sound" for i, w in enumerate("dog rain bell siren drum hiss click buzz".split())]


def batch(n: int = 8, seed: int = 0, dtype=torch.float64, captions: Sequence[str] = CAPTIONS):
    """A tiny model and a batch, in float64 so that equalities are exact up to 1e-5 with margin."""
    g = torch.Generator().manual_seed(seed)
    model = CLAPModel.from_preset("tiny", seed=seed).to(dtype)
    waves = (torch.randn(n, model.config.window_samples, generator=g) * 0.1).to(dtype)
    return model, waves, model.tokenize(list(captions[:n]))


def grads(model: CLAPModel) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=k)


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread for the block, as in a command started with ``OMP_NUM_THREADS=1``: a run
    in this process then computes bit for bit what such a command computes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_step(rank: int, world: int, make: Callable, micro: int | None, objective: Any) -> dict | None:
    """One rank's share of ``make()``'s batch (model in eval mode), under ``objective`` = (an
    Objective, the batch's targets) or the contrastive loss on ``make()``'s tokens when None; rank 0
    returns the loss and the averaged gradients."""
    model, waves, tokens = make()
    model.eval()
    per = waves.shape[0] // world
    sl = slice(rank * per, (rank + 1) * per)
    info = DistInfo(rank, world)
    if objective is None:
        loss = contrastive_backward(model, waves[sl], {k: v[sl] for k, v in tokens.items()}, micro, info)
    else:  # each rank knows its own targets only
        loss = objective_backward(model, objective[0], waves[sl], list(objective[1][sl]), 0, micro, info)
    average_gradients([p for p in model.parameters() if p.grad is not None], info)
    return {"loss": loss.detach().clone(), "grads": grads(model)} if rank == 0 else None


def _pool_worker(rank: int, world: int, port: int, tasks: Any, results: Any) -> None:
    """A rank of :class:`TwoRanks`: joins the gloo group once, then runs each task ``(fn, args)`` as
    ``fn(rank, world, *args)`` and reports ``(rank, ok, value or traceback)``, until it gets None."""
    import traceback
    from datetime import timedelta

    import torch.distributed as dist

    torch.set_num_threads(1)
    # a peer that died mid-collective surfaces as an error here rather than a hang
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    try:
        while (task := tasks.get()) is not None:
            fn, args = task
            try:
                buffer = io.BytesIO()  # by value: no shared-memory tensor outlives its sender's task
                torch.save(fn(rank, world, *args), buffer)
                results.put((rank, True, buffer.getvalue()))
            except BaseException:
                results.put((rank, False, traceback.format_exc()))
            dist.barrier()  # neither rank starts the next task while the other is in this one
    finally:
        dist.destroy_process_group()


def closing_worker(rank: int, port: int, out: str) -> None:
    """A rank that joins a gloo group and leaves it with ``close_distributed``, rank 0 later (as if
    still writing the model); each writes when it began to leave, when it had left, and whether it
    was still in a group. Spawn targets live here, not in a test module, so that a spawned rank
    imports this light module only."""
    import time

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    if rank == 0:
        time.sleep(0.5)  # rank 0 still writing the model
    began = time.monotonic()  # the system-wide clock: comparable between the two processes
    close_distributed(ok=True)
    left = time.monotonic()
    Path(out, f"rank{rank}").write_text(f"{began} {left} {dist.is_initialized()}")
    close_distributed(ok=True)  # a second call is a no-op


class TwoRanks:
    """Two gloo processes, started once and shared by every two-process scenario of a test session
    (each spawned interpreter imports torch and skclap, which costs more than most scenarios)."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.tasks = [ctx.Queue() for _ in range(2)]
        self.results = ctx.Queue()
        port = free_port()
        self.procs = [ctx.Process(target=_pool_worker, args=(r, 2, port, self.tasks[r], self.results), daemon=True) for r in range(2)]
        for proc in self.procs:
            proc.start()

    def alive(self) -> bool:
        return all(proc.is_alive() for proc in self.procs)

    def run(self, fn: Callable, *args: Any, timeout: float = 300) -> Any:
        """``fn(rank, 2, *args)`` on both ranks; rank 0's value. A failure on either rank raises with
        that rank's traceback (and the pool is closed: the next call starts a new one)."""
        for queue in self.tasks:
            queue.put((fn, args))
        got = {}
        try:
            for _ in range(2):
                rank, ok, value = self.results.get(timeout=timeout)
                got[rank] = (ok, value)
        except Exception:
            self.close()
            raise
        failed = [f"rank {r}:\n{v}" for r, (ok, v) in sorted(got.items()) if not ok]
        if failed:
            self.close()
            raise RuntimeError("\n".join(failed))
        return torch.load(io.BytesIO(got[0][1]), weights_only=True)

    def close(self) -> None:
        for queue, proc in zip(self.tasks, self.procs):
            if proc.is_alive():
                queue.put(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


_two_ranks: TwoRanks | None = None


def two_ranks() -> TwoRanks:
    """The session's :class:`TwoRanks`, started on first use and closed at exit."""
    global _two_ranks
    if _two_ranks is None or not _two_ranks.alive():
        _two_ranks = TwoRanks()
        atexit.register(_two_ranks.close)
    return _two_ranks


def two_rank_step(make: Callable, micro: int | None = None, objective: Any = None) -> dict:
    """Loss and gradients of rank 0 after one step on two gloo processes sharing ``make()``'s batch
    (``objective``: see :func:`_rank_step`)."""
    return two_ranks().run(_rank_step, make, micro, objective)


class Killed(Exception):
    pass


def crash_at(step: int) -> Callable[[Any, dict[str, Any]], None]:
    """A trainer callback that raises :class:`Killed` once the run reaches ``step``, as a crash would."""

    def crash(trainer: Any, record: dict[str, Any]) -> None:
        if trainer.step == step:
            raise Killed

    return crash


def write_manifest(tmp_path, n=16) -> Path:
    return make_corpus(n, seed=3, seconds=1.0).write(tmp_path / "data")


def msclap_state(model: CLAPModel) -> dict[str, torch.Tensor]:
    """skclap's state dict renamed to the reference code's keys (as its released file has them)."""
    out = {}
    for k, v in model.state_dict().items():
        k = k.replace("audio_encoder.backbone.", "audio_encoder.base.")
        k = k.replace("text_encoder.backbone.model.", "caption_encoder.base.")
        k = k.replace("text_encoder.projection.", "caption_encoder.projection.")
        out["module." + k] = v
    out["module.caption_encoder.base.embeddings.position_ids"] = torch.arange(64)[None]
    return out


class EncoderCalls:
    """Counts the waveform windows that go through a model's audio encoder (its front-end, shared by
    the training-time module and the fused inference form)."""

    def __init__(self, model):
        self.rows = 0
        self.handle = model.audio_encoder.frontend.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.rows += args[0].shape[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()
