"""``skclap demo``: the user's workflow on the bundled model, its report, and its command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skclap import cli
from skclap.datasets import instruments as ins
from skclap.demo import run_demo


def test_the_demo_reports_every_figure_beside_its_chance(tmp_path):
    metrics = run_demo(tmp_path, per_class=8, seed=1, log=lambda *a: None)
    for key in ("zero_shot", "probe_mean", "few_shot_1", "few_shot_4", "search_precision_at_5", "pitch_words"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["clips"] == 8 * 17 and metrics["chance"] == pytest.approx(1 / 17)
    assert metrics["zero_shot"] >= 4 * metrics["chance"]  # names instruments from prompts alone
    conditions = {(r["condition"], r["value"]): r for r in metrics["conditions"]}
    assert conditions[("overall", "all")]["accuracy"] == metrics["zero_shot"]
    assert {v for c, v in conditions if c == "kind"} == {"note", "melody", "chord", "hit", "pattern"}  # what users play
    assert sum(conditions[("clip length", v)]["n"] for v in ("< 1 s", "1-3 s", "3-10 s")) == metrics["clips"]
    report = (tmp_path / "report.md").read_text()
    assert f"| **zero-shot**, the 17 instrument names as prompts | {metrics['zero_shot']:.1%} | 5.9% |" in report
    assert "not trained on" in report and "docs/bundled.md" in report and "## Zero-shot per condition" in report
    assert json.loads((tmp_path / "metrics.json").read_text())["few_shot_4"] == metrics["few_shot_4"]
    assert (tmp_path / "confusion.png").stat().st_size > 0 and (tmp_path / "map.png").stat().st_size > 0


def test_the_command_line(tmp_path, monkeypatch):
    got = {}
    monkeypatch.setattr("skclap.demo.run_demo", lambda out, per_class, seed: got.update(out=out, per_class=per_class, seed=seed))
    assert cli.main(["demo", "--out", str(tmp_path), "--per-class", "8", "--seed", "2"]) == 0
    assert got == {"out": str(tmp_path), "per_class": 8, "seed": 2}
    with pytest.raises(SystemExit, match="--per-class must be 8 or more"):
        cli.main(["demo", "--per-class", "7"])
    with pytest.raises(ValueError, match="per_class must be 8 or more"):
        run_demo(tmp_path, per_class=7)


@pytest.mark.parametrize(
    ("installed", "named"),
    [
        ((), "apt-get install musescore-general-soundfont-small"),  # neither: the first training soundfont is named
        (("MuseScore_General_Lite",), "apt-get install csound-soundfont"),
    ],
)
def test_train_without_the_debian_soundfonts_names_the_packages(tmp_path, monkeypatch, installed, named):
    """Every Debian soundfont is pointed at a path of this test's own, present (an empty file: the
    check stops before reading any) or absent, whatever this machine has installed."""
    for font, (install, where) in list(ins.SOUNDFONTS.items()):
        if where:
            path = tmp_path / "fonts" / Path(where).name
            if font in installed:
                path.parent.mkdir(exist_ok=True)
                path.touch()
            monkeypatch.setitem(ins.SOUNDFONTS, font, (install, str(path)))
    with pytest.raises(SystemExit, match=named):
        cli.main(["demo", "--train", "--out", str(tmp_path / "run"), "--no-progress"])
    assert not (tmp_path / "run").exists()  # nothing was trained
