"""The package's modules form no import cycle, counting imports inside functions too, and no module
imports a private name of another."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "skclap"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[tuple[str, str]]]:
    """module -> {(imported module, imported name)} for every import of a skclap module."""
    graph: dict[str, set[tuple[str, str]]] = {}
    for path in PKG.rglob("*.py"):
        mod = module_name(path)
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        out = graph.setdefault(mod, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.startswith("skclap"):
                    for alias in node.names:
                        sub = f"{target}.{alias.name}"
                        is_module = (PKG.parent / sub.replace(".", "/")).with_suffix(".py").is_file() or (
                            PKG.parent / sub.replace(".", "/")
                        ).is_dir()
                        out.add((sub, "") if is_module else (target, alias.name))
            elif isinstance(node, ast.Import):
                out.update((a.name, "") for a in node.names if a.name.startswith("skclap"))
    return graph


def test_no_import_cycles():
    graph = {m: {t for t, _ in deps if t != m} for m, deps in imports().items()}

    def parents(mod: str) -> set[str]:  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = mod.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    edges = {m: {t for t in deps if t in graph and t not in parents(m) and m not in parents(t)} for m, deps in graph.items()}
    edges = {m: {t for t in deps if not t.count(".") == 0} for m, deps in edges.items()}  # the package root re-exports
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if seen.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t) :] + [t]))
            if t not in seen:
                visit(t)
        stack.pop()
        seen[m] = 2

    for m in sorted(edges):
        if m not in seen:
            visit(m)


def test_no_private_names_across_modules():
    """A private name is used in its own module's package only; a private module (``_base``) only by
    the modules of its package."""
    bad = []
    for m, deps in imports().items():
        for t, n in deps:
            if n.startswith("_") and not n.startswith("__") and t.rsplit(".", 1)[0] != m.rsplit(".", 1)[0]:
                bad.append(f"{m} imports {t}.{n}")
            parts = t.split(".")
            private = [i for i, p in enumerate(parts) if p.startswith("_") and not p.startswith("__")]
            if private and not m.startswith(".".join(parts[: private[0]]) + "."):
                bad.append(f"{m} imports the private module {t}")
    assert not bad, sorted(bad)


def test_importing_skclap_loads_neither_the_instrument_extra_nor_the_experiments():
    import subprocess
    import sys

    code = (
        "import sys, skclap, skclap.datasets, skclap.training, skclap.models, skclap.cli; "
        "print(sorted(m for m in ('pretty_midi', 'tinysoundfont', 'experiments') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PKG.parent)
    assert out.stdout.strip() == "[]"


def test_public_names_load_on_first_use():
    """``import skclap`` imports no heavy library; training (``skclap train``, a torchrun rank)
    imports neither scikit-learn nor pandas; every public name resolves, and is listed by ``dir``; a
    subpackage is an attribute of the package."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "heavy = lambda: sorted(m for m in ('torch', 'transformers', 'sklearn', 'pandas', 'scipy') if m in sys.modules)\n"
        "import skclap, skclap.cli\n"
        "print(heavy())\n"
        "import skclap.training\n"
        "print(heavy())\n"
        "names = [n for n in skclap.__all__ if getattr(skclap, n) is None]\n"
        "print(heavy(), names, sorted(set(skclap.__all__) - set(dir(skclap))), sorted(set(skclap._MODULES) ^ set(skclap.__all__)))\n"
        "print(skclap.datasets.make_corpus.__module__)\n"
        "try:\n"
        "    skclap.no_such_name\n"
        "except AttributeError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PKG.parent)
    lines = out.stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "['torch', 'transformers']"
    assert lines[2] == "['pandas', 'scipy', 'sklearn', 'torch', 'transformers'] [] [] ['__version__']"
    assert lines[3] == "skclap.datasets.synthetic"  # a subpackage, as an attribute of the package
    assert lines[4] == "module 'skclap' has no attribute 'no_such_name'"


def test_the_package_does_not_import_the_lab():
    """``experiments/`` and ``recipes/`` use skclap; skclap never imports them (``skclap demo --train``
    finds the recipe by path)."""
    bad = [f"{m} imports {t}" for m, deps in imports().items() for t, _ in deps if t.startswith(("experiments", "recipes"))]
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                bad += [f"{path.name} imports {n}" for n in names if n.split(".")[0] in ("experiments", "recipes")]
    assert not bad


def test_no_test_module_imports_another():
    """Shared test code lives in tests/helpers.py (and the fixture modules), never in a test module."""
    bad = []
    for path in [*PKG.parent.joinpath("tests").glob("*.py"), *PKG.parent.joinpath("experiments").rglob("test_*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split(".")[-1].startswith("test_") or any(a.name.startswith("test_") for a in node.names):
                    bad.append(f"{path.name} imports from {node.module}")
    assert not bad, bad
