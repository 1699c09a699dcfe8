"""Run downstream tasks: zero-shot with prompts, linear probe under the task's folds, one table.

Zero-shot and probe share one embedding cache, so every clip goes through the audio encoder once
per model, whichever modes and folds are run.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import MultiLabelBinarizer

from ..cache import get_cache
from ..checkpoints import resolve_model
from ..datasets.downstream import LabelledAudio
from ..estimators import CLAPLinearProbe, CLAPZeroShotClassifier
from ..metrics import mean_average_precision
from .retrieval import RETRIEVAL_TASKS, evaluate_retrieval
from .tasks import TASKS, Task, get_task

__all__ = ["DEFAULT_MODES", "MODES", "evaluate", "evaluate_task", "results_markdown"]

MODES = ("zeroshot", "probe", "fewshot")

#: The modes run when none is named (few-shot fits many models per fold: it is asked for by name).
DEFAULT_MODES = ("zeroshot", "probe")


def _zero_shot_scores(task: Task, data: LabelledAudio, common: dict[str, Any]) -> list[float]:
    clf = CLAPZeroShotClassifier(
        labels=data.classes,
        templates=list(task.templates),
        label_prompts=task.prompts(data.classes),
        multilabel=data.multilabel,
        **common,
    ).fit()
    out = []
    for _, test in data.folds():
        X = [data.paths[i] for i in test]
        y = [list(data.labels[i]) for i in test] if data.multilabel else [data.labels[i] for i in test]
        out.append(float(clf.score(X, y)))
    return out


def _probe_scores(data: LabelledAudio, common: dict[str, Any], estimator: Any) -> list[float]:
    binarizer = MultiLabelBinarizer(classes=data.classes).fit([]) if data.multilabel else None
    out = []
    for train, test in data.folds():
        X_train, X_test = [data.paths[i] for i in train], [data.paths[i] for i in test]
        y_train = [data.labels[i] for i in train]
        if binarizer is not None:
            with warnings.catch_warnings():  # a class absent from (or in every one of) a fold's training clips
                warnings.filterwarnings("ignore", message=".*present in all training examples.*")
                probe = CLAPLinearProbe(estimator=estimator, **common).fit(X_train, binarizer.transform(y_train))
                scores = probe.predict_proba(X_test)
            out.append(mean_average_precision(binarizer.transform([data.labels[i] for i in test]), scores))
        else:
            if len(set(y_train)) < 2:
                raise ValueError(f"{data.name}: a training fold holds a single class; the probe needs at least two")
            probe = CLAPLinearProbe(estimator=estimator, **common).fit(X_train, y_train)
            out.append(float(accuracy_score([data.labels[i] for i in test], probe.predict(X_test))))
    return out


def _few_shot_rows(
    task: Task, data: LabelledAudio, common: dict[str, Any], shots: Sequence[int], draws: int, tuner_steps: int
) -> list[dict[str, Any]]:
    """Accuracy against shots per class (:func:`~skclap.evaluation.fewshot.shot_curve`) in every fold:
    the shots are drawn from the fold's training clips, the fold's test clips score them."""
    from .fewshot import shot_curve, summarize_curve

    if data.multilabel:
        raise ValueError(f"{data.name}: the few-shot mode takes single-label tasks; {task.name} is multi-label")
    curves = []
    for fold, (train, test) in enumerate(data.folds()):
        curve = shot_curve(
            [data.paths[i] for i in train],
            [data.labels[i] for i in train],
            [data.paths[i] for i in test],
            [data.labels[i] for i in test],
            common,
            shots=shots,
            draws=draws,
            seed=fold,
            label_prompts=task.prompts(data.classes),
            templates=list(task.templates),
            tuner_steps=tuner_steps,
        )
        curves.append(curve)
    summary = summarize_curve(pd.concat(curves, ignore_index=True))
    return [
        {"mode": "fewshot", "method": r.method, "shots": int(r.shots), "mean": float(r.mean), "std": float(r.std), "folds": int(r.draws)}
        for r in summary.itertuples()
    ]


def evaluate_task(
    task: str | Task,
    data_dir: str | Path,
    model: Any = "msclap-2022",
    modes: Sequence[str] = DEFAULT_MODES,
    *,
    shots: Sequence[int] = (1, 2, 4, 8, 16),
    draws: int = 5,
    tuner_steps: int = 200,
    estimator: Any = None,
    cache: Any = True,
    batch_size: int = 32,
    device: str = "auto",
    precision: str | None = None,
    progress: bool = True,
    data: LabelledAudio | None = None,
) -> list[dict[str, Any]]:
    """Run one task in the given modes; one result row per mode (mean and std across folds).

    ``estimator`` is the probe's head (default: standardised logistic regression). ``cache`` as in
    the estimators (``True``: in memory; a directory: on disk, kept across runs). The ``"fewshot"``
    mode gives one row per method and shot count (mean ± std over folds x ``draws`` draws of
    ``shots`` clips per class from each training fold; ``tuner_steps``: the prompt tuner's steps
    per fit).
    """
    task = get_task(task)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes must be among {MODES}; got {list(modes)}")
    data = task.load(data_dir) if data is None else data
    common = dict(
        model=resolve_model(model, device),
        batch_size=batch_size,
        device=device,
        precision=precision,
        cache=get_cache(cache),
        progress=progress,
    )
    rows = []
    for mode in modes:
        base = {
            "task": task.name,
            "title": task.title,
            "domain": task.domain,
            "metric": task.metric,
            "clips": len(data),
            "classes": len(data.classes),
        }
        if mode == "fewshot":
            rows += [{**base, **r} for r in _few_shot_rows(task, data, common, shots, draws, tuner_steps)]
            continue
        scores = _zero_shot_scores(task, data, common) if mode == "zeroshot" else _probe_scores(data, common, estimator)
        rows.append(
            {
                **base,
                "mode": mode,
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores)),
                "folds": len(scores),
                "fold_scores": [round(s, 6) for s in scores],
                "paper": task.paper_zero_shot if mode == "zeroshot" else None,
            }
        )
    return rows


def evaluate(
    tasks: Iterable[str | Task] | str,
    data_dir: str | Path,
    model: Any = "msclap-2022",
    modes: Sequence[str] = DEFAULT_MODES,
    out_dir: str | Path | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Run several tasks (``"all"`` for every registered one) and return one long table (a row
    per task and mode); with ``out_dir``, also write ``results.csv`` and ``results.md``.

    The retrieval tasks (``"audiocaps"``, ``"clotho"``: :data:`~skclap.evaluation.RETRIEVAL_TASKS`)
    run apart, through :func:`~skclap.evaluation.evaluate_retrieval` (``kwargs``: its ``protocol``,
    ``split``, ``cache``, ...): a row per task and direction."""
    names = list(TASKS) if tasks == "all" else [tasks] if isinstance(tasks, (str, Task)) else list(tasks)
    retrieval = [n for n in names if isinstance(n, str) and n.lower() in RETRIEVAL_TASKS]
    if retrieval:
        if len(retrieval) != len(names):
            raise ValueError(f"retrieval tasks ({', '.join(RETRIEVAL_TASKS)}) run apart from the classification tasks; got {names}")
        return _evaluate_retrieval_tasks(retrieval, data_dir, model, out_dir, **kwargs)
    rows = [row for name in names for row in evaluate_task(name, data_dir, model, modes, **kwargs)]
    table = pd.DataFrame(rows)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "results.csv", index=False)
        label = model if isinstance(model, (str, Path)) else type(model).__name__
        (out / "results.md").write_text(results_markdown(table, model_name=str(label)))
    return table


def _evaluate_retrieval_tasks(
    names: list[str], data_dir: str | Path, model: Any, out_dir: str | Path | None, **kwargs: Any
) -> pd.DataFrame:
    """Retrieval tasks through :func:`evaluate`: a row per task and direction; with ``out_dir``,
    ``results.csv`` and ``results.md`` (each task's table, as ``skclap evaluate`` prints it)."""
    results = [evaluate_retrieval(name, data_dir, model, **kwargs) for name in names]
    table = pd.concat(
        [
            r.table().reset_index().assign(task=r.task, protocol=r.protocol, clips=len(r.data), left_out=len(r.data.left_out))
            for r in results
        ],
        ignore_index=True,
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "results.csv", index=False)
        (out / "results.md").write_text("\n".join(r.markdown() for r in results))
    return table


def _cell(mean: float, std: float, folds: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if folds > 1 else f"{mean:.4f}"


def results_markdown(table: pd.DataFrame, model_name: str = "model") -> str:
    """The paper's layout: one column per task (with its domain and metric), one row per mode,
    and the paper's reported zero-shot figures beside them."""
    if table.empty:
        raise ValueError("no results to tabulate")
    few = table[table["mode"] == "fewshot"] if "mode" in table else table.iloc[:0]
    table = table[table["mode"] != "fewshot"]
    if table.empty:
        return _few_shot_markdown(few, model_name)
    order = [t for t in TASKS if t in set(table["task"])] + sorted(set(table["task"]) - set(TASKS))
    first = table.drop_duplicates("task").set_index("task")
    lines = ["| | " + " | ".join(first.loc[t, "title"] for t in order) + " |", "|---" * (len(order) + 1) + "|"]
    lines.append("| domain | " + " | ".join(first.loc[t, "domain"] for t in order) + " |")
    lines.append("| metric | " + " | ".join(first.loc[t, "metric"] for t in order) + " |")
    names = {"zeroshot": "zero-shot", "probe": "linear probe"}
    for mode in [m for m in MODES if m in set(table["mode"])]:
        sub = table[table["mode"] == mode].set_index("task")
        cells = [_cell(sub.loc[t, "mean"], sub.loc[t, "std"], sub.loc[t, "folds"]) if t in sub.index else "–" for t in order]
        lines.append(f"| {model_name} {names[mode]} | " + " | ".join(cells) + " |")
    paper = [TASKS[t].paper_zero_shot if t in TASKS else None for t in order]
    lines.append("| CLAP zero-shot, reported by the paper | " + " | ".join("–" if p is None else f"{p:.4f}" for p in paper) + " |")
    text = "\n".join(lines) + "\n\nMean ± standard deviation across the task's test folds.\n"
    return text + ("\n" + _few_shot_markdown(few, model_name) if not few.empty else "")


def _few_shot_markdown(few: pd.DataFrame, model_name: str) -> str:
    """One table per task: a row per shot count, a column per method (zero-shot: shots 0)."""
    out = []
    for _, sub in few.groupby("task", sort=False):
        methods = list(dict.fromkeys(m for m in sub["method"] if m != "zero-shot"))
        zs = sub[sub["method"] == "zero-shot"]
        head = f"{model_name}, {sub['title'].iloc[0]} ({sub['metric'].iloc[0]}, chance {1 / sub['classes'].iloc[0]:.1%})"
        if not zs.empty:
            head += f"; zero-shot {zs['mean'].iloc[0]:.4f} ± {zs['std'].iloc[0]:.4f}"
        lines = [head, "", "| shots per class | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for k in sorted(set(sub["shots"]) - {0}):
            row = sub[sub["shots"] == k].set_index("method")
            lines.append(
                f"| {k} | "
                + " | ".join(f"{row.loc[m, 'mean']:.4f} ± {row.loc[m, 'std']:.4f}" if m in row.index else "–" for m in methods)
                + " |"
            )
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n\nMean ± standard deviation over folds x draws of the shots.\n"
