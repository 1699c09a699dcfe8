"""One contrastive training step's forward and backward, optionally with gradient caching.

Gradient caching (Gao et al., 2021) computes the loss of a batch of B pairs with micro-batches of m:
embed every micro-batch without autograd, compute the full-batch loss and its gradient with respect
to the embeddings, then re-run each micro-batch with autograd and back-propagate its slice of that
gradient. Memory is that of m pairs; the gradients are those of the full batch (exactly, for layers
that treat samples independently: batch norm in eval mode or frozen, and dropout, whose masks are
replayed by restoring the random state of the first pass).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

from ..loss import contrastive_loss
from ..models.clap import ClapLike
from .distributed import DistInfo, all_gather_uneven, all_gather_with_grad
from .unsaid import UnsaidBatch

__all__ = ["contrastive_backward"]


@contextmanager
def _replay_rng(state: dict[str, Any]):
    """Run a block with the random state saved in ``state`` (saved there on first use)."""
    if "cpu" not in state:
        state["cpu"] = torch.get_rng_state()
        state["cuda"] = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        yield
        return
    cpu_now = torch.get_rng_state()
    cuda_now = torch.cuda.get_rng_state_all() if state["cuda"] is not None else None
    torch.set_rng_state(state["cpu"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    try:
        yield
    finally:
        torch.set_rng_state(cpu_now)
        if cuda_now is not None:
            torch.cuda.set_rng_state_all(cuda_now)


def _full_precision(x: torch.Tensor) -> torch.Tensor:
    """Embeddings from autocast regions are half precision; the loss is computed in float32 (or higher)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _slice_tokens(tokens: dict[str, torch.Tensor], a: int, b: int) -> dict[str, torch.Tensor]:
    return {k: v[a:b] for k, v in tokens.items()}


def contrastive_backward(
    model: ClapLike,
    waves: torch.Tensor,
    tokens: dict[str, torch.Tensor],
    micro_batch: int | None = None,
    dist_info: DistInfo | None = None,
    autocast: Any = None,
    scaler: Any = None,
    unsaid: UnsaidBatch | None = None,
) -> torch.Tensor:
    """Accumulate into ``.grad`` the gradient of the symmetric contrastive loss of this batch.

    ``waves``/``tokens`` are this rank's share of the global batch. With ``dist_info`` the loss is
    over the global batch (all ranks' embeddings); the gradient left on this rank is its share, so
    that averaging gradients across ranks gives the single-process gradient. With ``unsaid`` (this
    rank's captions' said bits, and completions) captions that leave attributes unsaid are treated
    as :mod:`skclap.training.unsaid` says. Returns the loss.
    """
    info = dist_info or DistInfo()
    amp = autocast if autocast is not None else nullcontext
    n = waves.shape[0]
    m = n if micro_batch is None or micro_batch >= n else int(micro_batch)
    # The text side: the captions, then (mode "complete") the completions of those that leave attributes unsaid.
    texts = [tokens]
    if unsaid is not None and unsaid.completions:
        texts.append(model.tokenize(list(unsaid.completions)))

    def loss_of(a: torch.Tensor, ts: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        a_all = all_gather_with_grad(_full_precision(a), info)
        t_all = all_gather_with_grad(_full_precision(ts[0]), info)
        # Each rank differentiates the global loss through its own slice of embeddings only, so the
        # loss is scaled by the world size for the rank-average of gradients to be the full
        # gradient. The temperature sees the whole loss on every rank: its gradient is scaled back.
        w = info.world_size
        logit_scale = model.logit_scale.exp()
        if w > 1:
            logit_scale = logit_scale / w + (logit_scale - logit_scale / w).detach()
        if unsaid is None:
            return contrastive_loss(a_all, t_all, logit_scale), w
        said = all_gather_with_grad(unsaid.said.to(a.device), info)
        if unsaid.mode == "project":
            return dataclasses.replace(unsaid, said=said).loss(a_all, t_all, logit_scale), w
        # Completions: as many as this rank's captions leave unsaid; their owners index the global batch.
        local = ts[1] if len(ts) > 1 else a.new_zeros((0, a.shape[1]))
        owner = all_gather_uneven(unsaid.owner.to(a.device) + info.rank * n, info)
        c_all = all_gather_uneven(_full_precision(local), info)
        return dataclasses.replace(unsaid, said=said, owner=owner).loss(a_all, t_all, logit_scale, c_all), w

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()

    if m == n:
        with amp():
            a = model.encode_audio(waves)
            ts = [model.encode_text(t) for t in texts]
        loss, scale = loss_of(a, ts)
        backward(loss * scale)
        return loss.detach()

    # 1. Embed every micro-batch without autograd, remembering the random state of each.
    chunks: list[tuple[int, int, int]] = [(-1, s, min(s + m, n)) for s in range(0, n, m)]  # (-1: audio, k: texts[k]), start, end
    for k, t in enumerate(texts):
        size = next(iter(t.values())).shape[0]
        chunks += [(k, s, min(s + m, size)) for s in range(0, size, m)]

    def embed(kind: int, s: int, e: int) -> torch.Tensor:
        out = model.encode_audio(waves[s:e]) if kind < 0 else model.encode_text(_slice_tokens(texts[kind], s, e))
        return _full_precision(out)

    rng_states: list[dict[str, Any]] = [{} for _ in chunks]
    with torch.no_grad():
        parts = []
        for state, chunk in zip(rng_states, chunks):
            with _replay_rng(state), amp():
                parts.append(embed(*chunk))
    # 2. Full-batch loss; gradient with respect to the embeddings (and the temperature).
    cats = [torch.cat([p for p, c in zip(parts, chunks) if c[0] == kind]).requires_grad_(True) for kind in range(-1, len(texts))]
    loss, scale = loss_of(cats[0], cats[1:])
    backward(loss * scale)
    # 3. Re-run each micro-batch with autograd and push its slice of the gradient through.
    for state, (kind, s, e) in zip(rng_states, chunks):
        grad = cats[kind + 1].grad
        if grad is None:  # an embedding the loss does not use (e.g. with weight 0)
            continue
        with _replay_rng(state), amp():
            out = embed(kind, s, e)
        (out * grad[s:e]).sum().backward()
    return loss.detach()
