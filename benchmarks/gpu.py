"""The GPU check, in one run: CUDA tests, fp16 against fp32 on the full-size models, embedding throughput.

    python benchmarks/gpu.py [--files 512] [--seconds 5] [--workers 1,4,8]

On a machine with CUDA (the lent GPU machine: see ``benchmarks/gpu.sh``, which installs the wheels
of ``benchmarks/gpu-wheels.txt`` and runs this), it prints one table:

- the suite's CUDA tests (``pytest -k cuda``): passed / failed / skipped;
- fp16 autocast against fp32 on the two full-size architectures (CNN14 + BERT-base and HTS-AT +
  GPT-2, random weights with batch-norm statistics measured on audio): the largest difference
  between normalised audio embeddings and the smallest cosine, over 16 clips;
- ``skclap embed`` files/s (wav files of ``--seconds`` s at 44.1 kHz, CNN14, fp16, batches of 32)
  with 1, 4 and 8 decode workers, and the GPU's mean utilisation during each run (NVML);
- the model-only rate on pre-decoded batches, and each embed rate as a fraction of it (the goal:
  decoding keeps the GPU fed, embed >= 90 % of the model-only rate).

Without CUDA it runs the same steps on the CPU with fewer, shorter files (a dry run: the figures
mean nothing, the script is checked), comparing bfloat16 with float32 where the CPU has native bf16.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def cuda_test_files() -> list[str]:
    """The test modules that hold CUDA tests (skipped elsewhere as "needs a CUDA device"). Only they
    are collected: the GPU machine has the imports of these, not of every module (notebooks, browser)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if "needs a CUDA device" in p.read_text())


def cuda_tests() -> str:
    """Run the suite's CUDA tests; their summary line."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", *cuda_test_files()],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped|deselected)", ln)]
    return lines[-1].strip("= ") if lines else f"pytest exited {proc.returncode}: {proc.stderr.strip()[-200:]}"


def clips(n: int, seconds: float, rate: int, seed: int = 0) -> list[np.ndarray]:
    """Tones with harmonics, noise and onsets: inputs a calibrated network tells apart."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    out = []
    for _ in range(n):
        f = rng.uniform(80, 2000)
        x = sum(rng.uniform(0.1, 0.5) / h * np.sin(2 * np.pi * f * h * t) for h in range(1, 5))
        x = x * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t)) + 0.05 * rng.standard_normal(len(t))
        out.append((0.3 * x / np.abs(x).max()).astype(np.float32))
    return out


def calibrated(preset: str, device: str, rate_clips: list[np.ndarray]):
    """A full-size model at random weights whose batch norms have statistics measured on audio
    (at the initialiser's statistics a deep CNN maps every input to nearly one vector)."""
    import torch

    from skclap import CLAPModel

    model = CLAPModel.from_preset(preset, seed=0)
    windows = torch.from_numpy(np.stack([c[: model.config.window_samples] for c in rate_clips]))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        model.encode_audio(windows)
    return model.eval().to(device)


def precision_rows(device: str, low: str) -> list[tuple[str, str, str]]:
    from skclap import CLAPEmbedder

    rows = []
    for preset in ("msclap-2022", "msclap-2023"):
        rate = 44100
        data = clips(16, 7.0, rate)
        model = calibrated(preset, device, data)
        kw = dict(model=model, sample_rate=rate, cache=False, progress=False, device=device)
        ref = CLAPEmbedder(**kw, precision="fp32").fit_transform(data)
        half = CLAPEmbedder(**kw, precision=low).fit_transform(data)
        cos = (ref * half).sum(axis=1)
        spread = 1 - float((ref @ ref.T)[np.triu_indices(len(ref), 1)].mean())
        rows.append(
            (
                f"{low} vs fp32, {preset} (16 clips)",
                f"max abs difference {np.abs(ref - half).max():.2e}, min cosine {cos.min():.5f}",
                f"clips' mean cosine distance {spread:.3f} (the scale of a real difference)",
            )
        )
        del model
    return rows


class Utilisation:
    """The GPU's mean utilisation while the block runs (NVML, sampled every 100 ms)."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._nvml = pynvml
        except Exception:  # no NVML (a CPU dry run): nothing sampled
            self._nvml = None

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append(int(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))

    def __enter__(self) -> Utilisation:
        if self._nvml is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    @property
    def mean(self) -> str:
        return f"{np.mean(self.samples):.0f} %" if self.samples else "n/a (no NVML)"


def throughput_rows(device: str, low: str, n_files: int, seconds: float, workers: list[int]) -> list[tuple[str, str, str]]:
    import soundfile as sf
    import torch

    from skclap import embed_collection
    from skclap.inference import embed_audio

    rate = 44100
    data = clips(16, seconds, rate)
    model = calibrated("msclap-2022", device, data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "audio"
        folder.mkdir()
        for i in range(n_files):
            sf.write(folder / f"clip{i:05d}.wav", data[i % len(data)], rate, subtype="PCM_16")
        # the model alone: the same inference loop on waveforms already decoded at the model's rate
        decoded = [data[i % len(data)] for i in range(n_files)]
        kw = dict(sample_rate=rate, batch_size=32, precision=low, progress=False, cache=None)
        embed_audio(model, decoded[:32], **kw)  # warm up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        embed_audio(model, decoded, **kw)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        model_rate = n_files / (time.perf_counter() - t)
        rows.append(("model only, pre-decoded waveforms", f"{model_rate:.0f} files/s", f"CNN14, {low}, batches of 32, {seconds:g} s clips"))
        # a first pass, not timed: kernels chosen and shapes seen once, as in a long run
        embed_collection(
            str(folder), Path(tmp) / "warm", model=model, decode_workers=workers[0], precision=low, device=device, progress=False
        )
        for w in workers:
            out = Path(tmp) / f"emb{w}"
            with Utilisation() as util:
                t = time.perf_counter()
                summary = embed_collection(
                    str(folder), out, model=model, decode_workers=w, batch_size=32, precision=low, device=device, progress=False
                )
                rate_w = n_files / (time.perf_counter() - t)
            assert summary.embedded == n_files and summary.errors == 0, summary
            rows.append(
                (
                    f"skclap embed, {w} decode worker{'s' if w > 1 else ''}",
                    f"{rate_w:.0f} files/s ({rate_w / model_rate:.0%} of the model-only rate)",
                    f"GPU utilisation {util.mean}",
                )
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=None, help="files for the throughput rows (default 512 on CUDA, 16 on a CPU)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", default="1,4,8")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import torch
    from _table import print_table

    from skclap.devices import cpu_has_native_bf16

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    low = "fp16" if cuda else ("bf16" if cpu_has_native_bf16() else "fp32")
    n_files = args.files or (512 if cuda else 16)
    name = torch.cuda.get_device_name(0) if cuda else "no CUDA: a dry run on the CPU, figures not meaningful"
    rows = [("device", name, f"torch {torch.__version__}")]
    rows.append(("CUDA tests (pytest -k cuda)", cuda_tests(), ""))
    rows += precision_rows(device, low)
    rows += throughput_rows(device, low, n_files, args.seconds, [int(w) for w in args.workers.split(",")])
    print_table(rows)


if __name__ == "__main__":
    main()
