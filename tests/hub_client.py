"""Run as a script by the local-hub tests, in a fresh interpreter whose environment points the
Hugging Face client at the local hub (``HF_ENDPOINT`` is read when huggingface_hub is imported).

For each registered name given: load it by name, embed a clip and two texts through the public
estimators, run :func:`skclap.check_model` on those named by ``--check=NAME``, and print one JSON
line (or the error it raised).

``--no-wait``: the client retries a failed request as in real use, but returns at once from each
back-off wait between tries and reports the waits it asked for (``"waits"``). The tests assert on
the errors and on the retries, not on the time spent sleeping between them."""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np


class _NoWait:
    """Stands in for the ``time`` module inside huggingface_hub's HTTP back-off and its resumption
    of a download cut short."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def __getattr__(self, name: str):
        return getattr(time, name)


def main(names: list[str], check: set[str], wait: bool = True) -> None:
    from huggingface_hub import file_download
    from huggingface_hub.utils import _http

    from skclap import CLAPEmbedder, check_model
    from skclap.checkpoints import resolve_model

    clock = _NoWait()
    if not wait:
        _http.time = file_download.time = clock  # type: ignore[assignment]
    for name in names:
        clock.waits.clear()
        try:
            model = resolve_model(name, device="cpu")  # by name, the very model the estimators below share
            rate = model.config.sample_rate
            t = np.arange(int(1.5 * rate)) / rate
            clip = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            kw = dict(model=name, cache=False, progress=False, device="cpu")
            audio = CLAPEmbedder(**kw, sample_rate=rate).fit_transform([clip])
            text = CLAPEmbedder(**kw, modality="text").fit_transform(["a dog barking", "rain on a roof"])
            out = {"name": name, "type": type(model).__name__, "audio": audio.tolist(), "text": text.tolist()}
            if name in check:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    out["healthy"] = check_model(model).healthy
                out["warnings"] = [str(w.message) for w in caught]
        except Exception as err:  # reported to the test, which asserts on it
            out = {"name": name, "error": f"{type(err).__name__}: {err}"}
        if not wait:
            out["waits"] = list(clock.waits)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    check = {a.removeprefix("--check=") for a in args if a.startswith("--check=")}
    main([a for a in args if not a.startswith("--")], check=check, wait="--no-wait" not in args)
