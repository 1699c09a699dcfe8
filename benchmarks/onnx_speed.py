"""Audio embedding in every arithmetic skclap offers on a CPU, side by side in one run.

    python benchmarks/onnx_speed.py [--models skclap-instruments,preset:msclap-2022] [--windows 24]

For each model, the same windows (user-played TimGM6mb clips, cut into the model's windows) with
the same threads: torch float32 and torch bfloat16 (where the CPU computes it natively; skipped
elsewhere: emulated, it is hundreds of times slower) through the pipeline's own forward
(:func:`skclap.models.fused.fused_audio_encoder`); ``audio.onnx`` in onnxruntime (float32); and,
one per ``--float-layers`` count of leading convolutions kept float32, onnxruntime's int8 export
(``quantize="int8"``) and torch's own int8 (:func:`skclap.int8.calibrate_int8`), both calibrated on
the same 34 user-played clips. ``preset:`` models have random weights: speed does not depend on
them, int8's accuracy does, so it is measured on the bundled model only: the cosine of each clip's
int8 vector to its float32 one, and zero-shot naming of ``--accuracy-clips`` other user-played
clips. Each speed figure is the median of ``--repeats`` passes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from _table import print_table  # benchmarks/_table.py (run as: python benchmarks/NAME.py)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: the first pass allocates
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def run_torch(encode, wins: np.ndarray, b: int, dtype=None) -> None:  # type: ignore[no-untyped-def]
    import torch

    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for i in range(0, len(wins), b):
            encode(torch.from_numpy(wins[i : i + b]))


def run_onnx(session, wins: np.ndarray, b: int) -> None:  # type: ignore[no-untyped-def]
    for i in range(0, len(wins), b):
        session.run(None, {"waveform": wins[i : i + b]})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="skclap-instruments,preset:msclap-2022")
    ap.add_argument("--windows", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--float-layers", default="1,5", help="int8 exports, one per count of leading convolutions kept float32")
    ap.add_argument("--accuracy-clips", type=int, default=340, help="user-played clips for the int8 accuracy rows (0: none)")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from skclap import load_model
    from skclap.audio import prepare, windows
    from skclap.datasets import make_played_set
    from skclap.devices import precision_available
    from skclap.int8 import calibrate_int8, int8_audio_encoder
    from skclap.models.fused import fused_audio_encoder
    from skclap.onnx_export import export_onnx

    threads = torch.get_num_threads()
    played = make_played_set(34, seed=11)
    rows = []
    for name in args.models.split(","):
        model = load_model(name, device="cpu")
        if name.startswith("preset:"):  # a stand-in tokenizer: the text tower is exported too
            from transformers import BertTokenizerFast

            work = Path(tempfile.mkdtemp())
            (work / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]) + "\n")
            model.tokenizer = BertTokenizerFast(str(work / "vocab.txt"))
        rate, length = model.config.sample_rate, model.config.window_samples
        wins = np.concatenate([windows(prepare(item, rate), length, model.window_padding) for item in played.items()])[: args.windows]
        out = export_onnx(model, Path(tempfile.mkdtemp()) / "onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(out / "audio.onnx"), opts, providers=["CPUExecutionProvider"])
        b = args.batch_size

        torch_pass = partial(run_torch, fused_audio_encoder(model), wins, b)
        onnx_pass = partial(run_onnx, session, wins, b)
        fp32 = median_seconds(torch_pass, args.repeats)
        rows.append(
            (f"{name}: torch fp32", f"{len(wins) / fp32:.2f} windows/s", f"{length / rate:g} s windows, batch {b}, {threads} threads")
        )
        if precision_available("bf16", torch.device("cpu")):
            bf16 = median_seconds(partial(run_torch, fused_audio_encoder(model), wins, b, torch.bfloat16), args.repeats)
            rows.append((f"{name}: torch bf16", f"{len(wins) / bf16:.2f} windows/s", f"{fp32 / bf16:.2f} x fp32 (native bf16)"))
        else:
            rows.append((f"{name}: torch bf16", "skipped", "no native bf16 on this CPU"))
        onnx = median_seconds(onnx_pass, args.repeats)
        with torch.inference_mode():
            ref = model.encode_audio(torch.from_numpy(wins)).numpy()
        diff = float(np.abs(session.run(None, {"waveform": wins})[0] - ref).max())
        rows.append(
            (
                f"{name}: onnxruntime fp32",
                f"{len(wins) / onnx:.2f} windows/s",
                f"{fp32 / onnx:.2f} x torch fp32; max |difference| {diff:.1e}",
            )
        )
        for engine in ("onnxruntime int8", "torch int8"):
            for keep in (int(x) for x in args.float_layers.split(",")):
                label = f"{name}: {engine}, {keep} float32 conv{'s' if keep > 1 else ''}"
                try:  # random weights can fail the int8 check
                    if engine == "torch int8":
                        model8 = calibrate_int8(model, played.items(), float_layers=keep)
                        timed = partial(run_torch, int8_audio_encoder(model8), wins, b)
                        compared: tuple[dict, dict] = ({"model": model8}, {"model": model8, "precision": "int8"})
                    else:
                        out8 = export_onnx(
                            model, Path(tempfile.mkdtemp()) / "int8", quantize="int8", calibration=played.items(), float_layers=keep
                        )
                        timed = partial(
                            run_onnx, ort.InferenceSession(str(out8 / "audio.onnx"), opts, providers=["CPUExecutionProvider"]), wins, b
                        )
                        compared = ({"model": out, "engine": "onnxruntime"}, {"model": out8, "engine": "onnxruntime"})
                except RuntimeError as err:
                    rows.append((label, "refused", str(err)))
                    continue
                q = median_seconds(timed, args.repeats)
                ratios = [f"{fp32 / q:.2f} x torch fp32", f"{onnx / q:.2f} x onnxruntime fp32"]  # its own engine's fp32 first
                rows.append((label, f"{len(wins) / q:.2f} windows/s", ", ".join(ratios if engine == "torch int8" else ratios[::-1])))
                if args.accuracy_clips and not name.startswith("preset:"):
                    rows += int8_accuracy(label, *compared, args.accuracy_clips)
    print_table(rows)


def int8_accuracy(label: str, fp32: dict, int8: dict, n: int) -> list[tuple[str, str, str]]:
    """Clip vectors of an int8 model against its float32 one (``CLAPEmbedder`` parameters each), and
    zero-shot naming by each, on user-played clips other than the calibration's (the bundled model's
    17 instruments)."""
    from skclap import CLAPEmbedder
    from skclap.datasets import INSTRUMENTS, instrument_prompts, make_played_set

    test = make_played_set(n, seed=12)
    names = [i.name for i in INSTRUMENTS]
    prompts = [instrument_prompts(x) for x in names]

    def embed(params: dict) -> tuple[np.ndarray, float]:
        audio = CLAPEmbedder(**params, cache=False, progress=False).fit_transform(test.items())
        text = CLAPEmbedder(**params, modality="text").fit_transform([p for ps in prompts for p in ps])
        # each instrument's prompts averaged, as the zero-shot classifier does
        bounds = np.cumsum([0, *map(len, prompts)])
        classes = np.stack([text[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
        classes /= np.linalg.norm(classes, axis=1, keepdims=True)
        return audio, float(np.mean(np.asarray(names)[(audio @ classes.T).argmax(axis=1)] == np.asarray(test.labels)))

    a, acc_a = embed(fp32)
    b, acc_b = embed(int8)
    cos = (a * b).sum(axis=1)
    return [
        (f"{label}: clip cosine to fp32", f"min {cos.min():.4f}, mean {cos.mean():.4f}", f"{n} user-played clips (TimGM6mb, seed 12)"),
        (f"{label}: zero-shot naming, fp32 / int8", f"{acc_a:.1%} / {acc_b:.1%}", f"{acc_b - acc_a:+.1%}; chance {1 / len(names):.1%}"),
    ]


if __name__ == "__main__":
    main()
