"""README's Python examples run as written, with the tiny local model standing in for msclap-2022."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_examples_run(tiny_model_dir, gtzan_dir, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 5
    monkeypatch.chdir(gtzan_dir)
    namespace: dict = {}
    ran = 0
    for block in blocks:
        if "/data/" in block:  # needs the released weights
            continue
        code = block.replace('"msclap-2022"', repr(str(tiny_model_dir)))
        code = code.replace("CLAPEmbedder(model=", "CLAPEmbedder(progress=False, model=")
        exec(compile(code, "README.md", "exec"), namespace)
        ran += 1
    assert ran >= 5
    assert namespace["scores"].mean() > 0.6  # the tiny random model still separates the three sounds
    assert namespace["search"].best_score_ > 0.6
    assert namespace["text"].shape == (2, 64)
