"""Accuracy against the number of labelled clips per class: zero-shot, linear probe, prompt tuning
and the few-shot classifier on the same draws of shots.

Protocol: for every draw, each class's clips in the pool are shuffled once (seeded by the draw) and
the first ``k`` are its shots for every ``k`` (so larger shot counts extend smaller ones); each method
is fitted on the shots and scored on the same test clips. Zero-shot uses no clips, so it is one
number. Audio embeddings are computed once through the estimators' shared cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..estimators import CLAPFewShotClassifier, CLAPLinearProbe, CLAPPromptTuner, CLAPZeroShotClassifier

__all__ = ["FEW_SHOT_METHODS", "draw_shots", "few_shot_methods", "shot_curve", "summarize_curve"]

FEW_SHOT_METHODS = ("zero-shot", "linear probe", "prompt tuner", "few-shot")


def draw_shots(y: Any, shots: Sequence[int], draw: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Indices of ``k`` clips per class for each ``k`` in ``shots`` (nested: the clips of a smaller
    ``k`` are among those of a larger one). A class with fewer than ``max(shots)`` clips is an error."""
    y_arr = np.asarray(y)
    rng = np.random.default_rng([int(seed), int(draw)])
    top = max(shots)
    order: list[np.ndarray] = []
    for c in np.unique(y_arr).tolist():
        idx = np.flatnonzero(y_arr == c)
        if len(idx) < top:
            raise ValueError(f"class {c!r} has {len(idx)} clips in the pool; {top} shots per class need at least {top}")
        order.append(rng.permutation(idx))
    return {k: np.sort(np.concatenate([o[:k] for o in order])) for k in shots}


def few_shot_methods(
    common: Mapping[str, Any],
    labels: Sequence[Any],
    label_prompts: Mapping[Any, Any] | None = None,
    templates: Any = None,
    tuner_steps: int = 200,
) -> dict[str, Callable[[], Any]]:
    """Factories of the fitted-on-shots methods, configured alike (``common``: model, sample rate,
    cache, device...); ``tuner_steps``: the prompt tuner's optimisation steps per fit."""
    text: dict[str, Any] = dict(labels=list(labels), label_prompts=label_prompts)
    return {
        "linear probe": lambda: CLAPLinearProbe(**common),
        "prompt tuner": lambda: CLAPPromptTuner(**text, steps=tuner_steps, **common),
        "few-shot": lambda: CLAPFewShotClassifier(**text, templates=templates, **common),
    }


def shot_curve(
    X_pool: Sequence[Any],
    y_pool: Sequence[Any],
    X_test: Sequence[Any],
    y_test: Sequence[Any],
    common: Mapping[str, Any],
    *,
    shots: Sequence[int] = (1, 2, 4, 8, 16),
    draws: int = 5,
    seed: int = 0,
    label_prompts: Mapping[Any, Any] | None = None,
    templates: Any = None,
    methods: Sequence[str] = FEW_SHOT_METHODS,
    tuner_steps: int = 200,
    log: Callable[[str], Any] | None = None,
) -> pd.DataFrame:
    """One row per (method, shots, draw) with the test accuracy (zero-shot: one row, shots 0)."""
    labels = sorted(set(np.asarray(y_pool).tolist()) | set(np.asarray(y_test).tolist()))
    unknown = [m for m in methods if m not in FEW_SHOT_METHODS]
    if unknown:
        raise ValueError(f"methods must be among {FEW_SHOT_METHODS}; got {unknown}")
    pool_items, test_items = list(X_pool), list(X_test)
    pool_y, test_y = np.asarray(y_pool), np.asarray(y_test)
    rows = []
    if "zero-shot" in methods:
        zs = CLAPZeroShotClassifier(
            labels=labels, label_prompts=label_prompts, templates=None if templates == "auto" else templates, **common
        )
        rows.append({"method": "zero-shot", "shots": 0, "draw": 0, "accuracy": float(zs.fit().score(test_items, test_y))})
    factories = few_shot_methods(common, labels, label_prompts, templates, tuner_steps)
    for draw in range(draws):
        chosen = draw_shots(pool_y, shots, draw, seed)
        for k in shots:
            idx = chosen[k]
            for name in [m for m in methods if m in factories]:
                est = factories[name]().fit([pool_items[i] for i in idx], pool_y[idx])
                rows.append({"method": name, "shots": k, "draw": draw, "accuracy": float(est.score(test_items, test_y))})
            if log is not None:
                done = {r["method"]: r["accuracy"] for r in rows if r["shots"] == k and r["draw"] == draw}
                log(f"draw {draw}, {k} shots: " + ", ".join(f"{m} {a:.1%}" for m, a in done.items()))
    return pd.DataFrame(rows)


def summarize_curve(curve: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over draws, one row per method and shot count."""
    g = curve.groupby(["method", "shots"], sort=False)["accuracy"]
    out = g.agg(mean="mean", std=lambda s: float(np.std(s)), draws="count").reset_index()
    return out
