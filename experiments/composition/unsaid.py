"""Captions that leave an attribute unsaid, scored by their best completion: a training objective.

A caption rarely says everything about its clip: *a flute* says nothing of the pitch. Contrastive
training still pulls each clip onto its caption, so every flute, high or low, is drawn to the place
that *a flute* holds along the pitch axis of the shared space; a combination that no caption names
(*a high flute*) then sits where *a flute* is, and cannot be told from a low one.

:class:`UnsaidAttributes` names the attributes (``{"pitch": {"low": ("low", "deep"), "high": ...}}``).
:class:`CompletionObjective` treats a caption that leaves some unsaid as a partial label: it is
completed with every value of each attribute it leaves unsaid (*a flute, high* and *a flute, low*;
one phrase of the value per completion, drawn by a hash of the caption and the step), and its logit
against any clip is the log-mean-exp of its completions' logits, so each clip is pulled towards the
completion it matches best rather than onto the bare noun. The loss is
``(1 - weight) * plain + weight * completed``: a share of the plain loss keeps the bare caption
itself tied to its clips.

It plugs into skclap's trainer as an objective (:class:`skclap.training.Objective`): its texts are
the captions and the completions, its loss gathers both across ranks.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch

from skclap.loss import contrastive_logits, similarity_logits, symmetric_cross_entropy
from skclap.training import ContrastiveObjective, Objective
from skclap.training.distributed import DistInfo, all_gather_uneven, all_gather_with_grad
from skclap.training.objectives import gathered_logit_scale, loss_precision

__all__ = ["CompletionObjective", "UnsaidAttributes", "completed_logits"]

_WORD = re.compile(r"[\w']+")

if TYPE_CHECKING:
    from skclap.models.protocol import TrainableModel


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def completed_logits(
    audio_embeds: torch.Tensor, candidates: torch.Tensor, owner: torch.Tensor, n_texts: int, logit_scale: torch.Tensor
) -> torch.Tensor:
    """``(n_texts, audios)`` logits where text i's row is the log-mean-exp, over the candidate
    embeddings that ``owner`` gives to it, of ``logit_scale * cos(candidate, audio)``. Every text
    needs one candidate or more."""
    counts = torch.bincount(owner, minlength=n_texts)
    if counts.numel() != n_texts or bool((counts == 0).any()):
        raise ValueError(f"every one of the {n_texts} texts needs a candidate; counts {counts.tolist()}")
    full = similarity_logits(candidates, audio_embeds, logit_scale)  # (candidates, audios)
    top = torch.full((n_texts, full.shape[1]), -torch.inf, dtype=full.dtype, device=full.device)
    top = top.scatter_reduce(0, owner[:, None].expand_as(full), full.detach(), "amax")  # a shift: the gradient needs none
    total = torch.zeros_like(top).index_add(0, owner, (full - top[owner]).exp())
    return top + total.log() - counts.to(full.dtype).log()[:, None]


@dataclass(frozen=True)
class UnsaidAttributes:
    """Attributes that captions may leave unsaid: ``{attribute: {value: phrases}}`` with two or more
    values each. A caption says an attribute when it holds a word that one value's phrases use and no
    other value's (``"pitched"`` in *low pitched* and *high pitched* says nothing); the completions
    come from the phrases themselves."""

    table: Mapping[str, Mapping[str, Sequence[str]]]

    def __post_init__(self) -> None:
        if not self.table:
            raise ValueError("no attributes given; e.g. {'pitch': {'low': ['low', 'deep'], 'high': ['high', 'shrill']}}")
        if len(self.table) > 62:
            raise ValueError(f"at most 62 attributes; got {len(self.table)}")
        for attribute, values in self.table.items():
            if len(values) < 2:
                raise ValueError(f"attribute {attribute!r} needs two or more values; got {list(values)}")
            for value, phrases in values.items():
                if isinstance(phrases, str) or not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
                    raise ValueError(f"{attribute!r} value {value!r}: give a list of non-empty phrases; got {phrases!r}")
                if not self._value_words(attribute, value):
                    raise ValueError(
                        f"{attribute!r} value {value!r}: every word of {list(phrases)} is shared with another value, "
                        "so no caption could say it"
                    )

    def _value_words(self, attribute: str, value: str) -> set[str]:
        values = self.table[attribute]
        others = {w for v, phrases in values.items() if v != value for p in phrases for w in _words(p)}
        return {w for p in values[value] for w in _words(p)} - others

    @cached_property
    def _said_words(self) -> list[set[str]]:
        """Per attribute, the words that say one of its values."""
        return [set().union(*(self._value_words(attribute, v) for v in values)) for attribute, values in self.table.items()]

    def said(self, captions: Sequence[str]) -> torch.Tensor:
        """``(n,)`` int64 bit sets: bit k set when caption i says attribute k (in table order)."""
        words = self._said_words
        out = []
        for i, caption in enumerate(captions):
            if not isinstance(caption, str):
                raise TypeError(f"caption {i} is a {type(caption).__name__}, not a string")
            have = _words(caption)
            out.append(sum(1 << k for k, w in enumerate(words) if have & w))
        return torch.tensor(out, dtype=torch.int64)

    def completions(self, captions: Sequence[str], said: Sequence[int], seed: int = 0) -> tuple[list[str], list[int]]:
        """Every completion of each caption that leaves attributes unsaid (``"caption, phrase"``, one
        phrase per unsaid attribute, every combination of their values), and the caption each
        completes. The phrase of a value is drawn by a hash of ``seed``, the caption and the value:
        the same whichever captions share the batch."""
        texts: list[str] = []
        for caption, bits in zip(captions, said):
            unsaid = [(a, v) for k, (a, v) in enumerate(self.table.items()) if not bits >> k & 1]
            if not unsaid:
                continue
            for choice in itertools.product(*(list(values.items()) for _, values in unsaid)):
                phrases = [self._phrase(seed, caption, f"{a}={value}", list(ps)) for (a, _), (value, ps) in zip(unsaid, choice)]
                texts.append(", ".join([caption, *phrases]))
        return texts, self.owners(said)

    def owners(self, said: Sequence[int]) -> list[int]:
        """The caption each of :meth:`completions`' texts completes, in their order: one per
        combination of the values of what the caption leaves unsaid (none when it says everything)."""
        sizes = [len(values) for values in self.table.values()]
        out: list[int] = []
        for i, bits in enumerate(said):
            unsaid = [n for k, n in enumerate(sizes) if not bits >> k & 1]
            if unsaid:
                out += [i] * math.prod(unsaid)
        return out

    @staticmethod
    def _phrase(seed: int, caption: str, key: str, phrases: list[str]) -> str:
        return phrases[zlib.crc32(f"{seed}|{caption}|{key}".encode()) % len(phrases)]


class CompletionObjective(Objective):
    """Contrastive loss where a caption that leaves attributes of ``attributes`` unsaid is scored by
    its completions (module docstring); ``weight`` in [0, 1] is the completed loss's share, 0 the
    plain loss. ``seed`` with the step draws the completions' phrases."""

    headline = "val_t2a_R@1"

    def __init__(self, attributes: Mapping[str, Mapping[str, Sequence[str]]], weight: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"the unsaid weight must lie in [0, 1]; got {weight}")
        self.attributes = attributes if isinstance(attributes, UnsaidAttributes) else UnsaidAttributes(attributes)
        self.weight, self.seed = float(weight), int(seed)
        self._plain = ContrastiveObjective()

    def _completions(self, captions: Sequence[str], step: int) -> tuple[list[str], list[int]]:
        said = self.attributes.said(captions).tolist()
        return self.attributes.completions(captions, said, self.seed * 1_000_003 + step) if self.weight else ([], [])

    def texts(self, targets: Sequence[Any], step: int) -> list[list[str]]:
        completions, _ = self._completions(targets, step)
        return [list(targets), completions] if completions else [list(targets)]

    def loss(
        self, model: TrainableModel, audio: torch.Tensor, texts: list[torch.Tensor], targets: Sequence[Any], info: DistInfo
    ) -> tuple[torch.Tensor, float]:
        a = all_gather_with_grad(loss_precision(audio), info)
        t = all_gather_with_grad(loss_precision(texts[0]), info)
        scale = gathered_logit_scale(model, info)
        plain = contrastive_logits(a, t, scale)
        if self.weight == 0:
            return symmetric_cross_entropy(plain), float(info.world_size)
        n = audio.shape[0]
        owner_local = self.attributes.owners(self.attributes.said(targets).tolist())  # which caption each completion of texts() completes
        local = texts[1] if len(texts) > 1 else audio.new_zeros((0, audio.shape[1]))
        owner = all_gather_uneven(torch.tensor(owner_local, dtype=torch.int64, device=audio.device) + info.rank * n, info)
        c = all_gather_uneven(loss_precision(local), info)
        bare = torch.bincount(owner, minlength=t.shape[0]) == 0  # captions that say every attribute stand for themselves
        candidates = torch.cat([t[bare], c])
        whose = torch.cat([torch.arange(t.shape[0], device=owner.device)[bare], owner])
        completed = completed_logits(a, candidates, whose, t.shape[0], scale)
        loss = (1 - self.weight) * symmetric_cross_entropy(plain) + self.weight * symmetric_cross_entropy(completed)
        return loss, float(info.world_size)

    def evaluate(self, model: TrainableModel, audio: Any, targets: Sequence[Sequence[Any]]) -> dict[str, float]:
        return self._plain.evaluate(model, audio, targets)
