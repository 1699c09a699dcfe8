"""The outside-soundfont check: its per-seed figures are the zero-shot classifier's own score on that
seed's user-played draw, and its mean is theirs."""

from __future__ import annotations

import re

import numpy as np
import pytest

from experiments.outside_soundfont import main
from skclap import CLAPZeroShotClassifier
from skclap.datasets.instruments import INSTRUMENTS, instrument_prompts, soundfont_path
from skclap.datasets.played import make_played_set

pytestmark = pytest.mark.end_to_end


def test_figures_are_the_classifiers_scores(capsys):
    font = str(soundfont_path("TimGM6mb"))  # any .sf2 file: the one every install has
    assert main(["--font", font, "--seeds", "0,1", "--clips", "34"]) == 0
    out = capsys.readouterr().out
    names = [i.name for i in INSTRUMENTS]
    clf = CLAPZeroShotClassifier(
        model="skclap-instruments", labels=names, templates="{}", label_prompts={n: instrument_prompts(n) for n in names}, progress=False
    ).fit()
    scores = []
    for seed in (0, 1):
        played = make_played_set(34, seed=seed, soundfont=font)
        scores.append(clf.score(played.items(), played.labels))
        printed = re.search(rf"^seed {seed} \(skclap-instruments\): ([\d.]+)%", out, re.M)
        assert printed and float(printed.group(1)) == pytest.approx(100 * scores[-1], abs=0.05)
    overall = re.search(r"^\| overall \| all \| 34 \| ([\d.]+)% ± ([\d.]+)% \|", out, re.M)
    assert overall and float(overall.group(1)) == pytest.approx(100 * np.mean(scores), abs=0.05)
    assert float(overall.group(2)) == pytest.approx(100 * np.std(scores, ddof=1), abs=0.05)


def test_a_missing_soundfont_is_named_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["--font", str(tmp_path / "none.sf2")])
    assert refused.value.code == 2 and "none.sf2" in capsys.readouterr().err


def test_one_model_or_one_a_seed():
    with pytest.raises(SystemExit) as refused:
        main(["--models", "skclap-instruments,skclap-instruments", "--seeds", "0,1,2"])
    assert refused.value.code == 2  # argparse's usage error, before any model is loaded
