"""bfloat16 vs float32 inference on this CPU: embedding difference, accuracy difference, speed.

    python benchmarks/precision.py [--steps 600]

Trains the demo's model (``skclap demo``'s default configuration and corpus), then embeds the
demo's zero-shot test clips and evaluation clips in float32 and in bfloat16 autocast and reports,
side by side: the largest difference between normalised embeddings and the smallest cosine, the
generalised zero-shot accuracy (held-out instrument x attribute clips among all classes of their attribute) and the linear-probe 5-fold
accuracy in each precision, and clips/s of the demo model and of the full-size CNN14 (random
weights, 5 s windows) in each. bfloat16 is measured only where the CPU computes it natively.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()

    import torch
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from skclap import CLAPLinearProbe, CLAPModel, load_model
    from skclap.datasets.instruments import make_instrument_corpus

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the experiment lives beside the package
    from experiments.composition.protocol import CompositionConfig, evaluate_zero_shot, run_experiment, split_corpus, zero_shot_classifiers
    from skclap.devices import cpu_has_native_bf16
    from skclap.inference import embed_audio
    from skclap.models.tokenizer import basic_tokenizer

    if not cpu_has_native_bf16():
        print("this CPU has no native bfloat16 (avx512_bf16/AMX): bf16 is not measured (skclap never chooses it here)")
        return
    torch.set_num_threads(2)
    cfg = CompositionConfig(steps=args.steps, progress=False)
    out = tempfile.mkdtemp(prefix="skclap-precision-")
    t = time.perf_counter()
    run_experiment(out, cfg, log=lambda *a: None)
    print(f"trained the demo model in {time.perf_counter() - t:.0f} s")
    model = load_model(f"{out}/model")
    rate = model.config.sample_rate
    corpus = make_instrument_corpus(cfg.n_clips, seed=cfg.seed, sample_rate=rate, seconds=cfg.seconds, keep=cfg.keep)
    _, zs, evaluation = split_corpus(corpus, cfg)
    zs_waves, eval_waves = zs.waveforms(), evaluation.waveforms()
    fam = np.array(evaluation.labels)

    rows = []
    emb = {}
    for precision in ("fp32", "bf16"):
        common = dict(model=model, sample_rate=rate, progress=False, device="cpu", precision=precision, cache=False)
        classifiers = zero_shot_classifiers(parts=True, **common)
        scores = {t: clf.decision_function(zs_waves) for t, clf in classifiers.items()}
        eval_scores = {t: clf.decision_function(eval_waves) for t, clf in classifiers.items()}
        zs_acc = evaluate_zero_shot(scores, zs, evaluation, eval_scores, cfg.held_out)["generalized"]
        probe = cross_val_score(
            CLAPLinearProbe(**common), eval_waves, fam, cv=StratifiedKFold(cfg.probe_folds, shuffle=True, random_state=cfg.seed)
        )
        t = time.perf_counter()
        e = embed_audio(model, eval_waves, sample_rate=rate, progress=False, precision=precision)
        speed = len(eval_waves) / (time.perf_counter() - t)
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

    print(
        "\n| precision | generalized zero-shot (chance 3 %) | probe, 17 instruments, 5-fold (chance 6 %) | demo model clips/s | full CNN14 clips/s (5 s) |"
    )
    print("|---|---|---|---|---|")
    for p, zs_acc, pm, ps, sp in rows:
        print(f"| {p} | {zs_acc:.1%} | {pm:.1%} ± {ps:.1%} | {sp:.0f} | {full_speed[p][0]:.2f} |")
    print(
        f"\nembedding difference bf16 vs fp32 (normalised, demo model, {len(eval_waves)} clips): max |diff| {diff:.4f}, "
        f"min cosine {cos:.5f}; full CNN14 (random weights): min cosine {full_cos:.5f}; "
        f"speed-up bf16/fp32: demo model {rows[1][4] / rows[0][4]:.2f}x, full CNN14 {full_speed['bf16'][0] / full_speed['fp32'][0]:.2f}x"
    )


if __name__ == "__main__":
    main()
