"""Training throughput (pairs/s) of the contrastive trainer, per preset, on this machine.

    python benchmarks/train_throughput.py [--presets tiny small msclap-2022] [--steps N]

Prints one row per preset and configuration: plain batches and gradient caching (micro-batches), the
same global batch, measured side by side in one run on random audio and synthetic captions.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from skclap import CLAPModel
from skclap.datasets import make_corpus
from skclap.models.tokenizer import basic_tokenizer
from skclap.training import TrainConfig, Trainer


def measure(preset: str, batch: int, micro: int | None, steps: int) -> float:
    # Offline, the full preset tokenizes with the built-in vocabulary (its ids are valid BERT ids);
    # the cost of a step does not depend on which WordPiece vocabulary made the ids.
    model = CLAPModel.from_preset(preset, tokenizer=basic_tokenizer())
    cfg = model.config
    corpus = make_corpus(batch * (steps + 1), seed=0, sample_rate=cfg.sample_rate, seconds=cfg.clip_seconds)
    data = (corpus.waveforms(), corpus.captions)
    warm = Trainer(model, TrainConfig(batch_size=batch, micro_batch_size=micro, max_steps=1, progress=False, warmup_steps=1))
    warm.fit(data, item_rate=cfg.sample_rate)  # first step: allocation, thread pools
    trainer = Trainer(model, TrainConfig(batch_size=batch, micro_batch_size=micro, max_steps=steps, progress=False, warmup_steps=1))
    t0 = time.perf_counter()
    trainer.fit(data, item_rate=cfg.sample_rate)
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "msclap-2022"])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"{'preset':12s} {'batch':>5s} {'micro':>5s} {'pairs/s':>9s} {'vs plain':>8s}")
    for preset in args.presets:
        batch = 32 if preset != "msclap-2022" else 8
        steps = args.steps if preset != "msclap-2022" else 2
        plain = measure(preset, batch, None, steps)
        cached = measure(preset, batch, batch // 4, steps)
        print(f"{preset:12s} {batch:5d} {'-':>5s} {plain:9.2f} {1.0:8.2f}")
        print(f"{preset:12s} {batch:5d} {batch // 4:5d} {cached:9.2f} {cached / plain:8.2f}")


if __name__ == "__main__":
    main()
