"""Train a small CLAP on captioned notes of 17 instruments from two soundfonts, and test its
zero-shot instrument naming on a soundfont it never heard.

Training data: notes of the 17 General MIDI instruments of :mod:`skclap.datasets.instruments`,
rendered from ``MuseScore_General_Lite`` and ``sf_GMbank`` only (Debian packages
``musescore-general-soundfont-small`` and ``csound-soundfont``), each in recording conditions of its
own (``augment=True``), captioned with register, dynamics and articulation.

Tests, all 17-way zero-shot instrument naming from prompts of the names alone (chance 1/17):
- new notes of each training soundfont (seen samples, unseen notes);
- new notes of ``TimGM6mb`` (shipped by ``pretty-midi``), never trained on. Its samples are not all
  its own: for some instruments sf_GMbank carries the very same recordings
  (:func:`shared_instruments` measures which). The report gives the figure on the instruments whose
  TimGM6mb samples no training soundfont has (the never-heard headline), on the shared ones, and on all;
- a linear probe trained on the training soundfonts' new notes, tested on TimGM6mb.

Every seed draws its own corpus, split and initialisation; a seed whose ``metrics.json`` exists is
not run again, and an interrupted one resumes from its last checkpoint.
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


@dataclass
class RecipeConfig:
    preset: str = "small"
    seconds: float = 1.0
    n_train: int = 12000  # clips, split evenly over the two training soundfonts
    n_eval: int = 680  # new notes per test set (40 per instrument)
    steps: int = 6000
    batch_size: int = 64
    lr: float = 1e-3
    group_size: int | None = None  # runs of this many clips of one instrument in each batch (hard negatives); None: off
    seed: int = 0
    cache_dir: str | None = None
    progress: bool = True


def shared_recordings(test_font: str = TEST_FONT, train_fonts: tuple[str, ...] = TRAIN_FONTS) -> dict[tuple[str, int], float]:
    """Per (instrument, MIDI key) of the two registers, the highest correlation between that note
    from ``test_font`` and the same note (same key and velocity) from a training soundfont. Near 1:
    the training soundfont plays the very same recording for that key."""
    from skclap.datasets.instruments import INSTRUMENTS, render_events

    out = {}
    for inst in INSTRUMENTS:
        keys = [inst.program] if inst.drums else [*range(inst.low[0], inst.low[1] + 1), *range(inst.high[0], inst.high[1] + 1)]
        for key in keys:
            a = render_events(inst.name, [(0.0, 0.5, key, 100)], 0.8, 16000, test_font)
            best = 0.0
            for font in train_fonts:
                b = render_events(inst.name, [(0.0, 0.5, key, 100)], 0.8, 16000, font)
                best = max(best, float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
            out[(inst.name, key)] = best
    return out


def shared_instruments(shared: dict[tuple[str, int], float]) -> dict[str, float]:
    """Per instrument, the share of its keys whose recording a training soundfont also has."""
    names = dict.fromkeys(name for name, _ in shared)
    return {n: float(np.mean([c >= SAME for (m, _), c in shared.items() if m == n])) for n in names}


#: Correlation above which two renders of one note are taken for the same recording.
SAME = 0.9


def zero_shot(model: Any, **params: Any) -> Any:
    """17-way instrument naming from the names' prompts (templates and synonyms of the captions)."""
    from skclap import CLAPZeroShotClassifier
    from skclap.datasets.instruments import INSTRUMENTS, instrument_prompts

    names = [i.name for i in INSTRUMENTS]
    return CLAPZeroShotClassifier(
        model=model, labels=names, templates="{}", label_prompts={n: instrument_prompts(n) for n in names}, **params
    ).fit()


def run_seed(out_dir: Path, cfg: RecipeConfig, shared: dict[tuple[str, int], float], log=print) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from skclap import CLAPEmbedder, CLAPModel
    from skclap.datasets.instruments import make_instrument_corpus, note_key
    from skclap.models import PRESETS
    from skclap.training import TrainConfig, Trainer

    out_dir.mkdir(parents=True, exist_ok=True)
    rate = PRESETS[cfg.preset].sample_rate
    t0 = time.perf_counter()
    train = make_instrument_corpus(
        cfg.n_train, seed=cfg.seed, sample_rate=rate, seconds=cfg.seconds, soundfonts=TRAIN_FONTS, augment=True, cache_dir=cfg.cache_dir
    )
    tests = {
        font: make_instrument_corpus(
            cfg.n_eval, seed=10_000 + 100 * cfg.seed + k, sample_rate=rate, seconds=cfg.seconds, soundfonts=(font,), cache_dir=cfg.cache_dir
        )
        for k, font in enumerate((*TRAIN_FONTS, TEST_FONT))
    }
    log(f"seed {cfg.seed}: {len(train)} training clips rendered in {time.perf_counter() - t0:.0f} s")
    config = PRESETS[cfg.preset].replace(frontend={"clip_seconds": cfg.seconds})
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

    common: dict[str, Any] = dict(sample_rate=rate, progress=False, device="cpu")  # the memory cache: each clip embedded once
    clf = zero_shot(model, **common)
    metrics: dict[str, Any] = {"train_seconds": train_seconds, "chance": 1 / 17}
    # TimGM6mb notes split by whether a training soundfont plays the very same recording
    own = np.array([shared[(c.family, note_key(c, rate, TEST_FONT))] < SAME for c in tests[TEST_FONT].clips])
    embeddings = {}
    for font, corpus in tests.items():
        waves = corpus.waveforms()
        truth = np.array(corpus.labels)
        pred = clf.predict(waves)
        metrics[f"zero_shot_{font}"] = float((pred == truth).mean())
        if font == TEST_FONT:
            metrics["never_heard_clips"] = int(own.sum())
            metrics["zero_shot_never_heard_instruments"] = float((pred == truth)[own].mean())
            metrics["zero_shot_shared_instruments"] = float((pred == truth)[~own].mean())
            metrics["per_instrument_TimGM6mb"] = {n: float((pred == truth)[truth == n].mean()) for n in sorted(set(truth))}
        embeddings[font] = (CLAPEmbedder(model=model, **common).fit_transform(waves), truth)
    X = np.concatenate([embeddings[f][0] for f in TRAIN_FONTS])
    y = np.concatenate([embeddings[f][1] for f in TRAIN_FONTS])
    probe = LogisticRegression(max_iter=2000).fit(X, y)
    Xt, yt = embeddings[TEST_FONT]
    metrics["probe_TimGM6mb"] = float(probe.score(Xt, yt))
    metrics["probe_never_heard_instruments"] = float((probe.predict(Xt) == yt)[own].mean())
    (out_dir / "metrics.json").write_text(json.dumps({"config": asdict(cfg), **metrics}, indent=2))
    log(
        f"seed {cfg.seed}: zero-shot {metrics['zero_shot_TimGM6mb']:.1%} on TimGM6mb "
        f"({metrics['zero_shot_never_heard_instruments']:.1%} on its never-heard instruments), "
        + ", ".join(f"{metrics[f'zero_shot_{f}']:.1%} on {f}'s new notes" for f in TRAIN_FONTS)
        + f"; probe {metrics['probe_TimGM6mb']:.1%} on TimGM6mb; trained in {train_seconds:.0f} s"
    )
    return metrics


ROWS = (
    ("zero_shot_never_heard_instruments", "**zero-shot naming, TimGM6mb notes whose recording no training soundfont has** (headline)"),
    ("zero_shot_TimGM6mb", "zero-shot naming, TimGM6mb, every note"),
    ("zero_shot_shared_instruments", "zero-shot naming, TimGM6mb notes whose very recording a training soundfont has"),
    ("zero_shot_MuseScore_General_Lite", "zero-shot naming, new notes of MuseScore_General_Lite (trained on)"),
    ("zero_shot_sf_GMbank", "zero-shot naming, new notes of sf_GMbank (trained on)"),
    ("probe_TimGM6mb", "linear probe (fit on the training soundfonts' new notes), TimGM6mb, all"),
    ("probe_never_heard_instruments", "linear probe, TimGM6mb, never-heard notes"),
)


def report(runs: dict[int, dict[str, Any]], shared: dict[tuple[str, int], float], cfg: RecipeConfig) -> str:
    seeds = sorted(runs)
    lines = [
        "# Instrument CLAP recipe",
        "",
        f"`{cfg.preset}` preset, {cfg.steps} steps of {cfg.batch_size} pairs, {cfg.n_train} training clips of {cfg.seconds:g} s from "
        f"{' and '.join(TRAIN_FONTS)} (augmented); {cfg.n_eval} new notes per test set; seeds {seeds}. 17-way, chance 5.9 %.",
        "",
        "| measure | mean ± std | per seed |",
        "|---|---|---|",
    ]
    for key, text in ROWS:
        v = np.array([runs[s][key] for s in seeds])
        lines.append(f"| {text} | {v.mean():.1%} ± {v.std():.1%} | {' / '.join(f'{x:.1%}' for x in v)} |")
    lines += [
        "",
        f"A TimGM6mb note counts as heard when the same key from a training soundfont correlates with it at {SAME} or more "
        "(the same recording): the share of each instrument's keys that are, and its zero-shot accuracy on TimGM6mb per seed.",
        "",
        "| instrument | keys heard | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|---|" + "---|" * len(seeds),
    ]
    for name, part in shared_instruments(shared).items():
        lines.append(f"| {name} | {part:.0%} | " + " | ".join(f"{runs[s]['per_instrument_TimGM6mb'][name]:.0%}" for s in seeds) + " |")
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
