"""The reference implementations, as test oracles: msclap's and laion_clap's own code, imported without
the parts of their packages that need what is not installed here (torchaudio, torchvision, h5py,
webdataset). Nothing here re-implements them: each function hands back the reference's own objects."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from contextlib import suppress
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _package_root(name: str, install: str) -> Path:
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__path__", None):  # imported already, maybe as a stand-in package
        return Path(list(loaded.__path__)[0])
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise RuntimeError(f"the parity tests need the reference code: pip install --no-deps {install}")
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)
def msclap_models() -> types.SimpleNamespace:
    """msclap's model classes (``msclap.models``), imported without its torchaudio wrapper."""
    root = _package_root("msclap", "msclap==1.3.4")
    if "msclap" not in sys.modules or not hasattr(sys.modules["msclap"], "models"):
        pkg = types.ModuleType("msclap")
        pkg.__path__ = [str(root)]
        sys.modules["msclap"] = pkg
    from msclap.models import audio, clap  # noqa: E402

    return types.SimpleNamespace(CLAP=clap.CLAP, Cnn14=audio.Cnn14, Projection=clap.Projection)


@lru_cache(maxsize=1)
def laion_clap_model_module() -> types.ModuleType:
    """laion_clap's model module (``laion_clap.clap_module.model``), imported without the package's
    training and download code. Its utilities import torchvision and h5py for functions the model
    classes never call; where those are not installed, placeholders stand in during the import."""
    root = _package_root("laion_clap", "laion-clap==1.1.7")
    for name, path in (("laion_clap", root), ("laion_clap.clap_module", root / "clap_module")):
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(path)]
            sys.modules[name] = pkg
    placeholders = {}
    if importlib.util.find_spec("torchvision") is None:
        misc = types.ModuleType("torchvision.ops.misc")
        misc.FrozenBatchNorm2d = torch.nn.BatchNorm2d
        placeholders.update(
            {
                "torchvision": types.ModuleType("torchvision"),
                "torchvision.ops": types.ModuleType("torchvision.ops"),
                "torchvision.ops.misc": misc,
            }
        )
    if importlib.util.find_spec("h5py") is None:
        placeholders["h5py"] = types.ModuleType("h5py")
    sys.modules.update(placeholders)
    try:
        return importlib.import_module("laion_clap.clap_module.model")
    finally:
        for name in placeholders:
            sys.modules.pop(name, None)


@lru_cache(maxsize=1)
def laion_clap_preprocessing() -> types.SimpleNamespace:
    """laion_clap's own preprocessing functions, ``int16_to_float32``, ``float32_to_int16`` and
    ``get_audio_features`` (what ``CLAP_Module.get_audio_embedding_from_filelist`` calls), taken
    verbatim from ``laion_clap/training/data.py``. That module imports webdataset, torchvision, h5py
    and wget at its top for its data loaders, so the three functions' source is compiled on its own,
    with the names they use. ``get_mel`` (torchaudio) is only reached by the fused path."""
    path = _package_root("laion_clap", "laion-clap==1.1.7") / "training" / "data.py"
    tree = ast.parse(path.read_text())
    wanted = {"int16_to_float32", "float32_to_int16", "get_audio_features"}
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {n.name for n in nodes} == wanted, f"{path} no longer defines {wanted}"
    namespace = {"np": np, "torch": torch, "F": F, "suppress": suppress}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)
    return types.SimpleNamespace(**{name: namespace[name] for name in wanted})


@lru_cache(maxsize=1)
def laion_clap_retrieval() -> types.SimpleNamespace:
    """laion_clap's own retrieval measures, ``get_metrics`` (one caption a clip) and
    ``evaluate_clotho_audiocaps`` (five), taken verbatim from ``laion_clap/training/train.py``. That
    module imports its training loop's dependencies (wandb, ``clap_module``'s loss) at its top, so the
    two functions' source is compiled on its own, with the names they use. ``evaluate_clotho_audiocaps``
    takes a model, a data loader and the run's arguments: :func:`run_laion_clotho_audiocaps` hands it
    stand-ins that return given embeddings."""
    import logging

    path = _package_root("laion_clap", "laion-clap==1.1.7") / "training" / "train.py"
    tree = ast.parse(path.read_text())
    wanted = {"get_metrics", "evaluate_clotho_audiocaps"}
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {n.name for n in nodes} == wanted, f"{path} no longer defines {wanted}"
    namespace = {"np": np, "torch": torch, "F": F, "logging": logging}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)
    return types.SimpleNamespace(**{name: namespace[name] for name in wanted})


def run_laion_clotho_audiocaps(audio: torch.Tensor, text: torch.Tensor, batch_size: int = 4) -> dict[str, float]:
    """laion_clap's ``evaluate_clotho_audiocaps`` on given embeddings: ``audio`` (n, d) and ``text``
    (5 n, d), clip i's captions at rows 5 i .. 5 i + 4 (the order its loader yields them). The model
    stand-in returns the rows a batch names (the function normalises them itself) and a logit scale;
    captions are "tokenised" to their row numbers by a stand-in ``clap_module.tokenize``, which the
    function imports when ``args.tmodel == "transformer"``. Returns its measures without the dataset
    prefix it adds."""
    n = len(audio)
    assert text.shape[0] == 5 * n

    class Model:
        def __call__(self, audios, texts, device):
            if audios is None and texts is None:
                return torch.tensor(1 / 0.07), torch.tensor(1 / 0.07)  # the scale only multiplies the scores
            return audio[audios["clip"]] if texts is None else text[texts]

    def batch(clips: list[int]) -> dict:
        return {
            "clip": torch.tensor(clips),
            "full_text": [list(range(5 * i, 5 * i + 5)) for i in clips],
            "__url__": [f"/d/clotho/test/{i}.tar" for i in clips],
        }

    loader = [batch(list(range(a, min(a + batch_size, n)))) for a in range(0, n, batch_size)]
    data = {"val": types.SimpleNamespace(dataloader=loader)}
    args = types.SimpleNamespace(tmodel="transformer")
    stand_in = types.ModuleType("clap_module")
    stand_in.tokenize = lambda caption_rows: torch.tensor(caption_rows)
    saved = sys.modules.get("clap_module")
    sys.modules["clap_module"] = stand_in
    try:
        from contextlib import nullcontext

        out = laion_clap_retrieval().evaluate_clotho_audiocaps(Model(), data, 0, args, nullcontext, "cpu")
    finally:
        if saved is None:
            sys.modules.pop("clap_module", None)
        else:
            sys.modules["clap_module"] = saved
    (metrics,) = out.values()
    return {k.split("/", 1)[1]: float(v) for k, v in metrics.items()}
