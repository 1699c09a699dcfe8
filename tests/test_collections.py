"""Collections at scale: skclap embed (sharded, resumable, fault-tolerant, many processes), search
(exact and faiss), CLAP scores, and precision chosen by hardware."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import skclap.devices as devices
from skclap import CLAPEmbedder, CLAPModel, build_index, clap_score, embed_collection, read_embeddings, search
from skclap.cli import main as cli
from skclap.devices import resolve_precision
from skclap.embed import main as embed_main
from skclap.retrieval import EmbeddingMatrix, exact_topk

from .helpers import one_thread

RATE = 16000
GOOD = {  # name: (format, rate, seconds, frequency)
    "a/low.wav": ("WAV", 16000, 1.5, 220.0),
    "a/mid.flac": ("FLAC", 44100, 2.5, 880.0),
    "b/high.ogg": ("OGG", 48000, 0.8, 3000.0),
    "b/deep/sweep.mp3": ("MP3", 44100, 3.2, 500.0),
    "c/long.wav": ("WAV", 22050, 4.3, 1500.0),
}
BAD = {"bad/garbage.wav": "AudioError", "bad/zero.flac": "AudioError", "bad/silent_empty.wav": "AudioError", "bad/nan.wav": "AudioError"}


def write_collection(root: Path) -> Path:
    for name, (fmt, rate, seconds, freq) in GOOD.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(rate * seconds)) / rate
        sf.write(path, (0.4 * np.sin(2 * np.pi * freq * t * (1 + 0.1 * t))).astype(np.float32), rate, format=fmt)
    (root / "bad").mkdir(parents=True, exist_ok=True)
    (root / "bad/garbage.wav").write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    (root / "bad/zero.flac").write_bytes(b"")
    sf.write(root / "bad/silent_empty.wav", np.zeros(0, np.float32), 16000)
    sf.write(root / "bad/nan.wav", np.full(800, np.nan, np.float32), 16000, subtype="FLOAT")
    (root / "notes.txt").write_text("not audio: ignored by the folder scan")
    return root


@pytest.fixture()
def collection(tmp_path) -> Path:
    return write_collection(tmp_path / "collection")


def test_embed_folder_skips_bad_files_and_matches_the_embedder(collection, tiny_model_dir, tmp_path):
    out = tmp_path / "emb"
    summary = embed_collection(collection, out, str(tiny_model_dir), shard_size=3, windows=True, progress=False, device="cpu")
    assert summary.complete and summary.errors == len(BAD) and summary.embedded == len(GOOD)
    frame = pd.read_parquet(out / "embeddings")  # readable in one line, every shard at once
    assert len(frame) == len(GOOD)
    assert {"path", "duration", "sample_rate", "n_windows", "embedding"} <= set(frame.columns)
    errors = pd.read_csv(out / "errors.csv")
    assert sorted(Path(p).relative_to(collection).as_posix() for p in errors["path"]) == sorted(BAD)
    assert set(errors["error"]) == {"AudioError"} and errors["message"].str.len().min() > 10

    df = read_embeddings(out)
    paths = [str((collection / n).absolute()) for n in GOOD]
    assert sorted(df["path"]) == sorted(paths)
    expected = CLAPEmbedder(model=str(tiny_model_dir), progress=False, device="cpu", cache=False).fit_transform(list(df["path"]))
    np.testing.assert_allclose(np.stack(df["embedding"]), expected, atol=1e-6)
    info = {str((collection / n).absolute()): v for n, v in GOOD.items()}
    for _, row in df.iterrows():
        fmt, rate, seconds, _ = info[row["path"]]
        assert row["sample_rate"] == rate and row["duration"] == pytest.approx(seconds, abs=0.06)
        assert row["n_windows"] == max(1, int(np.ceil(seconds - 1e-9)))  # tiny: 1 s windows
    wins = pd.read_parquet(out / "windows")
    long = wins[wins["path"].str.endswith("long.wav")].sort_values("window")
    assert list(long["window"]) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(long["start"], [0, 1, 2, 3, 3.3], atol=1e-6)
    np.testing.assert_allclose(long["end"] - long["start"], 1.0)
    matrix = read_embeddings(out, matrix=True)
    assert isinstance(matrix, EmbeddingMatrix) and matrix.shape == (len(GOOD), 64)
    np.testing.assert_array_equal(np.asarray(matrix), np.stack(df["embedding"]))
    meta = json.loads((out / "embeddings.json").read_text())
    assert meta["n_embedded"] == len(GOOD) and meta["n_errors"] == len(BAD) and len(meta["shards"]) == 3
    assert meta["settings"]["precision"] == "float32" and meta["fingerprint"]


def test_manifest_metadata_is_carried_and_raise_mode_names_the_file(collection, tiny_model_dir, tmp_path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"audio": ["collection/" + n for n in GOOD], "label": list("vwxyz"), "split": [1, 1, 2, 2, 3]}).to_csv(
        manifest, index=False
    )
    out = tmp_path / "emb"
    embed_collection(manifest, out, str(tiny_model_dir), shard_size=2, progress=False, device="cpu")
    df = read_embeddings(out)
    assert list(df["label"]) == list("vwxyz") and list(df["split"]) == [1, 1, 2, 2, 3]
    with pytest.raises(Exception, match="garbage.wav"):
        embed_collection(collection, tmp_path / "strict", str(tiny_model_dir), on_error="raise", progress=False, device="cpu")
    (collection / "a" / "extra.wav").write_bytes((collection / "a" / "low.wav").read_bytes())
    embed_collection(collection, tmp_path / "e2", str(tiny_model_dir), progress=False, device="cpu")
    (collection / "a" / "extra2.wav").write_bytes((collection / "a" / "low.wav").read_bytes())
    with pytest.raises(ValueError, match="other inputs_digest, n_inputs"):
        embed_collection(collection, tmp_path / "e2", str(tiny_model_dir), progress=False, device="cpu")


def test_cli_embed_search_and_score(collection, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "emb"
    assert (
        cli(
            [
                "embed",
                str(collection),
                "--out",
                str(out),
                "--model",
                str(tiny_model_dir),
                "--shard-size",
                "2",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"{len(BAD)} unreadable files skipped" in printed and "errors.csv" in printed
    like = collection / "a" / "mid.flac"
    assert cli(["search", str(out), "--like", str(like), "-k", "3", "--csv", str(tmp_path / "hits.csv")]) == 0
    hits = pd.read_csv(tmp_path / "hits.csv")
    assert list(hits["rank"]) == [1, 2, 3] and hits["path"][0] == str(like.absolute())
    assert hits["score"][0] == pytest.approx(1.0, abs=1e-5) and hits["score"].is_monotonic_decreasing
    assert cli(["search", str(out), "a high whistle", "-k", "2"]) == 0
    assert "rank" in capsys.readouterr().out
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"path": [str(collection / n) for n in list(GOOD)[:3]], "caption": ["low hum", "a tone", "a whistle"]}).to_csv(
        pairs, index=False
    )
    assert (
        cli(["score", str(pairs), "--model", str(tiny_model_dir), "--out", str(tmp_path / "s.csv"), "--no-progress", "--device", "cpu"])
        == 0
    )
    written = pd.read_csv(tmp_path / "s.csv")
    assert list(written.columns) == ["path", "caption", "clap_score"]  # the pairs' columns as given, their scores
    assert list(written["path"]) == [str(collection / n) for n in list(GOOD)[:3]]
    scores = written["clap_score"].to_numpy()
    direct = clap_score(
        [str(collection / n) for n in list(GOOD)[:3]], ["low hum", "a tone", "a whistle"], model=str(tiny_model_dir), device="cpu"
    )
    np.testing.assert_allclose(scores, direct.scores, atol=1e-6)
    assert f"CLAP score {direct.mean:.4f}" in capsys.readouterr().out


def test_search_like_a_file_of_the_collection_can_leave_it_out(collection, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "emb"
    embed_collection(collection, out, str(tiny_model_dir), progress=False, device="cpu")
    like = collection / "a" / "mid.flac"
    with_self = search(out, like=str(like), k=3, device="cpu")
    without = search(out, like=str(like), k=3, device="cpu", exclude_self=True)
    assert with_self["path"][0] == str(like.absolute()) and str(like.absolute()) not in set(without["path"])
    assert list(without["path"]) == list(search(out, like=str(like), k=4, device="cpu")["path"][1:])  # the next three
    assert list(without["rank"]) == [1, 2, 3]
    both = search(out, like=[str(like), str(collection / "a" / "low.wav")], k=2, device="cpu", exclude_self=True)
    assert len(both) == 4 and not (both["query"] == both["path"]).any()
    assert cli(["search", str(out), "--like", str(like), "-k", "2", "--exclude-self", "--csv", str(tmp_path / "h.csv")]) == 0
    assert str(like.absolute()) not in set(pd.read_csv(tmp_path / "h.csv")["path"])


def test_errors_csv_names_files_not_their_place_in_a_shard(collection, tiny_model_dir, tmp_path):
    out = tmp_path / "emb"
    embed_collection(collection, out, str(tiny_model_dir), shard_size=3, progress=False, device="cpu")
    errors = pd.read_csv(out / "errors.csv")
    assert len(errors) == len(BAD)
    # "item 2 (...)" would be the file's place in its shard of three, which is no place in the collection
    assert not errors["message"].str.contains(r"^item \d", regex=True).any(), list(errors["message"])
    assert all(Path(p).name in m or "empty" in m or "no samples" in m for p, m in zip(errors["path"], errors["message"]))


def test_embed_help_and_docs_name_exactly_the_files_written(collection, tiny_model_dir, tmp_path, capsys):
    import re

    out = tmp_path / "emb"
    embed_collection(collection, out, str(tiny_model_dir), shard_size=3, windows=True, progress=False, device="cpu")
    written = {re.sub(r"part-\d+", "part-*", p.relative_to(out).as_posix()) for p in out.rglob("*") if p.is_file()}
    assert written == {
        "embeddings/part-*.parquet",
        "matrix/part-*.npy",
        "windows/part-*.parquet",
        "errors/part-*.csv",
        "plan.json",
        "embeddings.json",
        "errors.csv",
    }
    with pytest.raises(SystemExit):
        cli(["embed", "--help"])
    helped = capsys.readouterr().out
    named = set(re.findall(r"^\s+([\w/*.-]+\.(?:parquet|npy|csv|json))\s", helped, flags=re.M))
    assert named == written, helped
    docs = (Path(__file__).resolve().parents[1] / "docs" / "collections.md").read_text()
    table = {m.replace("part-K", "part-*") for m in re.findall(r"^\| `([\w/.-]+)` \|", docs, flags=re.M)}
    assert table == written | {"index.faiss", "collection.lance/"}  # and what skclap index and --format lance add


def test_clap_score_is_the_cosine_of_each_pair(tiny_model_dir):
    waves = [(np.sin(2 * np.pi * f * np.arange(RATE) / RATE) * 0.3).astype(np.float32) for f in (200, 900, 2500)]
    texts = ["a low tone", "a middle tone", "a high tone"]
    got = clap_score(waves, texts, model=str(tiny_model_dir), sample_rate=RATE, device="cpu")
    a = CLAPEmbedder(model=str(tiny_model_dir), sample_rate=RATE, progress=False, device="cpu", cache=False).fit_transform(waves)
    t = CLAPEmbedder(model=str(tiny_model_dir), modality="text", progress=False, device="cpu").fit_transform(texts)
    np.testing.assert_allclose(got.scores, (a * t).sum(1), atol=1e-6)
    assert got.mean == pytest.approx(float((a * t).sum(1).mean()), abs=1e-6)
    again = clap_score(waves[::-1], texts[::-1], model=str(tiny_model_dir), sample_rate=RATE, device="cpu")
    np.testing.assert_allclose(again.scores[::-1], got.scores, atol=1e-6)  # no dependence on order or batch
    with pytest.raises(ValueError, match="3 audio items but 2 texts"):
        clap_score(waves, texts[:2], model=str(tiny_model_dir), sample_rate=RATE)


def test_exact_search_is_brute_force_over_blocks():
    rng = np.random.default_rng(0)
    shards = [rng.standard_normal((n, 16)).astype(np.float32) for n in (7, 1, 12)]
    matrix = EmbeddingMatrix(shards)
    q = rng.standard_normal((3, 16)).astype(np.float32)
    scores, ids = exact_topk(matrix, q, k=5, block=4)
    full = np.concatenate(shards) @ q.T
    for j in range(3):
        best = np.argsort(-full[:, j], kind="stable")[:5]
        np.testing.assert_array_equal(ids[j], best)
        np.testing.assert_allclose(scores[j], full[best, j], rtol=1e-6)


def test_faiss_index_finds_what_exact_search_finds(collection, tiny_model_dir, tmp_path):
    # faiss-cpu is a test dependency (README's set-up installs it): missing, this test fails, not skips
    out = tmp_path / "emb"
    embed_collection(collection, out, str(tiny_model_dir), shard_size=2, progress=False, device="cpu")
    exact = search(out, like=str(collection / "c" / "long.wav"), k=3, index="exact", device="cpu")
    build_index(out, nlist=1)
    approx = search(out, like=str(collection / "c" / "long.wav"), k=3, index="faiss", device="cpu")
    assert list(approx["path"]) == list(exact["path"])
    np.testing.assert_allclose(approx["score"], exact["score"], atol=1e-5)
    auto = search(out, like=str(collection / "c" / "long.wav"), k=3, device="cpu")  # "auto" takes the index
    assert list(auto["path"]) == list(exact["path"])


def _files(root: Path, n: int, seconds: float = 6.0) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    for i in range(n):
        t = np.arange(int(RATE * seconds)) / RATE
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.02 * rng.standard_normal(len(t))
        sf.write(root / f"clip{i:03d}.wav", x.astype(np.float32), RATE)
    return root


def _outputs(out: Path) -> dict:
    tables = {p.name: pd.read_parquet(p) for p in sorted(out.glob("embeddings/part-*.parquet"))}
    return {name: (list(t["path"]), np.stack(t["embedding"])) for name, t in tables.items()}


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("small")
    CLAPModel.from_preset("small", seed=0).save_pretrained(d)
    return d


@pytest.mark.multiprocess
def test_killed_run_resumes_to_identical_output(tmp_path, small_model_dir):
    """SIGKILL while shards are being written, then the same command again."""
    data = _files(tmp_path / "data", 60)
    argv = [str(data), "--model", str(small_model_dir), "--shard-size", "4", "--no-progress", "--device", "cpu", "--decode-workers", "1"]
    cmd = [sys.executable, "-m", "skclap.embed", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with one_thread():  # the uninterrupted run needs no process of its own
        assert embed_main([*argv, "--out", str(tmp_path / "straight")]) == 0
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = tmp_path / "killed" / "embeddings" / "part-00002.parquet"
    deadline = time.time() + 120
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "embeddings.json").exists(), "the run finished before it could be killed"
    done_before = sorted(p.name for p in (tmp_path / "killed").glob("embeddings/part-*.parquet"))
    assert 3 <= len(done_before) < 15
    resumed = subprocess.run([*cmd, "--out", str(tmp_path / "killed")], check=True, env=env, capture_output=True, text=True)
    assert f"({len(done_before)} already done)" in resumed.stdout
    a, b = _outputs(tmp_path / "straight"), _outputs(tmp_path / "killed")
    assert a.keys() == b.keys() and len(a) == 15
    for name in a:
        assert a[name][0] == b[name][0]
        np.testing.assert_array_equal(a[name][1], b[name][1])
    assert not list((tmp_path / "killed").glob("*/.tmp-*"))


@pytest.mark.multiprocess
def test_torchrun_two_processes_give_the_output_of_one(tmp_path, small_model_dir):
    data = _files(tmp_path / "data", 10, seconds=2.5)
    common = [str(data), "--model", str(small_model_dir), "--shard-size", "3", "--no-progress", "--device", "cpu"]
    embed_collection(data, tmp_path / "one", str(small_model_dir), shard_size=3, progress=False, device="cpu")
    torchrun = shutil.which("torchrun") or pytest.skip("torchrun not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "skclap.embed", *common, "--out", str(tmp_path / "two")],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    a, b = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    assert a.keys() == b.keys() and len(a) == 4
    for name in a:
        assert a[name][0] == b[name][0]
        np.testing.assert_allclose(a[name][1], b[name][1], atol=1e-6)
    assert json.loads((tmp_path / "two" / "embeddings.json").read_text())["n_embedded"] == 10


def test_precision_is_chosen_by_hardware(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision(None, cpu) == "fp32" and resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(ValueError, match="no native bfloat16"):
        resolve_precision("bf16", cpu)
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision(None, cpu) == "fp32"  # fp32 stays the default on a CPU
    assert resolve_precision("auto", cpu) == "bf16" and resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision(None, cuda) == "fp16" and resolve_precision("auto", cuda) == "fp16"
    assert resolve_precision("fp32", cuda) == "fp32"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int4", cpu)
    assert resolve_precision("int8", cpu) == "int8"  # a calibrated model's (skclap.int8)
    with pytest.raises(ValueError, match="int8 inference runs on a CPU"):
        resolve_precision("int8", cuda)


@pytest.mark.parametrize(
    ("flags", "aten", "onednn", "native"),
    [
        (True, "AVX512", None, True),
        (True, "AVX512", "AVX512_CORE_AMX", True),
        (True, "AVX512", "avx512_core_bf16", True),
        (True, "AVX512", "ALL", True),
        (False, "AVX512", None, False),  # the CPU itself lacks bf16
        (True, "AVX2", None, False),  # ATEN_CPU_CAPABILITY=avx2
        (True, "AVX512", "AVX2", False),  # oneDNN capped below AVX-512
        (True, "AVX512", "AVX512_CORE_VNNI", False),  # AVX-512 without its bf16 instructions
    ],
)
def test_native_bf16_respects_instruction_set_caps(monkeypatch, flags, aten, onednn, native):
    monkeypatch.setattr(devices, "_cpu_flags_have_bf16", lambda: flags)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: aten)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if onednn is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn)
    devices.cpu_has_native_bf16.cache_clear()
    try:
        assert devices.cpu_has_native_bf16() is native
        assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    finally:
        devices.cpu_has_native_bf16.cache_clear()


@pytest.mark.skipif(not devices.cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_on_a_native_bf16_cpu_is_close_to_fp32_and_cached_apart(tiny_model, tmp_path):
    from skclap.cache import DiskCache

    waves = [(np.sin(2 * np.pi * f * np.arange(RATE) / RATE) * 0.3).astype(np.float32) for f in (200, 900, 2500)]
    cache = DiskCache(tmp_path / "c")
    fp32 = CLAPEmbedder(model=tiny_model, sample_rate=RATE, progress=False, device="cpu", cache=str(tmp_path / "c")).fit_transform(waves)
    bf16 = CLAPEmbedder(
        model=tiny_model, sample_rate=RATE, progress=False, device="cpu", cache=str(tmp_path / "c"), precision="bf16"
    ).fit_transform(waves)
    assert len(cache) == 6  # precision is part of the key
    assert not np.array_equal(fp32, bf16) and (fp32 * bf16).sum(1).min() > 0.99
