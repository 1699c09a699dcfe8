"""Every registered name, end to end against a local hub: name -> download with the real
huggingface_hub client -> cache -> load -> embed; then offline from the cache; and the errors a
broken download gives (HTTP 500, a file cut short, a full disk).

The client runs in a fresh interpreter (``tests/hub_client.py``) because huggingface_hub reads
``HF_ENDPOINT`` when it is imported; the stand-ins and the hub are described in ``local_hub.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

import numpy as np
import pytest

from skclap.registry import PRETRAINED

from .helpers import large_files
from .local_hub import LocalHub, build_standins, sha256

pytestmark = pytest.mark.multiprocess  # each client is a fresh interpreter

ROOT = Path(__file__).resolve().parents[1]


#: What the module writes at most at once: the stand-ins (full-size checkpoints among them) and
#: one test's caches, which hold every registered name's files.
WRITES = 5 << 30


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Iterator[Path]:
    """Where the stand-ins and the clients' caches go (``large_files``: the module writes gigabytes).
    The full-disk test mounts a file system of its own."""
    with large_files(tmp_path_factory, "hub", WRITES) as root:
        yield root


@pytest.fixture
def home(scratch) -> Iterator[Path]:
    """A test's own directory under ``scratch``, removed after it (the clients' caches are large)."""
    path = Path(tempfile.mkdtemp(prefix="home-", dir=scratch))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def standins(scratch) -> dict[str, dict[str, Path]]:
    return build_standins(scratch / "standins")


@pytest.fixture
def no_hub() -> Iterator[str]:
    """The address of a port with no hub behind it, for this test alone: bound here and never listened
    on, so every connection to it is refused (a fixed port may have a server behind it on some machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def run_clients(
    *runs: tuple[str, Path, list[str]], offline: bool = False, check: Collection[str] = (), wait: bool = True
) -> dict[str, dict]:
    """Load and embed each run's names in a fresh interpreter whose Hugging Face client talks to its
    endpoint, with its caches under its home (empty at first); ``check``: the names to run
    ``check_model`` on too; ``wait=False``: the client's retries skip their back-off waits and report them
    (``hub_client --no-wait``). The runs go at once."""
    procs = []
    for endpoint, home, names in runs:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
        env.update(
            HF_ENDPOINT=endpoint,
            HF_HOME=str(home / "hf"),
            HF_HUB_CACHE=str(home / "hf" / "hub"),
            SKCLAP_HOME=str(home / "skclap"),
            DISABLE_SAFETENSORS_CONVERSION="1",  # transformers would ask an outside service to convert .bin repos
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_ETAG_TIMEOUT="30",
            HF_HUB_DOWNLOAD_TIMEOUT="30",
            OMP_NUM_THREADS="1",  # the runs share the cores
        )
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
        cmd = [
            sys.executable,
            "-m",
            "tests.hub_client",
            *names,
            *(f"--check={n}" for n in check if n in names),
            *([] if wait else ["--no-wait"]),
        ]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out: dict[str, dict] = {}
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=900)
            assert proc.returncode == 0, stderr[-3000:]
            out.update((r["name"], r) for r in map(json.loads, (line for line in stdout.splitlines() if line.startswith("{"))))
    finally:  # a failed or timed-out run leaves none of its siblings behind
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def run_client(endpoint: str, home: Path, names: list[str], check: Collection[str] = ()) -> dict[str, dict]:
    """The names loaded by two clients at once (halves of the list) sharing one cache."""
    return run_clients(*((endpoint, home, part) for part in (names[::2], names[1::2]) if part), check=check)


def test_every_registered_name_downloads_loads_and_embeds_then_works_offline(standins, home, no_hub):
    names = list(PRETRAINED)
    assert len(names) == 14
    transformers_repos = [name for name in names if PRETRAINED[name].format == "hf-clap"]
    # check_model on the repos whose health is asserted below, and on one name of each other format
    # (it must run on every backend; the random full-size stand-ins' reports are not asserted)
    one_per_format = {PRETRAINED[name].format: name for name in reversed(names)}
    with LocalHub(standins) as hub:
        first = run_client(hub.url, home, names, check={*transformers_repos, *one_per_format.values()})
        asked = {path for _, path in hub.requests}
    for name in names:
        row = first[name]
        assert "error" not in row, f"{name}: {row.get('error')}"
        audio, text = np.array(row["audio"]), np.array(row["text"])
        assert audio.shape[0] == 1 and text.shape == (2, audio.shape[1])
        assert np.all(np.isfinite(audio)) and np.allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
        if name != "laion/larger_clap_music":  # its stand-in's text tower is collapsed on purpose
            assert np.abs(text[0] - text[1]).max() > 1e-3, name  # the tokenizer and tower read the text
        p = PRETRAINED[name]
        if p.filename:  # the file the name stands for was fetched through the resolve route
            assert any(a.startswith(f"/{p.repo_id}/resolve/") and a.endswith(f"/{p.filename}") for a in asked), name
    # the cache holds exactly the bytes the hub served
    cached = {f.name: f for f in (home / "hf" / "hub").rglob("*") if f.is_file() and "snapshots" in f.parts}
    for repo, filename in (("microsoft/msclap", "CLAP_weights_2023.pth"), ("lukewys/laion_clap", "630k-fusion-best.pt")):
        assert sha256(cached[filename]) == sha256(standins[repo][filename])
    # the transformers repos hold only pytorch_model.bin, and that is what was loaded
    assert "pytorch_model.bin" in cached and "model.safetensors" not in cached

    # a known issue is measured: the collapsed text tower warns; its siblings, the same small random
    # architecture without the collapse, do not (the full-size random towers of the other stand-ins
    # map every text to nearly one vector, as untrained deep transformers do, so they are not asked)
    assert all("healthy" in first[name] for name in one_per_format.values())
    collapsed = first["laion/larger_clap_music"]
    assert not collapsed["healthy"] and any("collapsed text tower" in w for w in collapsed["warnings"])
    for name in transformers_repos:
        if name != "laion/larger_clap_music":
            assert not any("text tower" in w for w in first[name]["warnings"]), (name, first[name]["warnings"])

    # offline, from the cache alone (the hub is gone): the same embeddings (one interpreter; the
    # health checks above are not repeated)
    second = run_clients((no_hub, home, names), offline=True)
    for name in names:
        assert "error" not in second[name], f"{name}: {second[name].get('error')}"
        np.testing.assert_allclose(second[name]["audio"], first[name]["audio"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(second[name]["text"], first[name]["text"], rtol=0, atol=1e-6)


def test_a_failed_download_says_what_happened(standins, home, no_hub):
    with LocalHub(standins) as hub:
        hub.faults[("microsoft/msclap", "CLAP_weights_2022.pth")] = "500"
        hub.faults[("lukewys/laion_clap", "630k-best.pt")] = "truncate"
        hub.faults[("laion/clap-htsat-unfused", "config.json")] = "500"
        out = run_clients(
            (hub.url, home / "faults", ["msclap-2022", "laion-630k-best", "laion/clap-htsat-unfused"]),
            (no_hub, home / "unreachable", ["laion-630k-audioset-best"]),  # no hub at all
            wait=False,
        )
        asked = list(hub.requests)
    for name, what in (("msclap-2022", "HTTP 500"), ("laion-630k-best", "cut short"), ("laion/clap-htsat-unfused", "HTTP 500")):
        error = out[name].get("error", "")
        assert what in error and "offline" not in error, f"{name}: {error}"
        assert "hf download" in error
    # the client retried, waiting between tries, before the error was reported
    for name, path in (
        ("msclap-2022", "CLAP_weights_2022.pth"),
        ("laion-630k-best", "630k-best.pt"),
        ("laion/clap-htsat-unfused", "config.json"),
    ):
        assert sum(p.endswith(path) for _, p in asked) > 1, f"{name}: {path} was asked for once"
        assert len(out[name]["waits"]) > 1 and all(w > 0 for w in out[name]["waits"]), f"{name}: {out[name]['waits']}"
    # no hub at all: said so, with the command to run where it is reachable
    assert "not reached" in out["laion-630k-audioset-best"]["error"]
    assert "hf download lukewys/laion_clap 630k-audioset-best.pt" in out["laion-630k-audioset-best"]["error"]


def test_a_full_disk_is_reported_as_such(standins, tmp_path):
    cache = tmp_path / "small"
    cache.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(cache)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small file system could not be mounted here: {mounted.stderr.decode().strip()}")
    try:
        with LocalHub(standins) as hub:
            out = run_client(hub.url, cache, ["laion-630k-best"])
    finally:
        subprocess.run(["umount", str(cache)], check=False)
    error = out["laion-630k-best"]["error"]
    assert "no space left" in error and "HF_HUB_CACHE" in error and "offline" not in error, error
