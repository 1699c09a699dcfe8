"""The documentation: every Python example of README.md and docs/ runs as written, offline, on the
bundled model (blocks needing released files under /data/ are skipped), and every public name has an
entry in the API reference. (CI also builds the site with warnings as errors.)"""

import re
from pathlib import Path

import skclap

ROOT = Path(__file__).resolve().parents[1]
#: README, then the guide in the site's order: later blocks may use names defined by earlier ones.
PAGES = [ROOT / "README.md"] + [
    ROOT / "docs" / f"{p}.md"
    for p in (
        "index",
        "composition",
        "bundled",
        "estimators",
        "fewshot",
        "checkpoints",
        "training",
        "collections",
        "evaluation",
        "speed",
        "model",
    )
]


def python_blocks() -> list[tuple[str, str]]:
    return [(p.name, b) for p in PAGES for b in re.findall(r"```python\n(.*?)```", p.read_text(), flags=re.S)]


def test_docs_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 7
    monkeypatch.chdir(tmp_path)  # the README's tour writes genres/ here, which later pages read
    namespace: dict = {}
    ran = 0
    for page, block in blocks:
        if "/data/" in block:  # needs the released weights
            continue
        assert "msclap-2022" not in block and "msclap-2023" not in block, f"{page}: an example that cannot run offline"
        code = block.replace("CLAPEmbedder(model=", "CLAPEmbedder(progress=False, model=")
        exec(compile(code, page, "exec"), namespace)
        ran += 1
    assert ran >= 6
    files, labels = namespace["files"], namespace["labels"]
    assert len(files) == 60 and len(set(labels)) == 5  # chance 0.2 for what follows
    assert namespace["zero_shot"].score(files, labels) > 0.8
    assert namespace["scores"].mean() > 0.8
    assert namespace["search"].best_score_ > 0.8
    assert namespace["text"].shape == (2, namespace["audio"].shape[1])
    assert len(namespace["frame"]) == 60 and list(namespace["hits"]["rank"]) == [1, 2, 3]
    assert all("/trumpet/" in path for path in namespace["hits"]["path"])


def test_api_reference_covers_every_public_name():
    """Each public module's exports have an entry (``skclap.X``, or ``::: module.X``)."""
    import importlib

    api = (ROOT / "docs" / "api.md").read_text()
    missing = [name for name in skclap.__all__ if name not in api and name != "__version__"]
    for module in ("skclap.models", "skclap.training", "skclap.datasets"):
        exported = importlib.import_module(module).__all__
        missing += [f"{module}.{name}" for name in exported if f"::: {module}.{name}\n" not in api and f"`{name}`" not in api]
    assert not missing, missing


def test_readme_links_to_every_guide_page():
    readme = (ROOT / "README.md").read_text()
    for page in PAGES[2:]:
        assert f"docs/{page.name}" in readme, page.name
    assert "docs/api.md" in readme


def test_the_set_up_commands_are_the_same_everywhere():
    """README's two commands (which CI runs) are the ones the site's front page and CONTRIBUTING
    give: a set-up step changed in one place cannot be missed in another."""

    def commands(path: Path) -> list[str]:
        block = re.search(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
        assert block, path.name
        return [re.sub(r"\s*#.*$", "", line).strip() for line in block.group(1).splitlines() if line.strip()]

    readme = commands(ROOT / "README.md")
    assert len(readme) == 2 and readme[0].startswith("bash scripts/setup.sh") and readme[1].startswith("python -m pytest")
    assert commands(ROOT / "docs" / "index.md") == readme
    contributing = commands(ROOT / "CONTRIBUTING.md")
    assert "bash scripts/setup.sh" in contributing and readme[1] in contributing


def test_the_site_runs_the_notebooks_which_are_stored_without_outputs():
    """The site shows the notebooks' outputs and figures: they run when it is built, and a failing one
    fails the build; the stored files stay clean, so a diff of a notebook is a diff of its code."""
    import nbformat
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    jupyter = next(p["mkdocs-jupyter"] for p in config["plugins"] if isinstance(p, dict) and "mkdocs-jupyter" in p)
    assert jupyter["execute"] is True and jupyter["allow_errors"] is False
    assert "notebooks/*/" in config["exclude_docs"]  # what they write where they run is no page of the site
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.outputs == [] and c.execution_count is None for c in code), path.name
