"""The ``skclap`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .layout import INDEXES

__all__ = ["main"]


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from . import CLAPModel, __version__, list_models

    print(f"skclap {__version__}  (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    rows = list_models()
    width = max(len(r.architecture) for r in rows if r.kind != "preset")  # the column never runs into the next
    bundled = [r for r in rows if r.kind == "bundled"]
    if bundled:
        print("\nInside the package, offline (model=NAME anywhere a model is taken):")
        for r in bundled:
            note = r.note[:1].upper() + r.note[1:].rstrip(".") + "."
            print(f"  {r.name:34s} {r.architecture:{width}s}  {r.description}\n  {'':34s} {note}")
    print("\nReleased weights (model=NAME in the estimators, load_model, skclap evaluate --model, skclap train --init):")
    for r in rows:
        if r.kind == "pretrained":
            print(f"  {r.name:34s} {r.architecture:{width}s}  {r.description}\n  {'':34s} {r.source}")
            if r.note:
                print(f"  {'':34s} known issue: {r.note}")
    print("\nArchitectures, random weights (model='preset:NAME', skclap train --preset NAME):")
    for r in rows:
        if r.kind == "preset":
            print(f"  {r.name:34s} {r.architecture}, {r.description}")
    model = CLAPModel.from_preset(args.preset)
    rate = model.config.sample_rate
    t = np.arange(rate) / rate
    wave = torch.from_numpy(np.sin(2 * np.pi * 440 * t).astype(np.float32))[None]
    with torch.inference_mode():
        a = model.encode_audio(wave, normalize=True)
        e = model.encode_text(["a pure tone"], normalize=True)
    print(
        f"\nself-check: preset {args.preset!r} embedded 1 s of audio -> {tuple(a.shape)}, a caption -> {tuple(e.shape)}, "
        f"cosine {float(a @ e.T):+.3f} (random weights)"
    )
    return 0


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .encoder import add_runtime_arguments

    p.add_argument("manifest", help="CSV or Parquet with 'audio' and 'caption' columns (one row per caption)")
    p.add_argument("--out", required=True, help="output directory: final model, checkpoints/, history.csv")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--preset", default="tiny", help="architecture to train from scratch, random init (default: tiny)")
    start.add_argument("--init", help="start from weights instead: a model name (skclap info lists them), a directory or a .pth/.pt file")
    p.add_argument("--val", help="validation manifest (retrieval R@1/5/10)")
    p.add_argument("--batch-size", type=int, default=32, help="global contrastive batch")
    p.add_argument("--micro-batch-size", type=int, help="gradient caching: pairs per forward pass")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--optimizer", choices=["adamw", "adam"], default="adamw")
    p.add_argument("--freeze-text", action="store_true", help="freeze the text transformer")
    p.add_argument("--freeze-audio", action="store_true", help="freeze the CNN14 audio backbone")
    p.add_argument("--cpu-bf16", action="store_true", help=argparse.SUPPRESS)  # deprecated: --precision auto
    p.add_argument("--checkpoint-every", type=int, help="steps between resumable checkpoints")
    p.add_argument("--eval-every", type=int, help="steps between validations (also at every epoch end)")
    p.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    add_runtime_arguments(p, ("precision", "device", "progress"))


def run_train(args: argparse.Namespace) -> int:
    from .training import train
    from .training.distributed import close_distributed

    config = dict(
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        epochs=args.epochs,
        max_steps=args.max_steps,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        optimizer=args.optimizer,
        freeze_text=args.freeze_text,
        freeze_audio=args.freeze_audio,
        precision="auto" if args.cpu_bf16 and args.precision is None else args.precision,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        num_workers=args.num_workers,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    ok = False
    try:
        trainer = train(
            args.manifest, args.out, model=args.init or f"preset:{args.preset}", val_data=args.val, resume=args.resume, **config
        )
        ok = True
    finally:
        close_distributed(ok)  # under torchrun: no rank leaves while rank 0 still writes the model
    last = trainer.history[-1] if trainer.history else {}
    if trainer.is_main:
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k.startswith("val_") and "R@" in k)
        print(
            f"trained {trainer.step} steps; loss {last.get('loss', float('nan')):.4f}"
            f"{'; ' + metrics if metrics else ''}; model in {args.out}"
        )
    return 0


def _source_tree_module(module: str, what: str) -> Any:
    """A module of skclap's source tree that lives beside the package (``recipes/``, ``experiments/``)."""
    import importlib

    root = Path(__file__).resolve().parents[1]
    top = module.split(".")[0]
    if not (root / top / "__init__.py").is_file():
        raise SystemExit(
            f"{what} lives in skclap's source tree ({top}/), not in the installed package: clone the "
            "repository, install it there (bash scripts/setup.sh) and run it from the checkout"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(module)


def run_demo_cmd(args: argparse.Namespace) -> int:
    if args.train:  # the recipe of the bundled model, from a source checkout
        recipe = _source_tree_module("recipes.instruments.recipe", "the recipe of the bundled model")
        try:
            return int(recipe.main(["--out", args.out, *(["--no-progress"] if args.no_progress else [])]))
        except (FileNotFoundError, ModuleNotFoundError) as err:
            raise SystemExit(f"skclap demo --train: {err}") from None
    from .demo import MIN_PER_CLASS, run_demo

    if args.per_class < MIN_PER_CLASS:
        raise SystemExit(f"--per-class must be {MIN_PER_CLASS} or more (4 clips a class are drawn from half of them); got {args.per_class}")
    run_demo(args.out, per_class=args.per_class, seed=args.seed)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import DEFAULT_MODES, evaluate, results_markdown

    data_dir = args.data_dir or args.data
    if data_dir is None:
        raise SystemExit("evaluate needs the dataset's folder: skclap evaluate --task NAME DIR (or --data-dir DIR)")
    if args.data_dir and args.data and Path(args.data_dir) != Path(args.data):
        raise SystemExit(f"two dataset folders given: --data-dir {args.data_dir} and {args.data}")
    retrieval = _retrieval_tasks(args.task)
    if retrieval:
        return _run_retrieval(retrieval, data_dir, args)
    tasks = "all" if "all" in args.task else args.task
    modes = DEFAULT_MODES if args.mode == "both" else (args.mode,)
    try:
        shots = [int(k) for k in args.shots.split(",")]
    except ValueError:
        raise SystemExit(f"--shots takes comma-separated positive integers, e.g. 1,2,4,8,16; got {args.shots!r}") from None
    if not shots or min(shots) < 1 or args.draws < 1:
        raise SystemExit(f"--shots needs positive integers and --draws at least 1; got {args.shots!r}, {args.draws}")
    if args.tuner_steps < 1:
        raise SystemExit(f"--tuner-steps must be 1 or more; got {args.tuner_steps}")
    table = evaluate(
        tasks,
        data_dir,
        model=args.model,
        modes=modes,
        out_dir=args.out,
        cache=args.cache_dir or True,
        shots=shots,
        draws=args.draws,
        tuner_steps=args.tuner_steps,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        progress=not args.no_progress,
    )
    print(results_markdown(table, model_name=args.model))
    print(f"written: {args.out}/results.csv, {args.out}/results.md")
    return 0


def _retrieval_tasks(names: list[str]) -> list[str]:
    from .evaluation import RETRIEVAL_TASKS

    found = [n.lower() for n in names if n.lower() in RETRIEVAL_TASKS]
    if found and len(found) != len(names):
        raise SystemExit(f"retrieval tasks ({', '.join(RETRIEVAL_TASKS)}) run apart from the classification tasks; got {names}")
    return found


def _run_retrieval(tasks: list[str], data_dir: str, args: argparse.Namespace) -> int:
    """AudioCaps / Clotho retrieval: one table per task, both directions, printed and written to --out."""
    from .evaluation import evaluate_retrieval

    texts = []
    for task in tasks:
        result = evaluate_retrieval(
            task,
            data_dir,
            args.model,
            protocol=args.protocol,
            split=args.split,
            cache=args.cache_dir or True,
            batch_size=args.batch_size,
            device=args.device,
            precision=args.precision,
            progress=not args.no_progress,
        )
        texts.append(result.markdown())
        print(texts[-1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.md").write_text("\n".join(texts))
    print(f"written: {out / 'retrieval.md'}")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from .embed import run

    return run(args)


def run_index(args: argparse.Namespace) -> int:
    if args.store == "auto":
        from .retrieval import default_store

        args.store = default_store(args.dir)
        print(f"store: {args.store} ({'the vectors fit in memory' if args.store == 'faiss' else 'the vectors exceed a quarter of memory'})")
    if args.store == "lance":
        from .lance_store import build_lance_index

        print(f"written: {build_lance_index(args.dir, partitions=args.nlist)} (with its IVF-PQ index)")
        return 0
    if args.store == "faiss-pq":
        from .pq_index import build_pq_index

        print(f"written: {build_pq_index(args.dir, partitions=args.nlist)}")
        return 0
    from .retrieval import build_index

    print(f"written: {build_index(args.dir, nlist=args.nlist)}")
    return 0


def _filters(where: list[str] | None) -> dict[str, list[str]] | None:
    """``--where column=value`` options as filters: values of one column are alternatives."""
    out: dict[str, list[str]] = {}
    for w in where or []:
        col, sep, value = w.partition("=")
        if not sep or not col:
            raise SystemExit(f"skclap search: --where takes column=value; got {w!r}")
        out.setdefault(col, []).append(value)
    return out or None


def run_search(args: argparse.Namespace) -> int:
    import pandas as pd

    from .retrieval import search

    if (args.query is None) == (args.like is None):
        raise SystemExit("skclap search: give a text query or --like FILE")
    table = search(
        args.dir,
        args.query,
        like=args.like,
        k=args.k,
        model=args.model,
        index=args.index,
        device=args.device,
        exclude_self=args.exclude_self,
        filters=_filters(args.where),
    )
    if args.csv:
        table.to_csv(args.csv, index=False)
    with pd.option_context("display.max_colwidth", 80, "display.width", 160):
        print(table.drop(columns=["query"]).to_string(index=False))
    return 0


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    from .serve import add_arguments

    add_arguments(p)


def run_serve(args: argparse.Namespace) -> int:
    from .serve import run

    return run(args)


def run_protocols() -> int:
    from .score_protocols import PROTOCOLS

    for proto in PROTOCOLS.values():
        print(proto.describe())
    print(f"{'(none: skclap score default)':<26} CLAP score: any model; its deterministic windows pooled per clip; mean cosine")
    return 0


def run_score(args: argparse.Namespace) -> int:
    import pandas as pd

    from .embed import list_inputs
    from .score import DEFAULT_SCORE_MODEL, clap_score

    if args.protocols:
        return run_protocols()
    if args.pairs is None:
        raise SystemExit("skclap score: give a CSV/Parquet of pairs (or --protocols to list the protocols)")
    pairs = list_inputs(args.pairs)
    text_col = args.text_column or next((c for c in ("text", "caption", "prompt") if c in pairs.columns), None)
    if text_col is None or text_col not in pairs.columns:
        raise SystemExit(f"skclap score: {args.pairs} needs a text column (text, caption or prompt); columns: {list(pairs.columns)}")
    result = clap_score(
        list(pairs["path"]),
        list(pairs[text_col].astype(str)),
        model=args.model if args.model is not None or args.protocol else DEFAULT_SCORE_MODEL,
        protocol=args.protocol,
        exact=args.exact,
        seed=args.seed,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        progress=not args.no_progress,
    )
    if args.out:
        # the pairs as given (their column names, the paths as written) and their scores
        source = Path(args.pairs)
        given = pd.read_csv(source) if source.suffix.lower() == ".csv" else pd.read_parquet(source)
        given.assign(clap_score=result.scores).to_csv(args.out, index=False)
    spread = f", std {result.std:.4f}" if result.std is not None else ""
    print(f"CLAP score {result.mean:.4f}{spread} ({len(result.scores)} pairs; protocol {result.protocol}; model {result.model})")
    return 0


def run_fad(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from .fad import cached_statistics, clap_fad

    run: dict[str, Any] = dict(
        exact=args.exact,
        seed=args.seed,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        progress=not args.no_progress,
    )
    baseline = args.baseline
    if args.baseline_stats:
        existed = Path(args.baseline_stats).exists()
        baseline = cached_statistics(args.baseline, args.baseline_stats, args.protocol, args.model, **run)
        print(f"baseline statistics {'read from' if existed else 'written to'} {args.baseline_stats}")
    if args.out and str(args.evaluated).endswith(".npz"):
        raise SystemExit("skclap fad: --out writes each evaluated file's figures; the evaluated set is saved statistics, without files")
    result = clap_fad(baseline, args.evaluated, args.protocol, args.model, **run)
    if args.out and result.items is not None:
        rows = {"path": [str(i) for i in result.items], "frames": result.frames}
        if result.per_item is not None and not np.isnan(result.per_item).all():
            rows["fad"] = result.per_item
        pd.DataFrame(rows).to_csv(args.out, index=False)
    b, e = result.baseline, result.evaluated
    print(
        f"FAD {result.fad:.6f} (protocol {result.protocol}; model {b.model}; "
        f"baseline {b.files} files, {b.n} frames; evaluated {e.files} files, {e.n} frames)"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    import json

    from .onnx_engine import MANIFEST
    from .onnx_export import export_onnx

    calibration = None
    if args.float_layers is not None and not args.quantize:
        raise SystemExit("skclap export: --float-layers goes with --quantize int8")
    float_layers = 4 if args.float_layers is None else args.float_layers
    if float_layers < 1:
        raise SystemExit(f"skclap export: --float-layers must be 1 or more (the first layer takes the log-mel); got {float_layers}")
    if args.quantize:
        from .embed import calibration_files

        try:
            calibration = calibration_files(args.calibration)
        except ValueError as err:
            raise SystemExit(f"skclap export --quantize int8: {err}") from None
    try:
        out = export_onnx(
            args.model, args.out, opset=args.opset, quantize=args.quantize, calibration=calibration, float_layers=float_layers
        )
    except (NotImplementedError, RuntimeError) as err:  # a model it cannot export, a graph that fails its check
        raise SystemExit(f"skclap export: {err}") from None
    files = sorted(p.name for p in out.iterdir())
    print(
        f"{args.model} exported to {out}: {', '.join(files)} (checked against the model with onnxruntime; {MANIFEST} says what runs outside the graphs)"
    )
    if args.quantize:
        q = json.loads((out / MANIFEST).read_text())["audio"]["quantized"]
        print(
            f"int8 audio graph, calibrated on {q['calibration_windows']} windows: cosine to the model {q['min_cosine_calibration']} at least on them"
        )
    return 0


def run_install_extra(args: argparse.Namespace) -> int:
    from .extras import install_extra

    return install_extra(args.extra, dry_run=args.dry_run)


def _add_draw_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--exact",
        action="store_true",
        help="past the tool's window, draw the crop as the tool does (numpy RandomState(--seed)); default: a fixed choice",
    )
    p.add_argument("--seed", type=int, default=0, help="the tool's numpy seed, with --exact (audiocraft's config: 2036)")


def _command(sub: Any, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` opens with what it does (its line in ``skclap --help``)."""
    p = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", **kwargs)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="on an error, show its traceback")
    return p


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options. One declaration after another, long because the commands are
    many: each command's options read best in one place, beside the others'."""
    from .demo import MODEL as DEMO_MODEL
    from .embed import MODEL_HELP, OUTPUT_LAYOUT
    from .encoder import add_runtime_arguments
    from .score import DEFAULT_SCORE_MODEL

    parser = argparse.ArgumentParser(prog="skclap", description="CLAP for scikit-learn")
    parser.add_argument("--debug", action="store_true", help="on an error, show its traceback (else one line)")
    sub = parser.add_subparsers(dest="command", required=True)
    info = _command(sub, "info", "list the models (bundled, released, architectures) and run an offline self-check")
    info.add_argument("--preset", default="tiny", help="the architecture the self-check builds, random weights (default: tiny)")
    info.set_defaults(func=_cmd_info)
    demo = _command(
        sub,
        "demo",
        f"offline, on the bundled model {DEMO_MODEL}: it names instruments of a soundfont it was not trained on "
        "(zero-shot, pipeline + cross-validation, few-shot, search); --train runs its recipe",
    )
    demo.add_argument("--out", default="skclap-demo", help="report folder (default: skclap-demo)")
    demo.add_argument("--per-class", type=int, default=20, help="user-played clips per instrument (default: 20)")
    demo.add_argument("--seed", type=int, default=0, help="draws the clips (default: 0)")
    demo.add_argument(
        "--train", action="store_true", help="train the bundled model's recipe instead (a source checkout, Debian soundfonts)"
    )
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=run_demo_cmd)
    ev = _command(
        sub, "evaluate", "downstream tasks of the paper: zero-shot and linear probe, one table; audiocaps / clotho: retrieval both ways"
    )
    ev.add_argument(
        "--task",
        action="append",
        required=True,
        help="task name (repeatable), or 'all'; see skclap.evaluation.TASKS; or audiocaps / clotho (retrieval)",
    )
    ev.add_argument("data", nargs="?", help="the dataset's folder, or a root holding each dataset in its standard folder name")
    ev.add_argument("--data-dir", help="the same as DATA")
    ev.add_argument(
        "--protocol", choices=["standard", "laion", "dcase"], default="standard", help="retrieval: whose figures (default standard)"
    )
    ev.add_argument("--split", default="test", help="retrieval: the split to score (default test; Clotho's is evaluation)")
    ev.add_argument("--model", default="msclap-2022", help=MODEL_HELP)
    ev.add_argument("--mode", choices=["zeroshot", "probe", "both", "fewshot"], default="both", help="both: zeroshot and probe")
    ev.add_argument("--shots", default="1,2,4,8,16", help="fewshot: labelled clips per class drawn from each training fold")
    ev.add_argument("--draws", type=int, default=5, help="fewshot: draws of the shots per fold (mean ± std over them)")
    ev.add_argument("--tuner-steps", type=int, default=200, help="fewshot: the prompt tuner's optimisation steps per fit (default 200)")
    ev.add_argument("--out", default="skclap-eval", help="folder for results.csv and results.md")
    ev.add_argument("--cache-dir", help="keep audio embeddings on disk here (default: in memory)")
    add_runtime_arguments(ev)
    ev.set_defaults(func=run_evaluate)
    from .embed import add_arguments as add_embed_arguments

    em = _command(
        sub,
        "embed",
        "embed a folder or manifest of audio files into sharded Parquet (resumable)",
        epilog=OUTPUT_LAYOUT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_embed_arguments(em)
    em.set_defaults(func=run_embed)
    ix = _command(
        sub, "index", "build an approximate index over an embedded collection: faiss IVF in memory, faiss IVF-PQ or a LanceDB table on disk"
    )
    ix.add_argument("dir", help="the output folder of skclap embed")
    ix.add_argument(
        "--store",
        choices=["auto", "faiss", "faiss-pq", "lance"],
        default="auto",
        help="faiss: index.faiss (IVF-Flat, in memory); faiss-pq: index-ivfpq.faiss (IVF-PQ, searched from disk); "
        "lance: collection.lance (IVF-PQ, on disk); auto (default): faiss while the vectors take at most a quarter of memory, else faiss-pq",
    )
    ix.add_argument("--nlist", type=int, help="k-means cells (default: 4 * sqrt(rows) for faiss, sqrt(rows) for faiss-pq and lance)")
    ix.set_defaults(func=run_index)
    se = _command(sub, "search", "search an embedded collection by text or by an example file")
    se.add_argument("dir", help="the output folder of skclap embed")
    se.add_argument("query", nargs="?", help="text query, e.g. 'dog barking in the rain'")
    se.add_argument("--like", help="an audio file: find the most similar files")
    se.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    se.add_argument("--model", help="default: the model the collection was embedded with (its embeddings.json names it)")
    se.add_argument(
        "--exclude-self", action="store_true", help="with --like a file of the collection: leave that file out of its own results"
    )
    se.add_argument("--index", choices=list(INDEXES), default="auto")
    se.add_argument(
        "--where", action="append", metavar="COLUMN=VALUE", help="only rows whose metadata column has this value (repeat: several)"
    )
    se.add_argument("--csv", help="also write the results table here")
    add_runtime_arguments(se, ("device",))
    se.set_defaults(func=run_search)
    sv = _command(sub, "serve", "search an embedded collection in the browser, by text or by sound")
    add_serve_arguments(sv)
    sv.set_defaults(func=run_serve)
    sc = _command(sub, "score", "CLAP score of audio-text pairs (cosine per pair and the mean), as a published tool computes it")
    sc.add_argument("pairs", nargs="?", help="CSV/Parquet with an audio path column (path/audio/file) and a text column")
    sc.add_argument("--protocols", action="store_true", help="list the protocols, a line each, and exit")
    sc.add_argument("--protocol", help="a tool's CLAP score (see --protocols); default: skclap's own")
    sc.add_argument(
        "--model",
        help=f"a model name (skclap info lists them), a checkpoint directory or file (default: {DEFAULT_SCORE_MODEL}; "
        "with --protocol, the tool's checkpoint), fetched from the hub on first use",
    )
    sc.add_argument("--text-column", help="default: text, caption or prompt")
    sc.add_argument("--out", help="write the pairs with a clap_score column to this CSV (their columns as given)")
    _add_draw_arguments(sc)
    add_runtime_arguments(sc)
    sc.set_defaults(func=run_score)
    fd = _command(sub, "fad", "Frechet audio distance on CLAP embeddings between two sets of audio, as a published tool computes it")
    fd.add_argument("baseline", help="a folder of audio, a file list (CSV/Parquet/txt), or saved statistics (.npz)")
    fd.add_argument("evaluated", help="a folder of audio or a file list")
    fd.add_argument("--protocol", default="fadtk:clap-laion-audio", help="a tool's FAD (skclap score --protocols lists them)")
    fd.add_argument(
        "--model", help="another checkpoint of the protocol's rate and window, where the tool lets you choose (default: the tool's)"
    )
    fd.add_argument(
        "--baseline-stats",
        help="an .npz: read the baseline's statistics from it, or write them to it (one baseline, many sets; "
        "with --exact, the evaluated set's draws then start at the seed)",
    )
    fd.add_argument("--out", help="write each evaluated file's frames and own FAD to the baseline to this CSV")
    _add_draw_arguments(fd)
    add_runtime_arguments(fd)
    fd.set_defaults(func=run_fad)
    ex = _command(sub, "export", "export a model's audio and text towers as ONNX graphs, to run without PyTorch")
    ex.add_argument("model", help="a model name (skclap info lists them), a checkpoint directory or file")
    ex.add_argument("out", help="the folder to write audio.onnx, text.onnx, the tokenizer and skclap-onnx.json to")
    ex.add_argument("--format", choices=["onnx"], default="onnx")
    ex.add_argument("--opset", type=int, default=18, help="the ONNX opset (18: its STFT operator takes the front-end)")
    ex.add_argument("--quantize", choices=["int8"], help="int8 audio graph (static, calibrated on --calibration)")
    ex.add_argument("--calibration", help="audio the model will hear, for --quantize: a folder, a CSV/Parquet manifest or a list file")
    ex.add_argument(
        "--float-layers",
        type=int,
        help="with --quantize: the leading convolutions kept float32 (default 4: CNN14's first two blocks; 1 is faster, further from float32)",
    )
    ex.set_defaults(func=run_export)
    from .extras import EXTRAS

    ie = _command(
        sub,
        "install-extra",
        "install an extra's packages in one step, with this interpreter's pip "
        "(instruments: pretty-midi, then tinysoundfont without its playback dependency, which has no wheel)",
    )
    ie.add_argument("extra", choices=EXTRAS)
    ie.add_argument("--dry-run", action="store_true", help="print the pip commands, run nothing")
    ie.set_defaults(func=run_install_extra)
    tr = _command(sub, "train", "train CLAP contrastively on an audio-caption manifest")
    add_train_arguments(tr)
    tr.set_defaults(func=run_train)
    return parser


#: Errors of ordinary use (a missing file, a model not on disk, a bad option value, a missing
#: extra): one line and a non-zero exit, the traceback with --debug. Anything else is a bug: traceback.
USER_ERRORS = (OSError, ValueError, ImportError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"skclap {args.command}: error: {err}\n(skclap --debug {args.command} ... shows the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"skclap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
