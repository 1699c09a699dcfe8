"""int8 inference in torch on a CPU: a CNN14 audio tower quantised statically, calibrated on audio
the user gives, then run wherever a precision is taken.

    from skclap.int8 import calibrate_int8

    model = calibrate_int8("skclap-instruments", clips)   # a copy of the model, with its int8 ranges
    CLAPEmbedder(model=model, precision="int8").fit_transform(items)

Static quantisation by torch's FX graph mode (x86 backend): int8 weights per output channel, uint8
activations per tensor, each activation's range observed on the windows of the calibration clips.
The front-end, the first ``float_layers`` convolutions (by default four: CNN14's first two blocks,
on the largest feature maps, whose int8 error reaches the embedding most), the pooling, ``fc1`` and
the projection stay float32, as in the ONNX int8 export (:func:`skclap.export_onnx`), which shares
this module's calibration windows and its check. The ranges are fixed, so a window's embedding does
not depend on the batch it is in. The calibrated model keeps float32 as its default precision;
``precision="int8"`` selects the int8 tower, and its vectors have their own cache identity (the
calibration's digest is in :func:`skclap.inference.precision_label`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .audio import prepare, windows

__all__ = ["INT8_MIN_COSINE", "Int8Calibration", "calibrate_int8", "calibration_windows", "check_int8", "int8_audio_encoder", "int8_tower"]

#: The least cosine to the float32 model an int8 tower may give a calibration window, where that
#: window is within 40 dB of the loudest (a broken quantisation gives cosines near zero or below).
INT8_MIN_COSINE = 0.95


def calibration_windows(model: Any, calibration: Sequence[Any]) -> np.ndarray:
    """The windows ``(n, window_samples)`` float32 that ``model`` hears of the calibration clips
    (audio items as the estimators take them), each clip read, resampled and windowed as the model does."""
    from .batching import WindowPlan
    from .inputs import as_items

    if calibration is None or len(calibration) == 0:
        raise ValueError("int8 is calibrated on audio: pass calibration=[clips the model will hear]")
    items = as_items(calibration)
    plan = WindowPlan.of(model)
    return np.concatenate(
        [
            windows(prepare(item, plan.sample_rate, name=f"calibration item {i}"), plan.window_samples, plan.padding)
            for i, item in enumerate(items)
        ]
    )


def check_int8(wins: np.ndarray, got: np.ndarray, ref: np.ndarray, what: str) -> tuple[float, float]:
    """The least and the mean cosine of int8 embeddings ``got`` to float32's ``ref`` over the
    calibration windows within 40 dB of the loudest; raises when the least is under
    :data:`INT8_MIN_COSINE` (a broken quantisation)."""
    from .batching import normalize_rows

    cos = (normalize_rows(got) * normalize_rows(ref)).sum(axis=1)
    db = 10 * np.log10(np.mean(np.square(wins, dtype=np.float64), axis=1) + 1e-20)
    heard = db >= db.max() - 40
    if not cos[heard].min() >= INT8_MIN_COSINE:
        raise RuntimeError(f"{what} gives a calibration window a cosine of {cos[heard].min():.3f} to the model (under {INT8_MIN_COSINE})")
    return float(cos[heard].min()), float(cos[heard].mean())


@dataclass(frozen=True, eq=False)
class Int8Calibration:
    """What calibration measured, held by the calibrated model (``model.int8_calibration``): the
    activation observers' state (plain tensors: the model pickles and copies as before), how many
    leading convolutions stay float32, and the audio tower it was measured on."""

    observers: dict[str, torch.Tensor]
    float_layers: int
    tower: str  # the audio tower's weights' fingerprint at calibration
    windows: int
    min_cosine: float
    mean_cosine: float

    @property
    def digest(self) -> str:
        """The identity of these ranges (in the int8 vectors' cache identity)."""
        h = hashlib.blake2b(f"{self.float_layers}|{self.tower}".encode(), digest_size=10)
        for name in sorted(self.observers):
            h.update(name.encode())
            h.update(self.observers[name].detach().cpu().numpy().tobytes())
        return h.hexdigest()


class _Features(nn.Module):
    """The convolution stack of a folded CNN14 as its own module: what FX traces and quantises."""

    def __init__(self, fused: Any) -> None:
        super().__init__()
        self.convs = fused.convs
        self._features = type(fused).features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(self, x, torch.nn.functional.relu)


def _prepared(fused: Any, float_layers: int, example: torch.Tensor) -> Any:
    """The convolution stack with observers on every activation it quantises."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    mapping = get_default_qconfig_mapping("x86")
    for k in range(float_layers):
        mapping.set_module_name(f"convs.{k}", None)
    return prepare_fx(_Features(fused).eval(), mapping, example_inputs=(example,))


def _tower(model: Any) -> Any:
    """The model's CNN14 audio tower, or a clear refusal."""
    from .models import CLAPModel
    from .models.cnn14 import Cnn14

    backbone = getattr(getattr(model, "audio_encoder", None), "backbone", None)
    if not isinstance(model, CLAPModel) or not isinstance(backbone, Cnn14):
        raise NotImplementedError(f"torch int8 covers CNN14 audio towers of skclap's architecture; this model is {type(model).__name__}")
    return backbone


@contextmanager
def _fx_quietly() -> Iterator[None]:
    """torch's FX quantisation on the x86 engine, without its warnings on every call: that it is
    deprecated in favour of torchao's export-based flow (which needs ``torch.compile``, a C++
    toolchain, to run int8 kernels on a CPU), and that its default observers' ``reduce_range`` will be."""
    if "x86" not in torch.backends.quantized.supported_engines:
        raise NotImplementedError(
            f"torch int8 runs on x86 CPUs (fbgemm/oneDNN); this torch has {torch.backends.quantized.supported_engines}"
        )
    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*(torch\.ao\.quantization is deprecated|quantized tensor|reduce_range)")
        yield


def calibrate_int8(model: Any, calibration: Sequence[Any], *, float_layers: int = 4) -> Any:
    """A copy of ``model`` (a name, a path or a :class:`~skclap.models.CLAPModel` with a CNN14 audio
    tower) that runs ``precision="int8"`` on a CPU, its activation ranges measured on the windows of
    ``calibration`` (audio items as the estimators take them: what the model will hear). The
    first ``float_layers`` convolutions stay float32. ``model`` itself is left as it was."""
    if float_layers < 1:
        raise ValueError(f"float_layers must be 1 or more (the first layer's input is the log-mel itself); got {float_layers}")
    from .cache import model_fingerprint
    from .checkpoints import resolve_model

    clap: Any = resolve_model(model, "cpu" if isinstance(model, (str, os.PathLike)) else "auto")
    backbone = _tower(clap)
    if clap.device.type != "cpu":
        raise ValueError(f"int8 runs on the CPU; this model is on {clap.device} (model.to('cpu'))")
    wins = calibration_windows(clap, calibration)
    clap = copy.deepcopy(clap).eval()
    encoder = clap.audio_encoder
    fused = backbone.inference_form(None).eval()
    float_layers = min(float_layers, len(fused.convs))
    with torch.inference_mode():
        mels = [encoder.frontend(torch.from_numpy(wins[i : i + 64])) for i in range(0, len(wins), 64)]
        with _fx_quietly():
            prepared = _prepared(fused, float_layers, fused.stack_input(mels[0][:1]))
            for mel in mels:
                prepared(fused.stack_input(mel))
    observers = {k: v.detach().clone() for k, v in prepared.state_dict().items() if _OBSERVER in k}
    clap.int8_calibration = Int8Calibration(observers, float_layers, model_fingerprint(encoder), len(wins), 0.0, 0.0)
    with torch.inference_mode():
        encode = int8_audio_encoder(clap)
        got = np.concatenate([encode(torch.from_numpy(wins[i : i + 64])).numpy() for i in range(0, len(wins), 64)])
        ref = np.concatenate([clap.encode_audio(torch.from_numpy(wins[i : i + 64])).numpy() for i in range(0, len(wins), 64)])
    low, mean = check_int8(wins, got, ref, "the int8 audio tower")
    clap.int8_calibration = dataclasses.replace(clap.int8_calibration, min_cosine=low, mean_cosine=mean)
    return clap


#: FX's name for the observer modules it inserts.
_OBSERVER = "activation_post_process"


class _Int8Cnn14(nn.Module):
    """A folded CNN14 whose convolution stack is int8: float32 in, float32 out."""

    def __init__(self, fused: Any, calibration: Int8Calibration, example: torch.Tensor) -> None:
        super().__init__()
        from torch.ao.quantization.quantize_fx import convert_fx

        self.fused = fused
        with _fx_quietly():
            prepared = _prepared(fused, calibration.float_layers, fused.stack_input(example))
            observers = {k for k in prepared.state_dict() if _OBSERVER in k}
            if observers != set(calibration.observers):
                raise ValueError("this int8 calibration was measured on another tower's layout: calibrate_int8 the model again")
            prepared.load_state_dict(calibration.observers, strict=False)
            self.features = convert_fx(prepared)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.fused.head(self.features(self.fused.stack_input(mel)))


_INT8: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def int8_tower(model: Any) -> nn.Module:
    """The model's CNN14 with its convolution stack in int8 (log-mel in, the tower's output out),
    built once per calibration; raises when the model was not calibrated, or its tower changed since."""
    from .batching import WindowPlan
    from .cache import model_fingerprint

    calibration: Int8Calibration | None = getattr(model, "int8_calibration", None)
    if calibration is None:
        raise ValueError(
            "precision='int8' needs the model calibrated on audio it will hear: model = skclap.int8.calibrate_int8(model, clips)"
        )
    if model.device.type != "cpu":
        raise ValueError(f"int8 runs on the CPU; this model is on {model.device}")
    encoder = model.audio_encoder
    if model_fingerprint(encoder) != calibration.tower:
        raise ValueError("the audio tower's weights changed since its int8 calibration: calibrate_int8 the model again")
    memo = _INT8.get(encoder)
    if memo is None or memo[0] is not calibration:
        with torch.no_grad():
            example = encoder.frontend(torch.zeros(1, WindowPlan.of(model).window_samples))
        memo = (calibration, _Int8Cnn14(_tower(model).inference_form(None).eval(), calibration, example))
        _INT8[encoder] = memo
    return memo[1]


def int8_audio_encoder(model: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``waveforms -> audio embeddings``: the float32 front-end, :func:`int8_tower`, the
    float32 projection."""
    tower, frontend, projection = int8_tower(model), model.audio_encoder.frontend, model.audio_encoder.projection

    def encode(wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return projection(tower(frontend(wave.float())))

    return encode
