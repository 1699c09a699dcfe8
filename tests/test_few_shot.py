"""Few labelled clips: prompt learning (CoOp), the few-shot classifier and the shot-curve protocol."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skclap import CLAPFewShotClassifier, CLAPLinearProbe, CLAPModel, CLAPPromptTuner, CLAPZeroShotClassifier, Encoder
from skclap.backends.laion import LaionCLAP
from skclap.cli import main as cli
from skclap.estimators.few_shot import fit_anchored_head, fit_gaussian_head, fit_prior_head
from skclap.evaluation.fewshot import draw_shots, shot_curve, summarize_curve
from skclap.prompt_tuning import ContextPrompts, tune_context

from .conftest import LAION_DIR, sine
from .fake_model import TableModel

KW = dict(model="preset:tiny", sample_rate=16000, progress=False, device="cpu")
CLASSES = ["dog", "rain", "siren"]


# ------------------------------------------------------------------------------ prompt learning
@pytest.mark.parametrize("family", ["tiny", "tiny-htsat", "laion"])
def test_context_prompts_with_the_initial_context_are_the_plain_prompts(family):
    """Word embeddings fed back as ``inputs_embeds`` give exactly the text embeddings of the prompts
    (BERT [CLS]/mean pooling, GPT-2 last-token pooling, LAION's RoBERTa)."""
    model = LaionCLAP.from_pretrained(LAION_DIR) if family == "laion" else CLAPModel.from_preset(family, seed=0)
    wordings = [["dog barking"], ["rain"], ["a siren", "an ambulance siren"]]
    prompts = ContextPrompts.build(model, wordings, "this is a sound of {}.")
    with torch.no_grad():
        got = prompts.embed(model, prompts.init)
        flat = F.normalize(model.encode_text([f"this is a sound of {w}." for ws in wordings for w in ws]).float(), dim=-1)
    want = F.normalize(torch.stack([flat[0], flat[1], flat[2] + flat[3]]), dim=-1)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=0)
    assert (prompts.slot >= 0).sum(dim=1).tolist() == [prompts.init.shape[0]] * 4  # every row holds the whole context
    with torch.no_grad():  # another context moves every class's embedding
        moved = prompts.embed(model, prompts.init + 0.5 * torch.randn(prompts.init.shape, generator=torch.Generator().manual_seed(0)))
    assert (1 - (moved * got).sum(dim=1)).min() > 1e-4


def test_context_errors_name_the_problem():
    model = CLAPModel.from_preset("tiny", seed=0)
    with pytest.raises(ValueError, match="exactly one"):
        ContextPrompts.build(model, [["dog"]], "this is a sound of")
    with pytest.raises(ValueError, match="no words before"):
        ContextPrompts.build(model, [["dog"]], "{} barking")
    with pytest.raises(ValueError, match="at least 1"):
        ContextPrompts.build(model, [["dog"]], 0)


def _clips(n_per_class: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Three classes of tones a tiny random CLAP tells apart (low, middle, high), with jitter."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k, base in enumerate((250.0, 1000.0, 3500.0)):
        for _ in range(n_per_class):
            X.append(sine(base * (1 + 0.05 * rng.standard_normal()), 0.5, 16000) + 0.01 * rng.standard_normal(8000).astype(np.float32))
            y.append(CLASSES[k])
    return X, np.array(y)


def test_prompt_tuning_learns_the_context_and_leaves_the_model_alone():
    X, y = _clips(4, seed=0)
    model = CLAPModel.from_preset("tiny", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kw = {**KW, "model": model}
    untuned = CLAPPromptTuner(steps=0, **kw).fit(X, y)
    tuned = CLAPPromptTuner(steps=150, lr=1e-2, **kw).fit(X, y)
    # steps=0 is the zero-shot classifier with the same template
    zs = CLAPZeroShotClassifier(labels=CLASSES, **kw).fit()
    np.testing.assert_allclose(untuned.class_embeddings_, zs.class_embeddings_, atol=2e-5)
    assert untuned.score(X, y) == pytest.approx(zs.score(X, y))
    # tuning lowers the loss and raises the accuracy of the clips it was fitted on. The tiny random
    # text tower's loss surface has cliffs (single steps that raise the loss), whose places move with
    # the CPU's kernels, so the last step is only required to end below the start.
    assert min(tuned.history_) < 0.8 * tuned.history_[0]
    assert tuned.history_[-1] < tuned.history_[0]
    assert tuned.score(X, y) >= zs.score(X, y) + 0.2
    assert not np.allclose(tuned.context_, untuned.context_)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the model is frozen
    assert all(p.grad is None for p in model.parameters()) and not model.training
    # prediction uses the tuned prompts, and does not depend on which clips share a call
    X_new, _ = _clips(3, seed=1)
    together = tuned.predict_proba(X_new)
    alone = np.concatenate([tuned.predict_proba([x]) for x in X_new])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together, F.softmax(torch.tensor(tuned.logit_scale_ * tuned._scores(X_new)), dim=1).numpy(), atol=1e-6)


def test_prompt_tuning_is_deterministic_and_a_random_context_follows_random_state():
    X, y = _clips(2, seed=0)
    a = CLAPPromptTuner(context=3, steps=20, random_state=1, **KW).fit(X, y)
    b = CLAPPromptTuner(context=3, steps=20, random_state=1, **KW).fit(X, y)
    c = CLAPPromptTuner(context=3, steps=20, random_state=2, **KW).fit(X, y)
    np.testing.assert_array_equal(a.context_, b.context_)
    assert a.context_.shape == (3, 32) and not np.allclose(a.context_, c.context_)


def test_tune_context_regularization_keeps_the_prompts_near_the_hand_written_ones():
    model = CLAPModel.from_preset("tiny", seed=0)
    rng = np.random.default_rng(0)
    audio = F.normalize(torch.tensor(rng.standard_normal((6, 64)), dtype=torch.float32), dim=-1).numpy()
    targets = np.array([0, 1, 2, 0, 1, 2])
    wordings = [[c] for c in CLASSES]
    free = tune_context(model, audio, targets, wordings, steps=60, lr=2e-2, regularization=0.0)
    held = tune_context(model, audio, targets, wordings, steps=60, lr=2e-2, regularization=50.0)
    drift = lambda r: float(np.linalg.norm(r.class_embeddings - r.initial_embeddings))  # noqa: E731
    assert drift(held) < 0.5 * drift(free)


# ----------------------------------------------------------------------------- few-shot classifier
class PromptAxes:
    """The prompts of class c point at axis ``prompt_of[c]`` (a class, not a closure: estimators pickle)."""

    def __init__(self, prompt_of: dict[str, int]) -> None:
        self.prompt_of = prompt_of

    def __call__(self, text: str) -> np.ndarray:
        return np.eye(8)[next(self.prompt_of[c] for c in CLASSES if c in text)]


def table_model(prompt_of: dict[str, int]) -> TableModel:
    """A model whose prompts of class c point at axis prompt_of[c]; clips join it through :func:`crafted`."""
    return TableModel(PromptAxes(prompt_of), dim=8, window_samples=4000)


def crafted(model: TableModel, noise: float, n_per_class: int, seed: int):
    """Audio of class k near axis k (plus noise), one tone a clip, added to ``model``'s table."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    audio = np.eye(8)[y] + noise * rng.standard_normal((len(y), 8))
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    clips = [sine(100 + 200 * seed + i, 0.25, 16000) for i in range(len(y))]  # one tone per (seed, clip)
    model.add(clips, audio)
    return clips, np.array(CLASSES)[y]


@pytest.mark.parametrize("space", ["auto", "gaussian", "cosine", "standardized"])
def test_few_shot_corrects_a_wrong_prompt_with_its_clips(space):
    """The prompt of "siren" points at rain's sounds: zero-shot gets siren wrong; four clips a class fix it."""
    wrong = {"dog": 0, "rain": 1, "siren": 1}
    model = table_model(wrong)
    kw = {**KW, "model": model}
    X, y = crafted(model, noise=0.2, n_per_class=4, seed=0)
    X_test, y_test = crafted(model, noise=0.2, n_per_class=30, seed=1)
    zs = CLAPZeroShotClassifier(labels=CLASSES, **kw).fit()
    few = CLAPFewShotClassifier(space=space, **kw).fit(X, y)
    assert zs.score(X_test, y_test) < 0.7
    assert few.score(X_test, y_test) >= 0.9
    spaces = ("gaussian",) if space == "auto" else (space,)  # fewer clips than folds: the Gaussian head
    assert few.alpha_ < 30 and set(few.cv_scores_) == {(s, a) for s in spaces for a in few.alphas}
    # a strong prior keeps the zero-shot classifier's scores
    stiff = CLAPFewShotClassifier(alpha=1e6, space="cosine" if space == "auto" else space, **kw).fit(X, y)
    np.testing.assert_allclose(stiff.decision_function(X_test), zs.decision_function(X_test), atol=1e-3)


def test_few_shot_chooses_the_head_by_leave_one_out_with_few_clips_and_by_folds_with_more():
    wrong = {"dog": 0, "rain": 1, "siren": 1}
    model = table_model(wrong)
    kw = {**KW, "model": model}
    X, y = crafted(model, noise=0.4, n_per_class=4, seed=6)
    few = CLAPFewShotClassifier(**kw).fit(X, y)
    # four clips a class, five folds asked: the Gaussian head, each strength scored by leaving one clip out
    audio, codes = Encoder(model, sample_rate=16000).audio(X), np.searchsorted(few.classes_, y)
    anchor = few.zero_shot_.class_embeddings_
    for alpha in few.alphas:
        hits = 0
        for i in range(len(codes)):
            keep = np.arange(len(codes)) != i
            W, b = fit_prior_head(audio[keep], codes[keep], anchor, few.logit_scale_, alpha, "gaussian")
            hits += int((audio[i] @ W.T + b).argmax() == codes[i])
        assert few.cv_scores_[("gaussian", alpha)] == pytest.approx(hits / len(codes))
    X, y = crafted(model, noise=0.4, n_per_class=5, seed=7)
    more = CLAPFewShotClassifier(alphas=(0.1, 1.0), **kw).fit(X, y)
    assert set(more.cv_scores_) == {(s, a) for s in ("gaussian", "cosine", "standardized") for a in (0.1, 1.0)}


def test_few_shot_keeps_a_good_prior_when_clips_are_few_and_noisy():
    """Right prompts, noisy clips, one clip a class: the prior carries the decision, where a probe
    on the clips alone guesses."""
    right = {"dog": 0, "rain": 1, "siren": 2}
    accs = {"zs": [], "few": [], "probe": []}
    for seed in range(4):
        model = table_model(right)
        kw = {**KW, "model": model}
        X, y = crafted(model, noise=0.9, n_per_class=1, seed=10 + seed)
        X_test, y_test = crafted(model, noise=0.9, n_per_class=40, seed=20 + seed)
        accs["zs"].append(CLAPZeroShotClassifier(labels=CLASSES, **kw).fit().score(X_test, y_test))
        accs["few"].append(CLAPFewShotClassifier(**kw).fit(X, y).score(X_test, y_test))
        accs["probe"].append(CLAPLinearProbe(**kw).fit(X, y).score(X_test, y_test))
    zs, few, probe = (np.mean(accs[k]) for k in ("zs", "few", "probe"))
    assert few >= zs - 0.03 and few >= probe + 0.1


@pytest.mark.parametrize("space", ["gaussian", "cosine"])
def test_a_class_without_clips_keeps_its_zero_shot_weights(space):
    right = {"dog": 0, "rain": 1, "siren": 2}
    model = table_model(right)
    kw = {**KW, "model": model}
    X, y = crafted(model, noise=0.2, n_per_class=3, seed=3)
    keep = y != "siren"
    alpha = 0.3 if space == "gaussian" else 1.0
    few = CLAPFewShotClassifier(labels=CLASSES, alpha=alpha, space=space, **kw).fit([x for x, k in zip(X, keep) if k], y[keep])
    assert list(few.classes_) == CLASSES
    X_test, y_test = crafted(model, noise=0.2, n_per_class=10, seed=4)
    assert (few.predict(X_test)[y_test == "siren"] == "siren").mean() > 0.8
    with pytest.raises(ValueError, match="not in labels"):
        CLAPFewShotClassifier(labels=["dog", "rain"], **kw).fit(X, y)


@pytest.mark.parametrize("space", ["gaussian", "cosine", "standardized"])
def test_prior_head_is_the_prior_under_a_strong_pull_and_a_probe_under_a_weak_one(space):
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((40, 6))
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    prior = rng.standard_normal((3, 6))
    targets = rng.integers(0, 3, 40)
    W, b = fit_prior_head(audio, targets, prior, 10.0, 1e7, space)
    np.testing.assert_allclose(audio @ W.T + b, audio @ prior.T, atol=1e-4)
    W, b = fit_prior_head(audio, targets, prior, 10.0, 1e-4, space)
    fitted = ((audio @ W.T + b).argmax(axis=1) == targets).mean()
    assert fitted > ((audio @ prior.T).argmax(axis=1) == targets).mean() + 0.2


@pytest.mark.parametrize("alpha", [0.003, 0.1, 3.0])
def test_anchored_head_is_the_minimum_of_its_objective(alpha):
    """The objective written with torch (class-weighted cross-entropy and the pull to the anchor),
    differentiated by autograd: its gradient vanishes at the returned head, and every nearby head
    and the anchor itself cost more. Unbalanced classes and one class without clips."""
    rng = np.random.default_rng(2)
    targets = np.concatenate([np.repeat([0, 1, 2], [12, 5, 2]), [0, 1]])  # class 3 has no clips
    audio = rng.standard_normal((4, 8))[targets] + 0.8 * rng.standard_normal((len(targets), 8))
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    anchor, anchor_b, scale = rng.standard_normal((4, 8)), 0.1 * rng.standard_normal(4), 20.0
    y = torch.as_tensor(targets)
    counts = torch.bincount(y, minlength=4).double()
    weight = torch.where(counts > 0, counts.sum() / (4 * counts.clamp(min=1)), torch.zeros_like(counts))

    def objective(W, b):
        W, b = torch.as_tensor(W, dtype=torch.float64).requires_grad_(True), torch.as_tensor(b, dtype=torch.float64).requires_grad_(True)
        pull = (W - torch.as_tensor(anchor)).pow(2).sum() + (b - torch.as_tensor(anchor_b)).pow(2).sum()
        loss = F.cross_entropy(scale * (torch.as_tensor(audio) @ W.T + b), y, weight=weight) + 0.5 * alpha * pull
        loss.backward()
        return loss.item(), max(W.grad.abs().max().item(), b.grad.abs().max().item())

    W, b = fit_anchored_head(audio, targets, anchor, scale, alpha, anchor_intercept=anchor_b)
    best, gradient = objective(W, b)
    assert gradient < 1e-5
    assert best < objective(anchor, anchor_b)[0]
    for _ in range(5):
        assert best < objective(W + 1e-3 * rng.standard_normal(W.shape), b + 1e-3 * rng.standard_normal(4))[0]
    # a search started elsewhere ends at the same head
    W2, b2 = fit_anchored_head(audio, targets, anchor, scale, alpha, anchor_intercept=anchor_b, start=(W + 0.5, b - 0.5))
    np.testing.assert_allclose(audio @ W2.T + b2, audio @ W.T + b, atol=1e-4)


def test_gaussian_head_scores_are_the_class_log_likelihoods():
    """Against the Gaussian densities themselves (scipy), with the shrunk covariance of the residuals
    around the class means; up to a constant per clip, which no decision depends on."""
    from scipy.stats import multivariate_normal
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(1)
    targets = np.repeat(np.arange(4), 5)
    audio = rng.standard_normal((4, 12))[targets] + rng.standard_normal((20, 12)) * np.linspace(0.2, 2.0, 12)
    P, b = fit_gaussian_head(audio, targets, 5)  # class 4 has no clips
    means = np.stack([audio[targets == c].mean(axis=0) for c in range(4)])
    cov = LedoitWolf(assume_centered=True).fit(audio - means[targets]).covariance_
    cov *= 12 / np.trace(cov)
    test = rng.standard_normal((7, 12))
    expected = np.stack([multivariate_normal(m, cov).logpdf(test) for m in means], axis=1)
    scores = test @ P.T + b
    np.testing.assert_allclose(scores[:, :4] - scores[:, :4].mean(1, keepdims=True), expected - expected.mean(1, keepdims=True), atol=1e-8)
    np.testing.assert_allclose(scores[:, 4], scores[:, :4].mean(axis=1), atol=1e-8)  # no clips: the average
    # one clip a class: no spread to measure, the nearest class mean
    P1, b1 = fit_gaussian_head(audio[::5], targets[::5], 4)
    distances = ((test[:, None, :] - audio[::5][None]) ** 2).sum(-1)
    np.testing.assert_array_equal((test @ P1.T + b1).argmax(1), distances.argmin(1))


def test_gaussian_head_uses_the_shared_spread():
    """Classes apart along a quiet direction, clips spread along a loud one: the Gaussian head reads the
    quiet direction, where the nearest class mean (no covariance) is fooled by the loud one."""
    rng = np.random.default_rng(2)
    targets = np.repeat(np.arange(3), 6)
    centres = np.zeros((3, 10))
    centres[:, 0] = [-0.3, 0.0, 0.3]  # the quiet direction
    spread = np.full(10, 0.05)
    spread[1] = 1.0  # the loud one
    audio = centres[targets] + rng.standard_normal((18, 10)) * spread
    test_targets = np.repeat(np.arange(3), 100)
    test = centres[test_targets] + rng.standard_normal((300, 10)) * spread
    P, b = fit_gaussian_head(audio, targets, 3)
    gaussian = ((test @ P.T + b).argmax(1) == test_targets).mean()
    means = np.stack([audio[targets == c].mean(0) for c in range(3)])
    nearest = (((test[:, None] - means[None]) ** 2).sum(-1).argmin(1) == test_targets).mean()
    assert gaussian > 0.9 and nearest < 0.8


def test_few_shot_estimators_clone_pickle_and_grid_search():
    right = {"dog": 0, "rain": 1, "siren": 2}
    model = table_model(right)
    kw = {**KW, "model": model}
    X, y = crafted(model, noise=0.3, n_per_class=4, seed=5)
    few = CLAPFewShotClassifier(**kw).fit(X, y)
    again = pickle.loads(pickle.dumps(few))
    np.testing.assert_array_equal(again.predict_proba(X), few.predict_proba(X))
    assert clone(few).get_params()["alphas"] == few.alphas
    search = GridSearchCV(CLAPFewShotClassifier(space="cosine", **kw), {"alpha": [0.1, 1e6]}, cv=2).fit(X, y)
    assert search.best_params_["alpha"] in (0.1, 1e6) and search.best_score_ > 0.5


# ---------------------------------------------------------------------------------- the shot curve
def test_draw_shots_is_nested_balanced_and_seeded():
    y = np.repeat(["a", "b", "c"], 10)
    d = draw_shots(y, [1, 2, 4], draw=0)
    assert all(np.bincount(np.unique(y[d[k]], return_inverse=True)[1]).tolist() == [k] * 3 for k in (1, 2, 4))
    assert set(d[1]) <= set(d[2]) <= set(d[4])
    assert np.array_equal(draw_shots(y, [4], 0)[4], d[4]) and not np.array_equal(draw_shots(y, [4], 1)[4], d[4])
    with pytest.raises(ValueError, match="class 'a' has 10 clips"):
        draw_shots(y, [16], 0)


def test_shot_curve_fits_every_method_on_the_drawn_shots():
    wrong = {"dog": 0, "rain": 1, "siren": 1}
    model = table_model(wrong)
    kw = {**KW, "model": model}
    X, y = crafted(model, noise=0.3, n_per_class=6, seed=6)
    X_test, y_test = crafted(model, noise=0.3, n_per_class=10, seed=7)
    curve = shot_curve(X, y, X_test, y_test, kw, shots=(1, 4), draws=2, methods=("zero-shot", "linear probe", "few-shot"))
    assert len(curve) == 1 + 2 * 2 * 2 and set(curve["method"]) == {"zero-shot", "linear probe", "few-shot"}
    summary = summarize_curve(curve).set_index(["method", "shots"])
    assert summary.loc[("few-shot", 4), "mean"] > summary.loc[("zero-shot", 0), "mean"] + 0.2
    assert summary.loc[("few-shot", 4), "draws"] == 2


@pytest.mark.end_to_end
def test_cli_evaluate_fewshot_mode(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from . import downstream_fixtures as fx

    root = tmp_path / "data"
    fx.gtzan_music_speech(root)
    out = tmp_path / "eval"
    args = ["evaluate", "--task", "gtzan_music_speech", "--data-dir", str(root), "--model", str(tiny_model_dir), "--mode", "fewshot"]
    args += ["--shots", "1,2", "--draws", "2", "--tuner-steps", "20", "--out", str(out), "--device", "cpu", "--no-progress"]
    fits, original = [], CLAPPromptTuner.fit
    monkeypatch.setattr(CLAPPromptTuner, "fit", lambda self, *a, **k: fits.append(self.steps) or original(self, *a, **k))
    assert cli(args) == 0
    assert fits and set(fits) == {20}  # every fit of the prompt tuner took the steps asked for
    table = pd.read_csv(out / "results.csv")
    assert set(table["method"]) == {"zero-shot", "linear probe", "prompt tuner", "few-shot"}
    assert sorted(set(table["shots"])) == [0, 1, 2]
    text = capsys.readouterr().out
    assert "| shots per class | linear probe | prompt tuner | few-shot |" in text and "zero-shot" in text
    bad = [a if a != "1,2" else "one" for a in args]
    with pytest.raises(SystemExit, match="--shots"):
        cli(bad)
    with pytest.raises(SystemExit, match="--tuner-steps must be 1 or more"):
        cli([a if a != "20" else "0" for a in args])


def test_few_shot_prior_can_choose_its_templates_on_the_clips():
    from skclap.prompting import TEMPLATE_POOL

    X, y = _clips(3, seed=2)
    few = CLAPFewShotClassifier(templates="auto", alpha=1.0, space="cosine", **KW).fit(X, y)
    assert few.zero_shot_.templates_ and set(few.zero_shot_.templates_) <= set(TEMPLATE_POOL)
    assert set(few.zero_shot_.template_scores_) == set(TEMPLATE_POOL)
