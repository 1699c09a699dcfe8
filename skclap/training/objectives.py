"""What a training run minimises: objectives as classes, each with its texts, its loss, its own
gathering across ranks, and its validation measure.

The trainer and the gradient-cache step (:mod:`skclap.training.step`) know nothing of any objective
beyond this interface::

    texts(targets, step)        -> the text groups to embed for a batch (e.g. [captions]); may be []
    loss(model, audio, texts, targets, info)
                                -> (loss, scale): backward runs on loss * scale, so that the
                                   rank-average of gradients is the single-process gradient
    trainable(model)            -> the parameters it trains (the trainer leaves out frozen towers)
    evaluate(model, audio, targets) -> validation measures, e.g. {"val_t2a_R@1": ...}

An objective is a ``torch.nn.Module``: modules of its own (a classification head) move, switch
mode and are checkpointed with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..batching import normalize_rows
from ..encoder import Encoder
from ..loss import contrastive_loss
from ..metrics import retrieval_metrics
from ..models.state import eval_mode
from .distributed import DistInfo, all_gather_with_grad

if TYPE_CHECKING:
    from ..models.protocol import TrainableModel

__all__ = ["ContrastiveObjective", "Objective", "SupervisedObjective", "gathered_logit_scale", "loss_precision"]


def loss_precision(x: torch.Tensor) -> torch.Tensor:
    """Embeddings from autocast regions are half precision; losses are computed in float32 (or higher)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def gathered_logit_scale(model: TrainableModel, info: DistInfo) -> torch.Tensor:
    """The temperature for a loss over all ranks' embeddings. Each rank differentiates the global
    loss through its own slice of embeddings, so the loss is scaled by the world size for the
    rank-average of gradients to be the full gradient; the temperature sees the whole loss on every
    rank, so its gradient is scaled back here."""
    scale = model.logit_scale.exp()
    w = info.world_size
    return scale / w + (scale - scale / w).detach() if w > 1 else scale


class Objective(nn.Module):
    """The interface (module docstring); subclasses define :meth:`loss` and :meth:`evaluate`."""

    #: The validation measure a progress bar shows.
    headline = "val_loss"

    def texts(self, targets: Sequence[Any], step: int) -> list[list[str]]:
        """The text groups to embed for a batch whose targets are ``targets``; none by default."""
        return []

    def loss(
        self, model: TrainableModel, audio: torch.Tensor, texts: list[torch.Tensor], targets: Sequence[Any], info: DistInfo
    ) -> tuple[torch.Tensor, float]:
        raise NotImplementedError

    def trainable(self, model: TrainableModel) -> list[nn.Parameter]:
        """The model's parameters and the objective's own."""
        return [*model.parameters(), *self.parameters()]

    def evaluate(self, model: TrainableModel, audio: np.ndarray, targets: Sequence[Sequence[Any]]) -> dict[str, float]:
        raise NotImplementedError


class ContrastiveObjective(Objective):
    """CLAP's objective: the symmetric cross-entropy of ``logit_scale * cos`` over the global batch
    of audio-caption pairs (all ranks' embeddings gathered). Validation: retrieval R@1/5/10 both ways."""

    headline = "val_t2a_R@1"

    def texts(self, targets: Sequence[Any], step: int) -> list[list[str]]:
        return [list(targets)]

    def loss(
        self, model: TrainableModel, audio: torch.Tensor, texts: list[torch.Tensor], targets: Sequence[Any], info: DistInfo
    ) -> tuple[torch.Tensor, float]:
        a = all_gather_with_grad(loss_precision(audio), info)
        t = all_gather_with_grad(loss_precision(texts[0]), info)
        return contrastive_loss(a, t, gathered_logit_scale(model, info)), float(info.world_size)

    def evaluate(self, model: TrainableModel, audio: np.ndarray, targets: Sequence[Sequence[Any]]) -> dict[str, float]:
        flat = [t for caps in targets for t in caps]
        owner = [i for i, caps in enumerate(targets) for _ in caps]
        t = Encoder(model, cache=False).text(flat)
        a = normalize_rows(audio)
        return {f"val_{k}": v for k, v in retrieval_metrics(a, t, owner).items()}


class SupervisedObjective(Objective):
    """Fine-tuning the audio tower under a classification head: targets are integer labels, the loss
    is the cross-entropy of ``head(audio embedding)`` on this rank's share (gradients are averaged
    across ranks), the text tower is left out. Validation: accuracy."""

    headline = "val_accuracy"

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def loss(
        self, model: TrainableModel, audio: torch.Tensor, texts: list[torch.Tensor], targets: Sequence[Any], info: DistInfo
    ) -> tuple[torch.Tensor, float]:
        labels = torch.as_tensor([int(t) for t in targets], device=audio.device)
        logits = self.head(loss_precision(audio))
        return F.cross_entropy(logits.float(), labels), 1.0

    def trainable(self, model: TrainableModel) -> list[nn.Parameter]:
        return [*model.audio_encoder.parameters(), *self.head.parameters()]

    def evaluate(self, model: TrainableModel, audio: np.ndarray, targets: Sequence[Sequence[Any]]) -> dict[str, float]:
        with eval_mode(self.head), torch.no_grad():
            logits = self.head(torch.from_numpy(audio).to(model.device)).cpu().numpy()
        return {"val_accuracy": float((logits.argmax(1) == np.array([int(c[0]) for c in targets])).mean())}
