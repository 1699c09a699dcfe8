"""Contrastive training of CLAP from audio-caption pairs.

The loop: seeded epoch permutations (:class:`EpochBatchSampler`), an objective's loss (by default
the symmetric contrastive loss over the global batch, all-gathered across ranks under ``torchrun``;
:mod:`skclap.training.objectives`), optional gradient caching, AdamW with
linear warm-up and cosine decay, gradient clipping, a learnable temperature clamped to
``max_logit_scale``, mixed precision on CUDA only, retrieval validation, atomic checkpoints that
resume bit-for-bit, and a CSV/JSON history.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from ..checkpoints import load_model, save_model
from ..devices import PRECISIONS, autocast_dtype, resolve_device, resolve_precision
from ..encoder import Encoder
from ..fileio import write_atomic
from ..models.clap import CLAPModel
from ..progress import progress_bar
from ..registry import parse_spec
from .data import CaptionDataset, EpochBatchSampler, caption_lists, collate
from .distributed import average_gradients, init_distributed
from .objectives import ContrastiveObjective, Objective
from .step import objective_backward

if TYPE_CHECKING:
    from ..models.protocol import TrainableModel

__all__ = ["TrainConfig", "Trainer", "start_model", "train"]

STATE_NAME = "trainer_state.pt"


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run."""

    batch_size: int = 32  # global batch: the pairs each loss contrasts
    micro_batch_size: int | None = None  # gradient caching: pairs per forward pass (per rank)
    epochs: int = 10
    max_steps: int | None = None  # overrides epochs
    lr: float = 5e-4
    weight_decay: float = 0.01
    optimizer: str = "adamw"  # or "adam"
    warmup_steps: int = 50
    group_size: int | None = None  # hard negatives: runs of this many items of one group per batch (fit(groups=...))
    grad_clip: float | None = 1.0
    max_logit_scale: float = 100.0
    freeze_text: bool = False  # freeze the text transformer (the 2022 release did); projections train
    freeze_audio: bool = False  # freeze the audio tower (CNN14, HTS-AT); its projection trains
    # None: float16 autocast on CUDA, float32 elsewhere; "auto": also bfloat16 on a CPU that computes it
    # natively (avx512_bf16, AMX); "fp32", "bf16", "fp16": that one (refused where the device lacks it)
    precision: str | None = None
    amp: bool | None = None  # deprecated: amp=False is precision="fp32" on CUDA
    cpu_bf16: bool | None = None  # deprecated: cpu_bf16=True is precision="auto"
    num_workers: int = 0
    seed: int = 0
    checkpoint_every: int | None = None  # steps
    keep_checkpoints: int = 2
    eval_every: int | None = None  # steps; validation also runs at the end of every epoch
    log_every: int = 10
    progress: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw'; got {self.optimizer!r}")
        if self.batch_size < 2:
            raise ValueError("a contrastive batch needs at least 2 pairs")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ValueError("micro_batch_size must be >= 1")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS} or None; got {self.precision!r}")
        for old, new in (("amp", "precision='fp32' to train without it"), ("cpu_bf16", "precision='auto'")):
            if getattr(self, old) is not None:
                warnings.warn(f"TrainConfig.{old} is deprecated: use {new}", DeprecationWarning, stacklevel=3)

    def resolved_precision(self, device: torch.device) -> str:
        """The arithmetic a run on ``device`` trains in: "fp32", "bf16" or "fp16"."""
        if self.precision is not None:
            return resolve_precision(self.precision, device)
        fastest = resolve_precision("auto", device)  # fp16 on CUDA, bf16 on a CPU with native bf16, else fp32
        return fastest if {"fp16": self.amp is not False, "bf16": bool(self.cpu_bf16)}.get(fastest, True) else "fp32"


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """Train a :class:`CLAPModel`; ``out_dir`` receives checkpoints, history and the final model
    (loadable with ``CLAPModel.from_pretrained`` and by the estimators).

    ``objective`` (:mod:`skclap.training.objectives`) says what is minimised: by default
    :class:`ContrastiveObjective` on audio-caption pairs; :class:`SupervisedObjective` fine-tunes the
    audio tower under a classification head (targets are integer labels).
    """

    def __init__(
        self,
        model: TrainableModel,
        config: TrainConfig | None = None,
        out_dir: str | os.PathLike | None = None,
        objective: Objective | None = None,
        **overrides: Any,
    ) -> None:
        self.model = model
        self.objective = objective if objective is not None else ContrastiveObjective()
        self.config = dataclasses.replace(config or TrainConfig(), **overrides)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.is_main = True
        self.precision = "fp32"  # the arithmetic of the last fit: "fp32", "bf16" (CPU) or "fp16" (CUDA)

    # ------------------------------------------------------------------------------ set-up
    def _dataset(self, data: Any, item_rate: int | None) -> CaptionDataset:
        if isinstance(data, CaptionDataset):
            return data
        items, captions = data
        cfg = self.model.config
        preload = not all(isinstance(x, (str, os.PathLike)) for x in items)
        return CaptionDataset(items, captions, cfg.sample_rate, cfg.window_samples, item_rate, preload=preload)

    def _trainable(self) -> list[torch.nn.Parameter]:
        m, c = self.model, self.config
        m.text_backbone.requires_grad_(not c.freeze_text)
        m.audio_backbone.requires_grad_(not c.freeze_audio)
        return [p for p in self.objective.trainable(m) if p.requires_grad]

    def _train_mode(self) -> None:
        self.model.train()
        self.objective.train()
        if self.config.freeze_text:
            self.model.text_backbone.eval()
        if self.config.freeze_audio:
            self.model.audio_backbone.eval()

    def _optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        c = self.config
        # No weight decay on biases, norms and the temperature.
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # PyTorch's fused kernels update every tensor in one pass; its default on a CPU loops over the
        # tensors in Python, which costs a small model a sizeable share of each step.
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        if c.optimizer == "adam":
            return torch.optim.Adam(groups, lr=c.lr, fused=fused)
        return torch.optim.AdamW(groups, lr=c.lr, fused=fused)

    # --------------------------------------------------------------------------- training
    def fit(
        self,
        train: Any,
        val: Any = None,
        item_rate: int | None = None,
        resume: bool = False,
        callbacks: Sequence[Callable[[Trainer, dict[str, Any]], None]] = (),
        groups: Sequence[Any] | None = None,
    ) -> TrainableModel:
        """Train on ``train`` (a :class:`CaptionDataset` or ``(items, captions)``), validate on
        ``val`` (``(items, captions)``), and return the trained model. ``groups`` (one key per
        training item, e.g. its instrument) with ``TrainConfig.group_size`` puts items of one group
        together in each batch (hard negatives). One loop with its state (step, scaler, sampler
        position, history) in one frame: split, resuming would have to hand that state around."""
        c = self.config
        info = init_distributed(c.device)
        self.is_main = info.is_main
        device = resolve_device(c.device)
        if device.type == "cuda" and info.enabled:
            device = torch.device("cuda", info.local_rank)
        model = self.model.to(device)
        self.objective.to(device)
        data = self._dataset(train, item_rate)
        if groups is not None and len(groups) != len(data):
            raise ValueError(f"{len(data)} training items but {len(groups)} groups")
        groups = data.groups if groups is None else list(groups)
        val_data = None if val is None else (list(val[0]), caption_lists(val[1]))

        steps_per_epoch = EpochBatchSampler.batches_per_epoch(len(data), c.batch_size)
        if steps_per_epoch == 0:
            raise ValueError(f"{len(data)} training pairs are fewer than one batch of {c.batch_size}")
        total = c.max_steps if c.max_steps is not None else c.epochs * steps_per_epoch
        params = self._trainable()
        optimizer = self._optimizer(params)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_cosine, warmup=c.warmup_steps, total=total))
        self.precision = c.resolved_precision(device)
        dtype = autocast_dtype(self.precision)
        scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        autocast = partial(torch.autocast, device.type, dtype=dtype) if dtype is not None else nullcontext
        if not (resume and self._restore(optimizer, scheduler, scaler)):
            torch.manual_seed(c.seed)  # dropout; a resumed run restores the saved random state

        bar = progress_bar(total=total, initial=self.step, desc="training CLAP", unit="step", disable=not (c.progress and info.is_main))
        t0, seen = time.perf_counter(), 0
        try:
            while self.step < total:
                sampler = EpochBatchSampler(
                    len(data), c.batch_size, c.seed, self.epoch, self.batch_in_epoch, info.rank, info.world_size, groups, c.group_size
                )
                loader = DataLoader(
                    data,
                    batch_sampler=sampler,
                    collate_fn=collate,
                    num_workers=c.num_workers,
                    generator=torch.Generator().manual_seed(c.seed),
                    pin_memory=device.type == "cuda",
                )
                for waves, captions, _ in loader:
                    self._train_mode()
                    loss = objective_backward(
                        model,
                        self.objective,
                        waves.to(device, non_blocking=True),
                        captions,
                        self.step,
                        c.micro_batch_size,
                        info,
                        autocast,
                        scaler,
                    )
                    average_gradients(params, info)
                    if scaler is not None:
                        scaler.unscale_(optimizer)
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, c.grad_clip if c.grad_clip else float("inf"))
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    with torch.no_grad():
                        model.logit_scale.clamp_(0.0, math.log(c.max_logit_scale))
                    self.step += 1
                    self.batch_in_epoch += 1
                    seen += c.batch_size
                    bar.update(1)
                    record = {
                        "step": self.step,
                        "epoch": self.epoch + self.batch_in_epoch / steps_per_epoch,
                        "loss": float(loss),
                        "lr": scheduler.get_last_lr()[0],
                        "logit_scale": float(model.logit_scale.detach().exp()),
                        "grad_norm": float(grad_norm),
                        "samples_per_s": seen / (time.perf_counter() - t0),
                    }
                    epoch_done = self.batch_in_epoch >= steps_per_epoch
                    if epoch_done:
                        self.epoch += 1
                        self.batch_in_epoch = 0
                    if val_data is not None and ((c.eval_every and self.step % c.eval_every == 0) or epoch_done or self.step == total):
                        record.update(self.evaluate(*val_data, item_rate=item_rate))
                    headline = self.objective.headline
                    if self.step % c.log_every == 0 or headline in record or self.step == total:
                        self.history.append(record)
                        bar.set_postfix(
                            loss=f"{record['loss']:.3f}", **({headline: f"{record[headline]:.2f}"} if headline in record else {})
                        )
                    if c.checkpoint_every and self.step % c.checkpoint_every == 0 and info.is_main:
                        self.save_checkpoint(optimizer, scheduler, scaler)
                    for cb in callbacks:
                        cb(self, record)
                    if self.step >= total:
                        break
        finally:
            bar.close()
        model.eval()
        self.objective.eval()
        if info.is_main and self.out_dir is not None:
            save_model(model, self.out_dir)
            self._write_history()
        return model

    @torch.no_grad()
    def evaluate(self, items: Sequence[Any], captions: Sequence[Sequence[Any]], item_rate: int | None = None) -> dict[str, float]:
        """The objective's validation measures on held-out items (deterministic windows) and their
        targets (caption lists; for a classification head, ``[[label], ...]``)."""
        a = Encoder(self.model, cache=False, sample_rate=item_rate).audio(items, normalize=False)
        return self.objective.evaluate(self.model, a, captions)

    # ------------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        if self.out_dir is None:
            raise ValueError("checkpoints need an out_dir")
        return self.out_dir / "checkpoints"

    def save_checkpoint(self, optimizer, scheduler, scaler) -> Path:
        """Write ``checkpoints/step-N/`` (model + optimizer, scheduler, RNG, data position) atomically,
        then point ``checkpoints/latest`` at it."""
        root = self.checkpoint_dir
        root.mkdir(parents=True, exist_ok=True)
        name = f"step-{self.step:08d}"
        tmp = root / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(self.model, tmp)
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "history": json.dumps(self.history),
            "objective": self.objective.state_dict(),
            "config": json.dumps(dataclasses.asdict(self.config)),
        }
        torch.save(state, tmp / STATE_NAME)
        final = root / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        write_atomic(root / "latest", lambda p: Path(p).write_text(name))
        done = sorted(p for p in root.glob("step-*") if p.is_dir())
        for old in done[: -max(1, self.config.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        self._write_history()
        return final

    def latest_checkpoint(self) -> Path | None:
        pointer = self.checkpoint_dir / "latest"
        if not pointer.is_file():
            return None
        path = self.checkpoint_dir / pointer.read_text().strip()
        return path if (path / STATE_NAME).is_file() else None

    def _restore(self, optimizer, scheduler, scaler) -> bool:
        """Load the latest checkpoint into the model, optimizer, scheduler and RNG; False if none."""
        path = self.latest_checkpoint()
        if path is None:
            return False
        state = torch.load(path / STATE_NAME, map_location="cpu", weights_only=True)
        saved = load_model(path, device="cpu", tokenizer=getattr(self.model, "tokenizer", None))
        self.model.load_state_dict(saved.state_dict(), strict=True)
        self.objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.history = json.loads(state["history"])
        return True

    def _write_history(self) -> None:
        if self.out_dir is None or not self.history:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.out_dir / "history.json", lambda p: Path(p).write_text(json.dumps(self.history, indent=1)))
        keys = list(dict.fromkeys(k for r in self.history for k in r))

        def write_csv(p: str) -> None:
            with open(p, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                w.writerows(self.history)

        write_atomic(self.out_dir / "history.csv", write_csv)


def start_model(model: Any, seed: int = 0) -> Any:
    """The model a run starts from: ``"preset:NAME"`` is a random init (seeded), any other name of
    :mod:`skclap.registry` loads weights (a released name its released weights), a model is used as is."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    spec = parse_spec(model)  # a bad name raises UnknownModelError, as load_model does
    if spec.kind == "preset":
        return CLAPModel.from_preset(spec.value, seed=seed)
    return load_model(model)


def train(
    train_data: Any,
    out_dir: str | os.PathLike | None = None,
    model: Any = "preset:tiny",
    val_data: Any = None,
    resume: bool = False,
    item_rate: int | None = None,
    objective: Objective | None = None,
    **config: Any,
) -> Trainer:
    """Train a CLAP model. ``model``: ``"preset:NAME"`` (an architecture, random init), a released
    name (``"msclap-2022"``: fine-tune its weights), a checkpoint path, or a model object (any
    backend: CNN14/HTS-AT + BERT/GPT-2, or LAION's ``ClapModel``).

    ``train_data``/``val_data`` are ``(items, captions)`` or a manifest path (CSV/Parquet with
    ``audio`` and ``caption`` columns). ``objective``: what is minimised (default: contrastive,
    :mod:`skclap.training.objectives`). Keyword arguments are :class:`TrainConfig` fields.
    Returns the :class:`Trainer`: ``.model`` is the trained model, ``.history`` its metrics.
    """
    from .data import read_manifest

    model = start_model(model, seed=config.get("seed", 0))
    if isinstance(train_data, (str, os.PathLike)):
        train_data = read_manifest(train_data)
    if isinstance(val_data, (str, os.PathLike)):
        val_data = read_manifest(val_data)
    trainer = Trainer(model, TrainConfig(**config), out_dir, objective=objective)
    trainer.fit(train_data, val_data, item_rate=item_rate, resume=resume)
    return trainer
