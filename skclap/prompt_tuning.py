"""Prompt learning (CoOp, Zhou et al. 2022): context vectors before the class name, learnt with the
text tower frozen.

A prompt ``"this is a sound of dog barking."`` is tokenised as usual; the word embeddings of its
context tokens (``"this is a sound of"``) are replaced by vectors shared by every class, which are
trained by gradient descent so that the CLAP similarity of labelled clips to their class prompt wins.
Only the context receives gradients; the model's weights are not changed. Any backend whose
``encode_text`` accepts ``inputs_embeds`` (and which exposes ``text_input_embeddings``) works.

Training is full-batch on cached, normalised audio embeddings, so a step costs one text-tower pass
over the class prompts, and the result does not depend on random state unless the context is
initialised at random.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .models.protocol import TrainableModel

__all__ = ["ContextPrompts", "PromptTuning", "tune_context"]

#: The placeholder words of randomly initialised context vectors.
_PLACEHOLDER = "x"


@dataclass
class ContextPrompts:
    """The tokenised class prompts and where their context tokens sit.

    ``tokens``: the model's tokens of every prompt (one row per class wording); ``slot``:
    ``(rows, length)`` index of the context vector at each position, ``-1`` where the token's own
    embedding stays; ``owner``: the class of each row.
    """

    tokens: dict[str, torch.Tensor]
    slot: torch.Tensor
    owner: torch.Tensor
    init: torch.Tensor  # (n_context, hidden): the context tokens' own embeddings

    @classmethod
    def build(cls, model: TrainableModel, wordings: list[list[str]], context: str | int) -> ContextPrompts:
        """``context``: a template such as ``"this is a sound of {}."`` (context = its words before
        ``{}``, initialised with their embeddings; the words after ``{}`` stay fixed), or a number
        of context vectors placed before the class name, followed by ``"."``."""
        if isinstance(context, str):
            if context.count("{}") != 1:
                raise ValueError(f"the context template needs exactly one '{{}}'; got {context!r}")
            prefix, suffix = context.split("{}")
            prefix = prefix.strip()
            if not prefix:
                raise ValueError(f"the context template has no words before '{{}}' to learn; got {context!r}")
        else:
            if int(context) < 1:
                raise ValueError(f"the number of context vectors must be at least 1; got {context}")
            prefix, suffix = " ".join([_PLACEHOLDER] * int(context)), "."
        texts = [f"{prefix} {w}{suffix}" for ws in wordings for w in ws]
        owner = torch.tensor([c for c, ws in enumerate(wordings) for _ in ws])
        tokens = model.tokenize(texts)
        ids = tokens["input_ids"].cpu()
        want = model.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        m = len(want)
        slot = torch.full(ids.shape, -1, dtype=torch.long)
        for r, row in enumerate(ids.tolist()):
            start = next((s for s in range(len(row) - m + 1) if row[s : s + m] == want), None)
            if start is None:
                raise ValueError(f"the context {prefix!r} is not found in the tokens of the prompt {texts[r]!r}")
            slot[r, start : start + m] = torch.arange(m)
        table = model.text_input_embeddings()
        with torch.no_grad():
            init = table(torch.tensor(want, device=table.weight.device)).float().cpu()
        return cls(tokens, slot.to(model.device), owner.to(model.device), init)

    def embed(self, model: TrainableModel, context: torch.Tensor) -> torch.Tensor:
        """Normalised class embeddings ``(n_classes, dim)`` with these context vectors
        (differentiable in ``context``)."""
        table = model.text_input_embeddings()
        words = table(self.tokens["input_ids"]).detach()
        filled = context.to(words.dtype)[self.slot.clamp(min=0)]
        inputs = torch.where((self.slot >= 0).unsqueeze(-1), filled, words)
        rows = F.normalize(model.encode_text(self.tokens, inputs_embeds=inputs).float(), dim=-1)
        n_classes = int(self.owner.max()) + 1
        sums = torch.zeros(n_classes, rows.shape[1], device=rows.device).index_add(0, self.owner, rows)
        return F.normalize(sums, dim=-1)


@dataclass
class PromptTuning:
    context: np.ndarray  # (n_context, hidden)
    class_embeddings: np.ndarray  # (n_classes, dim), normalised, with the learnt context
    initial_embeddings: np.ndarray  # (n_classes, dim) with the initial context
    history: list[float]  # loss per step


def tune_context(
    model: TrainableModel,
    audio: np.ndarray,
    targets: np.ndarray,
    wordings: list[list[str]],
    context: str | int = "this is a sound of {}.",
    *,
    steps: int = 200,
    lr: float = 2e-3,
    regularization: float = 0.0,
    seed: int = 0,
) -> PromptTuning:
    """Learn the context of the class prompts from labelled clips.

    ``audio``: normalised audio embeddings ``(n, dim)``; ``targets``: class index per clip;
    ``wordings``: the texts of each class (their prompt embeddings are averaged). The loss is the
    cross-entropy of ``logit_scale * cos(audio, class prompt)`` plus ``regularization`` times the mean
    squared distance of each class's prompt embedding from its embedding with the initial context
    (KgCoOp, Yao et al. 2023): it keeps the tuned prompts near the hand-written ones, which matters
    when there are few clips.
    """
    was_training = model.training
    model.eval()  # no dropout: the text tower is a fixed function of the context
    try:
        prompts = ContextPrompts.build(model, wordings, context)
        if isinstance(context, str):
            init = prompts.init.clone()
        else:
            gen = torch.Generator().manual_seed(int(seed))
            init = torch.randn(prompts.init.shape, generator=gen) * 0.02
        ctx = torch.nn.Parameter(init.to(model.device))
        a = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=model.device)
        y = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=model.device)
        scale = float(model.logit_scale.detach().exp())
        with torch.no_grad():
            initial = prompts.embed(model, ctx)
        optimizer = torch.optim.Adam([ctx], lr=lr)
        history = []
        with torch.enable_grad():
            for _ in range(int(steps)):
                text = prompts.embed(model, ctx)
                loss = F.cross_entropy(scale * a @ text.T, y)
                if regularization:
                    loss = loss + regularization * (text - initial).pow(2).sum(dim=1).mean()
                (grad,) = torch.autograd.grad(loss, [ctx])  # the model's weights get no gradient
                ctx.grad = grad
                optimizer.step()
                history.append(float(loss.detach()))
        with torch.no_grad():
            final = prompts.embed(model, ctx)
    finally:
        model.train(was_training)
    return PromptTuning(ctx.detach().float().cpu().numpy(), final.cpu().numpy(), initial.cpu().numpy(), history)
