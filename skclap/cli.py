"""The ``skclap`` command."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from . import PRESETS, REGISTRY, CLAPModel, __version__

    print(f"skclap {__version__}  (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print("\nArchitectures (CLAPModel.from_preset):")
    for name, cfg in PRESETS.items():
        print(f"  {name:12s} {cfg.sample_rate} Hz, {cfg.clip_seconds:g} s windows, {cfg.n_mels} mels, proj {cfg.proj_dim}-d")
    print("\nReleased checkpoints (load_model):")
    for name, ck in REGISTRY.items():
        state = "" if ck.supported else "  [not supported yet]"
        print(f"  {name:12s} {ck.repo_id}/{ck.filename}{state}\n               {ck.description}")
    model = CLAPModel.from_preset(args.preset)
    rate = model.config.sample_rate
    t = np.arange(rate) / rate
    wave = torch.from_numpy(np.sin(2 * np.pi * 440 * t).astype(np.float32))[None]
    with torch.inference_mode():
        a = model.encode_audio(wave, normalize=True)
        e = model.encode_text(["a pure tone"], normalize=True)
    print(f"\nself-check: preset {args.preset!r} embedded 1 s of audio -> {tuple(a.shape)}, a caption -> {tuple(e.shape)}, "
          f"cosine {float(a @ e.T):+.3f} (random weights)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skclap", description="CLAP for scikit-learn")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="list architectures and checkpoints, run an offline self-check")
    info.add_argument("--preset", default="tiny")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
