"""The instrument recipe: which test-soundfont samples the training soundfonts share, and one small
seed end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from recipes.instruments.recipe import ROWS, RecipeConfig, report, run_seed, shared_instruments, shared_recordings
from skclap.datasets.instruments import INSTRUMENTS, SOUNDFONTS

pytestmark = pytest.mark.skipif(
    not all(Path(where).is_file() for _, where in SOUNDFONTS.values() if where),
    reason="the Debian soundfonts (musescore-general-soundfont-small, csound-soundfont) are not installed: bash scripts/setup.sh installs them",
)


def test_shared_recordings_are_found():
    shared = shared_recordings()
    part = shared_instruments(shared)
    assert set(part) == {i.name for i in INSTRUMENTS}
    assert part["kick drum"] == 1.0 and part["cello"] > 0.5  # sf_GMbank carries TimGM6mb's own recordings
    assert part["trumpet"] == 0.0 and part["saxophone"] == 0.0  # these it does not
    assert max(shared_recordings(train_fonts=("MuseScore_General_Lite",)).values()) < 0.9  # nor does MuseScore


def test_a_small_seed_runs_end_to_end_and_reports(tmp_path):
    shared = shared_recordings()
    cfg = replace(RecipeConfig(), n_train=136, n_eval=34, steps=3, batch_size=16, progress=False)
    metrics = run_seed(tmp_path / "seed-0", cfg, shared, log=lambda *a: None)
    for key, _ in ROWS:
        assert 0.0 <= metrics[key] <= 1.0, key
    rows = metrics["tables"]["TimGM6mb"]  # the user-played set, per condition
    assert {r["value"] for r in rows if r["condition"] == "instrument"} == {i.name for i in INSTRUMENTS}
    assert rows[0]["condition"] == "overall" and rows[0]["accuracy"] == metrics["zero_shot_TimGM6mb"] and rows[0]["n"] == 34
    assert metrics["zero_shot_check"] == metrics["zero_shot_TimGM6mb"]  # the few-shot run's zero-shot, on the same clips
    saved = json.loads((tmp_path / "seed-0" / "metrics.json").read_text())
    assert saved["config"]["steps"] == 3 and (tmp_path / "seed-0" / "model" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "seed-0" / "model" / "config.json").read_text())["frontend"]["quiet_window_db"] == 30.0
    text = report({0: metrics, 1: metrics}, shared, cfg)
    assert "counts as heard" in text and "| kick drum | 100% |" in text and text.count("\n| ") >= len(ROWS) + len(INSTRUMENTS)
    for font in ("TimGM6mb", "MuseScore_General_Lite", "sf_GMbank"):
        assert f"## Zero-shot per condition, user-played, {font}" in text
