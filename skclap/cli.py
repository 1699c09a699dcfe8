"""The ``skclap`` command."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from . import CLAPModel, __version__, list_models

    print(f"skclap {__version__}  (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    rows = list_models()
    print("\nReleased weights (model=NAME in the estimators, load_model, skclap evaluate --model, skclap train --init):")
    for r in rows:
        if r.kind == "pretrained":
            print(f"  {r.name:34s} {r.architecture:28s} {r.description}\n  {'':34s} {r.source}")
    print("\nArchitectures, random weights (model='preset:NAME', skclap train --preset NAME):")
    for r in rows:
        if r.kind == "preset":
            print(f"  {r.name:34s} {r.architecture}, {r.description}")
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


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="CSV or Parquet with 'audio' and 'caption' columns (one row per caption)")
    p.add_argument("--out", required=True, help="output directory: final model, checkpoints/, history.csv")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--preset", default="tiny", help="architecture to train from scratch, random init (default: tiny)")
    start.add_argument("--init", help="start from weights: a released name (msclap-2022, ...), a directory or a .pth/.pt file")
    p.add_argument("--val", help="validation manifest (retrieval R@1/5/10)")
    p.add_argument("--batch-size", type=int, default=32, help="global contrastive batch")
    p.add_argument("--micro-batch-size", type=int, help="gradient caching: pairs per forward pass")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--optimizer", choices=["adamw", "adam"], default="adamw")
    p.add_argument("--freeze-text", action="store_true", help="freeze the text transformer")
    p.add_argument("--freeze-audio", action="store_true", help="freeze the CNN14 audio backbone")
    p.add_argument("--checkpoint-every", type=int, help="steps between resumable checkpoints")
    p.add_argument("--eval-every", type=int, help="steps between validations (also at every epoch end)")
    p.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    p.add_argument("--no-progress", action="store_true")


def run_train(args: argparse.Namespace) -> int:
    from .training import train

    config = dict(
        batch_size=args.batch_size, micro_batch_size=args.micro_batch_size, epochs=args.epochs,
        max_steps=args.max_steps, lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
        optimizer=args.optimizer, freeze_text=args.freeze_text, freeze_audio=args.freeze_audio,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, num_workers=args.num_workers,
        seed=args.seed, device=args.device, progress=not args.no_progress,
    )
    trainer = train(args.manifest, args.out, model=args.init or f"preset:{args.preset}", val_data=args.val, resume=args.resume, **config)
    last = trainer.history[-1] if trainer.history else {}
    if trainer.is_main:
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k.startswith("val_") and "R@" in k)
        print(f"trained {trainer.step} steps; loss {last.get('loss', float('nan')):.4f}"
              f"{'; ' + metrics if metrics else ''}; model in {args.out}")
    return 0


def run_demo_cmd(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo

    cfg = DemoConfig(preset=args.preset, n_clips=args.clips, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                     progress=not args.no_progress)
    run_demo(args.out, cfg)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import MODES, evaluate, results_markdown

    tasks = "all" if "all" in args.task else args.task
    modes = MODES if args.mode == "both" else (args.mode,)
    table = evaluate(tasks, args.data_dir, model=args.model, modes=modes, out_dir=args.out, cache=args.cache_dir or True,
                     batch_size=args.batch_size, device=args.device, progress=not args.no_progress)
    print(results_markdown(table, model_name=args.model))
    print(f"written: {args.out}/results.csv, {args.out}/results.md")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skclap", description="CLAP for scikit-learn")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="list architectures and checkpoints, run an offline self-check")
    info.add_argument("--preset", default="tiny")
    info.set_defaults(func=_cmd_info)
    demo = sub.add_parser("demo", help="offline demo: train a small CLAP on synthetic sounds, zero-shot, probe, retrieval")
    demo.add_argument("--out", default="skclap-demo", help="report folder (default: skclap-demo)")
    demo.add_argument("--preset", default="small")
    demo.add_argument("--clips", type=int, default=3000)
    demo.add_argument("--steps", type=int, default=600)
    demo.add_argument("--batch-size", type=int, default=64)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=run_demo_cmd)
    ev = sub.add_parser("evaluate", help="downstream tasks of the paper: zero-shot and linear probe, one table")
    ev.add_argument("--task", action="append", required=True,
                    help="task name (repeatable), or 'all'; see skclap.evaluation.TASKS")
    ev.add_argument("--data-dir", required=True,
                    help="the dataset's folder, or a root holding each dataset in its standard folder name")
    ev.add_argument("--model", default="msclap-2022", help="registered name or checkpoint directory")
    ev.add_argument("--mode", choices=["zeroshot", "probe", "both"], default="both")
    ev.add_argument("--out", default="skclap-eval", help="folder for results.csv and results.md")
    ev.add_argument("--cache-dir", help="keep audio embeddings on disk here (default: in memory)")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=run_evaluate)
    tr = sub.add_parser("train", help="train CLAP contrastively on an audio-caption manifest")
    add_train_arguments(tr)
    tr.set_defaults(func=run_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
