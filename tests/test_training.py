"""Contrastive training: gradient caching, distributed equality, exact resume, learning, CLI."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from skclap import CLAPEmbedder, CLAPModel
from skclap.cli import main as cli
from skclap.datasets import make_corpus
from skclap.devices import cpu_has_native_bf16
from skclap.training import (
    ContrastiveObjective,
    SupervisedObjective,
    TrainConfig,
    Trainer,
    contrastive_backward,
    objective_backward,
    read_manifest,
    retrieval_metrics,
)
from skclap.training.trainer import warmup_cosine

from .helpers import Killed, assert_same_grads, batch, closing_worker, crash_at, free_port, grads, one_thread, two_rank_step, write_manifest


# --------------------------------------------------------------------------- gradient caching
@pytest.mark.parametrize("micro", [1, 3, 4])
def test_gradient_cache_equals_full_batch(micro):
    model, waves, tokens = batch()
    model.eval()  # batch norm on running statistics: samples are independent
    full_loss = contrastive_backward(model, waves, tokens)
    full = grads(model)
    model.zero_grad()
    cached_loss = contrastive_backward(model, waves, tokens, micro_batch=micro)
    assert float(cached_loss) == pytest.approx(float(full_loss), abs=1e-6)
    assert_same_grads(full, grads(model), atol=1e-5)
    assert model.logit_scale.grad.abs() > 0


def test_gradient_cache_equals_full_batch_for_the_supervised_objective():
    """The step is generic: a classification head's loss, cached in micro-batches, gives the
    full-batch gradients of the audio tower and of the head."""
    model, waves, _ = batch()
    model.eval()
    head = torch.nn.Linear(model.config.proj_dim, 3).to(torch.float64)
    objective = SupervisedObjective(head)
    labels = [0, 1, 2, 0, 1, 2, 0, 1]
    assert objective.texts(labels, 0) == []  # no text tower
    full_loss = objective_backward(model, objective, waves, labels)
    full = {**grads(model), **{f"head.{n}": p.grad.clone() for n, p in head.named_parameters()}}
    assert not any(k.startswith("text_encoder.") for k in full)
    model.zero_grad()
    head.zero_grad()
    cached_loss = objective_backward(model, objective, waves, labels, micro_batch=3)
    assert float(cached_loss) == pytest.approx(float(full_loss), abs=1e-10)
    assert_same_grads(full, {**grads(model), **{f"head.{n}": p.grad.clone() for n, p in head.named_parameters()}}, atol=1e-8)


def test_a_supervised_run_resumes_to_identical_weights_and_head(tmp_path):
    """The objective's own weights (the head) are checkpointed and restored with the model's."""
    items, _ = corpus()
    labels = [i % 3 for i in range(len(items))]

    def run(out, resume=False, callbacks=()):
        torch.manual_seed(0)
        head = torch.nn.Linear(64, 3)
        cfg = TrainConfig(batch_size=8, max_steps=6, lr=1e-3, warmup_steps=2, progress=False, checkpoint_every=2)
        trainer = Trainer(CLAPModel.from_preset("tiny", seed=1), cfg, out, objective=SupervisedObjective(head))
        trainer.fit((items, labels), item_rate=16000, resume=resume, callbacks=callbacks)
        return trainer

    straight = run(tmp_path / "straight")

    with pytest.raises(Killed):
        run(tmp_path / "resumed", callbacks=[crash_at(5)])
    resumed = run(tmp_path / "resumed", resume=True)
    for a, b in ((straight.model, resumed.model), (straight.objective, resumed.objective)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa and all(torch.equal(sa[k], sb[k]) for k in sa)
    torch.manual_seed(0)
    initial = torch.nn.Linear(64, 3).state_dict()
    assert not any(torch.equal(v, initial[k]) for k, v in straight.objective.head.state_dict().items())  # the head trained


def test_gradient_cache_replays_dropout_masks():
    """In train mode (dropout on), the re-run of each micro-batch must see the masks of its first pass."""
    model, waves, tokens = batch()
    model.train()
    model.audio_encoder.backbone.eval()  # batch norm only; dropout stays random
    torch.manual_seed(5)
    contrastive_backward(model, waves, tokens, micro_batch=4)
    first = grads(model)
    model.zero_grad()
    torch.manual_seed(5)
    contrastive_backward(model, waves, tokens, micro_batch=4)
    assert_same_grads(first, grads(model), atol=0)
    # Without the replay the surrogate would pair gradients with other masks: check the
    # mechanism matters by comparing against the loss gradient on the embeddings directly.
    model.zero_grad()
    torch.manual_seed(5)
    contrastive_backward(model, waves, tokens, micro_batch=8)  # one micro-batch == full batch
    one = grads(model)
    assert not all(torch.allclose(one[k], first[k]) for k in one)  # different masks, different grads


# ------------------------------------------------------------------------ distributed (gloo)
@pytest.mark.multiprocess
@pytest.mark.parametrize("micro", [None, 2])
def test_two_processes_match_one_process_on_the_global_batch(micro):
    got = two_rank_step(batch, micro)
    model, waves, tokens = batch()
    model.eval()
    loss = contrastive_backward(model, waves, tokens)
    assert float(got["loss"]) == pytest.approx(float(loss), abs=1e-5)
    assert_same_grads(grads(model), got["grads"], atol=1e-5)


def test_ranks_leave_the_process_group_together(tmp_path):
    """A rank that finished must not exit while rank 0 still works: gloo aborts the process
    ("terminate called without an active exception") when a peer's group is torn down under it."""
    mp.spawn(closing_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    (began0, left0, init0), (began1, left1, init1) = (Path(tmp_path, f"rank{r}").read_text().split() for r in (0, 1))
    assert init0 == init1 == "False"
    # neither left before the other began to leave (an order of events, not a duration: rank 1,
    # which did not wait, would have left half a second before rank 0 began)
    assert float(left1) >= float(began0) and float(left0) >= float(began1)


# ------------------------------------------------------------------------------ the trainer
def corpus(n=48, seed=0):
    c = make_corpus(n, seed=seed, seconds=1.0)
    return c.waveforms(), c.captions


def train_run(out_dir, steps, resume=False, callbacks=(), **kw):
    cfg = TrainConfig(batch_size=8, max_steps=steps, lr=1e-3, warmup_steps=3, progress=False, log_every=1, **kw)
    trainer = Trainer(CLAPModel.from_preset("tiny", seed=1), cfg, out_dir)
    items, caps = corpus()
    trainer.fit((items, caps), item_rate=16000, resume=resume, callbacks=callbacks)
    return trainer


def test_resume_after_a_crash_ends_with_identical_weights(tmp_path):
    """48 pairs / batch 8 = 6 steps an epoch; killed at step 9 (checkpoint at 8), resumed to 14."""
    straight = train_run(tmp_path / "straight", 14)

    with pytest.raises(Killed):
        train_run(tmp_path / "resumed", 14, checkpoint_every=4, callbacks=[crash_at(9)])
    ckpts = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").glob("step-*"))
    assert ckpts == ["step-00000004", "step-00000008"]
    resumed = train_run(tmp_path / "resumed", 14, resume=True, checkpoint_every=4)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    reloaded = CLAPModel.from_pretrained(str(tmp_path / "resumed"))
    assert all(torch.equal(reloaded.state_dict()[k], b[k]) for k in b)
    assert (tmp_path / "resumed" / "history.csv").read_text().count("\n") == 15


def test_auto_precision_is_bf16_only_where_the_cpu_computes_bf16(tmp_path, monkeypatch):
    """precision="auto" trains under bfloat16 autocast on a CPU with native bf16 (weights stay
    float32) and in float32 elsewhere: then the run is the plain float32 run, weight for weight."""
    import skclap.devices as devices_module

    plain = train_run(tmp_path / "fp32", 3)
    assert plain.precision == "fp32"
    monkeypatch.setattr(devices_module, "cpu_has_native_bf16", lambda: False)
    fallback = train_run(tmp_path / "no-bf16", 3, precision="auto")
    assert fallback.precision == "fp32"
    a, b = plain.model.state_dict(), fallback.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    monkeypatch.undo()
    if not cpu_has_native_bf16():  # emulated bf16 would take minutes
        pytest.skip("this CPU has no native bf16: only the fall-back is checked")
    bf16 = train_run(tmp_path / "bf16", 3, precision="auto")
    assert bf16.precision == "bf16"
    c = bf16.model.state_dict()
    assert all(c[k].dtype == a[k].dtype for k in a)
    assert any(not torch.allclose(a[k], c[k]) for k in a if a[k].is_floating_point())  # bf16 arithmetic was used
    assert abs(bf16.history[0]["loss"] - plain.history[0]["loss"]) < 0.05  # the same objective, rounded


def test_the_old_precision_switches_still_work_and_say_what_replaces_them():
    """TrainConfig(cpu_bf16=True) is precision="auto", amp=False float32 on CUDA: configurations
    written before ``precision`` mean what they meant, with a DeprecationWarning naming the new setting."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    with pytest.warns(DeprecationWarning, match="precision='auto'"):
        old = TrainConfig(cpu_bf16=True)
    assert old.resolved_precision(cpu) == TrainConfig(precision="auto").resolved_precision(cpu)
    with pytest.warns(DeprecationWarning, match="precision='fp32'"):
        assert TrainConfig(amp=False).resolved_precision(cuda) == "fp32"
    assert TrainConfig().resolved_precision(cuda) == "fp16" and TrainConfig().resolved_precision(cpu) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="half")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_trains_in_fp16_with_the_fused_optimizer_and_resumes(tmp_path, monkeypatch):
    """On CUDA a run is float16 autocast with a gradient scaler by default, and its optimizer the
    fused kernel, which unscales the gradients itself. Weights stay float32 and the loss is the
    float32 run's, rounded. A crashed run resumes from its checkpoint, the scaler's state with it,
    to the weights of the run that was not interrupted (up to the GPU's summation order); the
    result embeds on the CPU as on the GPU."""
    from skclap.batching import normalize_rows
    from skclap.inference import embed_audio

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    plain = train_run(tmp_path / "fp32", 14, device="cuda", precision="fp32")
    straight = train_run(tmp_path / "straight", 14, device="cuda", checkpoint_every=4)
    assert (plain.precision, straight.precision) == ("fp32", "fp16")
    optimizer = straight._optimizer(straight._trainable())
    assert optimizer.defaults["fused"] is True
    assert all(p.is_cuda for group in optimizer.param_groups for p in group["params"])
    a, b = plain.model.state_dict(), straight.model.state_dict()
    assert all(b[k].dtype == a[k].dtype for k in a)
    assert all(math.isfinite(r["loss"]) for r in straight.history)
    assert abs(straight.history[0]["loss"] - plain.history[0]["loss"]) < 0.05

    with pytest.raises(Killed):
        train_run(tmp_path / "resumed", 14, device="cuda", checkpoint_every=4, callbacks=[crash_at(9)])
    resumed = train_run(tmp_path / "resumed", 14, resume=True, device="cuda", checkpoint_every=4)
    c = resumed.model.state_dict()
    for k in b:
        torch.testing.assert_close(c[k], b[k], rtol=0, atol=1e-4, msg=k)

    items, _ = corpus()
    on_gpu = embed_audio(straight.model, items[:4], sample_rate=16000, progress=False, precision="fp32")
    on_cpu = embed_audio(CLAPModel.from_pretrained(str(tmp_path / "straight")), items[:4], sample_rate=16000, progress=False)
    cos = (normalize_rows(on_cpu) * normalize_rows(on_gpu)).sum(1)
    assert cos.min() > 0.9999  # cuDNN's float32 convolutions may round through TF32


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_the_optimizer_is_pytorchs_fused_kernel_with_decay_on_weights_only(name):
    trainer = Trainer(CLAPModel.from_preset("tiny", seed=1), TrainConfig(optimizer=name, weight_decay=0.1, progress=False))
    params = trainer._trainable()
    optimizer = trainer._optimizer(params)
    assert type(optimizer) is {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    assert optimizer.defaults["fused"] is True
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(params)


def test_freezing_the_text_encoder_and_clamping_the_temperature(tmp_path):
    model = CLAPModel.from_preset("tiny", seed=1)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(500.0))
    before = copy.deepcopy(model.state_dict())
    items, caps = corpus(16)
    Trainer(model, TrainConfig(batch_size=8, max_steps=2, freeze_text=True, progress=False)).fit((items, caps), item_rate=16000)
    after = model.state_dict()
    text_backbone = [k for k in before if k.startswith("text_encoder.backbone.")]
    assert text_backbone and all(torch.equal(before[k], after[k]) for k in text_backbone)
    assert not torch.equal(before["text_encoder.projection.linear1.weight"], after["text_encoder.projection.linear1.weight"])
    assert not torch.equal(before["audio_encoder.backbone.fc1.weight"], after["audio_encoder.backbone.fc1.weight"])
    assert float(model.logit_scale.detach().exp()) <= 100.0 + 1e-3


def test_warmup_cosine_schedule():
    f = [warmup_cosine(s, warmup=10, total=110) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[60] == pytest.approx(0.5) and f[109] < 0.001
    assert all(x >= y for x, y in zip(f[10:], f[11:]))


def test_retrieval_metrics_against_brute_force():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 8))
    t = a[[0, 0, 1, 2, 3, 5, 7, 11]] + rng.standard_normal((8, 8)) * 1.5
    owner = [0, 0, 1, 2, 3, 5, 7, 11]
    m = retrieval_metrics(a, t, owner)
    sim = t @ a.T
    for k in (1, 5):
        expected = np.mean([owner[j] in np.argsort(-sim[j])[:k] for j in range(8)])
        assert m[f"t2a_R@{k}"] == pytest.approx(expected)
    # audio -> text over clips that have captions (0, 1, 2, 3, 5, 7, 11)
    hits = []
    for i in sorted(set(owner)):
        top = np.argsort(-sim[:, i])[:1]
        hits.append(any(owner[j] == i for j in top))
    assert m["a2t_R@1"] == pytest.approx(np.mean(hits))


@pytest.mark.end_to_end
def test_training_learns_retrieval_far_above_chance(tmp_path):
    c = make_corpus(330, seed=0, seconds=1.0)
    tr, va = c.subset(range(280)), c.subset(range(280, 330))
    cfg = TrainConfig(batch_size=32, max_steps=300, lr=1e-3, warmup_steps=20, progress=False, log_every=50, eval_every=300)
    trainer = Trainer(CLAPModel.from_preset("tiny", seed=0), cfg, tmp_path / "run")
    trainer.fit((tr.waveforms(), tr.captions), (va.waveforms(), va.captions), item_rate=16000)
    final = trainer.history[-1]
    chance_r10 = 10 / 50
    assert final["loss"] < math.log(32) - 0.5  # log(32): no better than chance
    assert final["val_t2a_R@10"] >= 2.5 * chance_r10
    assert final["val_a2t_R@10"] >= 2.5 * chance_r10
    assert final["val_t2a_R@1"] >= 3 / 50
    # The result is an ordinary checkpoint: the estimators take it.
    emb = CLAPEmbedder(model=str(tmp_path / "run"), sample_rate=16000, progress=False).fit_transform(va.waveforms()[:3])
    assert emb.shape == (3, 64)


# --------------------------------------------------------------------------- manifest and CLI
def test_read_manifest_groups_captions(tmp_path):
    path = write_manifest(tmp_path, 4)
    audio, captions = read_manifest(path)
    assert len(audio) == 4 and all(len(c) == 3 for c in captions)
    assert all(Path(a).is_file() and Path(a).is_absolute() for a in audio)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,text\nx.wav,hello\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['audio', 'caption'\]"):
        read_manifest(bad)
    bad.write_text("audio,caption\nx.wav,\n")
    with pytest.raises(ValueError, match="row 2: empty caption for 'x.wav'"):
        read_manifest(bad)


def test_cli_trains_from_a_manifest(tmp_path, capsys):
    path = write_manifest(tmp_path)
    out = tmp_path / "model"
    argv = ["train", str(path), "--out", str(out), "--preset", "tiny", "--batch-size", "8", "--max-steps", "3", "--no-progress"]
    assert cli(argv) == 0
    assert (out / "model.safetensors").is_file() and (out / "history.json").is_file()
    assert "trained 3 steps" in capsys.readouterr().out
    CLAPModel.from_pretrained(str(out))


@pytest.mark.multiprocess
def test_torchrun_two_processes_train_like_one(tmp_path):
    """The real launcher: 2 gloo processes on loopback vs 1 process, same global batch of 8.

    Dropout is off and the audio backbone frozen (batch norm on running statistics), so the two runs
    must agree to float tolerance after several optimiser steps."""
    from skclap import PRESETS

    tiny = PRESETS["tiny"]
    cfg = tiny.replace(
        space={"dropout": 0.0},
        text={"transformer": {**tiny.text.transformer, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}},
    )
    CLAPModel(cfg).save_pretrained(tmp_path / "init")
    path = write_manifest(tmp_path)
    common = [
        str(path),
        "--init",
        str(tmp_path / "init"),
        "--batch-size",
        "8",
        "--max-steps",
        "4",
        "--freeze-audio",
        "--no-progress",
        "--lr",
        "1e-3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with one_thread():  # the single-process run here, the launcher's two in their own processes
        assert cli(["train", *common, "--out", str(tmp_path / "one")]) == 0
    dist = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            "-m",
            "skclap.training",
            *common,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert dist.returncode == 0, dist.stderr[-3000:]
    one = CLAPModel.from_pretrained(str(tmp_path / "one")).state_dict()
    two = CLAPModel.from_pretrained(str(tmp_path / "two")).state_dict()
    changed = [k for k in one if not torch.equal(one[k], CLAPModel.from_pretrained(str(tmp_path / "init")).state_dict()[k])]
    assert len(changed) > 5
    for k in one:
        torch.testing.assert_close(one[k], two[k], atol=2e-5, rtol=1e-4, msg=k)


@pytest.mark.multiprocess
def test_cli_run_killed_mid_epoch_resumes_to_identical_weights(tmp_path):
    """SIGKILL a real training process after a checkpoint, resume it, compare with a clean run."""
    import signal
    import time

    path = write_manifest(tmp_path, 24)  # 24 pairs / batch 8 = 3 steps an epoch
    argv = [
        "train",
        str(path),
        "--preset",
        "tiny",
        "--batch-size",
        "8",
        "--max-steps",
        "40",
        "--checkpoint-every",
        "2",
        "--warmup-steps",
        "3",
        "--no-progress",
    ]
    args = [sys.executable, "-m", "skclap", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with one_thread():  # the uninterrupted run needs no process of its own
        assert cli([*argv, "--out", str(tmp_path / "clean")]) == 0

    out = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    latest = out / "checkpoints" / "latest"  # written atomically, after its step's directory

    def latest_step() -> int:
        return int(latest.read_text().split("-")[1]) if latest.is_file() else 0

    deadline = time.time() + 120
    while latest_step() < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = latest_step()
    assert 4 <= stopped_at < 40  # killed mid-run (mid-epoch resumption is checked exactly above)
    assert not (out / "model.safetensors").exists()  # it never finished
    resumed = subprocess.run([*args, "--out", str(out), "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a = CLAPModel.from_pretrained(str(tmp_path / "clean")).state_dict()
    b = CLAPModel.from_pretrained(str(out)).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_parquet_manifest_and_loader_workers_give_the_same_run(tmp_path):
    import pandas as pd

    csv_path = write_manifest(tmp_path, 16)
    pq_path = csv_path.with_suffix(".parquet")
    pd.read_csv(csv_path).to_parquet(pq_path)
    assert read_manifest(pq_path) == read_manifest(csv_path)
    runs = []
    for workers in (0, 2):
        model = CLAPModel.from_preset("tiny", seed=2)
        Trainer(model, TrainConfig(batch_size=8, max_steps=3, num_workers=workers, progress=False)).fit(read_manifest(pq_path))
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


# ------------------------------------------------------------------------------ hard negatives
def test_grouped_batches_hold_runs_of_one_group_and_every_item_once():
    from skclap.training.data import EpochBatchSampler

    groups = [i % 5 for i in range(103)]
    sampler = EpochBatchSampler(103, 20, seed=1, epoch=2, groups=groups, group_size=4)
    batches = list(sampler)
    assert len(batches) == 5 and all(len(b) == 20 for b in batches)
    items = [i for b in batches for i, _ in b]
    assert len(set(items)) == len(items) == 100
    # consecutive items of one group: runs of 4 (a group's last run may be shorter)
    flat = [groups[i] for i in items]
    same = sum(a == b for a, b in zip(flat, flat[1:]))
    assert same >= 0.7 * len(flat)  # random order would give about 1/5
    plain = [groups[i] for b in EpochBatchSampler(103, 20, seed=1, epoch=2) for i, _ in b]
    assert sum(a == b for a, b in zip(plain, plain[1:])) < 0.4 * len(plain)
    # deterministic, and a resumed epoch continues with the same batches
    assert list(EpochBatchSampler(103, 20, seed=1, epoch=2, groups=groups, group_size=4)) == batches
    assert list(EpochBatchSampler(103, 20, seed=1, epoch=2, start=3, groups=groups, group_size=4)) == batches[3:]
    assert list(EpochBatchSampler(103, 20, seed=1, epoch=3, groups=groups, group_size=4)) != batches


def test_trainer_uses_groups_and_checks_their_length(tmp_path):
    corpus = make_corpus(64, seed=0, seconds=1.0)
    model = CLAPModel.from_preset("tiny", seed=0)
    cfg = TrainConfig(batch_size=16, max_steps=2, group_size=4, progress=False, log_every=1)
    trainer = Trainer(model, cfg, tmp_path / "a")
    with pytest.raises(ValueError, match="64 training items but 3 groups"):
        trainer.fit((corpus.waveforms(), corpus.captions), item_rate=16000, groups=["a", "b", "c"])
    seen = []

    class Spy(ContrastiveObjective):  # sees each batch's captions
        def texts(self, targets, step):
            seen.append(list(targets))
            return super().texts(targets, step)

    Trainer(CLAPModel.from_preset("tiny", seed=0), cfg, tmp_path / "b", objective=Spy()).fit(
        (corpus.waveforms(), corpus.captions), item_rate=16000, groups=corpus.labels
    )
    fam_of = {cap: c.family for c in corpus.clips for cap in c.captions}
    fams = [fam_of[cap] for cap in seen[0]]
    assert sum(a == b for a, b in zip(fams, fams[1:])) >= 8  # runs of 4 of one family
