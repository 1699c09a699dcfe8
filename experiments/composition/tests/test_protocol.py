"""The composition experiment: its held-out protocol, its zero-shot measures, and a smaller run that learns."""

import json

import numpy as np
import pytest

from experiments.composition import cli as experiment_cli
from experiments.composition import protocol as protocol_mod
from experiments.composition.descriptors import TOWER
from experiments.composition.protocol import (
    HELD_OUT,
    CompositionConfig,
    check_held_out,
    evaluate_zero_shot,
    model_config,
    objective,
    run_experiment,
    run_seeds,
    split_corpus,
    zero_shot_classifiers,
)
from experiments.composition.unsaid import CompletionObjective
from skclap.datasets.instruments import ATTRIBUTES, attribute_classes, make_instrument_corpus, value_words
from skclap.training import ContrastiveObjective

ATTRIBUTE_OF = {v: a for a, t in ATTRIBUTES.items() for v in t}


@pytest.fixture(scope="module")
def split():
    corpus = make_instrument_corpus(900, seed=0, seconds=0.25)
    return split_corpus(corpus, CompositionConfig(n_zero_shot=120, n_eval=120))


def _has(clip, instrument, value):
    return clip.family == instrument and clip.attributes.get(ATTRIBUTE_OF[value]) == value


def test_held_out_combinations_are_never_named_in_training(split):
    train, zs, evaluation = split
    check_held_out(train)
    assert len(zs) == 120 and all(any(_has(c, i, v) for i, v in HELD_OUT) for c in zs.clips)
    assert not any(_has(c, i, v) for c in evaluation.clips for i, v in HELD_OUT)
    for instrument, value in HELD_OUT:
        words = value_words(ATTRIBUTE_OF[value], value)
        heard = [c for c in train.clips if _has(c, instrument, value)]
        assert heard  # the sounds are in the training audio ...
        assert not any(set(cap.split()) & words for c in heard for cap in c.captions)  # ... never named
        # ... and the word is said with other instruments
        assert any(set(cap.split()) & words for c in train.clips if c.family != instrument for cap in c.captions)
    # several held-out combinations of one instrument: only the attribute words can separate them
    per_instrument = {}
    for instrument, value in HELD_OUT:
        per_instrument.setdefault(instrument, set()).add(ATTRIBUTE_OF[value])
    assert sum(len(a) == 2 for a in per_instrument.values()) >= 3
    with pytest.raises(AssertionError, match="named in training"):
        check_held_out(zs)  # the test clips keep their words


def _scores(clips, pick):
    """Cosine scores with a 1 at the column ``pick(clip, task)`` for each task."""
    out = {}
    for task in ATTRIBUTES:
        classes = attribute_classes(task)
        s = np.zeros((len(clips), len(classes)))
        for r, c in enumerate(clips):
            s[r, classes.index(pick(c, task))] = 1.0
        out[task] = s
    return out


def test_zero_shot_measures(split):
    _, zs, evaluation = split
    right = lambda c, task: c.attribute_label(task)  # noqa: E731
    m = evaluate_zero_shot(_scores(zs.clips, right), zs, evaluation, _scores(evaluation.clips, right), HELD_OUT)
    assert m["generalized"] == m["binding"] == m["unseen_only"] == 1.0
    n_pitch = sum(1 for c in zs.clips for i, v in HELD_OUT if ATTRIBUTE_OF[v] == "pitch" and _has(c, i, v))
    n_dyn = sum(1 for c in zs.clips for i, v in HELD_OUT if ATTRIBUTE_OF[v] == "dynamics" and _has(c, i, v))
    assert m["tasks"]["pitch"]["n"] == n_pitch and m["tasks"]["dynamics"]["n"] == n_dyn and m["n_items"] == n_pitch + n_dyn
    assert m["chance_generalized"] == pytest.approx((n_pitch / 30 + n_dyn / 34) / (n_pitch + n_dyn))

    # the right instrument with the other value of the attribute: binding fails, and so does the rest
    flip = {"low": "high", "high": "low", "soft": "loud", "loud": "soft"}
    other = lambda c, task: f"{flip[c.attributes[task]]} {c.family}" if task in c.attributes else c.family  # noqa: E731
    m = evaluate_zero_shot(_scores(zs.clips, other), zs, evaluation, _scores(evaluation.clips, right), HELD_OUT)
    assert m["generalized"] == m["binding"] == 0.0
    assert all(r["seen_binding"] == 1.0 for r in m["per_value"].values())
    assert m["per_value"]["high"]["held_out_binding"] == 0.0

    # the right value on another instrument: generalised and unseen fail, binding (own instrument) is chance-free
    def elsewhere(c, task):
        value = c.attributes.get(task)
        return f"{value} kick drum" if task == "dynamics" else (f"{value} synth" if value else "hi hat")

    m = evaluate_zero_shot(_scores(zs.clips, elsewhere), zs, evaluation, _scores(evaluation.clips, right), HELD_OUT)
    assert m["generalized"] == 0.0 and m["unseen_only"] < 1.0


def test_seeds_report_gives_mean_std_and_every_seed(tmp_path, monkeypatch):
    def fake(out, cfg, log):
        g = {0: 0.8, 1: 0.6, 2: 0.7}[cfg.seed]
        return {
            "generalized_zero_shot": g,
            "generalized_zero_shot_chance": 0.03,
            "generalized_zero_shot_class_prompts": g / 2,
            "generalized_zero_shot_relative": g / 4,
            "attribute_binding_class_prompts": 0.7,
            "attribute_binding_relative": 0.6,
            "unseen_classes_only_relative": 0.95,
            "attribute_binding": 0.9,
            "attribute_binding_chance": 0.5,
            "unseen_classes_only": 0.85,
            "unseen_classes_only_chance": 0.17,
            "linear_probe_accuracy_mean": 0.95,
            "linear_probe_chance": 1 / 17,
            "val_t2a_R@10": 0.4,
            "val_a2t_R@10": 0.5,
            "tasks": {"pitch": {"classes": 30}, "dynamics": {"classes": 34}},
        }

    monkeypatch.setattr(protocol_mod, "run_experiment", fake)
    summary = run_seeds(tmp_path, [0, 1, 2], CompositionConfig(), log=lambda *a: None)
    g = summary["generalized_zero_shot"]
    assert g["mean"] == pytest.approx(0.7) and g["std"] == pytest.approx(np.std([0.8, 0.6, 0.7])) and g["min"] == pytest.approx(0.6)
    report = (tmp_path / "report.md").read_text()
    assert "70.0% ± 8.2%" in report and "80.0% / 60.0% / 70.0%" in report and "3.0%" in report
    assert "35.0% ± 4.1%" in report and "class prompts" in report  # the other ways of prompting, beside
    assert "17.5% ± 2.0%" in report and "relative to the instrument" in report
    assert json.loads((tmp_path / "metrics.json").read_text())["seeds"] == [0, 1, 2]
    assert "level and register" in report  # the experiment measures them beside its CNN by default
    run_seeds(tmp_path, [0, 1, 2], CompositionConfig(descriptors=False), log=lambda *a: None)
    assert "no level and register descriptors" in (tmp_path / "report.md").read_text()


@pytest.mark.end_to_end
def test_a_small_run_learns_and_writes_its_report(tmp_path):
    cfg = CompositionConfig(preset="tiny", n_clips=1400, n_zero_shot=150, n_eval=150, steps=200, batch_size=32, seconds=1.0, progress=False)
    m = run_experiment(tmp_path, cfg, log=lambda *a: None)
    # Thresholds are multiples of chance with a margin: float rounding on another CPU moves a run by a few clips.
    assert m["generalized_zero_shot"] >= 3 * m["generalized_zero_shot_chance"]
    assert m["generalized_zero_shot_class_prompts"] >= 2 * m["generalized_zero_shot_chance"]
    assert m["attribute_binding"] >= 0.65  # chance 0.5: the held-out words are bound
    assert m["linear_probe_accuracy_mean"] >= 4 * m["linear_probe_chance"]
    assert m["val_t2a_R@10"] >= 3 * 10 / 150
    for name in ("report.md", "loss.png", "confusion.png", "embeddings.png", "metrics.json", "model/model.safetensors"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [tuple(h) for h in saved["held_out"]] == list(HELD_OUT)
    report = (tmp_path / "report.md").read_text()
    assert f"{m['generalized_zero_shot']:.1%}" in report and "| high | pitch |" in report
    assert (
        f"{m['generalized_zero_shot_class_prompts']:.1%}" in report
        and "| part prompts | relative to the instrument | class prompts |" in report
    )
    assert f"{m['unseen_classes_only_relative']:.1%}" in report and 0 <= m["attribute_binding_relative"] <= 1


def test_hard_negative_groups():
    from experiments.composition.protocol import _groups

    corpus = make_instrument_corpus(40, seed=0, seconds=0.25)
    assert _groups(corpus, "instrument") == corpus.labels
    by_attr = _groups(corpus, "attributes")
    for c, g in zip(corpus.clips, by_attr):  # pitch then dynamics; drums have no pitch
        assert g == f"{c.attributes.get('pitch', '-')} {c.attributes['dynamics']}"
    both = _groups(corpus, "both", seed=3)
    assert both == _groups(corpus, "both", seed=3) and 10 < sum(g.startswith("instrument ") for g in both) < 30
    assert {g.split(" ", 1)[1] for g in both} <= set(corpus.labels) | set(by_attr)
    with pytest.raises(ValueError, match="group_by"):
        _groups(corpus, "family")


def test_the_model_window_is_the_clip_length_and_the_tower_keeps_the_presets_cnn():
    """The model sees each clip once: its window is the clips' length (a longer one would tile them)."""
    from skclap.models import PRESETS

    config = model_config("small", seconds=0.5)
    assert config.frontend.clip_seconds == 0.5 and config.audio == {**PRESETS["small"].audio, "name": TOWER}
    plain = model_config("small", seconds=0.5, descriptors=False)
    assert plain.audio == PRESETS["small"].audio
    with pytest.raises(ValueError, match="beside a CNN14"):
        model_config("tiny-htsat")


def test_cli_seeds_are_parsed_and_checked(monkeypatch):
    cli = experiment_cli
    got = {}
    monkeypatch.setattr(experiment_cli, "run_seeds", lambda out, seeds, cfg: got.update(out=out, seeds=seeds, cfg=cfg))
    assert cli.main(["--seeds", "0,1,2", "--out", "rep", "--steps", "5", "--group-size", "0", "--no-progress"]) == 0
    assert got["seeds"] == [0, 1, 2] and got["out"] == "rep" and got["cfg"].steps == 5 and got["cfg"].group_size is None
    with pytest.raises(SystemExit, match="whole numbers"):
        cli.main(["--seeds", "zero"])
    # without options the command runs CompositionConfig's defaults (the configuration the docs report)
    assert cli.main(["--no-progress"]) == 0
    assert got["cfg"] == CompositionConfig(progress=False)
    assert cli.main(["--seconds", "2", "--no-progress"]) == 0 and got["cfg"].seconds == 2.0
    assert cli.main(["--unsaid-weight", "0.3", "--no-progress"]) == 0 and got["cfg"].unsaid_weight == 0.3
    assert got["cfg"].descriptors is True
    assert cli.main(["--no-descriptors", "--no-progress"]) == 0 and got["cfg"].descriptors is False
    with pytest.raises(SystemExit, match=r"must lie in \[0, 1\]"):
        cli.main(["--unsaid-weight", "2"])


def test_the_objective_treats_pitch_and_dynamics_as_attributes_captions_may_leave_unsaid():
    assert isinstance(objective(CompositionConfig(unsaid_weight=0.0)), ContrastiveObjective)  # the plain loss
    default = objective(CompositionConfig(seed=4))
    assert isinstance(default, CompletionObjective) and (default.weight, default.seed) == (0.5, 4)
    assert list(default.attributes.table) == ["pitch", "dynamics"]
    said = default.attributes.said(["a shrill flute", "a loud cello", "a deep quiet piano", "a flute playing a long note"]).tolist()
    assert said == [1, 2, 3, 0]
    with pytest.raises(ValueError, match="weight must lie in"):
        objective(CompositionConfig(unsaid_weight=2.0))


def test_zero_shot_measures_follow_the_given_held_out_set(split):
    """A protocol other than HELD_OUT: the unseen-classes-only candidates are its own classes."""
    _, zs, evaluation = split
    held = (("violin", "high"), ("harp", "soft"))
    clips = [c for c in zs.clips + evaluation.clips if any(_has(c, i, v) for i, v in held)]
    sub = type(zs)(clips, zs.sample_rate, zs.seconds)
    right = lambda c, task: c.attribute_label(task)  # noqa: E731
    m = evaluate_zero_shot(_scores(clips, right), sub, evaluation, _scores(evaluation.clips, right), held)
    assert m["n_items"] == len(clips) > 0
    assert m["unseen_only"] == m["generalized"] == 1.0
    assert m["chance_unseen_only"] == 1.0  # one held-out class per attribute


def test_relative_scoring_needs_parts():
    with pytest.raises(ValueError, match="needs parts=True"):
        zero_shot_classifiers(parts=False, relative=True)
