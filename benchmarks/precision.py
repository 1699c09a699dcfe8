"""bfloat16 vs float32 inference on this CPU: embedding difference, accuracy difference, speed.

    python benchmarks/precision.py [--model skclap-instruments] [--clips 680]

Embeds new notes of the 17 instruments from TimGM6mb (a soundfont the bundled model was not trained
on) in float32 and in bfloat16 autocast and reports, side by side: the largest difference between
normalised embeddings and the smallest cosine, 17-way zero-shot instrument naming and the linear
probe's 5-fold accuracy in each precision, and clips/s of the model and of the full-size CNN14
(random weights, 5 s windows) in each. bfloat16 is measured only where the CPU computes it natively.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _table import machine  # benchmarks/_table.py (run as: python benchmarks/NAME.py)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="skclap-instruments", help="a registered name or a model directory")
    ap.add_argument("--clips", type=int, default=680, help="test notes (40 per instrument by default)")
    args = ap.parse_args()

    import torch
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from skclap import CLAPLinearProbe, CLAPModel, CLAPZeroShotClassifier, load_model
    from skclap.datasets.instruments import INSTRUMENTS, make_instrument_corpus
    from skclap.devices import cpu_has_native_bf16
    from skclap.inference import embed_audio
    from skclap.models.tokenizer import basic_tokenizer

    if not cpu_has_native_bf16():
        print("this CPU has no native bfloat16 (avx512_bf16/AMX): bf16 is not measured (skclap never chooses it here)")
        return
    torch.set_num_threads(2)
    model = load_model(args.model)
    rate = model.config.sample_rate
    corpus = make_instrument_corpus(args.clips, seed=2000, sample_rate=rate, seconds=model.config.frontend.clip_seconds)
    waves, labels = corpus.waveforms(), np.array(corpus.labels)
    names = [i.name for i in INSTRUMENTS]

    rows = []
    emb = {}
    for precision in ("fp32", "bf16"):
        common = dict(model=model, sample_rate=rate, progress=False, device="cpu", precision=precision, cache=False)
        zs_acc = CLAPZeroShotClassifier(labels=names, **common).fit().score(waves, labels)
        probe = cross_val_score(CLAPLinearProbe(**common), waves, labels, cv=StratifiedKFold(5, shuffle=True, random_state=0))
        embed_audio(model, waves[:64], sample_rate=rate, progress=False, precision=precision)  # warm-up
        t = time.perf_counter()
        e = embed_audio(model, waves, sample_rate=rate, progress=False, precision=precision)
        speed = len(waves) / (time.perf_counter() - t)
        emb[precision] = e / np.linalg.norm(e, axis=1, keepdims=True)
        rows.append((precision, zs_acc, probe.mean(), probe.std(), speed))
    diff = np.abs(emb["fp32"] - emb["bf16"]).max()
    cos = (emb["fp32"] * emb["bf16"]).sum(1).min()

    full = CLAPModel.from_preset("msclap-2022", tokenizer=basic_tokenizer()).eval()
    clips = [np.random.default_rng(i).standard_normal(5 * 44100).astype(np.float32) * 0.1 for i in range(32)]
    full_speed = {}
    for precision in ("fp32", "bf16"):
        embed_audio(full, clips[:4], sample_rate=44100, progress=False, precision=precision)  # warm-up
        t = time.perf_counter()
        e = embed_audio(full, clips, sample_rate=44100, progress=False, precision=precision, batch_size=16)
        full_speed[precision] = (len(clips) / (time.perf_counter() - t), e / np.linalg.norm(e, axis=1, keepdims=True))
    full_cos = (full_speed["fp32"][1] * full_speed["bf16"][1]).sum(1).min()

    print(f"\n{machine()}")
    print(
        f"\n| precision | zero-shot, 17 instruments (chance 5.9 %) | probe, 5-fold (chance 5.9 %) | {args.model} clips/s | full CNN14 clips/s (5 s) |"
    )
    print("|---|---|---|---|---|")
    for p, zs_acc, pm, ps, sp in rows:
        print(f"| {p} | {zs_acc:.1%} | {pm:.1%} ± {ps:.1%} | {sp:.0f} | {full_speed[p][0]:.2f} |")
    print(
        f"\nembedding difference bf16 vs fp32 (normalised, {args.model}, {len(waves)} clips): max |diff| {diff:.4f}, "
        f"min cosine {cos:.5f}; full CNN14 (random weights): min cosine {full_cos:.5f}; "
        f"speed-up bf16/fp32: {args.model} {rows[1][4] / rows[0][4]:.2f}x, full CNN14 {full_speed['bf16'][0] / full_speed['fp32'][0]:.2f}x"
    )


if __name__ == "__main__":
    main()
