"""Prompts for zero-shot classes: templates, the wordings of a label, and choosing templates.

A class is prompted by writing each of its wordings (``label_prompts[label]``, or the label with
``_`` read as a space) into each template (``"this is a sound of {}."``); its vector is the
normalised mean of those prompts' embeddings (prompt ensembling). :func:`select_templates` chooses,
from labelled clips, the ensemble of :data:`TEMPLATE_POOL` that scores best on them.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .batching import normalize_rows
from .metrics import mean_average_precision

__all__ = [
    "DEFAULT_TEMPLATES",
    "TEMPLATE_POOL",
    "TemplateSelection",
    "check_label_prompts",
    "check_templates",
    "label_wordings",
    "prompt_vectors",
    "prompts_for",
    "select_templates",
]

#: The prompt of the paper.
DEFAULT_TEMPLATES = ("this is a sound of {}.",)

#: The templates ``templates="auto"`` chooses from, the paper's first.
TEMPLATE_POOL = (
    "this is a sound of {}.",
    "a sound of {}.",
    "the sound of {}.",
    "{}",
    "{}.",
    "a recording of {}.",
    "an audio clip of {}.",
    "this is the sound of {}.",
    "you can hear {}.",
    "{} can be heard.",
    "a clip of {}.",
    "it sounds like {}.",
    "this audio contains {}.",
    "a field recording of {}.",
    "a close-up recording of {}.",
    "a short recording of {}.",
)

#: texts -> their normalised embeddings, ``(len(texts), dim)``
EmbedText = Callable[[list[str]], np.ndarray]


def check_templates(templates: str | Sequence[str] | None) -> list[str]:
    """The templates to use (the paper's when None or ``"auto"``), each checked to hold one ``{}``."""
    chosen = DEFAULT_TEMPLATES if templates in (None, "auto") else templates
    out = [chosen] if isinstance(chosen, str) else list(chosen or ())
    if not out:
        raise ValueError("templates is empty; give at least one template such as 'this is a sound of {}.'")
    for t in out:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ValueError(f"each template must be a string with exactly one '{{}}'; got {t!r}")
    return out


def label_wordings(label: Any, label_prompts: Mapping[Any, Any] | None) -> list[str]:
    """The texts that stand for a label in prompts: ``label_prompts[label]`` (a string or a list of
    strings) or the label itself with ``_`` read as a space."""
    texts = (label_prompts or {}).get(label, str(label).replace("_", " "))
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(f"label_prompts[{label!r}] must be a non-empty string or list of strings")
    return texts


def check_label_prompts(label_prompts: Mapping[Any, Any] | None, labels: Sequence[Any], what: str = "label") -> None:
    """Warn about each key of ``label_prompts`` that is not one of ``labels`` (a misspelt key would
    silently leave its label prompted by its bare name), naming the closest label. A warning, not an
    error: labels taken from ``y`` may lack a class in one cross-validation fold."""
    names = {str(v): v for v in labels}
    known = set(labels)
    for key in label_prompts or {}:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), list(names), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        shown = ", ".join(map(repr, list(names)[:20])) + (", ..." if len(labels) > 20 else "")
        warnings.warn(
            f"label_prompts has a key {key!r} that is not a {what}, so it is not used: {hint}the {what}s are {shown}",
            UserWarning,
            stacklevel=3,
        )


def prompts_for(labels: Sequence[Any], templates: Sequence[str], label_prompts: Mapping[Any, Any] | None) -> list[list[str]]:
    """Each label's prompts: every wording in every template."""
    return [[t.format(text) for text in label_wordings(label, label_prompts) for t in templates] for label in labels]


def prompt_vectors(embed_text: EmbedText, prompts: list[list[str]]) -> np.ndarray:
    """The normalised mean embedding of each group of prompts, ``(len(prompts), dim)``."""
    emb = embed_text([p for group in prompts for p in group])
    bounds = np.cumsum([0] + [len(g) for g in prompts])
    return normalize_rows(np.stack([emb[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]))


class TemplateSelection(NamedTuple):
    """What :func:`select_templates` chose."""

    templates: list[str]  # the chosen ensemble
    scores: dict[str, float]  # each pool template's score alone
    cv_score: float | None  # the procedure's cross-validated score (None without two clips in every class, or for tag sets)


def select_templates(
    audio: np.ndarray,
    target: np.ndarray,
    wordings: Sequence[Sequence[str]],
    embed_text: EmbedText,
    multilabel: bool = False,
    pool: Sequence[str] = TEMPLATE_POOL,
) -> TemplateSelection:
    """Greedy forward selection from ``pool`` of the template ensemble that scores best on labelled
    clips: ``audio`` their normalised embeddings, ``target`` their class indices (or an indicator
    matrix for tag sets, scored by mean average precision), ``wordings`` each class's texts. Ties
    keep the pool's order. The cross-validated score estimates the procedure itself: templates chosen
    on stratified training folds, scored on the held-out fold."""
    pool = list(pool)
    emb = embed_text([t.format(w) for t in pool for ws in wordings for w in ws])
    sums = np.zeros((len(pool), len(wordings), emb.shape[1]))  # per template: summed prompt embeddings
    row = 0
    for ti in range(len(pool)):
        for ci, ws in enumerate(wordings):
            sums[ti, ci] = emb[row : row + len(ws)].sum(axis=0)
            row += len(ws)

    def score(chosen: list[int], rows: np.ndarray) -> float:
        cos = audio[rows] @ normalize_rows(sums[chosen].sum(axis=0)).T
        if multilabel:
            return mean_average_precision(target[rows], cos)
        return float((cos.argmax(axis=1) == target[rows]).mean())

    def select(rows: np.ndarray) -> list[int]:
        chosen: list[int] = []
        best = -np.inf
        while len(chosen) < len(pool):
            trials = [(score(chosen + [t], rows), -t) for t in range(len(pool)) if t not in chosen]
            value, neg_t = max(trials)
            if value <= best:
                break
            chosen.append(-neg_t)
            best = value
        return chosen

    everything = np.arange(len(audio))
    scores = {pool[t]: score([t], everything) for t in range(len(pool))}
    cv_score = None
    if not multilabel:
        counts = np.bincount(target, minlength=len(wordings))
        folds = int(min(5, counts[counts > 0].min()))
        if folds >= 2:
            from sklearn.model_selection import StratifiedKFold

            split = StratifiedKFold(folds, shuffle=True, random_state=0).split(audio, target)
            cv_score = float(np.mean([score(select(tr), te) for tr, te in split]))
    return TemplateSelection([pool[t] for t in select(everything)], scores, cv_score)
