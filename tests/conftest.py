"""Shared fixtures: tiny models saved locally, a local BERT, the msclap reference classes, audio files."""

from __future__ import annotations

import os

# The tests build every model they use; nothing may wait on the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from skclap import CLAPModel
from skclap.models.tokenizer import basic_vocab

from . import reference
from .helpers import large_files
from .local_hub import gpt2_vocab, roberta_vocab, save_gpt2_tokenizer, small_clap, write_bpe_files

if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest-xdist: one thread per worker, and per process it starts
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)


_CREATED: list[Path] = []


def _session_dir(variable: str, prefix: str) -> Path:
    """A folder for a checkpoint the tests load by path. Its path is known at collection time (the
    estimator checks are parametrised with it) and inherited through the environment by the
    session's other processes (pytest-xdist workers, spawned ranks, command-line runs); the files
    are written once by the session fixture below, and the process that made the folder removes it
    when its session ends."""
    if variable not in os.environ:
        os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
        _CREATED.append(Path(os.environ[variable]))
    return Path(os.environ[variable])


def pytest_sessionfinish(session, exitstatus):
    for folder in _CREATED:  # under pytest-xdist, the controller: after every worker is done
        shutil.rmtree(folder, ignore_errors=True)
        Path(f"{folder}.lock").unlink(missing_ok=True)


#: A tiny random CLAP checkpoint (written by ``checkpoints_on_disk``).
TINY_DIR = _session_dir("SKCLAP_TEST_TINY_DIR", "skclap-tiny-")


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def drifting_tone(seconds: float, seed: int, rate: int) -> np.ndarray:
    """Noise under a slowly rising tone whose pitch depends on ``seed``: clips with different spectra."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    tone = np.sin(2 * np.pi * (300 + 450 * seed) * t * (1 + 0.04 * t))
    return (0.2 * tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def save_small_laion_clap(out: Path) -> Path:
    """A small random ClapModel (HTSAT + RoBERTa) with its processor, saved like a hub checkpoint.
    Its text tower tells captions apart (``small_clap``'s unit-gain weights), as a trained one does:
    with the initialiser's it maps every caption to nearly one vector, and a run with it frozen
    cannot learn."""
    model, processor = small_clap(fused=False)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    write_bpe_files(out, roberta_vocab())
    return out


#: The LAION backend's small checkpoint (written by ``checkpoints_on_disk``).
LAION_DIR = _session_dir("SKCLAP_TEST_LAION_DIR", "skclap-laion-")


@pytest.fixture(scope="session", autouse=True)
def checkpoints_on_disk():
    """Write the small checkpoints the tests load by path, once for all the session's processes (a
    file lock: pytest-xdist workers start together; ``ready`` is written last)."""
    from filelock import FileLock

    with FileLock(f"{TINY_DIR}.lock"):
        if not (TINY_DIR / "ready").exists():
            CLAPModel.from_preset("tiny", seed=0).save_pretrained(TINY_DIR)
            save_small_laion_clap(LAION_DIR)
            (TINY_DIR / "ready").touch()


@pytest.fixture(scope="module")
def large_dir(tmp_path_factory) -> Iterator[Path]:
    """Where a module writes its full-size checkpoints (``helpers.large_files``); removed after it."""
    with large_files(tmp_path_factory, "large", 2 << 30) as root:
        yield root


@pytest.fixture(scope="session")
def tiny_model() -> CLAPModel:
    return CLAPModel.from_preset("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    return TINY_DIR


@pytest.fixture(scope="session")
def local_bert_dir(tmp_path_factory) -> Path:
    """A small randomly initialised BERT with its WordPiece vocab.txt, saved like a hub model."""
    from transformers import BertConfig, BertModel, BertTokenizer

    out = tmp_path_factory.mktemp("bert_local")
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(basic_vocab()) + "\n")
    config = BertConfig(
        vocab_size=len(basic_vocab()),
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=128,
    )
    torch.manual_seed(1)
    BertModel(config).save_pretrained(out)
    BertTokenizer(vocab_file=str(vocab)).save_pretrained(out)
    return out


def save_small_gpt2(out: Path) -> Path:
    """A small random GPT-2 with a byte-level BPE vocabulary laid out like GPT-2's: ``!`` is id 0
    (msclap 2023's pad token) and ``<|endoftext|>`` the last id. The folder name contains "gpt",
    which is how the reference code recognises a GPT text encoder."""
    from transformers import GPT2Config, GPT2Model

    vocab = gpt2_vocab()
    save_gpt2_tokenizer(out, config=False)
    cfg = GPT2Config(
        vocab_size=len(vocab), n_positions=128, n_embd=48, n_layer=2, n_head=4, bos_token_id=len(vocab) - 1, eos_token_id=len(vocab) - 1
    )
    with torch.random.fork_rng():
        torch.manual_seed(3)
        GPT2Model(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def local_gpt2_dir(tmp_path_factory) -> Path:
    return save_small_gpt2(tmp_path_factory.mktemp("text") / "gpt2_local")


@pytest.fixture(scope="session")
def msclap_models():
    """The reference code's model modules (``msclap.models``), imported without its torchaudio wrapper."""
    return reference.msclap_models()


@pytest.fixture(scope="session")
def laion_clap_model_module():
    """laion_clap's model module (``laion_clap.clap_module.model``)."""
    return reference.laion_clap_model_module()


def calibrate_batchnorm(module: torch.nn.Module, run, gen: torch.Generator) -> None:
    """Running statistics of every batch norm measured on real inputs (``run()`` does a forward
    pass of real windows in train mode), then perturbed by a few per cent; LayerNorms get random
    affine parameters. A deep CNN at random weights with arbitrary statistics maps every input to
    nearly the same vector; calibrated, it separates them, so a parity test can fail."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batch
    module.train()
    with torch.no_grad():
        run()
        for m, momentum in saved:
            m.momentum = momentum
            m.running_mean.add_(0.05 * m.running_var.sqrt() * torch.randn(m.num_features, generator=gen))
            m.running_var.mul_(1 + 0.05 * torch.rand(m.num_features, generator=gen))
        for m in module.modules():
            if isinstance(m, torch.nn.LayerNorm):
                # log-normal gains: embedding norms then differ between inputs, as trained ones do
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen).exp())
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    module.eval()


def realistic_statistics(module: torch.nn.Module, logmel: torch.Tensor, gen: torch.Generator) -> None:
    """Make a randomly initialised network discriminate between inputs, so that a parity test
    can fail: the input batch norm gets the statistics of real log-mel frames (slightly perturbed),
    other batch norms and every LayerNorm random affine parameters."""
    norms = [m for m in module.modules() if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm))]
    with torch.no_grad():
        for m in norms:
            n = m.weight.shape[0]
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                if n == logmel.shape[-1]:  # per-mel-bin input normalisation
                    frames = logmel.reshape(-1, n)
                    m.running_mean.copy_(frames.mean(0) + 0.1 * torch.randn(n, generator=gen))
                    m.running_var.copy_(frames.var(0) * (1 + 0.1 * torch.rand(n, generator=gen)))
                else:
                    m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                    m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(n, generator=gen) * 0.1)


@pytest.fixture()
def wav_file(tmp_path) -> Path:
    path = tmp_path / "tone.wav"
    sf.write(path, sine(440, 1.0, 16000), 16000)
    return path


GTZAN_GENRES = ("classical", "metal", "pop")


def genre_clip(genre: str, k: int, rate: int = 22050, seconds: float = 1.5) -> np.ndarray:
    """Distinct, slightly varied sounds per class: a low tone, noise bursts, a high warbling tone."""
    rng = np.random.default_rng(1000 * GTZAN_GENRES.index(genre) + k)
    t = np.arange(int(rate * seconds)) / rate
    if genre == "classical":
        x = np.sin(2 * np.pi * rng.uniform(180, 260) * t)
    elif genre == "metal":
        x = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * rng.uniform(3, 6) * t) > 0)
    else:
        f = rng.uniform(1800, 2600)
        x = np.sin(2 * np.pi * f * t + 3 * np.sin(2 * np.pi * 6 * t))
    return (0.4 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="session")
def gtzan_dir(tmp_path_factory) -> Path:
    """A small labelled set in GTZAN's folder layout: genres/<genre>/<genre>.000NN.wav (22.05 kHz)."""
    root = tmp_path_factory.mktemp("gtzan")
    for genre in GTZAN_GENRES:
        (root / "genres" / genre).mkdir(parents=True)
        for k in range(10):
            sf.write(root / "genres" / genre / f"{genre}.{k:05d}.wav", genre_clip(genre, k), 22050)
    return root


def gtzan_files(root: Path) -> tuple[list[str], np.ndarray]:
    files = sorted((root / "genres").glob("*/*.wav"))
    return [str(f) for f in files], np.array([f.parent.name for f in files])


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> tuple[Path, Path]:
    """12 recordings (two 5 s ones, whose windows are searched), a corrupt file, a file that goes
    missing and one that is spoiled after embedding, and a symlink to a file outside the folder;
    embedded with windows (what the serve and search-service tests run on)."""
    import pandas as pd

    from skclap import embed_collection

    from .serve_fixtures import FAMILIES, RATE, render

    root = tmp_path_factory.mktemp("sounds")
    audio = root / "audio"
    audio.mkdir()
    rows = []
    for i, family in enumerate(FAMILIES * 2):
        seconds = 5.0 if i < 2 else 1.5
        path = audio / f"{family.replace(' ', '_')}-{i:02d}.wav"
        sf.write(path, render(family, i, seconds), RATE)
        rows.append({"path": str(path), "family": family, "take": f"take {i % 4}"})
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    rows.append({"path": str(audio / "broken.wav"), "family": "piano", "take": "take 0"})
    gone = audio / "gone.wav"
    sf.write(gone, render("organ", 99, 1.0), RATE)
    rows.append({"path": str(gone), "family": "organ", "take": "take 1"})
    spoiled = audio / "spoiled.wav"  # embedded, then overwritten with bytes that are not audio
    sf.write(spoiled, render("cello", 97, 1.0), RATE)
    rows.append({"path": str(spoiled), "family": "cello", "take": "take 3"})
    outside = root / "outside.wav"
    sf.write(outside, render("harp", 98, 1.0), RATE)
    (audio / "link.wav").symlink_to(outside)
    rows.append({"path": str(audio / "link.wav"), "family": "harp", "take": "take 2"})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    out = root / "emb"

    embed_collection(str(manifest), out, model=str(TINY_DIR), windows=True, shard_size=5, device="cpu", progress=False)
    gone.unlink()
    spoiled.write_bytes(b"RIFF....WAVE not any more")
    return out, outside
