"""Optional packages that one ``pip install`` cannot get right, installed by one command.

The ``instruments`` extra renders notes with ``tinysoundfont``, whose metadata requires ``pyaudio``
for playback, unconditionally; ``pyaudio`` has no Linux wheel, and building it needs PortAudio's
headers and a compiler. skclap never plays audio, so ``tinysoundfont`` is installed without its
dependencies, which no extra can say. ``skclap install-extra instruments`` runs both steps with the
interpreter skclap runs in: the extra's packages (as the installed skclap declares them), then
:data:`NO_DEPS` without dependencies.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from importlib import metadata

__all__ = ["EXTRAS", "NO_DEPS", "install_commands", "install_extra"]

#: Packages of an extra installed without their dependencies (see the module docs).
NO_DEPS: dict[str, tuple[str, ...]] = {"instruments": ("tinysoundfont==0.3.7",)}

#: The extras this command installs.
EXTRAS = tuple(NO_DEPS)


def _declared(extra: str) -> list[str]:
    """The requirements of ``skclap[extra]`` as the installed package declares them."""
    from packaging.requirements import Requirement

    out = []
    for line in metadata.requires("skclap") or []:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate({"extra": extra}) and not req.marker.evaluate({"extra": ""}):
            req.marker = None
            out.append(str(req))
    return out


def install_commands(extra: str) -> list[list[str]]:
    """The pip commands that install ``extra``, for this interpreter."""
    if extra not in NO_DEPS:
        raise ValueError(f"no extra {extra!r} to install this way; choose from {', '.join(EXTRAS)}")
    pip = [sys.executable, "-m", "pip", "install"]
    declared = _declared(extra)
    return ([pip + declared] if declared else []) + [pip + ["--no-deps", *NO_DEPS[extra]]]


def install_extra(extra: str, dry_run: bool = False) -> int:
    """Run :func:`install_commands` (print them with ``dry_run``); the exit status of the first that fails, else 0."""
    for command in install_commands(extra):
        print(shlex.join(command), flush=True)
        if not dry_run:
            status = subprocess.call(command)
            if status:
                return status
    return 0
