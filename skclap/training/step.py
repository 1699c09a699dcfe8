"""One training step's forward and backward for any objective, optionally with gradient caching.

Gradient caching (Gao et al., 2021) computes the loss of a batch of B pairs with micro-batches of m:
embed every micro-batch without autograd, compute the full-batch loss and its gradient with respect
to the embeddings, then re-run each micro-batch with autograd and back-propagate its slice of that
gradient. Memory is that of m pairs; the gradients are those of the full batch (exactly, for layers
that treat samples independently: batch norm in eval mode or frozen, and dropout, whose masks are
replayed by restoring the random state of the first pass).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import torch

from .distributed import DistInfo
from .objectives import ContrastiveObjective, Objective, loss_precision

if TYPE_CHECKING:
    from ..models.protocol import TrainableModel

__all__ = ["cached_backward", "contrastive_backward", "objective_backward"]


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


def _slice_tokens(tokens: dict[str, torch.Tensor], a: int, b: int) -> dict[str, torch.Tensor]:
    return {k: v[a:b] for k, v in tokens.items()}


LossFn = Callable[[torch.Tensor, list[torch.Tensor]], tuple[torch.Tensor, float]]


def cached_backward(
    model: TrainableModel,
    waves: torch.Tensor,
    texts: Sequence[dict[str, torch.Tensor]],
    loss_of: LossFn,
    micro_batch: int | None = None,
    autocast: Any = None,
    scaler: Any = None,
) -> torch.Tensor:
    """Accumulate into ``.grad`` the gradient of ``loss_of(audio_embeds, [text_embeds, ...])`` for
    this batch's ``waves`` and token groups ``texts``, embedding ``micro_batch`` rows at a time
    (gradient caching; all at once when None). ``loss_of`` returns ``(loss, scale)``; backward runs
    on ``loss * scale``. Returns the loss."""
    amp = autocast if autocast is not None else nullcontext
    n = waves.shape[0]
    m = n if micro_batch is None or micro_batch >= n else int(micro_batch)

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
        return loss_precision(out)

    rng_states: list[dict[str, Any]] = [{} for _ in chunks]
    with torch.no_grad():
        parts = []
        for state, chunk in zip(rng_states, chunks):
            with _replay_rng(state), amp():
                parts.append(embed(*chunk))
    # 2. Full-batch loss; gradient with respect to the embeddings (and the temperature, and the objective's own weights).
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


def objective_backward(
    model: TrainableModel,
    objective: Objective,
    waves: torch.Tensor,
    targets: Sequence[Any],
    step: int = 0,
    micro_batch: int | None = None,
    dist_info: DistInfo | None = None,
    autocast: Any = None,
    scaler: Any = None,
) -> torch.Tensor:
    """One training step's gradients for ``objective`` on this rank's share of the batch (``waves``
    and their ``targets``): the objective's text groups are tokenised and embedded beside the audio,
    and its loss (gathered across ranks as it says) is back-propagated. Returns the loss."""
    info = dist_info or DistInfo()
    texts = [model.tokenize(list(group)) for group in objective.texts(targets, step)]
    return cached_backward(model, waves, texts, lambda a, ts: objective.loss(model, a, ts, targets, info), micro_batch, autocast, scaler)


def contrastive_backward(
    model: TrainableModel,
    waves: torch.Tensor,
    tokens: dict[str, torch.Tensor],
    micro_batch: int | None = None,
    dist_info: DistInfo | None = None,
    autocast: Any = None,
    scaler: Any = None,
) -> torch.Tensor:
    """:func:`objective_backward` for the contrastive objective on captions already tokenised.

    ``waves``/``tokens`` are this rank's share of the global batch. With ``dist_info`` the loss is
    over the global batch (all ranks' embeddings); the gradient left on this rank is its share, so
    that averaging gradients across ranks gives the single-process gradient. Returns the loss.
    """
    info = dist_info or DistInfo()
    objective = ContrastiveObjective()
    return cached_backward(model, waves, [tokens], lambda a, ts: objective.loss(model, a, ts, [], info), micro_batch, autocast, scaler)
