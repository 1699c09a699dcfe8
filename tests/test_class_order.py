"""Every classifier keeps ``classes_`` sorted, whatever order its labels were named in, so that
scikit-learn's probability scorers (which read ``predict_proba``'s columns as the sorted classes)
score what the classifier means. Checked on the bundled model and real sampled notes, where the
right column order is the difference between a good and a chance score."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score

from skclap import CLAPCompositionalClassifier, CLAPFewShotClassifier, CLAPLinearProbe, CLAPPromptTuner, CLAPZeroShotClassifier
from skclap.datasets import instruments as ins

MODEL = "skclap-instruments"
UNSORTED = ["violin", "piano", "flute", "trumpet", "marimba"]  # as a user might list them
KW = dict(model=MODEL, sample_rate=16000, progress=False, device="cpu")
PROMPTS = {n: ins.instrument_prompts(n) for n in UNSORTED}

CLASSIFIERS = {
    "zero-shot": lambda labels: CLAPZeroShotClassifier(labels=labels, templates="{}", label_prompts=PROMPTS, **KW),
    "compositional": lambda labels: CLAPCompositionalClassifier(
        labels=labels, label_parts={n: n for n in UNSORTED}, templates="{}", label_prompts=PROMPTS, **KW
    ),
    "few-shot": lambda labels: CLAPFewShotClassifier(labels=labels, templates="{}", label_prompts=PROMPTS, **KW),
    "prompt tuner": lambda labels: CLAPPromptTuner(labels=labels, label_prompts=PROMPTS, steps=30, **KW),
    "linear probe": lambda labels: CLAPLinearProbe(**KW),  # takes its classes from y alone
}


@pytest.fixture(scope="module")
def notes():
    corpus = ins.make_instrument_corpus(60, seed=31, seconds=1.0, instruments=UNSORTED)  # TimGM6mb
    return corpus.waveforms(), np.asarray(corpus.labels, dtype=object)


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classes_are_sorted_and_the_probability_scorers_agree(name, notes):
    X, y = notes
    clf = CLASSIFIERS[name](UNSORTED).fit(X, y)
    assert list(clf.classes_) == sorted(UNSORTED)
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    prompts = getattr(clf, "prompts_", None) or getattr(getattr(clf, "zero_shot_", None), "prompts_", None)
    if prompts is not None:  # each class's prompts travel with it
        assert [p[0] for p in prompts] == [PROMPTS[c][0] for c in clf.classes_]

    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = {}
    for order in ("unsorted", "sorted"):
        est = CLASSIFIERS[name](UNSORTED if order == "unsorted" else sorted(UNSORTED))
        scores[order] = {s: cross_val_score(est, X, y, cv=folds, scoring=s).mean() for s in ("neg_log_loss", "roc_auc_ovr")}
    for scoring in ("neg_log_loss", "roc_auc_ovr"):
        assert scores["unsorted"][scoring] == pytest.approx(scores["sorted"][scoring], abs=1e-6), scoring
    # far from a scorer reading the columns of another order: the model names these notes well
    assert scores["unsorted"]["roc_auc_ovr"] > 0.9
    assert scores["unsorted"]["neg_log_loss"] > -np.log(len(UNSORTED))


def test_labels_that_cannot_be_ordered_are_refused_by_name():
    clf = CLAPZeroShotClassifier(labels=["dog", 3], **KW)
    with pytest.raises(ValueError, match=r"labels mix types that cannot be ordered \(int, str\)"):
        clf.fit()


def test_an_indicator_matrix_keeps_its_columns_order():
    """Tag sets given as an indicator matrix: ``labels`` names its columns, so the classes keep the
    columns' order (sorting them would score each column against another class's tag)."""
    y = np.array([[1, 0, 0], [0, 1, 1]])
    clf = CLAPZeroShotClassifier(labels=["violin", "piano", "flute"], **KW).fit(np.zeros((2, 16000), np.float32), y)
    assert list(clf.classes_) == ["violin", "piano", "flute"] and clf.multilabel_
