"""Training throughput (pairs/s) of the contrastive trainer, per preset, on this machine.

    python benchmarks/train_throughput.py [--presets tiny small msclap-2022] [--steps N]

Prints one row per preset and configuration: plain batches, gradient caching (micro-batches) and, on a
CPU that computes bfloat16 natively, ``TrainConfig(precision="auto")``; the same global batch, measured
side by side in one run on random audio and synthetic captions.
"""

from __future__ import annotations

import argparse
import time

import torch
from _table import machine  # benchmarks/_table.py (run as: python benchmarks/NAME.py)

from skclap import CLAPModel
from skclap.datasets import make_corpus
from skclap.devices import cpu_has_native_bf16
from skclap.models.tokenizer import basic_tokenizer
from skclap.training import TrainConfig, Trainer


def measure(preset: str, batch: int, micro: int | None, steps: int, precision: str | None = None) -> float:
    # Offline, the full preset tokenizes with the built-in vocabulary (its ids are valid BERT ids);
    # the cost of a step does not depend on which WordPiece vocabulary made the ids.
    model = CLAPModel.from_preset(preset, tokenizer=basic_tokenizer())
    cfg = model.config
    corpus = make_corpus(batch * (steps + 1), seed=0, sample_rate=cfg.sample_rate, seconds=cfg.frontend.clip_seconds)
    data = (corpus.waveforms(), corpus.captions)
    config = TrainConfig(batch_size=batch, micro_batch_size=micro, max_steps=1, progress=False, warmup_steps=1, precision=precision)
    Trainer(model, config).fit(data, item_rate=cfg.sample_rate)  # first step: allocation, thread pools
    trainer = Trainer(model, config, max_steps=steps)
    t0 = time.perf_counter()
    trainer.fit(data, item_rate=cfg.sample_rate)
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "msclap-2022"])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    print(f"{machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    bf16 = cpu_has_native_bf16()
    print(f"native bf16: {'yes' if bf16 else 'no (no bf16 row)'}")
    print(f"{'preset':12s} {'batch':>5s} {'micro':>5s} {'arith.':>6s} {'pairs/s':>9s} {'vs plain':>8s}")
    for preset in args.presets:
        batch = 32 if preset != "msclap-2022" else 8
        steps = args.steps if preset != "msclap-2022" else 2
        plain = measure(preset, batch, None, steps)
        rows = [("-", "fp32", plain), (str(batch // 4), "fp32", measure(preset, batch, batch // 4, steps))]
        if bf16:
            rows.append(("-", "bf16", measure(preset, batch, None, steps, precision="bf16")))
        for micro, arith, rate in rows:
            print(f"{preset:12s} {batch:5d} {micro:>5s} {arith:>6s} {rate:9.2f} {rate / plain:8.2f}")


if __name__ == "__main__":
    main()
