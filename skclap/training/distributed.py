"""Data parallelism over ``torch.distributed``: process group set-up, embedding gather, gradient sync.

Launched by ``torchrun``, every rank embeds its share of the global batch; embeddings are
all-gathered so that each rank computes the contrastive loss over the *global* batch, and gradients
are averaged across ranks, which makes N processes train exactly like one process on the whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_gather_uneven", "all_gather_with_grad", "average_gradients", "close_distributed", "init_distributed"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (no-op alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def close_distributed(ok: bool = True) -> None:
    """Leave the process group: after a run that ended well, wait for every rank (rank 0 may still be
    writing the model) and then tear the group down, so that no rank exits while a peer still talks
    to it. After an error, tear down without waiting: a peer may never arrive."""
    if not dist.is_initialized():
        return
    if ok:
        dist.barrier()
    dist.destroy_process_group()


def all_gather_with_grad(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``x`` from every rank (rank order); gradients flow to this rank's own slice."""
    if not info.enabled:
        return x
    parts = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[info.rank] = x
    return torch.cat(parts, dim=0)


def all_gather_uneven(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """:func:`all_gather_with_grad` for tensors whose first dimension differs between ranks."""
    if not info.enabled:
        return x
    sizes = [torch.zeros(1, dtype=torch.int64, device=x.device) for _ in range(info.world_size)]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device))
    counts = [int(c) for c in sizes]
    padded = torch.zeros((max(counts), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x.detach()
    parts = [torch.empty_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded)
    chunks = [part[:c] for part, c in zip(parts, counts)]
    chunks[info.rank] = x
    return torch.cat(chunks, dim=0)


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``params`` in one flat buffer."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n
