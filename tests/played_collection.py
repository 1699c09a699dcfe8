"""An embedded collection of user-played clips with a manifest's columns, as the ANN stores' tests
search it: the instrument (text) and the take (an integer)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import soundfile as sf

from skclap import embed_collection


def embed_played(root: Path, n: int, seed: int) -> Path:
    """``n`` clips of :func:`skclap.datasets.make_played_set` written as FLAC under ``root/sounds``,
    listed in ``root/manifest.csv`` and embedded by the bundled model in shards of 128 rows into
    ``root/emb``; returns that folder."""
    from skclap.datasets import make_played_set

    played = make_played_set(n, seed=seed)
    rows = []
    for i, ((wave, rate), label) in enumerate(zip(played.items(), played.labels)):
        path = root / "sounds" / f"clip-{i:03d}.flac"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, wave, rate)
        rows.append({"path": str(path), "instrument": label, "take": i % 3})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    out = root / "emb"
    embed_collection(root / "manifest.csv", out, "skclap-instruments", shard_size=128, progress=False, device="cpu")
    return out
