"""Captions that leave an attribute unsaid: keep them from deciding it.

A caption rarely says everything about its clip: *a flute* says nothing of the pitch. Contrastive
training still pulls each clip onto its caption, so every flute, high or low, is drawn to the place
that *a flute* holds along the pitch axis of the shared space; a combination that no caption names
(*a high flute*) then sits where *a flute* is, and cannot be told from a low one.

:class:`UnsaidAttributes` names the attributes (``{"pitch": {"low": ("low", "deep"), "high": ...}}``).
For an audio clip whose caption says none of an attribute's words, its similarity to every caption
of the batch becomes::

    (1 - weight) * cos(t, a) + weight * cos(P t, P a)

where ``P`` removes the text directions of the attributes that caption leaves unsaid (each value's
mean phrase embedding minus the first value's, from the current text tower, without gradient), and
the two projected embeddings are renormalised. With ``weight=1`` such a pair exerts no pull at all
along those directions; a part of the plain cosine (``weight < 1``) keeps the attribute tied to the
rest of the embedding. Pairs whose caption says every attribute are scored as usual.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from ..loss import contrastive_logits
from ..models.clap import ClapLike
from ..models.state import eval_mode

__all__ = ["UnsaidAttributes", "UnsaidBatch"]

_WORD = re.compile(r"[\w']+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class UnsaidBatch:
    """One batch's view: which attributes each pair's caption says, and the attribute directions."""

    said: torch.Tensor  # (n,) int64, bit k set when the caption says attribute k
    directions: tuple[torch.Tensor, ...]  # per attribute: (values - 1, dim)
    weight: float

    def logits(self, audio_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        """``(texts, audios)`` logits like :func:`skclap.loss.contrastive_logits`; an audio column
        whose caption leaves attributes unsaid mixes in the cosine with their directions removed."""
        if audio_embeds.shape != text_embeds.shape or self.said.shape != audio_embeds.shape[:1]:
            raise ValueError(
                f"audio {tuple(audio_embeds.shape)}, text {tuple(text_embeds.shape)} and said {tuple(self.said.shape)} must pair up"
            )
        logits = contrastive_logits(audio_embeds, text_embeds, logit_scale)
        if self.weight == 0:
            return logits
        a = F.normalize(audio_embeds, dim=-1)
        t = F.normalize(text_embeds, dim=-1)
        every = (1 << len(self.directions)) - 1
        said = self.said.to(a.device)
        logits = logits.clone()
        for key in torch.unique(said).tolist():
            if key == every:
                continue
            cols = (said == key).nonzero().flatten()
            unsaid = [d for k, d in enumerate(self.directions) if not key >> k & 1]
            basis, _ = torch.linalg.qr(torch.cat(unsaid).to(a).T)  # (dim, r), orthonormal
            ap = F.normalize(a[cols] - a[cols] @ basis @ basis.T, dim=-1)
            tp = F.normalize(t - t @ basis @ basis.T, dim=-1)
            logits[:, cols] = (1 - self.weight) * logits[:, cols] + self.weight * logit_scale * (tp @ ap.T)
        return logits


@dataclass(frozen=True)
class UnsaidAttributes:
    """Attributes that captions may leave unsaid: ``{attribute: {value: phrases}}`` with two or more
    values each. A caption says an attribute when it holds a word that one value's phrases use and no
    other value's (``"pitched"`` in *low pitched* and *high pitched* says nothing); the directions
    come from the phrases themselves."""

    table: Mapping[str, Mapping[str, Sequence[str]]]
    weight: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"the unsaid weight must lie in [0, 1]; got {self.weight}")
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

    @torch.no_grad()
    def directions(self, model: ClapLike) -> tuple[torch.Tensor, ...]:
        """Per attribute, ``(values - 1, dim)``: each value's mean normalised phrase embedding minus
        the first value's, from the text tower in eval mode (no dropout, no gradient)."""
        out = []
        with eval_mode(model):
            for values in self.table.values():
                means = torch.stack(
                    [F.normalize(model.encode_text(model.tokenize(list(p))).float(), dim=-1).mean(0) for p in values.values()]
                )
                out.append(means[1:] - means[:1])
        return tuple(out)

    def batch(self, model: ClapLike, captions: Sequence[str]) -> UnsaidBatch:
        return UnsaidBatch(self.said(captions), self.directions(model), self.weight)
