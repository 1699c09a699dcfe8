"""Declarative parameter validation of the estimators (scikit-learn's ``_parameter_constraints``):
one bad value per parameter, each error naming the parameter; conventions; the docstring examples."""

from __future__ import annotations

import doctest

import pytest
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

import skclap.estimators.compositional
import skclap.estimators.embedder
import skclap.estimators.linear_probe
import skclap.estimators.zero_shot
from skclap import CLAPCompositionalClassifier, CLAPEmbedder, CLAPLinearProbe, CLAPZeroShotClassifier

from .conftest import sine

SHARED = {"model": 3, "sample_rate": 0, "batch_size": 0, "device": 3, "precision": "int4", "cache": 3.5, "progress": "no"}
BAD = {
    CLAPEmbedder: {**SHARED, "modality": "video", "normalize": "yes", "engine": "tensorrt"},
    CLAPZeroShotClassifier: {
        **SHARED,
        "labels": 3,
        "templates": 3,
        "label_prompts": ["dog"],
        "multilabel": "maybe",
        "threshold": 1.5,
    },
    CLAPCompositionalClassifier: {**SHARED, "label_parts": ["dog"], "labels": 3, "templates": 3, "label_prompts": ["dog"]},
    CLAPLinearProbe: {**SHARED, "estimator": object(), "finetune": "yes", "finetune_params": [1]},
}
X = [sine(440, 1.0, 16000), sine(880, 1.0, 16000), sine(220, 1.0, 16000), sine(1760, 1.0, 16000)]
Y = ["a", "b", "a", "b"]


@pytest.mark.parametrize("cls", list(BAD), ids=lambda c: c.__name__)
def test_every_parameter_is_declared_and_checked(cls):
    params = set(cls().get_params())
    assert set(cls._parameter_constraints) == params
    assert set(BAD[cls]) == params, "one bad value for each parameter"
    for name, value in BAD[cls].items():
        est = cls(model="preset:tiny", sample_rate=16000, progress=False, device="cpu")
        if cls is CLAPZeroShotClassifier:
            est.set_params(labels=["a", "b"])
        if cls is CLAPCompositionalClassifier:
            est.set_params(label_parts={"a": ("high", "flute"), "b": ("low", "flute")})
        est.set_params(**{name: value})
        with pytest.raises(ValueError, match=f"The '{name}' parameter of {cls.__name__} must be"):
            est.fit(X, Y)


def test_keyword_only_constructors():
    for cls in BAD:
        with pytest.raises(TypeError):
            cls("preset:tiny")


def test_transform_without_fit_validates_and_sets_nothing():
    emb = CLAPEmbedder(model="preset:tiny", sample_rate=16000, progress=False, device="cpu", cache=False)
    assert emb.transform(X).shape == (4, 64)
    assert not hasattr(emb, "embedding_dim_")
    with pytest.raises(NotFittedError):
        emb.get_feature_names_out()
    with pytest.raises(ValueError, match="The 'batch_size' parameter of CLAPEmbedder"):
        emb.set_params(batch_size=-1).transform(X)
    emb.set_params(batch_size=8).fit(X)
    assert list(emb.get_feature_names_out()[:2]) == ["clap0", "clap1"]


def test_continuous_targets_are_refused_by_scikit_learns_check():
    for cls in (CLAPZeroShotClassifier, CLAPLinearProbe, CLAPCompositionalClassifier):
        est = cls(model="preset:tiny", sample_rate=16000, progress=False, device="cpu")
        if cls is CLAPCompositionalClassifier:
            est.set_params(label_parts={v: ("note", str(v)) for v in (0.5, 1.5, 2.5, 3.5)})
        with pytest.raises(ValueError, match="Unknown label type"):
            est.fit(X, [0.5, 1.5, 2.5, 3.5])


def test_finetune_settings_are_routed_by_prefix():
    probe = CLAPLinearProbe(model="preset:tiny", sample_rate=16000, progress=False, device="cpu", finetune_params={"epochs": 2})
    probe.set_params(finetune__lr=1e-3, finetune__batch_size=4)
    assert probe.finetune_params == {"epochs": 2, "lr": 1e-3, "batch_size": 4}
    with pytest.raises(ValueError, match=r"finetune__bogus.*TrainConfig"):
        probe.set_params(finetune__bogus=1)
    search = GridSearchCV(
        CLAPLinearProbe(
            model="preset:tiny",
            sample_rate=16000,
            progress=False,
            device="cpu",
            finetune=True,
            finetune_params={"epochs": 1, "batch_size": 2},
        ),
        {"finetune__lr": [1e-3, 0.0]},
        cv=2,
    ).fit(X, Y)
    assert search.best_estimator_.finetune_params["lr"] in (1e-3, 0.0)
    assert {c["finetune__lr"] for c in search.cv_results_["params"]} == {1e-3, 0.0}


@pytest.mark.parametrize(
    "module", [skclap.estimators.embedder, skclap.estimators.zero_shot, skclap.estimators.compositional, skclap.estimators.linear_probe]
)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0


def test_zero_shot_has_no_parts_and_the_compositional_classifier_needs_them():
    assert {"label_parts", "relative_to"}.isdisjoint(CLAPZeroShotClassifier().get_params())
    with pytest.raises(ValueError, match="label_parts is required"):
        CLAPCompositionalClassifier(model="preset:tiny", sample_rate=16000, progress=False, device="cpu").fit(X, Y)
