"""The commands as a new user meets them (issue 48, items 5, 6 and 10): an ordinary mistake is one
line and a non-zero exit (the traceback with --debug), a misspelt model is answered with the closest
names, a machine without a network hears so at once, and each command's --help says its default
model."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from skclap import CheckpointError, UnknownModelError, load_model
from skclap.cli import main as cli
from skclap.registry import BUNDLED, PRETRAINED, list_models, model_names

ROOT = Path(__file__).resolve().parents[1]


def test_an_ordinary_error_is_one_line_and_a_non_zero_exit(tmp_path, capsys):
    missing = tmp_path / "no such folder"
    assert cli(["embed", str(missing), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("skclap embed: error: input not found") and "--debug" in err
    assert len(err.strip().splitlines()) == 2  # the error, and how to see its traceback
    with pytest.raises(FileNotFoundError):
        cli(["embed", str(missing), "--out", str(tmp_path / "out"), "--debug"])
    with pytest.raises(FileNotFoundError):
        cli(["--debug", "search", str(tmp_path), "a dog"])
    assert cli(["search", str(tmp_path), "a dog"]) == 1
    assert "no embeddings.json" in capsys.readouterr().err


def test_a_misspelt_model_is_answered_with_the_closest_names_and_every_model(tmp_path, capsys):
    with pytest.raises(UnknownModelError) as info:
        load_model("skclap-instrument")
    message = str(info.value)
    assert "did you mean 'skclap-instruments'?" in message
    listed = message.split("Every model, closest first: ")[1]
    assert listed.startswith("skclap-instruments, ")
    assert all(name in listed for name in model_names())
    assert {*BUNDLED, *PRETRAINED} <= set(model_names())
    with pytest.raises(UnknownModelError, match="did you mean 'preset:tiny'"):
        load_model("preset:tiyn")
    assert cli(["embed", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "msclap2023"]) == 1
    assert "did you mean 'msclap-2023'" in capsys.readouterr().err


def test_an_unreachable_hub_fails_at_once(monkeypatch, tmp_path):
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    with socket.socket() as s:  # a port with nothing behind it: connections are refused
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setenv("SKCLAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    waits: list[float] = []
    monkeypatch.setattr(_http.time, "sleep", waits.append)  # the client's back-off between its retries
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="the hub was not reached.*hf download microsoft/msclap CLAP_weights_2022.pth"):
        load_model("msclap-2022")
    assert waits == [] and time.perf_counter() - t0 < 10
    from skclap.hub import from_cache_or_hub

    tries: list[bool] = []

    def load(local_only: bool) -> None:
        tries.append(local_only)
        raise OSError("not in the cache")

    with pytest.raises(ConnectionError, match="did not answer"):
        from_cache_or_hub(load)
    assert tries == [True]  # the cache was asked; the hub, which does not answer, was not


def test_every_command_help_says_its_default_model(capsys):
    def helped(*command: str) -> str:
        with pytest.raises(SystemExit):
            cli([*command, "--help"])
        return " ".join(capsys.readouterr().out.split())  # argparse wraps lines

    assert "default: msclap-2022" in helped("embed") and "default: msclap-2022" in helped("evaluate")
    assert "default: laion-630k-audioset-best" in helped("score")
    for command in ("search", "serve"):
        assert "default: the model the collection was embedded with" in helped(command)
    assert "skclap-instruments" in helped("demo")
    assert "default: tiny" in helped("train")
    # the demo's run time is given in one place (docs/bundled.md), not in --help
    assert not re.search(r"\d+ ?s\b|minute", helped("demo"))
    assert "on an error, show its traceback" in helped("embed")


def test_skclap_info_writes_each_sentence_apart_and_the_checkpoints_page_names_every_model(capsys):
    assert cli(["info"]) == 0
    raw = capsys.readouterr().out
    out = " ".join(raw.split())
    for b in BUNDLED.values():
        assert f"{b.description}. Knows: {b.knows}." in out and f"Does not know {b.does_not_know}." in out
    for r in list_models():  # the architecture column is as wide as its longest entry, then two spaces
        line = next((line for line in raw.splitlines() if line.strip().startswith(r.name + " ")), None)
        assert line is not None and (r.kind == "preset" or f"{r.architecture}  " in line), (r.name, line)
    rows = {r.name: r for r in list_models()}
    assert all(not re.search(r"[a-z] [A-Z][a-z]+:", r.description) for r in rows.values())  # no "soundfonts Knows:"
    page = (ROOT / "docs" / "checkpoints.md").read_text()
    table = page.split("| name | architecture |")[1].split("\n\n")[0]
    first_column = "\n".join(line.split("|")[1] for line in table.splitlines()[2:] if line.startswith("|"))
    named = set(re.findall(r"`([^`]+)`", first_column))
    assert set(model_names()) <= named, set(model_names()) - named
