"""torch's own int8 on the bundled model's CNN14 tower: how close to float32, with which layers kept
float32.

    python -m experiments.torch_int8 [--calibration-clips 120] [--test-clips 200]

The tower's inference form (batch norms folded, :meth:`skclap.models.cnn14.Cnn14.inference_form`)
has its convolution stack quantised by torch's FX static quantisation (x86 backend: int8 weights per
channel, uint8 activations per tensor), its activation ranges observed on the windows of
user-played clips (one seed), then compared with float32 on the windows of other user-played clips
(another seed): the cosine of each window's projected embedding to float32's, for every
convolution int8 and for the first few kept float32. The pooling, ``fc1`` and projection stay
float32 (torch's quantised mean does not take a channels-last map down to three dimensions).
Windows, not clips: the least cosine is over every window, quiet ones included, which the pipeline's
quiet-window gate may leave out of a clip's mean. Speed is benchmarks/onnx_speed.py's to measure.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ConvStack(nn.Module):
    """The convolutions, ReLUs and poolings of a folded CNN14 (what is quantised)."""

    def __init__(self, fused: Any) -> None:
        super().__init__()
        self.convs: nn.ModuleList = fused.convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(6):
            x = F.relu(self.convs[2 * i](x))
            x = F.relu(self.convs[2 * i + 1](x))
            if i < 5:
                x = F.avg_pool2d(x, kernel_size=2)
        return x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.torch_int8", description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibration-clips", type=int, default=120)
    ap.add_argument("--test-clips", type=int, default=200)
    ap.add_argument("--float-convs", default="0,1,4", help="counts of leading convolutions kept float32, one row each")
    args = ap.parse_args(argv)
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from skclap import load_model
    from skclap.batching import WindowPlan, item_windows
    from skclap.datasets import make_played_set

    torch.backends.quantized.engine = "x86"
    model: Any = load_model("skclap-instruments", device="cpu")
    encoder: Any = model.audio_encoder
    fused: Any = encoder.backbone.inference_form(None).eval()
    plan = WindowPlan.of(model)

    def mels(n: int, seed: int) -> torch.Tensor:
        wins = [w for i, item in enumerate(make_played_set(n, seed=seed).items()) for w in next(iter(item_windows(item, i, plan)))]
        with torch.no_grad():
            return encoder.frontend(torch.from_numpy(np.stack(wins)).float())

    def stack_input(mel: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(fused.mel_shift, mel, fused.mel_scale)
        return fused.with_position(x).contiguous(memory_format=torch.channels_last)

    def head(x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=3)
        return encoder.projection(F.relu(fused.fc1(x.amax(dim=2) + x.mean(dim=2))))

    calibration, test = mels(args.calibration_clips, 21), mels(args.test_clips, 22)
    with torch.no_grad():
        calibration_x, test_x = stack_input(calibration), stack_input(test)
        reference = head(ConvStack(fused)(test_x))
    rows = []
    for keep in (int(k) for k in args.float_convs.split(",")):
        mapping = get_default_qconfig_mapping("x86")
        for k in range(keep):
            mapping.set_module_name(f"convs.{k}", None)
        prepared = prepare_fx(ConvStack(fused).eval(), mapping, example_inputs=(calibration_x[:2],))
        with torch.no_grad():
            for a in range(0, len(calibration_x), 64):
                prepared(calibration_x[a : a + 64])
            quantised = convert_fx(prepared)
            got = head(quantised(test_x))
        cos = F.cosine_similarity(reference, got)
        rows.append((keep, float(cos.min()), float(cos.quantile(0.01)), float(cos.mean())))
    print(f"{len(test)} test windows ({args.test_clips} clips, seed 22); calibrated on {len(calibration)} windows (seed 21)")
    print("| float32 convolutions | least cosine | 1st percentile | mean |")
    print("|---|---|---|---|")
    for keep, low, p1, mean in rows:
        print(f"| {keep} | {low:.4f} | {p1:.4f} | {mean:.5f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
