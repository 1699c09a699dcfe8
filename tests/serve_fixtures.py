"""The recordings of the serve and search-service tests' collection (``collection`` in conftest):
real sampled instruments of a General MIDI soundfont."""

from __future__ import annotations

import numpy as np

from skclap.datasets.corpus import Clip
from skclap.datasets.instruments import render_note

RATE = 16000
FAMILIES = ["piano", "violin", "trumpet", "flute", "kick drum", "marimba"]


def render(family: str, seed: int, seconds: float) -> np.ndarray:
    attrs = {"dynamics": "loud", "pitch": "high" if seed % 2 else "low", "articulation": "long"}
    return render_note(Clip(family, attrs, [family], seed), RATE, seconds)
