"""Captions that leave an attribute unsaid: keep them from deciding it.

A caption rarely says everything about its clip: *a flute* says nothing of the pitch. Contrastive
training still pulls each clip onto its caption, so every flute, high or low, is drawn to the place
that *a flute* holds along the pitch axis of the shared space; a combination that no caption names
(*a high flute*) then sits where *a flute* is, and cannot be told from a low one.

:class:`UnsaidAttributes` names the attributes (``{"pitch": {"low": ("low", "deep"), "high": ...}}``)
and treats such captions in one of two ways (``mode``).

``"project"``: for an audio clip whose caption says none of an attribute's words, its similarity to
every caption of the batch becomes::

    (1 - weight) * cos(t, a) + weight * cos(P t, P a)

where ``P`` removes the text directions of the attributes that caption leaves unsaid (each value's
mean phrase embedding minus the first value's, from the current text tower, without gradient), and
the two projected embeddings are renormalised. With ``weight=1`` such a pair exerts no pull at all
along those directions; a part of the plain cosine (``weight < 1``) keeps the attribute tied to the
rest of the embedding. Pairs whose caption says every attribute are scored as usual.

``"complete"``: the caption is a partial label. It is completed with every value of each attribute
it leaves unsaid (*a flute, high* and *a flute, low*; one phrase of the value per completion, drawn
by a hash of the caption and the step), and its logit against any clip is the log-mean-exp of its
completions' logits, so each clip is pulled towards the completion it matches best rather than onto
the bare noun. The loss is ``(1 - weight) * plain + weight * completed``: a share of the plain loss
keeps the bare caption itself tied to its clips.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch
import torch.nn.functional as F

from ..loss import contrastive_logits, similarity_logits, symmetric_cross_entropy
from ..models.clap import ClapLike
from ..models.state import eval_mode

__all__ = ["MODES", "UnsaidAttributes", "UnsaidBatch", "completed_logits"]

MODES = ("project", "complete")
_WORD = re.compile(r"[\w']+")


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
class UnsaidBatch:
    """One batch's view: which attributes each pair's caption says, and what the mode needs (the
    attribute directions, or the completions of the captions that leave attributes unsaid)."""

    said: torch.Tensor  # (n,) int64, bit k set when the caption says attribute k
    directions: tuple[torch.Tensor, ...]  # "project": per attribute, (values - 1, dim)
    weight: float
    mode: str = "project"
    completions: tuple[str, ...] = ()  # "complete": captions' completions, caption by caption
    owner: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))  # "complete": the caption each completes

    def logits(self, audio_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        """``(texts, audios)`` logits like :func:`skclap.loss.contrastive_logits`; an audio column
        whose caption leaves attributes unsaid mixes in the cosine with their directions removed
        (mode ``"project"``)."""
        if self.mode != "project":
            raise ValueError(f"logits() is the 'project' mode's; this batch is {self.mode!r}: use loss()")
        self._check_pairs(audio_embeds, text_embeds)
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

    def _check_pairs(self, audio_embeds: torch.Tensor, text_embeds: torch.Tensor) -> None:
        if audio_embeds.shape != text_embeds.shape or self.said.shape != audio_embeds.shape[:1]:
            raise ValueError(
                f"audio {tuple(audio_embeds.shape)}, text {tuple(text_embeds.shape)} and said {tuple(self.said.shape)} must pair up"
            )

    def loss(
        self,
        audio_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        logit_scale: torch.Tensor,
        completion_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The batch's contrastive loss; mode ``"complete"`` takes the completions' embeddings
        (``(len(owner), dim)``, in the order of ``completions``)."""
        if self.mode == "project":
            return symmetric_cross_entropy(self.logits(audio_embeds, text_embeds, logit_scale))
        self._check_pairs(audio_embeds, text_embeds)
        n = text_embeds.shape[0]
        owner = self.owner.to(text_embeds.device)
        if completion_embeds is None:
            completion_embeds = text_embeds[:0]
        if completion_embeds.shape[0] != owner.shape[0]:
            raise ValueError(f"{owner.shape[0]} completions but {completion_embeds.shape[0]} completion embeddings")
        plain = contrastive_logits(audio_embeds, text_embeds, logit_scale)
        if self.weight == 0:
            return symmetric_cross_entropy(plain)
        bare = torch.bincount(owner, minlength=n) == 0  # captions that say every attribute stand for themselves
        candidates = torch.cat([text_embeds[bare], completion_embeds])
        whose = torch.cat([torch.arange(n, device=owner.device)[bare], owner])
        completed = completed_logits(audio_embeds, candidates, whose, n, logit_scale)
        return (1 - self.weight) * symmetric_cross_entropy(plain) + self.weight * symmetric_cross_entropy(completed)


@dataclass(frozen=True)
class UnsaidAttributes:
    """Attributes that captions may leave unsaid: ``{attribute: {value: phrases}}`` with two or more
    values each. A caption says an attribute when it holds a word that one value's phrases use and no
    other value's (``"pitched"`` in *low pitched* and *high pitched* says nothing); the directions
    and the completions come from the phrases themselves. ``mode`` is ``"project"`` or
    ``"complete"`` (module docstring); ``weight`` in [0, 1] is the share of the treated loss, 0
    being the plain loss."""

    table: Mapping[str, Mapping[str, Sequence[str]]]
    weight: float = 0.5
    mode: str = "project"

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"the unsaid weight must lie in [0, 1]; got {self.weight}")
        if self.mode not in MODES:
            raise ValueError(f"the unsaid mode must be one of {MODES}; got {self.mode!r}")
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
        owner: list[int] = []
        for i, (caption, bits) in enumerate(zip(captions, said)):
            unsaid = [(a, v) for k, (a, v) in enumerate(self.table.items()) if not bits >> k & 1]
            for choice in itertools.product(*(list(values.items()) for _, values in unsaid)):
                phrases = [self._phrase(seed, caption, f"{a}={value}", list(ps)) for (a, _), (value, ps) in zip(unsaid, choice)]
                if phrases:
                    texts.append(", ".join([caption, *phrases]))
                    owner.append(i)
        return texts, owner

    @staticmethod
    def _phrase(seed: int, caption: str, key: str, phrases: list[str]) -> str:
        return phrases[zlib.crc32(f"{seed}|{caption}|{key}".encode()) % len(phrases)]

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

    def batch(self, model: ClapLike, captions: Sequence[str], seed: int = 0) -> UnsaidBatch:
        """What the loss needs for these captions; ``seed`` draws the completions' phrases."""
        said = self.said(captions)
        if self.mode == "project":
            return UnsaidBatch(said, self.directions(model), self.weight)
        texts, owner = self.completions(captions, said.tolist(), seed) if self.weight else ([], [])
        return UnsaidBatch(said, (), self.weight, "complete", tuple(texts), torch.tensor(owner, dtype=torch.int64))
