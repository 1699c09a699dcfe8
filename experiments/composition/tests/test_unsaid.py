"""Captions that leave an attribute unsaid (skclap.training.unsaid)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from skclap import CLAPModel
from skclap.loss import contrastive_logits, contrastive_loss
from skclap.training import TrainConfig, Trainer, contrastive_backward
from skclap.training.unsaid import UnsaidAttributes, UnsaidBatch, completed_logits

from .test_training import assert_same_grads, batch, grads, two_rank_step, write_manifest

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


def direct_logits(a: np.ndarray, t: np.ndarray, said: list[int], dirs: list[np.ndarray], weight: float, scale: float):
    """Pair by pair, in float64: the projector onto the complement of the unsaid directions' span
    from a pseudo-inverse (no QR), applied to the normalised embeddings and renormalised."""
    unit = lambda x: x / np.linalg.norm(x)  # noqa: E731
    out = np.zeros((len(t), len(a)))
    for i in range(len(a)):
        unsaid = [k for k in range(len(dirs)) if not said[i] >> k & 1]
        if unsaid:
            d = np.concatenate([dirs[k] for k in unsaid])  # (r, dim)
            proj = np.eye(a.shape[1]) - np.linalg.pinv(d) @ d
        for j in range(len(t)):
            plain = unit(t[j]) @ unit(a[i])
            if not unsaid:
                out[j, i] = scale * plain
            else:
                out[j, i] = scale * ((1 - weight) * plain + weight * unit(proj @ unit(t[j])) @ unit(proj @ unit(a[i])))
    return out


def random_batch(n=8, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, dim, generator=g, dtype=torch.float64)
    t = torch.randn(n, dim, generator=g, dtype=torch.float64)
    dirs = (torch.randn(1, dim, generator=g, dtype=torch.float64), torch.randn(2, dim, generator=g, dtype=torch.float64))
    return a, t, dirs


# ------------------------------------------------------------------------------ which attributes a caption says
def test_a_caption_says_an_attribute_only_with_a_word_of_one_value():
    said = UnsaidAttributes(TABLE).said(CAPTIONS + ["a pitched percussion", "HIGH and Loud", "highway noise", "shrill, loud!"])
    assert said.tolist() == [1, 2, 3, 0, 3, 0, 2, 1, 0, 3, 0, 3]  # "pitched" is in both values: it says nothing


@pytest.mark.parametrize(
    "table, weight, match",
    [
        (TABLE, 1.5, "weight must lie in"),
        ({}, 0.5, "no attributes"),
        ({"pitch": {"low": ("low",)}}, 0.5, "two or more values"),
        ({"pitch": {"low": "low", "high": ("high",)}}, 0.5, "list of non-empty phrases"),
        ({"pitch": {"low": ("low", " "), "high": ("high",)}}, 0.5, "list of non-empty phrases"),
        ({"pitch": {"low": ("pitched",), "high": ("high pitched",)}}, 0.5, "shared with another value"),
        (TABLE, 0.5, "mode must be one of"),
    ],
)
def test_bad_tables_are_refused_with_the_attribute_named(table, weight, match):
    mode = "guess" if match.startswith("mode") else "project"
    with pytest.raises(ValueError, match=match):
        UnsaidAttributes(table, weight, mode)
    with pytest.raises(ValueError, match=match):
        TrainConfig(unsaid_attributes=table, unsaid_weight=weight, unsaid_mode=mode)


def test_a_caption_that_is_not_a_string_is_named():
    with pytest.raises(TypeError, match="caption 1 is a int"):
        UnsaidAttributes(TABLE).said(["a flute", 3])


# ------------------------------------------------------------------------------ the logits
@pytest.mark.parametrize("weight", [0.3, 1.0])
def test_logits_match_a_pair_by_pair_computation(weight):
    a, t, dirs = random_batch()
    said = [1, 2, 3, 0, 3, 0, 2, 1]
    got = UnsaidBatch(torch.tensor(said), dirs, weight).logits(a, t, torch.tensor(7.0, dtype=torch.float64))
    want = direct_logits(a.numpy(), t.numpy(), said, [d.numpy() for d in dirs], weight, 7.0)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)


def test_without_unsaid_attributes_or_weight_the_logits_are_the_plain_ones():
    a, t, dirs = random_batch()
    scale = torch.tensor(3.0, dtype=torch.float64)
    plain = contrastive_logits(a, t, scale)
    every = torch.full((8,), 3)
    torch.testing.assert_close(UnsaidBatch(every, dirs, 0.5).logits(a, t, scale), plain)
    torch.testing.assert_close(UnsaidBatch(torch.zeros(8, dtype=torch.int64), dirs, 0.0).logits(a, t, scale), plain)


def test_with_full_weight_an_unsaid_attribute_exerts_no_pull():
    """Moving clip 3 (caption says nothing) along an attribute direction leaves its column as it
    was; clip 2 (says both) sees the move; clip 0 (says pitch only) sees a pitch move only."""
    a, t, dirs = random_batch()
    b = UnsaidBatch(torch.tensor([1, 2, 3, 0, 3, 0, 2, 1]), dirs, 1.0)
    scale = torch.tensor(1.0, dtype=torch.float64)
    base = b.logits(a, t, scale)
    for clip, direction, moves in [
        (3, dirs[0][0], False),
        (3, dirs[1][1], False),
        (2, dirs[0][0], True),
        (0, dirs[0][0], True),
        (0, dirs[1][0], False),
    ]:
        moved = a.clone()
        moved[clip] += 0.8 * direction
        changed = (b.logits(moved, t, scale)[:, clip] - base[:, clip]).abs().max() > 1e-3
        assert bool(changed) == moves, (clip, moves)


def test_shapes_that_do_not_pair_up_are_refused():
    a, t, dirs = random_batch()
    with pytest.raises(ValueError, match="must pair up"):
        UnsaidBatch(torch.zeros(7, dtype=torch.int64), dirs, 0.5).logits(a, t, torch.tensor(1.0))


# ------------------------------------------------------------------------------ completions
def test_a_caption_is_completed_with_every_value_of_what_it_leaves_unsaid():
    attrs = UnsaidAttributes(TABLE, mode="complete")
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


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_the_completed_loss_matches_a_pair_by_pair_computation(weight):
    a, t, _ = random_batch()
    g = torch.Generator().manual_seed(1)
    owner = [0, 0, 0, 0, 1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 6, 6, 7, 7]
    c = torch.randn(len(owner), a.shape[1], generator=g, dtype=torch.float64)
    said = torch.tensor([0, 1, 3, 0, 3, 0, 2, 1])
    b = UnsaidBatch(said, (), weight, "complete", ("x",) * len(owner), torch.tensor(owner))
    got = b.loss(a, t, torch.tensor(6.0, dtype=torch.float64), c)
    want = direct_completed_loss(a.numpy(), t.numpy(), c.numpy(), owner, 6.0, weight)
    assert float(got) == pytest.approx(want, abs=1e-10)
    # weight 0 is the plain loss, whatever the completions
    zero = UnsaidBatch(said, (), 0.0, "complete", ("x",) * len(owner), torch.tensor(owner))
    plain = contrastive_loss(a, t, torch.tensor(6.0, dtype=torch.float64))
    assert float(zero.loss(a, t, torch.tensor(6.0, dtype=torch.float64), c)) == pytest.approx(float(plain), abs=1e-12)


def test_completed_logits_name_a_text_without_candidates_and_a_count_that_does_not_match():
    a, t, _ = random_batch()
    with pytest.raises(ValueError, match="every one of the 8 texts needs a candidate"):
        completed_logits(a, t[:7], torch.arange(7), 8, torch.tensor(1.0))
    b = UnsaidBatch(torch.zeros(8, dtype=torch.int64), (), 0.5, "complete", ("x",) * 3, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="3 completions but 2 completion embeddings"):
        b.loss(a, t, torch.tensor(1.0), t[:2])
    with pytest.raises(ValueError, match="use loss"):
        b.logits(a, t, torch.tensor(1.0))


# ------------------------------------------------------------------------------ with a model
tiny_batch = partial(batch, captions=CAPTIONS)  # a tiny model and a batch of these captions


def test_directions_are_the_value_means_from_the_text_tower_without_dropout():
    model, _, _ = tiny_batch()
    model.train()
    attrs = UnsaidAttributes(TABLE)
    first, second = attrs.directions(model), attrs.directions(model)
    assert model.training and model.text_encoder.training  # its mode given back
    model.eval()
    with torch.no_grad():
        for k, values in enumerate(TABLE.values()):
            means = [torch.nn.functional.normalize(model.encode_text(model.tokenize(list(p))), dim=-1).mean(0) for p in values.values()]
            torch.testing.assert_close(first[k], (means[1] - means[0])[None].float(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(first[k], second[k], rtol=0, atol=0)


def test_the_step_uses_the_unsaid_logits_and_gradient_caching_keeps_them():
    model, waves, tokens = tiny_batch()
    model.eval()
    unsaid = UnsaidAttributes(TABLE, 0.7).batch(model, CAPTIONS)
    loss = contrastive_backward(model, waves, tokens, unsaid=unsaid)
    full = grads(model)
    with torch.no_grad():
        a, t, scale = model.encode_audio(waves), model.encode_text(tokens), model.logit_scale.exp()
    plain = contrastive_loss(a, t, scale)
    assert abs(float(loss) - float(plain)) > 1e-4  # not the plain loss ...
    logits = unsaid.logits(a, t, scale)
    target = torch.arange(8)
    want = 0.5 * (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target))
    assert float(loss) == pytest.approx(float(want), abs=1e-10)  # ... but that of the unsaid logits
    model.zero_grad()
    cached = contrastive_backward(model, waves, tokens, micro_batch=3, unsaid=unsaid)
    assert float(cached) == pytest.approx(float(loss), abs=1e-10)
    assert_same_grads(full, grads(model), atol=1e-8)


def test_the_step_uses_the_completed_loss_and_gradient_caching_keeps_it():
    model, waves, tokens = tiny_batch()
    model.eval()
    unsaid = UnsaidAttributes(TABLE, 0.5, "complete").batch(model, CAPTIONS, seed=2)
    assert len(unsaid.completions) == 16 and unsaid.owner.shape == (16,)
    loss = contrastive_backward(model, waves, tokens, unsaid=unsaid)
    full = grads(model)
    with torch.no_grad():
        a, t, scale = model.encode_audio(waves), model.encode_text(tokens), model.logit_scale.exp()
        c = model.encode_text(model.tokenize(list(unsaid.completions)))
    want = direct_completed_loss(*(x.double().numpy() for x in (a, t, c)), unsaid.owner.tolist(), float(scale), 0.5)
    assert float(loss) == pytest.approx(want, abs=1e-5)
    assert abs(float(loss) - float(contrastive_loss(a, t, scale))) > 1e-3
    model.zero_grad()
    cached = contrastive_backward(model, waves, tokens, micro_batch=3, unsaid=unsaid)
    assert float(cached) == pytest.approx(float(loss), abs=1e-6)
    assert_same_grads(full, grads(model), atol=1e-6)


#: rank 0 of two holds captions that say more (4 completions) than rank 1's (12)
UNEVEN = [CAPTIONS[i] for i in (0, 1, 2, 4, 3, 5, 6, 7)]
uneven_batch = partial(batch, captions=UNEVEN)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["project", "complete"])
def test_two_processes_gather_what_the_captions_say_and_match_one_process(tmp_path, mode):
    make, captions = (tiny_batch, CAPTIONS) if mode == "project" else (uneven_batch, UNEVEN)
    got = two_rank_step(tmp_path, make, unsaid=(UnsaidAttributes(TABLE, 0.7, mode), captions))
    model, waves, tokens = make()
    model.eval()
    loss = contrastive_backward(model, waves, tokens, unsaid=UnsaidAttributes(TABLE, 0.7, mode).batch(model, captions))
    assert float(got["loss"]) == pytest.approx(float(loss), abs=1e-6)
    assert_same_grads(grads(model), got["grads"], atol=1e-6)


@pytest.mark.parametrize("mode", ["project", "complete"])
def test_the_trainer_trains_with_unsaid_attributes(tmp_path, mode):
    """Weight 0 trains exactly like the plain loss; weight 0.5 trains differently."""
    g = np.random.default_rng(0)
    waves = [g.normal(0, 0.1, 16000).astype(np.float32) for _ in CAPTIONS * 2]

    def run(**kw):
        cfg = TrainConfig(batch_size=8, max_steps=3, lr=1e-3, warmup_steps=1, progress=False, **kw)
        trainer = Trainer(CLAPModel.from_preset("tiny", seed=1, proj_dropout=0.0), cfg)
        model = trainer.fit((waves, CAPTIONS * 2), item_rate=16000)
        return trainer, {k: v.clone() for k, v in model.state_dict().items()}

    _, plain = run()
    _, zero = run(unsaid_attributes=TABLE, unsaid_weight=0.0, unsaid_mode=mode)
    trainer, half = run(unsaid_attributes=TABLE, unsaid_weight=0.5, unsaid_mode=mode)
    for k in plain:
        torch.testing.assert_close(plain[k], zero[k], rtol=1e-5, atol=1e-6, msg=k)
    assert any(not torch.allclose(plain[k], half[k], atol=1e-6) for k in plain if plain[k].is_floating_point())
    assert all(np.isfinite(r["loss"]) for r in trainer.history)


def test_the_cli_reads_the_table_from_json_and_names_what_is_wrong(tmp_path):
    import json

    from skclap.cli import main

    manifest = write_manifest(tmp_path, 8)
    table = tmp_path / "attributes.json"
    table.write_text(json.dumps({"loudness": {"soft": ["soft", "quiet"], "loud": ["loud", "noisy"]}}))
    common = [str(manifest), "--preset", "tiny", "--batch-size", "8", "--max-steps", "2", "--warmup-steps", "1", "--no-progress"]
    main(["train", *common, "--out", str(tmp_path / "plain")])
    main(["train", *common, "--out", str(tmp_path / "unsaid"), "--unsaid-attributes", str(table), "--unsaid-weight", "1"])
    main(["train", *common, "--out", str(tmp_path / "complete"), "--unsaid-attributes", str(table), "--unsaid-mode", "complete"])
    plain, unsaid, complete = (CLAPModel.from_pretrained(str(tmp_path / k)).state_dict() for k in ("plain", "unsaid", "complete"))
    for other in (unsaid, complete):
        assert any(not torch.allclose(plain[k], other[k]) for k in plain if plain[k].is_floating_point())
    assert any(not torch.allclose(unsaid[k], complete[k]) for k in plain if plain[k].is_floating_point())

    table.write_text(json.dumps({"loudness": {"soft": ["soft"]}}))
    with pytest.raises(SystemExit, match=r"attributes.json: attribute 'loudness' needs two or more values"):
        main(["train", *common, "--out", str(tmp_path / "x"), "--unsaid-attributes", str(table)])
    table.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read it as JSON"):
        main(["train", *common, "--out", str(tmp_path / "x"), "--unsaid-attributes", str(table)])
    with pytest.raises(SystemExit, match=r"--unsaid-weight must lie in \[0, 1\]; got 2.0"):
        main(["train", *common, "--out", str(tmp_path / "x"), "--unsaid-weight", "2"])
