"""skclap embed --engine ray: a local Ray cluster (this machine's CPUs) writes the single-process
output; a killed driver resumes from the shards it lacks; a killed actor has its shard redone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from skclap import embed_collection

pytest.importorskip("ray")

SHARD = 2


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """40 user-played clips (0.5-10 s, 16-48 kHz, FLAC) and one file that is no audio."""
    from skclap.datasets import make_played_set

    folder = tmp_path_factory.mktemp("sounds")
    for i, (wave, rate) in enumerate(make_played_set(40, seed=4).items()):
        sf.write(folder / f"clip-{i:02d}.flac", wave, rate)
    (folder / "clip-99.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    return folder


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "emb"
    embed_collection(inputs, out, "skclap-instruments", shard_size=SHARD, windows=True, progress=False, device="cpu")
    return out


def _command(inputs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "skclap.embed", str(inputs), "--out", str(out), "--model", "skclap-instruments"] + [
        "--shard-size",
        str(SHARD),
        "--windows",
        "--no-progress",
        "--engine",
        "ray",
    ]


def _env(tag: Path) -> dict[str, str]:
    """A local cluster whatever the shell has; every process of it (Ray's workers inherit the
    driver's environment) marked as this test's."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "SKCLAP_TEST_RUN": str(tag)}


def _same_collection(a: Path, b: Path) -> None:
    left, right = pd.read_parquet(a / "embeddings"), pd.read_parquet(b / "embeddings")
    assert list(left["path"]) == list(right["path"]) and right["path"].is_unique
    assert np.abs(np.stack(left["embedding"]) - np.stack(right["embedding"])).max() <= 1e-6
    for column in ("duration", "sample_rate", "n_windows"):
        assert list(left[column]) == list(right[column])
    lw, rw = pd.read_parquet(a / "windows"), pd.read_parquet(b / "windows")
    assert list(lw["path"]) == list(rw["path"]) and np.abs(np.stack(lw["embedding"]) - np.stack(rw["embedding"])).max() <= 1e-6
    assert pd.read_csv(a / "errors.csv").equals(pd.read_csv(b / "errors.csv"))


def _shards_done(out: Path) -> set[str]:
    return {p.name for p in (out / "embeddings").glob("part-*.parquet")} if (out / "embeddings").is_dir() else set()


def _wait_for(what, timeout: float = 120.0):  # noqa: ANN001, ANN202
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what.__doc__}")


def test_ray_writes_the_single_process_collection(inputs, single, tmp_path):
    out = tmp_path / "emb"
    done = subprocess.run(_command(inputs, out), capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "embedded 40 files into 21 shards" in done.stdout and "1 unreadable files skipped" in done.stdout
    _same_collection(single, out)
    assert "clip-99.wav" in pd.read_csv(out / "errors.csv")["path"].iloc[0]


def test_a_killed_driver_resumes_from_the_shards_it_lacks(inputs, single, tmp_path):
    """SIGKILL of the driver and its local cluster once a shard is written; the rerun writes only the
    missing shards (the finished ones keep their files) and gives the uninterrupted output."""
    out = tmp_path / "emb"
    run = subprocess.Popen(
        _command(inputs, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(tmp_path), start_new_session=True
    )
    try:

        def first_shard():
            """a shard written"""
            return _shards_done(out)

        _wait_for(first_shard)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()

    def cluster_gone():
        """the killed run's actors gone (they notice their driver's death, and stop)"""
        return not _actor_pids(tmp_path)

    _wait_for(cluster_gone)
    kept = {name: (out / "embeddings" / name).stat().st_mtime_ns for name in _shards_done(out)}
    assert 0 < len(kept) < 21  # killed part-way: the rerun has shards to skip and shards to write
    again = subprocess.run(_command(inputs, out), capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"({len(kept)} already done)" in again.stdout
    assert {name: (out / "embeddings" / name).stat().st_mtime_ns for name in kept} == kept  # not rewritten
    _same_collection(single, out)


def _actor_pids(tag: Path) -> list[int]:
    """The model actors of this test's run (by the mark in their environment)."""
    mark = f"SKCLAP_TEST_RUN={tag}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"_ShardEmbedder" in (proc / "cmdline").read_bytes() and mark in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_a_killed_actor_has_its_shard_redone(inputs, single, tmp_path):
    """SIGKILL of the model's actor mid-run: Ray restarts it and retries its shard; the run
    completes with every file once."""
    out = tmp_path / "emb"
    run = subprocess.Popen(
        _command(inputs, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path), start_new_session=True
    )
    try:

        def working_actor():
            """an actor that has written a shard"""
            return _shards_done(out) and _actor_pids(tmp_path)

        victims = _wait_for(working_actor)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        at_kill = len(_shards_done(out))
        stdout, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert 0 < at_kill < 21  # killed part-way through the run
    assert run.returncode == 0, stderr[-3000:]
    assert "complete" in stdout
    _same_collection(single, out)


def test_actors_that_leave_no_cpu_for_decoding_are_refused(inputs, tmp_path):
    """Actors reserving every CPU of the cluster would leave the decoding tasks unscheduled (a run
    that never ends): refused, naming the options."""
    from skclap.embed_ray import RayOptions

    with pytest.raises(ValueError, match="--ray-actors"):
        embed_collection(
            inputs, tmp_path / "emb", "skclap-instruments", shard_size=SHARD, progress=False, device="cpu",
            engine="ray", ray=RayOptions(actors=2, cpus_per_actor=1.0),
        )  # fmt: skip


def test_a_decoding_task_reads_a_shard_as_the_single_process_does(inputs, tmp_path):
    """The CPU stage's output, without a cluster: each file's windows as the loop reads them, an
    unreadable file's error naming it by its place in the shard, and None for a file long enough
    to be streamed (the actor reads it)."""
    from skclap.audio import STREAM_SECONDS
    from skclap.batching import WindowPlan, item_windows
    from skclap.checkpoints import resolve_model
    from skclap.embed_ray import _decode_shard

    plan = WindowPlan.of(resolve_model("skclap-instruments", "cpu"))
    long_file = tmp_path / "long.flac"
    sf.write(long_file, np.zeros(int((STREAM_SECONDS + 1) * 8000), np.float32), 8000)
    good, bad = inputs / "clip-03.flac", inputs / "clip-99.wav"
    got = _decode_shard({"shard": 7, "paths": [str(good), str(bad), str(long_file)]}, plan)
    assert got["shard"] == 7
    windows, error, streamed = got["decoded"].items
    np.testing.assert_array_equal(windows, next(iter(item_windows(str(good), 0, plan))))
    assert isinstance(error, Exception) and str(error).startswith(f"item 1 ({str(bad)!r})") and streamed is None
