"""The instrument recipe's zero-shot test on a soundfont from outside it: user-played clips
(:func:`skclap.datasets.make_played_set`) rendered from any ``.sf2`` / ``.sf3`` file, named by one
model per seed, per condition and per instrument, mean ± std over the seeds.

    python -m experiments.outside_soundfont [--font /usr/share/sounds/sf2/FluidR3_GM.sf2]
        [--models skclap-instruments] [--seeds 0,1,2] [--clips 340]

``--models`` is one model (tested on every seed's clips) or one a seed, comma-separated, in the
order of ``--seeds`` (the recipe's ``runs/instruments/seed-N/model``). Seed ``s`` draws the clips of
``make_played_set(clips, seed=s)``: the draw the recipe tests seed ``s`` on, from another soundfont.
The default font is Fluid R3 GM (Debian package ``fluid-soundfont-gm``). As the recipe does, the
clips whose every note some training soundfont records the same way (correlation ≥ 0.9, note for
note) are reported apart: an outside soundfont may share recordings with a training one.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

FLUID = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.outside_soundfont", description=__doc__.split("\n\n")[0])
    ap.add_argument("--font", default=FLUID)
    ap.add_argument("--models", default="skclap-instruments")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--clips", type=int, default=340)
    args = ap.parse_args(argv)
    from recipes.instruments.recipe import never_heard, shared_recordings, zero_shot
    from skclap import load_model
    from skclap.datasets.instruments import soundfont_path
    from skclap.datasets.played import condition_table, make_played_set

    try:
        soundfont_path(args.font)
    except FileNotFoundError as err:
        ap.error(f"{err}{' (apt-get install fluid-soundfont-gm)' if args.font == FLUID else ''}")

    seeds = [int(s) for s in args.seeds.split(",")]
    models = args.models.split(",")
    if len(models) not in (1, len(seeds)):
        ap.error(f"--models: one model, or one for each of the {len(seeds)} seeds")
    models = models * len(seeds) if len(models) == 1 else models
    shared = shared_recordings(test_font=args.font)
    tables, splits = [], []
    for seed, name in zip(seeds, models):
        clf = zero_shot(model=load_model(name, device="cpu"), progress=False, device="cpu")
        played = make_played_set(args.clips, seed=seed, soundfont=args.font)
        truth = np.asarray(played.labels)
        pred = clf.predict(played.items())
        right = pred == truth
        own = never_heard(played, shared)
        tables.append(condition_table(played, pred).set_index(["condition", "value"]))
        splits.append((right[own].mean(), own.sum(), right[~own].mean()))
        print(f"seed {seed} ({name}): {right.mean():.1%}; never-heard clips {right[own].mean():.1%} of {own.sum()}")
    acc = pd.concat([t["accuracy"] for t in tables], axis=1)
    out = pd.DataFrame(
        {
            "n": pd.concat([t["n"] for t in tables], axis=1).mean(axis=1),
            "mean": acc.mean(axis=1),
            "std": acc.std(axis=1, ddof=1) if len(seeds) > 1 else 0.0,
        }
    )
    never, n_never, heard_acc = (np.array(v, dtype=float) for v in zip(*splits))
    print(f"\n{args.font}, seeds {seeds}, {args.clips} clips a seed; 17-way zero-shot, chance {1 / 17:.1%}")
    print(f"never-heard clips: {never.mean():.1%} ± {never.std(ddof=1) if len(seeds) > 1 else 0:.1%} ({n_never.mean():.0f} a seed)")
    print(f"clips with a heard note: {heard_acc.mean():.1%}")
    print("| condition | value | n (mean a seed) | accuracy, mean ± std |\n|---|---|---|---|")
    for (cond, value), row in out.iterrows():
        print(f"| {cond} | {value} | {row.n:.0f} | {row['mean']:.1%} ± {row['std']:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
