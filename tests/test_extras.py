"""The ``instruments`` extra installs in one step (issue 48, item 12): ``skclap install-extra
instruments`` runs the extra's packages as skclap declares them, then ``tinysoundfont`` without its
dependencies (its declared ``pyaudio`` has no wheel), with this interpreter's pip."""

from __future__ import annotations

import shlex
import sys
from importlib import metadata
from pathlib import Path

from skclap.cli import main as cli
from skclap.extras import NO_DEPS, install_commands

ROOT = Path(__file__).resolve().parents[1]


def test_install_extra_runs_the_declared_packages_then_tinysoundfont_without_dependencies(capsys):
    assert cli(["install-extra", "instruments", "--dry-run"]) == 0
    printed = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == install_commands("instruments")
    declared, no_deps = printed
    assert declared[:4] == [sys.executable, "-m", "pip", "install"] and no_deps[:5] == [sys.executable, "-m", "pip", "install", "--no-deps"]
    # the packages of the extra as pyproject declares it, with their markers resolved
    expected = [r.split(";")[0].strip() for r in metadata.requires("skclap") or [] if r.endswith('extra == "instruments"')]
    assert expected and declared[4:] == expected
    assert no_deps[5:] == list(NO_DEPS["instruments"]) == ["tinysoundfont==0.3.7"]
    # the same pin as the checkout's set-up, and the one tinysoundfont's missing-module error names
    assert "tinysoundfont==0.3.7" in (ROOT / "scripts" / "setup.sh").read_text()
    # the declared dependency that makes the second step necessary is still there: if tinysoundfont
    # drops it (or marks it optional), the extra can list tinysoundfont itself
    assert any(r.split(";")[0].strip().lower() == "pyaudio" and "extra" not in r for r in metadata.requires("tinysoundfont") or [])
