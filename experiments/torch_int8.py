"""torch's own int8 (:mod:`skclap.int8`) on the bundled model, window by window: how close to
float32, by the number of leading convolutions kept float32.

    python -m experiments.torch_int8 [--calibration-clips 120] [--test-clips 200] [--float-convs 1,2,3,4]

Each row calibrates :func:`skclap.int8.calibrate_int8` on the windows of user-played clips (one
seed) and compares its int8 tower with the float32 pipeline on the windows of other user-played
clips (another seed): the cosine of each window's projected embedding to float32's. Windows, not
clips: the least cosine is over every window, quiet ones included, which the pipeline's quiet-window
gate may leave out of a clip's mean (benchmarks/onnx_speed.py gives the clip figures and the speed).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.torch_int8", description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibration-clips", type=int, default=120)
    ap.add_argument("--test-clips", type=int, default=200)
    ap.add_argument("--float-convs", default="1,2,3,4", help="counts of leading convolutions kept float32, one row each")
    args = ap.parse_args(argv)
    from skclap import load_model
    from skclap.datasets import make_played_set
    from skclap.int8 import calibrate_int8, calibration_windows, int8_audio_encoder
    from skclap.models.fused import fused_audio_encoder

    model = load_model("skclap-instruments", device="cpu")
    calibration = make_played_set(args.calibration_clips, seed=21).items()
    test = torch.from_numpy(calibration_windows(model, make_played_set(args.test_clips, seed=22).items()))
    with torch.inference_mode():
        reference = fused_audio_encoder(model)(test)
    rows = []
    for keep in (int(k) for k in args.float_convs.split(",")):
        int8 = calibrate_int8(model, calibration, float_layers=keep)
        with torch.inference_mode():
            cos = F.cosine_similarity(reference, int8_audio_encoder(int8)(test))
        rows.append((keep, int8.int8_calibration.windows, float(cos.min()), float(cos.quantile(0.01)), float(cos.mean())))
    print(f"{len(test)} test windows ({args.test_clips} clips, seed 22); calibrated on {args.calibration_clips} clips (seed 21)")
    print("| float32 convolutions | calibration windows | least cosine | 1st percentile | mean |")
    print("|---|---|---|---|---|")
    for keep, windows, low, p1, mean in rows:
        print(f"| {keep} | {windows} | {low:.4f} | {p1:.4f} | {mean:.5f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
