"""The experiment's command line: ``python -m experiments.composition`` from a source checkout."""

from __future__ import annotations

import argparse

from .protocol import CompositionConfig, run_seeds

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    d = CompositionConfig()
    p = argparse.ArgumentParser(
        prog="python -m experiments.composition",
        description="Train a small CLAP on real sampled instruments and measure zero-shot on instrument x attribute "
        "combinations its captions never name (docs/composition.md).",
    )
    p.add_argument("--out", default="composition-report", help="report folder (default: composition-report)")
    p.add_argument("--preset", help=f"architecture (default: {d.preset})")
    p.add_argument("--clips", type=int, help=f"rendered clips (default: {d.n_clips})")
    p.add_argument("--steps", type=int, help=f"training steps (default: {d.steps})")
    p.add_argument("--seconds", type=float, help=f"clip length (default: {d.seconds:g})")
    p.add_argument("--batch-size", type=int, help=f"contrastive batch (default: {d.batch_size})")
    p.add_argument(
        "--group-size",
        type=int,
        default=d.group_size,
        help="runs of this many clips of one group (instrument or attributes) in each batch: hard negatives; 0: off",
    )
    p.add_argument(
        "--unsaid-weight",
        type=float,
        default=d.unsaid_weight,
        help="share of the loss where a caption that leaves pitch or dynamics unsaid is scored by its best completion, "
        f"0 (the plain contrastive loss) to 1 (default: {d.unsaid_weight:g})",
    )
    p.add_argument("--no-descriptors", action="store_true", help="train the plain CNN14, without the level and register descriptors")
    p.add_argument("--seeds", default="0", help="one run per seed, e.g. 0,1,2: the report gives mean ± std (default: 0)")
    p.add_argument("--cache-dir", default=None, help="keep the rendered clips here and reuse them (default: render each time)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--seeds takes whole numbers separated by commas, e.g. 0,1,2; got {args.seeds!r}") from None
    if not seeds:
        raise SystemExit("--seeds is empty; give at least one seed, e.g. 0")
    if not 0.0 <= args.unsaid_weight <= 1.0:
        raise SystemExit(f"--unsaid-weight must lie in [0, 1]; got {args.unsaid_weight}")
    given = {"preset": args.preset, "n_clips": args.clips, "steps": args.steps, "seconds": args.seconds, "batch_size": args.batch_size}
    cfg = CompositionConfig(
        **{k: v for k, v in given.items() if v is not None},  # the rest: CompositionConfig's defaults
        group_size=args.group_size or None,
        unsaid_weight=args.unsaid_weight,
        descriptors=not args.no_descriptors,
        progress=not args.no_progress,
        cache_dir=args.cache_dir,
    )
    run_seeds(args.out, seeds, cfg)
    return 0
