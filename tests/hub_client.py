"""Run as a script by the local-hub tests, in a fresh interpreter whose environment points the
Hugging Face client at the local hub (``HF_ENDPOINT`` is read when huggingface_hub is imported).

For each registered name given: load it by name, embed a clip and two texts through the public
estimators, run :func:`skclap.check_model` (unless ``--no-check``), and print one JSON line (or the
error it raised)."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np


def main(names: list[str], check: bool = True) -> None:
    from skclap import CLAPEmbedder, check_model
    from skclap.checkpoints import resolve_model

    for name in names:
        try:
            model = resolve_model(name, device="cpu")  # by name, the very model the estimators below share
            rate = model.config.sample_rate
            t = np.arange(int(1.5 * rate)) / rate
            clip = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            kw = dict(model=name, cache=False, progress=False, device="cpu")
            audio = CLAPEmbedder(**kw, sample_rate=rate).fit_transform([clip])
            text = CLAPEmbedder(**kw, modality="text").fit_transform(["a dog barking", "rain on a roof"])
            out = {"name": name, "type": type(model).__name__, "audio": audio.tolist(), "text": text.tolist()}
            if check:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    out["healthy"] = check_model(model).healthy
                out["warnings"] = [str(w.message) for w in caught]
        except Exception as err:  # reported to the test, which asserts on it
            out = {"name": name, "error": f"{type(err).__name__}: {err}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main([a for a in args if a != "--no-check"], check="--no-check" not in args)
