"""The public API is what docs/api.md says: every exported name has an entry there and every entry
resolves; the package's attributes are the documented names and modules, nothing else; a bad model
name is one ``ValueError`` wherever it is given."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import skclap

ROOT = Path(__file__).resolve().parents[1]
API = (ROOT / "docs" / "api.md").read_text()
ENTRIES = re.findall(r"^::: (\S+)$", API, flags=re.M)
#: The modules whose whole ``__all__`` is public (the table at the top of docs/api.md).
GATHERED = ("skclap", "skclap.models", "skclap.training", "skclap.datasets")


def resolve(dotted: str) -> Any:
    """The object a ``::: skclap.X.Y`` entry names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for name in parts[end:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def table_row(module: str) -> str:
    row = re.search(rf"^\| `{re.escape(module)}` \|(.*)\|$", API, flags=re.M)
    assert row, f"docs/api.md's table has no row for {module}"
    return row.group(1)


def test_every_entry_resolves():
    unresolved = []
    for entry in ENTRIES:
        try:
            resolve(entry)
        except (ImportError, AttributeError) as err:
            unresolved.append(f"{entry}: {err}")
    assert ENTRIES and not unresolved, unresolved


def test_the_documented_surface_is_each_module_all():
    """Each name of ``__all__`` has an entry (its own, or one of the same object elsewhere, as
    ``skclap.models.CLAPModel`` is ``skclap.CLAPModel``) or is named in the module's row of the table;
    and every entry directly under one of these modules is in its ``__all__``."""
    entry_objects = {id(resolve(e)) for e in ENTRIES}
    undocumented, unexported = [], []
    for module in GATHERED:
        exported = importlib.import_module(module).__all__
        row = table_row(module)
        for name in exported:
            value = getattr(importlib.import_module(module), name)
            if f"{module}.{name}" not in ENTRIES and id(value) not in entry_objects and f"`{name}`" not in row:
                undocumented.append(f"{module}.{name}")
        unexported += [e for e in ENTRIES if e.rpartition(".")[0] == module and e.rpartition(".")[2] not in exported]
    assert not undocumented, f"exported, but not in docs/api.md: {undocumented}"
    assert not unexported, f"in docs/api.md, but not in the module's __all__: {unexported}"


def test_the_package_attributes_are_the_documented_modules():
    documented = {e.split(".")[1] for e in ENTRIES if importlib.util.find_spec(f"skclap.{e.split('.')[1]}") is not None}
    assert set(skclap._SUBMODULES) == documented


def test_internal_modules_import_but_are_no_attributes_of_the_package():
    """In a fresh interpreter (the import system binds a module to its package once imported, so
    this process, which has imported them all, cannot tell)."""
    code = (
        "import json, pkgutil, skclap\n"
        "internal = [m.name for m in pkgutil.iter_modules(skclap.__path__) if m.name not in (*vars(skclap), *skclap._SUBMODULES)]\n"
        "exposed = [m for m in internal if hasattr(skclap, m)]  # before a public module imports any of them\n"
        "public = [m for m in skclap._SUBMODULES if hasattr(skclap, m)]\n"
        "skclap.CLAPEmbedder\n"
        "listed = [n for n in dir(skclap) if not n.startswith('__')]\n"
        "import skclap.cli\n"
        "print(json.dumps(dict(internal=internal, exposed=exposed, public=public, listed=listed, cli=skclap.cli.main.__module__)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    got = json.loads(out.stdout)
    assert {"cli", "checkpoints", "encoder", "estimators"} <= set(got["internal"]) and got["exposed"] == []
    assert got["public"] == list(skclap._SUBMODULES)
    assert sorted(got["listed"]) == sorted({*skclap.__all__, *skclap._SUBMODULES} - {"__version__"})
    assert got["cli"] == "skclap.cli"
    with pytest.raises(AttributeError, match="no attribute 'cli'"):
        skclap.__getattr__("cli")


def test_a_bad_model_name_is_one_value_error_everywhere(tmp_path, capsys):
    from skclap.cli import main as cli
    from skclap.training import train

    for name in ("no-such-model", "preset:huge", "tiny"):
        for give in (skclap.load_model, skclap.Encoder, lambda m: train(([], []), None, model=m)):
            with pytest.raises(skclap.UnknownModelError) as info:
                give(name)
            assert isinstance(info.value, ValueError) and not isinstance(info.value, skclap.CheckpointError)
    assert cli(["embed", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "no-such-model"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("skclap embed: error: no model named 'no-such-model'") and len(err.strip().splitlines()) == 2
