"""CLAP-FAD of two sets of clips: where the time goes, embedding and statistics apart, beside the rate
of the model alone.

    python benchmarks/fad.py [--protocol fadtk:clap-laion-audio] [--clips 1000] [--embed-clips 40]

The model is the LAION HTS-AT tiny architecture (transformers' ``ClapConfig()`` defaults, as
``laion/clap-htsat-unfused``) at random weights: speed does not depend on the weights. The clips are
10 s General MIDI renders (TimGM6mb), stereo at 44.1 kHz, 16-bit WAV: what the protocol must read,
mix down and resample.

Measured side by side in one run: the protocol's own loading (read, resample, 16-bit round trip,
windows) alone; the model alone on windows already made; the two together (``protocol_frames``);
then the statistics and the distance of two sets of ``--clips`` clips (frames drawn at random, as
many as the protocol makes of 10 s clips). Embedding is timed on ``--embed-clips`` clips and given
as a rate; the last row puts the parts together for two sets of ``--clips``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _table import print_table  # benchmarks/_table.py (run as: python benchmarks/NAME.py)


def laion_tiny(work: Path):  # type: ignore[no-untyped-def]
    """HTS-AT tiny + RoBERTa-base at random weights, with a byte-level tokenizer of a few tokens."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, RobertaTokenizer

    from skclap.backends import LaionCLAP

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *"abcdefghijklmnopqrstuvwxyz", "Ġ"])}
    (work / "vocab.json").write_text(json.dumps(vocab))
    (work / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    model = ClapModel(ClapConfig()).eval()
    return LaionCLAP(
        model, ClapFeatureExtractor(), RobertaTokenizer(str(work / "vocab.json"), str(work / "merges.txt")), source="htsat-tiny (random)"
    )


def clips(work: Path, n: int, seconds: float = 10.0, rate: int = 44100) -> list[str]:
    from skclap.datasets.instruments import INSTRUMENTS, render_events

    paths = []
    for i in range(n):
        inst = INSTRUMENTS[i % 13].name  # the pitched ones
        events = [(0.5 * k, 0.45, 48 + (5 * k + i) % 24, 100) for k in range(int(seconds * 2) - 1)]
        left = render_events(inst, events, seconds, rate, "TimGM6mb")
        right = np.roll(left, 200 + i)
        path = work / f"{i:04d}.wav"
        sf.write(path, 0.8 * np.stack([left, right], axis=1) / max(np.abs(left).max(), 1e-6), rate, subtype="PCM_16")
        paths.append(str(path))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default="fadtk:clap-laion-audio")
    ap.add_argument("--clips", type=int, default=1000, help="clips in each of the two sets")
    ap.add_argument("--embed-clips", type=int, default=40, help="clips the embedding rates are measured on")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    import torch

    from skclap.fad import frames_statistics
    from skclap.inference import embed_audio
    from skclap.metrics import frechet_distance
    from skclap.score_protocols import get_protocol, protocol_frames

    proto = get_protocol(args.protocol, need="fad")
    work = Path(tempfile.mkdtemp(prefix="skclap-fad-bench-"))
    model = laion_tiny(work)
    files = clips(work, args.embed_clips)
    n = len(files)

    t = time.perf_counter()
    wins = [proto.windows(proto.load(f)) for f in files]
    t_load = time.perf_counter() - t
    per_clip = sum(len(w) for w in wins) / n

    flat = np.concatenate(wins)
    t = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(flat), args.batch_size):
            model.encode_audio(torch.from_numpy(flat[s : s + args.batch_size]))
    t_model = time.perf_counter() - t
    del flat

    t = time.perf_counter()
    frames, _ = protocol_frames(proto, files, model, batch_size=args.batch_size, device="cpu")
    t_all = time.perf_counter() - t
    assert len(frames) == n

    # skclap's own windows of the same clips (one 10 s window a clip, no 1 s hop): the model's rate
    t = time.perf_counter()
    embed_audio(model, files, batch_size=args.batch_size, cache=None, progress=False)
    t_own = time.perf_counter() - t

    rng = np.random.default_rng(0)
    dim = frames[0].shape[1]
    sets = []
    for _ in range(2):
        fake = [rng.normal(size=(len(frames[i % n]), dim)).astype(np.float32) for i in range(args.clips)]
        sets.append([f / np.linalg.norm(f, axis=1, keepdims=True) for f in fake])
    t = time.perf_counter()
    stats = [frames_statistics(s, proto.statistics or "plain") for s in sets]
    t_stats = (time.perf_counter() - t) / 2
    t = time.perf_counter()
    frechet_distance(stats[0][:2], stats[1][:2], method=proto.sqrt)
    t_fd = time.perf_counter() - t

    rate_all = n / t_all
    threads = torch.get_num_threads()
    rows = [
        (
            "loading alone",
            f"{n / t_load:.2f} clips/s",
            f"read, mix, resample 44.1 -> {proto.sample_rate / 1000:g} kHz, 16-bit, {per_clip:.0f} windows a clip",
        ),
        (
            "model alone",
            f"{n / t_model:.3f} clips/s",
            f"{per_clip * n / t_model:.2f} windows/s, batch {args.batch_size}, fp32, {threads} threads",
        ),
        ("protocol (loading + model)", f"{rate_all:.3f} clips/s", f"{rate_all / (n / t_model):.2f} x the model alone"),
        ("skclap's own windows, same clips", f"{n / t_own:.3f} clips/s", "one 10 s window a 10 s clip (no 1 s hop)"),
        (f"statistics of {args.clips} clips", f"{t_stats:.2f} s", f"{proto.statistics} ({int(per_clip) * args.clips} frames of {dim})"),
        ("Fréchet distance", f"{t_fd:.2f} s", f"{proto.sqrt}, {dim}-d"),
        (
            f"FAD of two sets of {args.clips} clips",
            f"{(2 * args.clips / rate_all + 2 * t_stats + t_fd) / 60:.1f} min",
            "embedding at the protocol's rate, then statistics and distance",
        ),
    ]
    print(f"CLAP-FAD ({proto.name}), HTS-AT tiny on CPU; {n} clips of 10 s embedded")
    print_table(rows)
    for f in files:
        os.unlink(f)


if __name__ == "__main__":
    main()
