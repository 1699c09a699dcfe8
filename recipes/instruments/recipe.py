"""Train a small CLAP on captioned playing of 17 instruments from two soundfonts, and test its
zero-shot instrument naming on what users play, from a soundfont it never heard.

Training data: :func:`skclap.datasets.performances.make_performance_corpus` — notes, repeated notes,
melodies and chords over each instrument's compass (hits and patterns on the drums), at any level and
sample rate, rendered from ``MuseScore_General_Lite`` and ``sf_GMbank`` only (Debian packages
``musescore-general-soundfont-small`` and ``csound-soundfont``) on each instrument's General MIDI
preset or, for half the clips of an instrument that has others, on another preset of it the
soundfont holds (another piano, a tenor sax, another drum kit), each in recording conditions of its
own, captioned with what is true of it.

Tests, all 17-way zero-shot instrument naming from prompts of the names alone (chance 1/17), on the
user-played set (:mod:`skclap.datasets.played`, a sampler written apart from the training corpus):
- ``TimGM6mb`` (shipped by ``pretty-midi``), never trained on, per condition (kind, key region, note
  length, clip length, level, sample rate, instrument). Its samples are not all its own: for some
  instruments sf_GMbank carries the very same recordings (:func:`shared_recordings`); the report
  gives the clips all of whose notes no training soundfont has (never heard) apart;
- each training soundfont's new playing;
- the previous protocol (single notes of the two extreme registers, 1 s, calibrated level), labelled;
- a linear probe fit on the training soundfonts' user-played clips, and few-shot with 1 and 4 clips a
  class of TimGM6mb, beside zero-shot on the same clips.

Every seed draws its own corpus, test sets, split and initialisation; a seed whose ``metrics.json``
exists is not run again, and an interrupted one resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

TRAIN_FONTS = ("MuseScore_General_Lite", "sf_GMbank")
TEST_FONT = "TimGM6mb"
#: Windows this many dB under an item's loudest are left out of its mean (the model's config).
QUIET_WINDOW_DB = 30.0


@dataclass
class RecipeConfig:
    preset: str = "small"
    seconds: float = 1.0
    n_train: int = 16000  # clips, split evenly over the two training soundfonts
    n_eval: int = 340  # user-played clips per test set (20 per instrument)
    steps: int = 12000
    batch_size: int = 64
    lr: float = 1e-3
    group_size: int | None = None  # runs of this many clips of one instrument in each batch (hard negatives); None: off
    seed: int = 0
    cache_dir: str | None = None
    progress: bool = True


def shared_recordings(test_font: str = TEST_FONT, train_fonts: tuple[str, ...] = TRAIN_FONTS) -> dict[tuple[str, int], float]:
    """Per (instrument, MIDI key: the piano's range, or the kit's for a drum), the highest correlation between that note
    from ``test_font`` and the same note (same key and velocity) from any preset of the instrument a
    training soundfont holds (its General MIDI one and the variants trained on). Near 1: training
    plays the very same recording for that key."""
    from skclap.datasets.instruments import INSTRUMENTS, render_events
    from skclap.datasets.performances import trained_presets

    out = {}
    for inst in INSTRUMENTS:
        for key in range(27, 88) if inst.drums else range(21, 109):  # the drum kit's keys, the piano's
            a = render_events(inst.name, [(0.0, 0.5, key, 100)], 0.8, 16000, test_font)
            best = 0.0
            for font in train_fonts:
                for preset in trained_presets(inst.name, font):
                    b = render_events(inst.name, [(0.0, 0.5, key, 100)], 0.8, 16000, font, preset)
                    best = max(best, float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
            out[(inst.name, key)] = best
    return out


def shared_instruments(shared: dict[tuple[str, int], float]) -> dict[str, float]:
    """Per instrument, the share of its compass's keys whose recording a training soundfont also has."""
    from skclap.datasets.instruments import INSTRUMENTS

    out = {}
    for inst in INSTRUMENTS:
        out[inst.name] = float(np.mean([shared[(inst.name, k)] >= SAME for k in inst.keys]))
    return out


#: Correlation above which two renders of one note are taken for the same recording.
SAME = 0.9


def never_heard(played: Any, shared: dict[tuple[str, int], float]) -> np.ndarray:
    """Per clip of a user-played set, whether every one of its notes has a recording no training
    soundfont has (by :func:`shared_recordings` of the set's soundfont)."""
    return np.array([all(shared[(c.label, k)] < SAME for k in c.keys) for c in played.clips], dtype=bool)


def zero_shot(model: Any, **params: Any) -> Any:
    """17-way instrument naming from the names' prompts (templates and synonyms of the captions)."""
    from skclap import CLAPZeroShotClassifier
    from skclap.datasets.instruments import INSTRUMENTS, instrument_prompts

    names = [i.name for i in INSTRUMENTS]
    return CLAPZeroShotClassifier(
        model=model, labels=names, templates="{}", label_prompts={n: instrument_prompts(n) for n in names}, **params
    ).fit()


def evaluate_model(
    model: Any, seed: int, n_eval: int, shared: dict[tuple[str, int], float], fonts: tuple[str, ...] = TRAIN_FONTS
) -> dict[str, Any]:
    """Every test of the recipe for one seed's test sets (see the module's docstring)."""
    from sklearn.linear_model import LogisticRegression

    from skclap import CLAPEmbedder
    from skclap.datasets.instruments import INSTRUMENTS, instrument_prompts, make_instrument_corpus
    from skclap.datasets.played import condition_table, make_played_set
    from skclap.evaluation.fewshot import shot_curve

    common: dict[str, Any] = dict(model=model, progress=False, device="cpu")  # the memory cache: each clip embedded once
    clf = zero_shot(**common)
    metrics: dict[str, Any] = {"chance": 1 / len(INSTRUMENTS), "tables": {}}
    embeddings = {}
    for font in (*fonts, TEST_FONT):
        played = make_played_set(n_eval, seed=seed, soundfont=font)
        items, truth = played.items(), np.asarray(played.labels)
        pred = clf.predict(items)
        table = condition_table(played, pred)
        metrics["tables"][font] = table.to_dict(orient="records")
        metrics[f"zero_shot_{font}"] = float((pred == truth).mean())
        if font == TEST_FONT:
            test_items = items
            own = never_heard(played, shared)
            metrics["never_heard_clips"] = int(own.sum())
            metrics["zero_shot_never_heard"] = float((pred == truth)[own].mean())
            metrics["zero_shot_heard"] = float((pred == truth)[~own].mean())
        embeddings[font] = (CLAPEmbedder(**common).fit_transform(items), truth)
    X = np.concatenate([embeddings[f][0] for f in fonts])
    y = np.concatenate([embeddings[f][1] for f in fonts])
    Xt, yt = embeddings[TEST_FONT]
    metrics["probe_TimGM6mb"] = float(LogisticRegression(max_iter=2000).fit(X, y).score(Xt, yt))

    pool = make_played_set(8 * len(INSTRUMENTS), seed=1000 + seed, soundfont=TEST_FONT)  # the shots: other clips of TimGM6mb
    names = [i.name for i in INSTRUMENTS]
    prompts = {n: instrument_prompts(n) for n in names}
    curve = shot_curve(
        pool.items(),
        pool.labels,
        test_items,
        yt.tolist(),
        common,
        shots=(1, 4),
        draws=1,
        seed=seed,
        label_prompts=prompts,
        templates="{}",
        methods=("zero-shot", "few-shot"),
    )
    for row in curve.itertuples():
        metrics["zero_shot_check" if row.method == "zero-shot" else f"few_shot_{row.shots}"] = float(row.accuracy)

    old = make_instrument_corpus(680, seed=10_000 + 100 * seed + 2, sample_rate=16000, seconds=1.0, soundfonts=(TEST_FONT,))
    old_items = [(w, old.sample_rate) for w in old.waveforms()]
    metrics["zero_shot_extreme_registers"] = float(np.mean(clf.predict(old_items) == np.asarray(old.labels)))
    return metrics


def run_seed(out_dir: Path, cfg: RecipeConfig, shared: dict[tuple[str, int], float], log=print) -> dict[str, Any]:
    from skclap import CLAPModel
    from skclap.datasets.performances import make_performance_corpus
    from skclap.models import PRESETS
    from skclap.training import TrainConfig, Trainer

    out_dir.mkdir(parents=True, exist_ok=True)
    rate = PRESETS[cfg.preset].sample_rate
    t0 = time.perf_counter()
    train = make_performance_corpus(
        cfg.n_train, seed=cfg.seed, sample_rate=rate, seconds=cfg.seconds, soundfonts=TRAIN_FONTS, augment=True, cache_dir=cfg.cache_dir
    )
    log(f"seed {cfg.seed}: {len(train)} training clips rendered in {time.perf_counter() - t0:.0f} s")
    config = PRESETS[cfg.preset].replace(frontend={"clip_seconds": cfg.seconds, "quiet_window_db": QUIET_WINDOW_DB})
    model = CLAPModel.from_config(config, seed=cfg.seed)
    train_cfg = TrainConfig(
        batch_size=cfg.batch_size,
        max_steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=100,
        group_size=cfg.group_size,
        seed=cfg.seed,
        checkpoint_every=250,
        keep_checkpoints=1,
        progress=cfg.progress,
    )
    trainer = Trainer(model, train_cfg, out_dir / "model")
    t1 = time.perf_counter()
    trainer.fit((train.waveforms(), train.captions), item_rate=rate, groups=train.labels, resume=True)
    train_seconds = time.perf_counter() - t1
    model.eval()
    metrics = {"train_seconds": train_seconds, **evaluate_model(model, cfg.seed, cfg.n_eval, shared)}
    (out_dir / "metrics.json").write_text(json.dumps({"config": asdict(cfg), **metrics}, indent=2))
    log(
        f"seed {cfg.seed}: zero-shot {metrics['zero_shot_TimGM6mb']:.1%} on TimGM6mb's user-played clips "
        f"({metrics['zero_shot_never_heard']:.1%} on its never-heard ones), "
        + ", ".join(f"{metrics[f'zero_shot_{f}']:.1%} on {f}'s" for f in TRAIN_FONTS)
        + f"; probe {metrics['probe_TimGM6mb']:.1%}; few-shot 4 clips {metrics['few_shot_4']:.1%}; trained in {train_seconds:.0f} s"
    )
    return metrics


ROWS = (
    ("zero_shot_TimGM6mb", "**zero-shot naming, TimGM6mb, user-played** (headline)"),
    ("zero_shot_never_heard", "zero-shot naming, TimGM6mb, user-played clips whose every note no training soundfont has"),
    ("zero_shot_heard", "zero-shot naming, TimGM6mb, user-played clips with a note a training soundfont has"),
    ("zero_shot_MuseScore_General_Lite", "zero-shot naming, user-played, MuseScore_General_Lite (trained on)"),
    ("zero_shot_sf_GMbank", "zero-shot naming, user-played, sf_GMbank (trained on)"),
    ("probe_TimGM6mb", "linear probe (fit on the training soundfonts' user-played clips), TimGM6mb"),
    ("few_shot_1", "few-shot, 1 TimGM6mb clip a class, TimGM6mb"),
    ("few_shot_4", "few-shot, 4 TimGM6mb clips a class, TimGM6mb"),
    ("zero_shot_extreme_registers", "previous protocol: single notes of the two extreme registers, 1 s, calibrated level (TimGM6mb)"),
)


def report(runs: dict[int, dict[str, Any]], shared: dict[tuple[str, int], float], cfg: RecipeConfig) -> str:
    import pandas as pd

    from skclap.datasets.played import combine_tables, markdown_table

    seeds = sorted(runs)
    lines = [
        "# Instrument CLAP recipe",
        "",
        f"`{cfg.preset}` preset, {cfg.steps} steps of {cfg.batch_size} pairs, {cfg.n_train} training clips of {cfg.seconds:g} s from "
        f"{' and '.join(TRAIN_FONTS)} (augmented); {cfg.n_eval} user-played clips per test set; seeds {seeds}. 17-way, chance 5.9 %.",
        "",
        "| measure | mean ± std | per seed |",
        "|---|---|---|",
    ]
    for key, text in ROWS:
        v = np.array([runs[s][key] for s in seeds])
        std = v.std(ddof=1) if len(v) > 1 else 0.0  # over seeds, as the per-condition tables give it
        lines.append(f"| {text} | {v.mean():.1%} ± {std:.1%} | {' / '.join(f'{x:.1%}' for x in v)} |")
    for font in (TEST_FONT, *TRAIN_FONTS):
        tables = [pd.DataFrame(runs[s]["tables"][font]) for s in seeds]
        lines += ["", f"## Zero-shot per condition, user-played, {font}", "", markdown_table(combine_tables(tables))]
    lines += [
        "",
        f"A TimGM6mb note counts as heard when the same key from any preset a training soundfont is played on correlates with it at {SAME} or more "
        "(the same recording): the share of each instrument's compass that is.",
        "",
        "| instrument | keys heard |",
        "|---|---|",
    ]
    for name, part in shared_instruments(shared).items():
        lines.append(f"| {name} | {part:.0%} |")
    return "\n".join(lines) + "\n"


def ship(model_dir: Path, dest: Path) -> str:
    """Write the model of ``model_dir`` to ``dest`` as the package ships it: its learnt weights in
    float16 (they load as float32), buffers (batch-norm statistics, mel filters) as they are.
    Returns the sha256 of its ``model.safetensors``."""
    import hashlib
    import shutil

    from safetensors.torch import save_file

    from skclap import CLAPModel
    from skclap.models.serialization import FORMAT, WEIGHTS_NAME

    model = CLAPModel.from_pretrained(model_dir)
    shutil.rmtree(dest, ignore_errors=True)
    model.save_pretrained(dest)
    learnt = {name for name, _ in model.named_parameters()}
    state = {k: (v.half() if k in learnt else v).detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(dest / WEIGHTS_NAME), metadata={"format": FORMAT})
    return hashlib.sha256((dest / WEIGHTS_NAME).read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    d = RecipeConfig()
    p = argparse.ArgumentParser(prog="python -m recipes.instruments", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/instruments")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--clips", type=int, default=d.n_train)
    p.add_argument("--group-size", type=int, default=d.group_size or 0, help="runs of clips of one instrument per batch; 0: off")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--ship", metavar="DIR", help="write seed 0's model here as the package ships it (skclap/bundled/skclap-instruments)")
    args = p.parse_args(argv)
    from skclap.datasets.instruments import soundfont_path

    for font in (*TRAIN_FONTS, TEST_FONT):
        soundfont_path(font)  # names the Debian package of a missing one
    cfg = replace(
        d, steps=args.steps, n_train=args.clips, group_size=args.group_size or None, cache_dir=args.cache_dir, progress=not args.no_progress
    )
    out = Path(args.out)
    shared = shared_recordings()
    runs = {}
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        done = out / f"seed-{seed}" / "metrics.json"
        runs[seed] = json.loads(done.read_text()) if done.is_file() else run_seed(out / f"seed-{seed}", replace(cfg, seed=seed), shared)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report(runs, shared, cfg))
    print((out / "report.md").read_text())
    if args.ship:  # seed 0, whatever the other seeds measure (decided before any was run)
        digest = ship(out / "seed-0" / "model", Path(args.ship))
        print(f"shipped seed 0 to {args.ship}: model.safetensors sha256 {digest}")
    return 0
