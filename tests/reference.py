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


def _compiled(path: Path, wanted: set[str], namespace: dict, cls: str | None = None) -> types.SimpleNamespace:
    """Functions named ``wanted`` from the file at ``path`` (top-level, or methods of class ``cls``),
    their source compiled on its own with ``namespace`` as their globals: the tools below import, at
    their tops, packages that have no build for this torch (torchaudio) or that only their other
    functions need."""
    tree = ast.parse(path.read_text())
    body = tree.body
    if cls is not None:
        (klass,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
        body = klass.body
    nodes = [n for n in body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {n.name for n in nodes} == wanted, f"{path} no longer defines {wanted} ({cls or 'top level'})"
    for node in nodes:
        node.decorator_list = []
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)
    return types.SimpleNamespace(**{name: namespace[name] for name in wanted})


@lru_cache(maxsize=1)
def fadtk() -> types.SimpleNamespace:
    """fadtk 1.1.0's own steps: ``ModelLoader.load_wav`` and ``get_embedding``, the CLAP models'
    ``_get_embedding`` and int16 helpers (``model_loader.py``), ``calculate_embd_statistics_online``
    and ``_process_file`` (``utils.py``), ``calc_frechet_distance`` and ``calc_embd_statistics``
    (``fad.py``). ``hypy_utils.pmap``
    (a process pool) is stood in for by ``map``; ``log`` by the logging module."""
    import logging

    import soundfile
    from numpy.lib.scimath import sqrt as scisqrt
    from scipy import linalg

    root = _package_root("fadtk", "fadtk==1.1.0")
    utils = _compiled(
        root / "utils.py", {"_process_file", "calculate_embd_statistics_online"}, {"np": np, "pmap": lambda f, xs, desc=None: map(f, xs)}
    )
    fad = _compiled(
        root / "fad.py",
        {"calc_frechet_distance", "calc_embd_statistics"},
        {"np": np, "linalg": linalg, "scisqrt": scisqrt, "log": logging.getLogger("fadtk")},
    )
    path = root / "model_loader.py"
    ns = {"np": np, "torch": torch, "soundfile": soundfile}
    loader = _compiled(path, {"load_wav", "get_embedding"}, dict(ns), "ModelLoader")
    laion = _compiled(path, {"_get_embedding", "int16_to_float32", "float32_to_int16"}, dict(ns), "CLAPLaionModel")
    msclap = _compiled(path, {"_get_embedding"}, dict(ns), "CLAPModel")
    return types.SimpleNamespace(
        load_wav=loader.load_wav,
        get_embedding=loader.get_embedding,
        laion_get_embedding=laion._get_embedding,
        int16_to_float32=laion.int16_to_float32,
        float32_to_int16=laion.float32_to_int16,
        msclap_get_embedding=msclap._get_embedding,
        calculate_embd_statistics_online=utils.calculate_embd_statistics_online,
        calc_frechet_distance=fad.calc_frechet_distance,
        calc_embd_statistics=fad.calc_embd_statistics,
    )


@lru_cache(maxsize=1)
def frechet_audio_distance() -> types.SimpleNamespace:
    """frechet-audio-distance 0.3.4's own ``load_audio_task`` (``utils.py``, imported as it is: it
    needs only resampy, numpy and soundfile), ``calculate_embd_statistics`` and
    ``calculate_frechet_distance`` (``fad.py``) and ``CLAPScore``'s ``__cosine_similarity`` and
    ``calculate_clap_score`` (``clap_score.py``). The package's ``__init__`` imports encodec and the
    VGGish/PANN models for its other backends, so its files are read one by one."""
    from scipy import linalg

    root = _package_root("frechet_audio_distance", "frechet-audio-distance==0.3.4")
    spec = importlib.util.spec_from_file_location("_fad_oracle_utils", root / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    fad = _compiled(
        root / "fad.py", {"calculate_embd_statistics", "calculate_frechet_distance"}, {"np": np, "linalg": linalg}, "FrechetAudioDistance"
    )
    score = _compiled(root / "clap_score.py", {"__cosine_similarity", "calculate_clap_score"}, {"np": np}, "CLAPScore")
    return types.SimpleNamespace(
        load_audio_task=utils.load_audio_task,
        calculate_embd_statistics=fad.calculate_embd_statistics,
        calculate_frechet_distance=fad.calculate_frechet_distance,
        cosine_similarity=score.__cosine_similarity,
        calculate_clap_score=score.calculate_clap_score,
    )


@lru_cache(maxsize=1)
def audiocraft() -> types.SimpleNamespace:
    """audiocraft 1.3.0's own ``convert_audio`` and ``convert_audio_channels``
    (``data/audio_utils.py``) and ``CLAPTextConsistencyMetric.update`` and ``compute``
    (``metrics/clap_consistency.py``), read from its source release, which scripts/setup.sh
    downloads (it pins torch 2.1 and imports its training stack at its top: it is not installed)."""
    import tarfile

    import julius

    source = downloads() / "audiocraft-1.3.0.tar.gz"
    if not source.exists():
        raise RuntimeError(f"the audiocraft oracle needs {source}: run scripts/setup.sh")
    root = downloads() / "audiocraft-1.3.0" / "audiocraft"
    if not root.exists():
        with tarfile.open(source) as tar:
            members = [m for m in tar.getmembers() if m.name.endswith((".py",)) and "/audiocraft/" in m.name]
            tar.extractall(downloads(), members=members, filter="data")
    audio_utils = _compiled(
        root / "data" / "audio_utils.py", {"convert_audio", "convert_audio_channels"}, {"torch": torch, "julius": julius}
    )
    import typing as tp

    metric = _compiled(
        root / "metrics" / "clap_consistency.py",
        {"update", "compute"},
        {"torch": torch, "tp": tp, "convert_audio": audio_utils.convert_audio},
        "CLAPTextConsistencyMetric",
    )
    return types.SimpleNamespace(convert_audio=audio_utils.convert_audio, update=metric.update, compute=metric.compute)


@lru_cache(maxsize=2)
def laion_clap_module_methods(fusion_mel: bool = False) -> types.SimpleNamespace:
    """``CLAP_Module.get_audio_embedding_from_data`` and ``get_text_embedding`` (laion_clap 1.1.7
    ``hook.py``), to run on a stand-in ``self``; their ``get_audio_features`` is laion_clap's own.
    Its mel step (``get_mel``) is :func:`laion_fusion_features`'s with ``fusion_mel``, else left to a
    stand-in model that reads the waveform."""
    root = _package_root("laion_clap", "laion-clap==1.1.7")
    pre = laion_clap_preprocessing()
    path = root / "training" / "data.py"
    if fusion_mel:
        features = laion_fusion_features()
    else:
        features = _compiled(
            path,
            {"get_audio_features"},
            {"np": np, "torch": torch, "F": F, "suppress": suppress, "get_mel": lambda audio, cfg: torch.zeros(1001, 64)},
        )
    return _compiled(
        root / "hook.py",
        {"get_audio_embedding_from_data", "get_text_embedding"},
        {
            "torch": torch,
            "get_audio_features": features.get_audio_features,
            "int16_to_float32": pre.int16_to_float32,
            "float32_to_int16": pre.float32_to_int16,
        },
        "CLAP_Module",
    )


def _torchaudio_functional(wanted: set[str]) -> types.SimpleNamespace:
    """Functions of torchaudio 2.11.1's ``functional/functional.py``, read from its wheel."""
    import math
    import warnings
    import zipfile
    from typing import Optional, Union

    cache = downloads()
    wheels = sorted(cache.glob("torchaudio-2.11.1-*.whl"))
    if not wheels:
        raise RuntimeError(f"the torchaudio oracles need its wheel in {cache}: run scripts/setup.sh")
    path = cache / "torchaudio-2.11.1-functional.py"
    if not path.exists():
        with zipfile.ZipFile(wheels[0]) as z:
            path.write_bytes(z.read("torchaudio/functional/functional.py"))
    ns = {
        "torch": torch,
        "math": math,
        "warnings": warnings,
        "Optional": Optional,
        "Union": Union,
        "Tensor": torch.Tensor,
        "_CPU": torch.device("cpu"),
    }
    return _compiled(path, wanted, ns)


@lru_cache(maxsize=1)
def laion_fusion_features() -> types.SimpleNamespace:
    """laion_clap 1.1.7's ``get_audio_features`` and ``get_mel`` (``training/data.py``) as they run in
    stable-audio-metrics' environment. ``get_mel`` builds ``torchaudio.transforms.MelSpectrogram`` and
    ``AmplitudeToDB``: they stand here as those transforms' forward passes over torchaudio 2.11.1's own
    functions (``spectrogram``, ``melscale_fbanks``, ``amplitude_to_DB``, read from its wheel).
    ``torchvision.transforms.Resize`` stands as what it does to a tensor in torchvision 0.16 (the
    version stable-audio-metrics pins), bilinear interpolation without antialiasing."""
    fn = _torchaudio_functional(
        {
            "spectrogram",
            "_get_spec_norms",
            "melscale_fbanks",
            "_hz_to_mel",
            "_mel_to_hz",
            "_create_triangular_filterbank",
            "amplitude_to_DB",
        }
    )

    class MelSpectrogram:  # torchaudio/transforms/_transforms.py: Spectrogram, then MelScale
        def __init__(self, sample_rate, n_fft, win_length, hop_length, center, pad_mode, power, norm, onesided, n_mels, f_min, f_max):
            self.kw = dict(
                n_fft=n_fft,
                hop_length=hop_length,
                win_length=win_length,
                power=power,
                normalized=False,
                center=center,
                pad_mode=pad_mode,
                onesided=onesided,
            )
            self.window = torch.hann_window(win_length)
            self.fb = fn.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm, "htk")

        def to(self, device):
            return self

        def __call__(self, waveform):
            spec = fn.spectrogram(waveform, 0, self.window, **self.kw)
            return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)

    class AmplitudeToDB:
        def __init__(self, top_db=None):
            self.top_db = top_db

        def __call__(self, x):
            return fn.amplitude_to_DB(x, 10.0, 1e-10, 0.0, self.top_db)

    class Resize:
        def __init__(self, size):
            self.size = size

        def __call__(self, x):
            return F.interpolate(x[None], size=self.size, mode="bilinear", align_corners=False)[0]

    torchaudio = types.SimpleNamespace(transforms=types.SimpleNamespace(MelSpectrogram=MelSpectrogram, AmplitudeToDB=AmplitudeToDB))
    torchvision = types.SimpleNamespace(transforms=types.SimpleNamespace(Resize=Resize))
    path = _package_root("laion_clap", "laion-clap==1.1.7") / "training" / "data.py"
    ns = {"np": np, "torch": torch, "F": F, "suppress": suppress, "torchaudio": torchaudio, "torchvision": torchvision}
    return _compiled(path, {"get_audio_features", "get_mel"}, ns)


@lru_cache(maxsize=1)
def torchaudio_resample() -> types.SimpleNamespace:
    """torchaudio 2.11.1's ``_get_sinc_resample_kernel`` and ``_apply_sinc_resample_kernel``
    (``functional/functional.py``), what ``transforms.Resample`` (fadtk's resampler) runs. No
    torchaudio build matches this torch, so the functions are read from its wheel, which
    scripts/setup.sh downloads."""
    return _torchaudio_functional({"_get_sinc_resample_kernel", "_apply_sinc_resample_kernel"})


def downloads() -> Path:
    """Where scripts/setup.sh puts the wheels the tests read files from without installing them."""
    import os

    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "skclap-oracles"
