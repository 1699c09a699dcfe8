"""Measure a model zero-shot on the user-played test set, per condition, over seeds.

``python -m recipes.instruments.played_eval --seeds 0,1,2 --n 340`` renders ``n`` clips per seed with
:func:`skclap.datasets.played.make_played_set` (the instruments in turn: 340 clips are 20 per
instrument), names each clip zero-shot from the 17 instrument names (their prompts of
:func:`~skclap.datasets.instruments.instrument_prompts`, chance 1/17) and prints the per-condition
table, mean ± std over the seeds, as markdown, with the time one set takes to render and to classify.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from skclap.datasets.instruments import DEFAULT_SOUNDFONT, INSTRUMENTS, instrument_prompts
from skclap.datasets.played import combine_tables, condition_table, make_played_set, markdown_table


def evaluate(
    seeds: list[int], n_clips: int = 340, model: str = "skclap-instruments", soundfont: str = DEFAULT_SOUNDFONT, device: str = "cpu"
) -> dict[str, Any]:
    """Zero-shot accuracy per condition on ``n_clips`` user-played clips of each seed.

    Parameters
    ----------
    seeds : list of int
        One set is drawn per seed.
    n_clips : int
        Clips per seed.
    model : str
        Any model the estimators take (``"skclap-instruments"``: the bundled one).
    soundfont : str
        The soundfont the clips are rendered from.
    device : str
        Where the model runs.

    Returns
    -------
    dict
        ``tables`` (one :func:`~skclap.datasets.played.condition_table` per seed), ``combined``
        (mean ± std over the seeds), ``render_s`` and ``classify_s`` (seconds per seed) and ``fit_s``.
    """
    from skclap import CLAPZeroShotClassifier

    names = [i.name for i in INSTRUMENTS]
    start = time.perf_counter()
    clf = CLAPZeroShotClassifier(
        model=model,
        labels=names,
        templates="{}",
        label_prompts={n: instrument_prompts(n) for n in names},
        progress=False,
        device=device,
    ).fit()
    fit_s = time.perf_counter() - start
    tables, render_s, classify_s = [], [], []
    for seed in seeds:
        start = time.perf_counter()
        played = make_played_set(n_clips, seed=seed, soundfont=soundfont)
        render_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        predicted = clf.predict(played.items())
        classify_s.append(time.perf_counter() - start)
        tables.append(condition_table(played, predicted, n_labels=len(names)))
    return {"tables": tables, "combined": combine_tables(tables), "render_s": render_s, "classify_s": classify_s, "fit_s": fit_s}


def report(result: dict[str, Any], seeds: list[int], n_clips: int, model: str, soundfont: str) -> str:
    """The result as markdown: the headline, the timings and the per-condition table."""
    overall = result["combined"].iloc[0]
    per_seed = " / ".join(f"{100 * a:.1f} %" for a in overall["per_seed"])
    mean = lambda xs: sum(xs) / len(xs)
    lines = [
        f"## `{model}` zero-shot on the user-played set ({soundfont})",
        "",
        f"{n_clips} clips per seed ({n_clips // len(INSTRUMENTS)} per instrument when a multiple of {len(INSTRUMENTS)}), "
        f"seeds {', '.join(map(str, seeds))}: **{100 * overall['mean']:.1f} % ± {100 * overall['std']:.1f} %** "
        f"({per_seed}); chance {100 * overall['chance']:.1f} %. Region and note length are over the pitched clips "
        f"(drums have neither).",
        "",
        f"One set: rendered in {mean(result['render_s']):.1f} s, classified in {mean(result['classify_s']):.1f} s "
        f"(mean over the seeds; the prompts' text embeddings once, {result['fit_s']:.1f} s, model load included) "
        f"on {platform.machine()} with the CPU threads torch chose.",
        "",
        markdown_table(result["combined"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recipes.instruments.played_eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--n", type=int, default=340, help="clips per seed (default 340: 20 per instrument)")
    p.add_argument("--model", default="skclap-instruments")
    p.add_argument("--soundfont", default=DEFAULT_SOUNDFONT)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="also write report.md and per-seed tables (CSV) here")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    result = evaluate(seeds, args.n, args.model, args.soundfont, args.device)
    text = report(result, seeds, args.n, args.model, args.soundfont)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.md").write_text(text + "\n")
        for seed, table in zip(seeds, result["tables"]):
            table.to_csv(args.out / f"conditions_seed{seed}.csv", index=False)
        timings = {k: result[k] for k in ("render_s", "classify_s", "fit_s")}
        (args.out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
