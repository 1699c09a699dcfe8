"""Helpers shared by the test modules (no test module imports another)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from skclap import CLAPModel
from skclap.datasets import make_corpus
from skclap.training import contrastive_backward, objective_backward
from skclap.training.distributed import DistInfo, average_gradients

#: Classes made of parts (a pitch, an instrument; a drum has no pitch), for the compositional classifiers.
PARTS = {
    "high flute": ("high", "flute"),
    "low flute": ("low", "flute"),
    "high cello": ("high", "cello"),
    "low cello": ("low", "cello"),
    "snare drum": (None, "snare drum"),
}

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_worker(rank: int, world: int, port: int, make: Callable, micro: int | None, objective: Any, out: str) -> None:
    """One of ``world`` gloo processes: its share of ``make()``'s batch (model in eval mode), under
    ``objective`` = (an Objective, the batch's targets) or the contrastive loss on ``make()``'s
    tokens when None; rank 0 saves the loss and the gradients."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
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
        if rank == 0:
            torch.save({"loss": loss, "grads": grads(model)}, out)
        dist.barrier()  # neither rank tears gloo down while the other still uses it
    finally:
        dist.destroy_process_group()


def two_rank_step(tmp_path: Path, make: Callable, micro: int | None = None, objective: Any = None) -> dict:
    """Loss and gradients of rank 0 after one step on two gloo processes sharing ``make()``'s batch
    (``objective``: see :func:`_rank_worker`)."""
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_rank_worker, args=(2, free_port(), make, micro, objective, out), nprocs=2, join=True)
    return torch.load(out, weights_only=True)


class Killed(Exception):
    pass


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
