"""The composition experiment: train a small CLAP on real sampled instruments and measure zero-shot
transfer to instrument x attribute combinations its captions never name.

1. Render a captioned corpus of 17 real sampled instruments (General MIDI soundfont) with pitch
   register, dynamics and articulation, captions such as "a soft low cello".
2. Hold out twelve instrument x attribute combinations ("high flute", "soft flute", "low cello", ...)
   from the training *captions*: their clips are heard in training, described without that word, so
   the words of these classes never appear together. Each word is learnt on other instruments.
3. Train a CLAP (``small`` preset, one window per clip; by default with the ``cnn14-descriptors``
   tower and the completion objective of this experiment).
4. Report, each with its chance level and for three ways of prompting a class (its attribute and its
   instrument prompted apart, their zero-shot probabilities multiplied, with
   :class:`skclap.CLAPCompositionalClassifier`: the headline; the same with the attribute judged
   against the instrument's own prompt, :mod:`.relative`; the whole class said at once):
   **generalised zero-shot** (new clips of the held-out
   combinations among *all* classes of their attribute task: the headline), attribute binding (the
   same clips between their own instrument's two classes: only the attribute word separates them),
   the usual unseen-classes-only figure, a per-attribute table, a linear probe and caption retrieval,
   with plots: loss curve, confusion matrix over all classes, a 2-D map of audio and prompt embeddings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from skclap.datasets.instruments import (
    ATTRIBUTES,
    InstrumentCorpus,
    attribute_classes,
    class_parts,
    instrument_prompts,
    make_instrument_corpus,
    value_prompts,
    value_words,
)
from skclap.models import PRESETS, CLAPConfig
from skclap.training import ContrastiveObjective, Objective, TrainConfig

from .descriptors import TOWER
from .relative import RelativeCompositionalClassifier
from .unsaid import CompletionObjective

__all__ = [
    "HELD_OUT",
    "CompositionConfig",
    "evaluate_zero_shot",
    "run_experiment",
    "run_seeds",
    "split_corpus",
    "train_config",
    "zero_shot_classifiers",
]

#: Instrument x attribute-value combinations that the training captions never name. Three
#: instruments lose two combinations each (one of pitch, one of dynamics); every word is still said
#: with the other instruments, and every instrument with its other values.
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("flute", "high"),
    ("flute", "soft"),
    ("cello", "low"),
    ("cello", "loud"),
    ("trumpet", "high"),
    ("trumpet", "soft"),
    ("piano", "low"),
    ("organ", "high"),
    ("clarinet", "low"),
    ("guitar", "loud"),
    ("marimba", "soft"),
    ("snare drum", "soft"),
)

_ATTRIBUTE_OF = {value: attribute for attribute, table in ATTRIBUTES.items() for value in table}
TASKS = tuple(ATTRIBUTES)  # "pitch", "dynamics"


def held_out_labels(task: str, held_out: Sequence[tuple[str, str]] = HELD_OUT) -> list[str]:
    """The classes of ``task`` that ``held_out`` keeps out of the training captions."""
    return [f"{v} {i}" for i, v in held_out if _ATTRIBUTE_OF[v] == task]


@dataclass
class CompositionConfig:
    preset: str = "small"
    n_clips: int = 3000  # rendered; the zero-shot and evaluation clips are split off
    n_zero_shot: int = 300  # new clips of held-out combinations, classified zero-shot
    n_eval: int = 300  # clips of seen combinations for the probe, retrieval and seen-word accuracy
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    seconds: float = 1.0
    group_size: int | None = 4  # hard negatives: runs of this many clips of one group in each batch
    group_by: str = "both"  # the groups: "instrument", "attributes" (same pitch and dynamics) or "both"
    keep: float = 0.7  # probability that a caption says a given attribute (the same for every instrument)
    # a caption that leaves pitch or dynamics unsaid is scored by its best completion with each value
    # (unsaid.CompletionObjective); the weight is that loss's share, 0 the plain contrastive loss
    unsaid_weight: float = 0.5
    # the cnn14-descriptors tower (level and register measured beside the CNN14) instead of the plain CNN14
    descriptors: bool = True
    seed: int = 0
    probe_folds: int = 5
    progress: bool = True
    cache_dir: str | None = None  # rendered waveforms kept here (default: not kept)
    held_out: tuple[tuple[str, str], ...] = field(default=HELD_OUT)


def _groups(corpus: InstrumentCorpus, by: str, seed: int = 0) -> list[str]:
    """Each clip's hard-negative group: its instrument, its attribute values (whatever the caption
    says), or "both": one or the other, by a fixed coin per clip."""
    instrument = corpus.labels
    attributes = [" ".join(c.attributes.get(a, "-") for a in ATTRIBUTES) for c in corpus.clips]
    if by == "instrument":
        return instrument
    if by == "attributes":
        return attributes
    if by == "both":
        coin = np.random.default_rng(seed).random(len(corpus)) < 0.5
        return [f"instrument {i}" if c else f"attributes {a}" for c, i, a in zip(coin, instrument, attributes)]
    raise ValueError(f"group_by must be 'instrument', 'attributes' or 'both'; got {by!r}")


def _is_held(clip, held: set[tuple[str, str]]) -> bool:
    return any((clip.family, v) in held for v in clip.attributes.values())


def split_corpus(corpus: InstrumentCorpus, cfg: CompositionConfig) -> tuple[InstrumentCorpus, InstrumentCorpus, InstrumentCorpus]:
    """Zero-shot test clips (a held-out combination), evaluation clips (none), and the training rest,
    whose clips of held-out combinations are described without the held-out words."""
    held = set(cfg.held_out)
    touched = [i for i, c in enumerate(corpus.clips) if _is_held(c, held)]
    clean = [i for i, c in enumerate(corpus.clips) if not _is_held(c, held)]
    zs, evaluation = touched[: cfg.n_zero_shot], clean[: cfg.n_eval]
    train = sorted(set(range(len(corpus))) - set(zs) - set(evaluation))
    train_corpus = corpus.subset(train).without_words(cfg.held_out, seed=cfg.seed, keep=cfg.keep)
    return train_corpus, corpus.subset(zs), corpus.subset(evaluation)


def check_held_out(train: InstrumentCorpus, held_out: Sequence[tuple[str, str]] = HELD_OUT) -> None:
    """No training caption of a clip says a held-out combination's attribute word."""
    for c in train.clips:
        for instrument, value in held_out:
            if c.family == instrument and c.attributes.get(_ATTRIBUTE_OF[value]) == value:
                if any(set(cap.split()) & value_words(_ATTRIBUTE_OF[value], value) for cap in c.captions):
                    raise AssertionError(f"held-out combination {value} {instrument} is named in training: {c.captions}")


def _task_items(clips, task: str, held: set[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the clips whose ``task`` value is held out for their instrument, and their labels."""
    idx, labels = [], []
    for i, c in enumerate(clips):
        value = c.attributes.get(task)
        if value is not None and (c.family, value) in held:
            idx.append(i)
            labels.append(c.attribute_label(task))
    return np.asarray(idx, dtype=int), np.asarray(labels)


def in_task_order(clf: Any, task: str, scores: np.ndarray) -> np.ndarray:
    """A classifier's scores (columns in its sorted ``classes_``) with the columns in
    :func:`attribute_classes` order, the order :func:`evaluate_zero_shot` reads."""
    column = {c: k for k, c in enumerate(clf.classes_.tolist())}
    return scores[:, [column[c] for c in attribute_classes(task)]]


def evaluate_zero_shot(scores: dict[str, np.ndarray], zs, evaluation, eval_scores: dict[str, np.ndarray], held_out) -> dict[str, Any]:
    """Zero-shot figures from cosine scores (clips x classes of each task, columns in
    :func:`attribute_classes` order) of the zero-shot clips and of the evaluation clips."""
    held = set(held_out)
    out: dict[str, Any] = {"tasks": {}, "per_value": {}}
    pooled: dict[str, list[bool]] = {"generalized": [], "binding": [], "unseen_only": []}
    for task in TASKS:
        classes = np.asarray(attribute_classes(task))
        column = {c: k for k, c in enumerate(classes.tolist())}
        idx, truth = _task_items(zs.clips, task, held)
        s = scores[task][idx]
        general = classes[s.argmax(axis=1)] == truth
        unseen_cols = [column[c] for c in held_out_labels(task, held_out)]
        unseen = classes[np.asarray(unseen_cols)[s[:, unseen_cols].argmax(axis=1)]] == truth
        binding = _binding(s, [zs.clips[i] for i in idx], task, column, classes) == truth
        out["tasks"][task] = {
            "n": len(idx),
            "classes": len(classes),
            "generalized": float(general.mean()),
            "binding": float(binding.mean()),
            "unseen_only": float(unseen.mean()),
            "unseen_classes": len(unseen_cols),
            "true": truth.tolist(),
            "pred": classes[s.argmax(axis=1)].tolist(),
        }
        pooled["generalized"] += general.tolist()
        pooled["binding"] += binding.tolist()
        pooled["unseen_only"] += unseen.tolist()
        # the same two-way decision on clips of seen combinations, per attribute value
        e_idx = [i for i, c in enumerate(evaluation.clips) if task in c.attributes]
        e_clips = [evaluation.clips[i] for i in e_idx]
        e_truth = np.asarray([c.attribute_label(task) for c in e_clips])
        e_bind = _binding(eval_scores[task][e_idx], e_clips, task, column, classes) == e_truth
        for value in ATTRIBUTES[task]:
            held_rows = np.asarray([lab.split(" ", 1)[0] == value for lab in truth], dtype=bool)
            seen_rows = np.asarray([c.attributes[task] == value for c in e_clips], dtype=bool)
            out["per_value"][value] = {
                "attribute": task,
                "held_out_n": int(held_rows.sum()),
                "held_out_binding": float(binding[held_rows].mean()) if held_rows.any() else float("nan"),
                "seen_n": int(seen_rows.sum()),
                "seen_binding": float(e_bind[seen_rows].mean()) if seen_rows.any() else float("nan"),
            }
    for name, values in pooled.items():
        out[name] = float(np.mean(values))
    out["n_items"] = len(pooled["generalized"])
    out["chance_generalized"] = float(np.mean([1 / out["tasks"][t]["classes"] for t in TASKS for _ in range(out["tasks"][t]["n"])]))
    out["chance_unseen_only"] = float(np.mean([1 / out["tasks"][t]["unseen_classes"] for t in TASKS for _ in range(out["tasks"][t]["n"])]))
    return out


def _binding(s: np.ndarray, clips, task: str, column: dict[str, int], classes: np.ndarray) -> np.ndarray:
    """For each clip, the better of its own instrument's classes in ``task`` ("low cello" vs "high cello")."""
    out = []
    for row, c in zip(s, clips):
        cols = [column[f"{v} {c.family}"] for v in ATTRIBUTES[task]]
        out.append(classes[cols[int(np.argmax(row[cols]))]])
    return np.asarray(out)


def zero_shot_classifiers(parts: bool = False, relative: bool = False, **params: Any) -> dict[str, Any]:
    """One fitted zero-shot classifier per attribute task, over all of its classes.

    Class prompts (``parts=False``): each class said whole ("a low cello") with every caption
    template and synonym (:func:`instrument_prompts`), by :class:`~skclap.CLAPZeroShotClassifier`.
    Part prompts (``parts=True``): the attribute value ("a low note", :func:`value_prompts`) and the
    instrument ("a cello") prompted apart, a class scoring the product of the two zero-shot
    probabilities, by :class:`~skclap.CLAPCompositionalClassifier`; with ``relative``, the value is
    judged against the class's instrument prompt (:class:`.relative.RelativeCompositionalClassifier`)."""
    from skclap import CLAPCompositionalClassifier, CLAPZeroShotClassifier

    if relative and not parts:
        raise ValueError("relative judges a class's attribute against its instrument: it needs parts=True")
    out = {}
    for task in TASKS:
        labels = attribute_classes(task)
        if not parts:
            prompts = {c: instrument_prompts(c) for c in labels}
            out[task] = CLAPZeroShotClassifier(labels=labels, templates="{}", label_prompts=prompts, **params).fit()
            continue
        split = {c: class_parts(c) for c in labels}
        prompts = {v: value_prompts(v) for v in ATTRIBUTES[task]} | {i: instrument_prompts(i) for _, i in split.values()}
        common = dict(labels=labels, templates="{}", label_prompts=prompts, label_parts=split, **params)
        out[task] = (RelativeCompositionalClassifier(relative_to=1, **common) if relative else CLAPCompositionalClassifier(**common)).fit()
    return out


def model_config(preset: str = "small", seconds: float = 1.0, descriptors: bool = True) -> CLAPConfig:
    """The experiment's architecture: ``preset`` with one window per clip, and its CNN14 options
    kept under the ``cnn14-descriptors`` tower when ``descriptors``."""
    config = PRESETS[preset].replace(frontend={"clip_seconds": seconds})
    if descriptors:
        if config.audio["name"] != "cnn14":
            raise ValueError(f"the descriptors sit beside a CNN14; the {preset!r} preset's tower is {config.audio['name']!r}")
        config = config.replace(audio={**config.audio, "name": TOWER})
    return config


def objective(cfg: CompositionConfig) -> Objective:
    """The training objective: captions that leave pitch or dynamics unsaid scored by their best
    completion (``unsaid_weight`` its share), or the plain contrastive loss with weight 0."""
    if not 0.0 <= cfg.unsaid_weight <= 1.0:
        raise ValueError(f"the unsaid weight must lie in [0, 1]; got {cfg.unsaid_weight}")
    return CompletionObjective(ATTRIBUTES, cfg.unsaid_weight, seed=cfg.seed) if cfg.unsaid_weight else ContrastiveObjective()


def train_config(cfg: CompositionConfig) -> TrainConfig:
    """The experiment's :class:`~skclap.training.TrainConfig`."""
    return TrainConfig(
        batch_size=cfg.batch_size,
        max_steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=50,
        group_size=cfg.group_size,
        seed=cfg.seed,
        log_every=10,
        progress=cfg.progress,
    )


def run_experiment(out_dir: str | Path = "composition-report", config: CompositionConfig | None = None, log=print) -> dict[str, Any]:
    """Run the whole experiment for one seed; returns the metrics and writes ``out_dir/report.md`` with plots."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from skclap import CLAPEmbedder, CLAPLinearProbe, CLAPModel
    from skclap.training import Trainer

    cfg = config or CompositionConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rate = PRESETS[cfg.preset].sample_rate

    log(f"[1/4] rendering {cfg.n_clips} captioned clips of real sampled instruments ({cfg.seconds:g} s, {rate} Hz)")
    corpus = make_instrument_corpus(
        cfg.n_clips, seed=cfg.seed, sample_rate=rate, seconds=cfg.seconds, keep=cfg.keep, cache_dir=cfg.cache_dir
    )
    train, zs, evaluation = split_corpus(corpus, cfg)
    check_held_out(train, cfg.held_out)
    train_waves = train.waveforms()
    log(
        f"      train {len(train)} clips, zero-shot test {len(zs)} clips of {len(cfg.held_out)} held-out combinations, "
        f"evaluation {len(evaluation)}"
    )

    log(f"[2/4] training a '{cfg.preset}' CLAP for {cfg.steps} steps of {cfg.batch_size} pairs")
    architecture = model_config(cfg.preset, cfg.seconds, cfg.descriptors)
    model = CLAPModel.from_config(architecture, seed=cfg.seed)
    trainer = Trainer(model, train_config(cfg), out / "model", objective=objective(cfg))
    t_train = time.perf_counter()
    trainer.fit((train_waves, train.captions), item_rate=rate, groups=_groups(train, cfg.group_by, cfg.seed))
    train_seconds = time.perf_counter() - t_train
    model.eval()

    log("[3/4] evaluating")
    common: dict[str, Any] = dict(model=model, sample_rate=rate, progress=cfg.progress, device=str(model.device))
    zs_waves, eval_waves = zs.waveforms(), evaluation.waveforms()
    results, classifiers = {}, {}
    for suffix, (kind, _) in SCORERS.items():  # part prompts (the headline), relative to the instrument, class prompts
        classifiers[suffix] = zero_shot_classifiers(**kind, **common)
        scores = {t: in_task_order(clf, t, clf.decision_function(zs_waves)) for t, clf in classifiers[suffix].items()}
        eval_scores = {t: in_task_order(clf, t, clf.decision_function(eval_waves)) for t, clf in classifiers[suffix].items()}
        results[suffix] = evaluate_zero_shot(scores, zs, evaluation, eval_scores, cfg.held_out)
    zero_shot = results[""]

    instruments = np.array(evaluation.labels)
    probe_scores = cross_val_score(
        CLAPLinearProbe(**common), eval_waves, instruments, cv=StratifiedKFold(cfg.probe_folds, shuffle=True, random_state=cfg.seed)
    )
    retrieval = trainer.evaluate(eval_waves, evaluation.captions, item_rate=rate)
    metrics: dict[str, Any] = {
        "generalized_zero_shot": zero_shot["generalized"],
        "generalized_zero_shot_chance": zero_shot["chance_generalized"],
        "attribute_binding": zero_shot["binding"],
        "attribute_binding_chance": 0.5,
        "unseen_classes_only": zero_shot["unseen_only"],
        "unseen_classes_only_chance": zero_shot["chance_unseen_only"],
        **{
            f"{measure}{suffix}": results[suffix][key]
            for suffix in SCORERS
            if suffix
            for measure, key in (
                ("generalized_zero_shot", "generalized"),
                ("attribute_binding", "binding"),
                ("unseen_classes_only", "unseen_only"),
            )
        },
        "zero_shot_items": zero_shot["n_items"],
        "tasks": {t: {k: v for k, v in r.items() if k not in ("true", "pred")} for t, r in zero_shot["tasks"].items()},
        "per_value": zero_shot["per_value"],
        "per_value_relative": results["_relative"]["per_value"],
        "linear_probe_accuracy_mean": float(probe_scores.mean()),
        "linear_probe_accuracy_std": float(probe_scores.std()),
        "linear_probe_chance": 1 / len(set(instruments)),
        **{k: float(v) for k, v in retrieval.items()},
        "train_seconds": train_seconds,
        "train_pairs_per_second": cfg.steps * cfg.batch_size / train_seconds,
    }

    log("[4/4] writing the report")
    pitch = zero_shot["tasks"]["pitch"]
    audio_emb = CLAPEmbedder(**common).fit_transform([zs_waves[i] for i in _task_items(zs.clips, "pitch", set(cfg.held_out))[0]])
    _plots(
        out,
        trainer.history,
        cfg.batch_size,
        np.asarray(pitch["true"]),
        np.asarray(pitch["pred"]),
        audio_emb,
        classifiers["_class_prompts"]["pitch"],
    )
    metrics["total_seconds"] = time.perf_counter() - t_start
    (out / "metrics.json").write_text(json.dumps({"config": asdict(cfg), "held_out": [list(h) for h in cfg.held_out], **metrics}, indent=2))
    (out / "report.md").write_text(_report(cfg, metrics))
    log(
        f"generalized zero-shot on held-out combinations: {metrics['generalized_zero_shot']:.1%} with part prompts, "
        f"{metrics['generalized_zero_shot_relative']:.1%} judged relative to the instrument, "
        f"{metrics['generalized_zero_shot_class_prompts']:.1%} with class prompts "
        f"(chance {metrics['generalized_zero_shot_chance']:.1%}); attribute binding {metrics['attribute_binding']:.1%} (chance 50%); "
        f"linear probe {probe_scores.mean():.1%}; text->audio R@10 {retrieval['val_t2a_R@10']:.1%}. "
        f"Report: {out / 'report.md'} ({metrics['total_seconds']:.0f} s)"
    )
    return metrics


def run_seeds(out_dir: str | Path, seeds: Sequence[int], config: CompositionConfig | None = None, log=print) -> dict[str, Any]:
    """The experiment once per seed (corpus, split and initialisation all follow the seed), each in
    ``out_dir/seed-K``; ``out_dir/report.md`` gives mean ± std over the seeds and every seed's value."""
    cfg = config or CompositionConfig()
    if len(seeds) == 1:
        return run_experiment(out_dir, replace(cfg, seed=seeds[0]), log)
    out = Path(out_dir)
    runs = {}
    for seed in seeds:
        log(f"=== seed {seed} ===")
        runs[seed] = run_experiment(out / f"seed-{seed}", replace(cfg, seed=seed), log)
    summary = {key: _over_seeds([runs[s][key] for s in seeds]) for key in _SUMMARY}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(
        json.dumps({"seeds": list(seeds), "summary": summary, "runs": {str(s): runs[s] for s in seeds}}, indent=2)
    )
    (out / "report.md").write_text(_seeds_report(cfg, seeds, runs, summary))
    g = summary["generalized_zero_shot"]
    log(
        f"generalized zero-shot over seeds {list(seeds)}: {g['mean']:.1%} ± {g['std']:.1%} (min {g['min']:.1%}); "
        f"Report: {out / 'report.md'}"
    )
    return summary


_SUMMARY = {
    "generalized_zero_shot": "generalized_zero_shot_chance",
    "generalized_zero_shot_relative": "generalized_zero_shot_chance",
    "generalized_zero_shot_class_prompts": "generalized_zero_shot_chance",
    "attribute_binding": "attribute_binding_chance",
    "attribute_binding_relative": "attribute_binding_chance",
    "attribute_binding_class_prompts": "attribute_binding_chance",
    "unseen_classes_only": "unseen_classes_only_chance",
    "unseen_classes_only_relative": "unseen_classes_only_chance",
    "linear_probe_accuracy_mean": "linear_probe_chance",
    "val_t2a_R@10": None,
    "val_a2t_R@10": None,
}


def _over_seeds(values: list[float]) -> dict[str, Any]:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "values": v.tolist()}


#: How the zero-shot classifiers prompt a class ("high flute"), by the suffix of their metrics: the
#: arguments of :func:`zero_shot_classifiers` and the report's description.
SCORERS: dict[str, tuple[dict[str, bool], str]] = {
    "": (
        {"parts": True},
        "part prompts: the attribute (*a high note*) and the instrument (*a flute*) prompted apart, a class scored by the "
        "product of their two zero-shot probabilities",
    ),
    "_relative": (
        {"parts": True, "relative": True},
        "relative to the instrument: part prompts, the attribute judged against the instrument's own prompt "
        "(how much higher than *a flute* the clip sounds: `RelativeCompositionalClassifier`)",
    ),
    "_class_prompts": (
        {"parts": False},
        "class prompts: the whole class said at once (*a high flute*, *the sound of a shrill flute*, ...)",
    ),
}


def _protocol_rows(cfg: CompositionConfig, m: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, protocol, chance) for the zero-shot rows."""
    t = m["tasks"]
    return [
        (
            "generalized_zero_shot",
            f"**generalized zero-shot** (headline): new clips of the {len(cfg.held_out)} held-out combinations among *all* classes of "
            f"their attribute ({t['pitch']['classes']} instrument x pitch classes, {t['dynamics']['classes']} instrument x dynamics classes)",
            f"{m['generalized_zero_shot_chance']:.1%}",
        ),
        (
            "attribute_binding",
            "attribute binding: the same clips between their own instrument's two classes (*high flute* vs *low flute*): "
            "only the held-out word separates them",
            "50%",
        ),
        (
            "unseen_classes_only",
            "unseen classes only (the usual zero-shot setting): the same clips among the held-out classes of their attribute",
            f"{m['unseen_classes_only_chance']:.1%}",
        ),
    ]


def _unsaid_clause(cfg: CompositionConfig) -> str:
    """'' for the plain loss, else how captions that leave an attribute unsaid were trained."""
    if not cfg.unsaid_weight:
        return ""
    return (
        "; a caption that leaves pitch or dynamics unsaid is scored by its best completion with each value "
        f"(`CompletionObjective`, weight {cfg.unsaid_weight:g})"
    )


def _descriptors_clause(cfg: CompositionConfig) -> str:
    """Whether the audio tower measured level and register beside its CNN."""
    if cfg.descriptors:
        return "; the audio tower measures each clip's level and register beside its CNN (`cnn14-descriptors`)"
    return "; no level and register descriptors beside the CNN"


def _report(cfg: CompositionConfig, m: dict[str, Any]) -> str:
    held = ", ".join(f"*{v} {i}*" for i, v in cfg.held_out)
    lines = [
        "# Composition experiment report",
        "",
        f"A `{cfg.preset}` CLAP trained from scratch for {cfg.steps} steps of {cfg.batch_size} pairs on "
        f"{cfg.n_clips} captioned clips of 17 real sampled instruments (General MIDI soundfont: piano, organ, guitar, harp, "
        f"violin, cello, trumpet, trombone, saxophone, clarinet, flute, marimba, synth and four drum-kit pieces), "
        f"seed {cfg.seed}, in {m['train_seconds']:.0f} s on this machine ({m['train_pairs_per_second']:.0f} pairs/s)"
        + _unsaid_clause(cfg)
        + _descriptors_clause(cfg)
        + ".",
        "",
        f"Held out from the training captions: {held}. Their sounds are in the training audio, described without the "
        "held-out word; each word is learnt on other instruments. Zero-shot classification of new clips uses prompts only, "
        f"in {len(SCORERS)} ways: " + "; ".join(f"**{text.split(':')[0]}**:{text.split(':', 1)[1]}" for _, text in SCORERS.values()) + ".",
        "",
        "| measure | protocol | part prompts | relative to the instrument | class prompts | chance |",
        "|---|---|---|---|---|---|",
    ]
    for key, protocol, chance in _protocol_rows(cfg, m):
        cells = " | ".join(f"{m[key + suffix]:.1%}" for suffix in SCORERS)
        lines.append(f"| {key.replace('_', ' ')} | {protocol} | {cells} | {chance} |")
    lines += [
        f"| linear probe | logistic regression on frozen audio embeddings, 17 instruments, {cfg.probe_folds}-fold CV over "
        f"{cfg.n_eval} clips of seen combinations | {m['linear_probe_accuracy_mean']:.1%} ± {m['linear_probe_accuracy_std']:.1%} "
        f"| | | {m['linear_probe_chance']:.1%} |",
        f"| text→audio R@1 / R@10 | each caption of {cfg.n_eval} unseen clips retrieves its clip | "
        f"{m['val_t2a_R@1']:.1%} / {m['val_t2a_R@10']:.1%} | | | {1 / cfg.n_eval:.1%} / {10 / cfg.n_eval:.1%} |",
        f"| audio→text R@1 / R@10 | each clip retrieves one of its captions | {m['val_a2t_R@1']:.1%} / {m['val_a2t_R@10']:.1%} | | | |",
        "",
        "Retrieval captions are often near-duplicates (same instrument and attributes), which bounds R@1.",
        "",
        "## Which words the model binds",
        "",
        "Two-way decision between an instrument's two classes of one attribute (chance 50%; part prompts, and relative to "
        "the instrument): on held-out combinations (the word never said with that instrument) and on seen combinations "
        "(clips not trained on).",
        "",
        "| word | attribute | held-out combinations | relative | clips | seen combinations | relative | clips |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for value, r in m["per_value"].items():
        q = m["per_value_relative"][value]
        lines.append(
            f"| {value} | {r['attribute']} | {r['held_out_binding']:.1%} | {q['held_out_binding']:.1%} | {r['held_out_n']} "
            f"| {r['seen_binding']:.1%} | {q['seen_binding']:.1%} | {r['seen_n']} |"
        )
    lines += [
        "",
        "Instruments never named in training cannot be recognised zero-shot by this model: its text tower is trained from "
        "scratch on these captions, so a word it never read (say *banjo*) has an untrained embedding. The zero-shot claim "
        "measured here is composition — known words in combinations never said — which is what a from-scratch model can learn.",
        "",
        "![training loss](loss.png)",
        "",
        "![zero-shot confusion matrix](confusion.png)",
        "",
        "![embedding map](embeddings.png)",
        "",
        f"Total time {m['total_seconds']:.0f} s. The trained model is in `model/` "
        "(`CLAPModel.from_pretrained`, or `model=` of any skclap estimator).",
    ]
    return "\n".join(lines) + "\n"


def _seeds_report(cfg: CompositionConfig, seeds: Sequence[int], runs: dict[int, dict[str, Any]], summary: dict[str, Any]) -> str:
    first = runs[seeds[0]]
    protocols = {key: (protocol, chance) for key, protocol, chance in _protocol_rows(cfg, first)}
    for key, (protocol, chance) in list(protocols.items()):
        for suffix, (_, text) in SCORERS.items():  # ", part prompts" (the headline), ", relative to the instrument", ...
            said = protocol if not suffix else protocol.replace(" (headline)", "")
            protocols[key + suffix] = (f"{said}, {text.split(':')[0]}", chance)
    protocols["linear_probe_accuracy_mean"] = ("linear probe, 17 instruments, 5-fold CV", f"{first['linear_probe_chance']:.1%}")
    protocols["val_t2a_R@10"] = (f"text→audio R@10 over {cfg.n_eval} unseen clips", f"{10 / cfg.n_eval:.1%}")
    protocols["val_a2t_R@10"] = (f"audio→text R@10 over {cfg.n_eval} unseen clips", "")
    lines = [
        "# Composition experiment report, over seeds",
        "",
        f"The experiment (`{cfg.preset}` preset, {cfg.steps} steps of {cfg.batch_size} pairs{_unsaid_clause(cfg)}{_descriptors_clause(cfg)}) "
        f"run once per seed {list(seeds)}: "
        "the corpus, the split and the initialisation follow the seed. Each run's report is in `seed-K/`. "
        + " ".join(f"{text[0].upper()}{text[1:]}." for _, text in SCORERS.values()),
        "",
        "| measure | protocol | mean ± std | min | per seed | chance |",
        "|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        protocol, chance = protocols[key]
        per_seed = " / ".join(f"{v:.1%}" for v in s["values"])
        lines.append(
            f"| {key.replace('_', ' ')} | {protocol} | {s['mean']:.1%} ± {s['std']:.1%} | {s['min']:.1%} | {per_seed} | {chance} |"
        )
    return "\n".join(lines) + "\n"


def _plots(out: Path, history, batch_size: int, y_true, y_pred, audio_emb, clf) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.metrics import confusion_matrix

    steps = [r["step"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [r["loss"] for r in history], lw=1)
    ax.axhline(np.log(batch_size), color="grey", ls="--", lw=0.8, label="chance (log batch)")
    ax.set(xlabel="step", ylabel="contrastive loss", title="Training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=120)
    plt.close(fig)

    labels = list(clf.classes_)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    rows = [k for k, c in enumerate(labels) if cm[k].sum()]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.imshow(cm[rows], cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), [labels[k] for k in rows], fontsize=7)
    for i, k in enumerate(rows):
        for j in range(len(labels)):
            if cm[k, j]:
                ax.text(j, i, cm[k, j], ha="center", va="center", fontsize=6, color="white" if cm[k, j] > cm.max() / 2 else "black")
    ax.set(xlabel="predicted among all instrument x pitch classes", ylabel="true (held out)", title="Generalized zero-shot, pitch")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=120)
    plt.close(fig)

    # Contrastive models keep audio and text in two offset cones (the "modality gap"); shift the
    # prompts onto the audio centroid so that the map shows which class each cluster is near.
    prompts = clf.class_embeddings_ - clf.class_embeddings_.mean(0) + audio_emb.mean(0)
    pca = PCA(2, random_state=0).fit(audio_emb)
    xy = pca.transform(np.vstack([audio_emb, prompts]))
    n = len(audio_emb)
    names = sorted(set(y_true))
    colours = {c: plt.cm.tab10(i % 10) for i, c in enumerate(names)}
    fig, ax = plt.subplots(figsize=(7, 6))
    for c in names:
        idx = np.flatnonzero(y_true == c)
        ax.scatter(xy[idx, 0], xy[idx, 1], s=8, color=colours[c], alpha=0.6, label=c)
    for k, c in enumerate(labels):
        x, y = xy[n + k]
        held = c in colours
        ax.scatter([x], [y], marker="*", s=140 if held else 40, color=colours.get(c, "lightgrey"), edgecolor="black", lw=0.5)
        if held:
            ax.annotate(c, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(title="Held-out pitch clips (dots) and class prompts (stars), PCA; modality gap removed", xticks=[], yticks=[])
    ax.legend(fontsize=6, markerscale=2, loc="best")
    fig.tight_layout()
    fig.savefig(out / "embeddings.png", dpi=120)
    plt.close(fig)
