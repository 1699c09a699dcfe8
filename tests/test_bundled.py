"""The model shipped inside the package: the file the docs quote, loadable offline by name anywhere a
model is taken, and naming instruments of a soundfont it was not trained on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from skclap import CLAPEmbedder, CLAPModel, CLAPZeroShotClassifier, list_models, load_model
from skclap.datasets import instruments as ins
from skclap.datasets.played import make_played_set
from skclap.registry import BUNDLED, bundled_path

NAME = "skclap-instruments"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "bundled.md"


def test_the_shipped_file_is_the_one_the_docs_quote():
    path = bundled_path(NAME)
    digest = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert digest == BUNDLED[NAME].sha256
    assert digest in DOCS.read_text()
    assert sum(f.stat().st_size for f in path.iterdir()) <= 10 * 2**20  # 10 MB inside the wheel
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {f.name for f in path.iterdir()}


def test_it_loads_offline_by_name_without_the_debian_soundfonts(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for font, (provider, where) in list(ins.SOUNDFONTS.items()):
        if where:
            monkeypatch.setitem(ins.SOUNDFONTS, font, (provider, str(tmp_path / "absent.sf2")))
    model = load_model(NAME)
    assert isinstance(model, CLAPModel) and model.source == NAME
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float16 on disk, float32 to compute
    rows = {r.name: r for r in list_models()}
    assert rows[NAME].kind == "bundled" and "does not know" in rows[NAME].note


def test_it_names_what_users_play_from_a_soundfont_it_was_not_trained_on():
    """On a draw of the user-played set of its own (TimGM6mb: any key, notes, melodies, chords, drum
    patterns, 0.5-10 s, any level and rate), well above chance; docs/bundled.md gives the figures
    over the recipe's three seeds."""
    names = [i.name for i in ins.INSTRUMENTS]
    played = make_played_set(68, seed=4242)
    kw = dict(model=NAME, progress=False, device="cpu", cache=False)
    clf = CLAPZeroShotClassifier(labels=names, templates="{}", label_prompts={n: ins.instrument_prompts(n) for n in names}, **kw).fit()
    assert clf.score(played.items(), played.labels) >= 0.7  # chance 1/17
    emb = CLAPEmbedder(**kw).fit_transform(played.items()[:4])
    assert emb.shape == (4, load_model(NAME).config.proj_dim) and np.isfinite(emb).all()
    assert load_model(NAME).quiet_window_db == 30.0  # the silence around the playing is left out of a clip's mean
