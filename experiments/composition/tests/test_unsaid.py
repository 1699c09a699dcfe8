"""Captions that leave an attribute unsaid, scored by their best completion (the composition
experiment's training objective, through skclap's Objective interface)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from experiments.composition.unsaid import CompletionObjective, UnsaidAttributes, completed_logits
from skclap import CLAPModel
from skclap.loss import contrastive_loss
from skclap.training import ContrastiveObjective, TrainConfig, Trainer, objective_backward
from skclap.training.distributed import DistInfo
from tests.helpers import assert_same_grads, batch, grads, two_rank_step

TABLE = {
    "pitch": {"low": ("low", "low pitched", "deep"), "high": ("high", "high pitched", "shrill")},
    "dynamics": {"soft": ("soft", "quiet"), "loud": ("loud", "forceful")},
}
CAPTIONS = [
    "a low flute",  # pitch said
    "a loud trumpet",  # dynamics said
    "a deep and quiet cello",  # both
    "a flute",  # neither
    "a shrill whistle played loud",  # both
    "an organ",  # neither
    "a forceful drum",  # dynamics
    "a high pitched bell",  # pitch
]


def random_batch(n=8, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, dim, generator=g, dtype=torch.float64)
    t = torch.randn(n, dim, generator=g, dtype=torch.float64)
    return a, t


# ------------------------------------------------------------------------------ which attributes a caption says
def test_a_caption_says_an_attribute_only_with_a_word_of_one_value():
    said = UnsaidAttributes(TABLE).said(CAPTIONS + ["a pitched percussion", "HIGH and Loud", "highway noise", "shrill, loud!"])
    assert said.tolist() == [1, 2, 3, 0, 3, 0, 2, 1, 0, 3, 0, 3]  # "pitched" is in both values: it says nothing


@pytest.mark.parametrize(
    "table, match",
    [
        ({}, "no attributes"),
        ({"pitch": {"low": ("low",)}}, "two or more values"),
        ({"pitch": {"low": "low", "high": ("high",)}}, "list of non-empty phrases"),
        ({"pitch": {"low": ("low", " "), "high": ("high",)}}, "list of non-empty phrases"),
        ({"pitch": {"low": ("pitched",), "high": ("high pitched",)}}, "shared with another value"),
    ],
)
def test_bad_tables_are_refused_with_the_attribute_named(table, match):
    with pytest.raises(ValueError, match=match):
        UnsaidAttributes(table)
    with pytest.raises(ValueError, match=match):
        CompletionObjective(table)
    with pytest.raises(ValueError, match="weight must lie in"):
        CompletionObjective(TABLE, weight=1.5)


def test_a_caption_that_is_not_a_string_is_named():
    with pytest.raises(TypeError, match="caption 1 is a int"):
        UnsaidAttributes(TABLE).said(["a flute", 3])


# ------------------------------------------------------------------------------ completions
def test_a_caption_is_completed_with_every_value_of_what_it_leaves_unsaid():
    attrs = UnsaidAttributes(TABLE)
    captions = ["a flute", "a low flute", "a deep and quiet cello", "a forceful drum"]
    texts, owner = attrs.completions(captions, attrs.said(captions).tolist(), seed=3)
    assert owner == [0, 0, 0, 0, 1, 1, 3, 3]  # 2 x 2, 2 (dynamics), none (both said), 2 (pitch)
    for text, i in zip(texts, owner):
        assert text.startswith(captions[i] + ", ")
    said = attrs.said(texts).tolist()
    assert said == [3] * 8  # every completion says every attribute ...
    values = [{v for a in TABLE for v, ps in TABLE[a].items() if any(p in t.split(", ", 1)[1].split(", ") for p in ps)} for t in texts]
    assert values[:4] == [{"low", "soft"}, {"low", "loud"}, {"high", "soft"}, {"high", "loud"}]  # ... with each value once
    assert values[4:6] == [{"soft"}, {"loud"}] and values[6:] == [{"low"}, {"high"}]
    # the phrases hang on the seed and the caption, not on the batch the caption shares
    alone, _ = attrs.completions(["a forceful drum"], [2], seed=3)
    assert alone == texts[6:]
    seeds = {tuple(attrs.completions(["a flute"], [0], seed=k)[0]) for k in range(20)}
    assert len(seeds) > 1


def direct_completed_loss(a, t, c, owner, scale, weight):
    """Pair by pair in float64: a caption's logit is the log-mean-exp over its completions (itself
    when it has none); the loss mixes the plain and the completed symmetric cross-entropies."""
    unit = lambda x: x / np.linalg.norm(x)  # noqa: E731
    n = len(t)

    def ce(logits):
        rows = -np.mean([logits[i, i] - np.log(np.exp(logits[i]).sum()) for i in range(n)])
        cols = -np.mean([logits[i, i] - np.log(np.exp(logits[:, i]).sum()) for i in range(n)])
        return 0.5 * (rows + cols)

    plain = np.array([[scale * unit(t[i]) @ unit(a[j]) for j in range(n)] for i in range(n)])
    done = np.zeros((n, n))
    for i in range(n):
        mine = [c[k] for k in range(len(c)) if owner[k] == i] or [t[i]]
        for j in range(n):
            done[i, j] = np.log(np.mean([np.exp(scale * unit(x) @ unit(a[j])) for x in mine]))
    return (1 - weight) * ce(plain) + weight * ce(done)


class Scale(torch.nn.Module):
    """What the objective's loss reads of a model: its logit scale."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(np.log(value), dtype=torch.float64))


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_the_completed_loss_matches_a_pair_by_pair_computation(weight):
    a, t = random_batch()
    objective = CompletionObjective(TABLE, weight, seed=2)
    texts = objective.texts(CAPTIONS, step=0)
    owner = objective._completions(CAPTIONS, 0)[1]
    assert texts[0] == CAPTIONS and len(texts[1]) == len(owner) == 16
    g = torch.Generator().manual_seed(1)
    c = torch.randn(len(owner), a.shape[1], generator=g, dtype=torch.float64)
    got, scale = objective.loss(Scale(6.0), a, [t, c], CAPTIONS, DistInfo())
    want = direct_completed_loss(a.numpy(), t.numpy(), c.numpy(), owner, 6.0, weight)
    assert float(got.detach()) == pytest.approx(want, abs=1e-10) and scale == 1.0
    # weight 0 is the plain loss, and asks for no completions
    zero = CompletionObjective(TABLE, 0.0)
    assert zero.texts(CAPTIONS, 0) == [CAPTIONS]
    plain = contrastive_loss(a, t, torch.tensor(6.0, dtype=torch.float64))
    assert float(zero.loss(Scale(6.0), a, [t], CAPTIONS, DistInfo())[0].detach()) == pytest.approx(float(plain), abs=1e-12)


def test_completed_logits_name_a_text_without_candidates():
    a, t = random_batch()
    with pytest.raises(ValueError, match="every one of the 8 texts needs a candidate"):
        completed_logits(a, t[:7], torch.arange(7), 8, torch.tensor(1.0))


# ------------------------------------------------------------------------------ with a model
tiny_batch = partial(batch, captions=CAPTIONS)  # a tiny model and a batch of these captions


def test_the_step_uses_the_completed_loss_and_gradient_caching_keeps_it():
    model, waves, tokens = tiny_batch()
    model.eval()
    objective = CompletionObjective(TABLE, 0.5, seed=2)
    loss = objective_backward(model, objective, waves, CAPTIONS, step=5)
    full = grads(model)
    completions, owner = objective._completions(CAPTIONS, 5)
    with torch.no_grad():
        a, t, scale = model.encode_audio(waves), model.encode_text(tokens), model.logit_scale.exp()
        c = model.encode_text(model.tokenize(completions))
    want = direct_completed_loss(*(x.double().numpy() for x in (a, t, c)), owner, float(scale), 0.5)
    assert float(loss) == pytest.approx(want, abs=1e-5)
    assert abs(float(loss) - float(contrastive_loss(a, t, scale))) > 1e-3
    model.zero_grad()
    cached = objective_backward(model, objective, waves, CAPTIONS, step=5, micro_batch=3)
    assert float(cached) == pytest.approx(float(loss), abs=1e-6)
    assert_same_grads(full, grads(model), atol=1e-6)


#: rank 0 of two holds captions that say more (4 completions) than rank 1's (12)
UNEVEN = [CAPTIONS[i] for i in (0, 1, 2, 4, 3, 5, 6, 7)]
uneven_batch = partial(batch, captions=UNEVEN)


@pytest.mark.multiprocess
def test_two_processes_gather_the_completions_and_match_one_process():
    objective = CompletionObjective(TABLE, 0.7)
    got = two_rank_step(uneven_batch, objective=(objective, UNEVEN))
    model, waves, _ = uneven_batch()
    model.eval()
    loss = objective_backward(model, objective, waves, UNEVEN)
    assert float(got["loss"]) == pytest.approx(float(loss), abs=1e-6)
    assert_same_grads(grads(model), got["grads"], atol=1e-6)


def test_the_trainer_trains_with_the_objective(tmp_path):
    """Weight 0 trains exactly like the plain loss; weight 0.5 trains differently."""
    g = np.random.default_rng(0)
    waves = [g.normal(0, 0.1, 16000).astype(np.float32) for _ in CAPTIONS * 2]

    def run(objective):
        cfg = TrainConfig(batch_size=8, max_steps=3, lr=1e-3, warmup_steps=1, progress=False)
        trainer = Trainer(CLAPModel.from_preset("tiny", seed=1, space={"dropout": 0.0}), cfg, objective=objective)
        model = trainer.fit((waves, CAPTIONS * 2), item_rate=16000)
        return trainer, {k: v.clone() for k, v in model.state_dict().items()}

    _, plain = run(ContrastiveObjective())
    _, zero = run(CompletionObjective(TABLE, 0.0))
    trainer, half = run(CompletionObjective(TABLE, 0.5))
    for k in plain:
        torch.testing.assert_close(plain[k], zero[k], rtol=1e-5, atol=1e-6, msg=k)
    assert any(not torch.allclose(plain[k], half[k], atol=1e-6) for k in plain if plain[k].is_floating_point())
    assert all(np.isfinite(r["loss"]) for r in trainer.history)
