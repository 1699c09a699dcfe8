"""Labels a model cannot read warn, naming the words (issue 48, item 2), and a ``label_prompts`` key
that is no label warns with the closest label (item 3). On the bundled model, whose captions never
said "noise", "buzz" or "dog": those words embed alike, which is why the warning is needed."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from skclap import CLAPCompositionalClassifier, CLAPFewShotClassifier, CLAPPromptTuner, CLAPZeroShotClassifier, load_model
from skclap.exceptions import UnknownWordsWarning
from skclap.vocabulary import unknown_words

from .conftest import sine

MODEL = "skclap-instruments"
KW = dict(model=MODEL, sample_rate=16000, progress=False, device="cpu", cache=False)


def caught(fit) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit()
    return record


def unknown_words_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UnknownWordsWarning)]


def test_labels_the_bundled_model_never_read_warn_naming_their_words():
    clf = CLAPZeroShotClassifier(labels=["noise", "buzz", "dog", "piano", "violin"], **KW)
    messages = unknown_words_warnings(caught(clf.fit))
    assert len(messages) == 1
    text = messages[0]
    assert "'noise': noise" in text and "'buzz': buzz" in text and "'dog': dog" in text and "skclap-instruments" in text
    assert "'piano'" not in text and "'violin'" not in text and "label_prompts=" in text
    # what the warning is about: the unknown words' class vectors are nearly one vector, while
    # words the model learnt stand apart
    emb = dict(zip(clf.classes_.tolist(), clf.class_embeddings_))
    unknown = [float(emb[a] @ emb[b]) for a, b in (("noise", "buzz"), ("noise", "dog"), ("buzz", "dog"))]
    assert min(unknown) > float(emb["piano"] @ emb["violin"]) + 0.1


def test_known_wordings_misspellings_and_mostly_unknown_labels():
    model = load_model(MODEL)
    assert unknown_words(model, ["a soft low cello note", "kick_drum", "hi-hat"]) == []
    assert unknown_words(model, ["a violn", "dog barking"]) == ["violn", "dog", "barking"]  # spelt out; never trained
    # a label warns when at least half of its words are unknown: the wording given for it counts
    clf = CLAPZeroShotClassifier(labels=["cat", "violin"], label_prompts={"cat": "a loud high cat"}, **KW)
    assert unknown_words_warnings(caught(clf.fit)) == []
    clf = CLAPZeroShotClassifier(labels=["cat", "violin"], label_prompts={"cat": "a cat meowing"}, **KW)
    assert "'cat': cat, meowing" in unknown_words_warnings(caught(clf.fit))[0]


@pytest.mark.parametrize("kind", ["compositional", "few-shot", "prompt tuner"])
def test_every_classifier_with_prompts_warns(kind):
    waves = np.stack([sine(f, 1.0, 16000) for f in (220, 440, 880, 1760)])
    y = ["piano", "dog", "piano", "dog"]
    if kind == "compositional":
        clf = CLAPCompositionalClassifier(label_parts={"loud dog": ("loud", "dog"), "soft piano": ("soft", "piano")}, **KW)
        record = caught(clf.fit)
    else:
        make = CLAPFewShotClassifier if kind == "few-shot" else CLAPPromptTuner
        extra = {"alpha": 1.0} if kind == "few-shot" else {"steps": 2}
        clf = make(**KW, **extra)
        record = caught(lambda: clf.fit(waves, y))
    messages = unknown_words_warnings(record)
    assert messages and "'dog': dog" in messages[0] and "'piano'" not in messages[0] and "'soft piano'" not in messages[0]
    assert messages[0].startswith(type(clf).__name__)  # named as the estimator the user fitted


def test_models_that_cannot_tell_do_not_warn(tiny_model_dir):
    # random weights: no word was ever trained, so none can be told from another
    clf = CLAPZeroShotClassifier(model=str(tiny_model_dir), labels=["dog barking", "rain"], progress=False, device="cpu", sample_rate=16000)
    assert unknown_words_warnings(caught(clf.fit)) == []
    # a WordPiece tokenizer of a released model: only a word read as [UNK] is unknown
    from transformers import BertTokenizer

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "dog", "##s", "d", "##o", "##g"])}
    bert = SimpleNamespace(tokenizer=BertTokenizer(vocab=vocab, do_lower_case=True))
    assert unknown_words(bert, ["a dog", "dogs", "a cat"]) == ["cat"]
    byte_level = SimpleNamespace(tokenizer=SimpleNamespace(unk_token=None, get_vocab=lambda: {}, tokenize=list))
    assert unknown_words(byte_level, ["anything at all"]) == []
    # GPT-2 names its end-of-text token as its unknown one; reading every byte, it has no unknown word
    end = "<|endoftext|>"
    gpt2 = SimpleNamespace(unk_token=end, eos_token=end, bos_token=end, get_vocab=lambda: {end: 0}, tokenize=lambda w: [end])
    assert unknown_words(SimpleNamespace(tokenizer=gpt2), ["a dog"]) == []


def test_a_label_prompts_key_that_is_no_label_warns_with_the_closest():
    clf = CLAPZeroShotClassifier(labels=["violin", "piano"], label_prompts={"violn": "a fiddle"}, **KW)
    messages = [str(w.message) for w in caught(clf.fit) if w.category is UserWarning]
    assert len(messages) == 1 and "'violn'" in messages[0] and "did you mean 'violin'?" in messages[0]
    assert clf.prompts_[clf.classes_.tolist().index("violin")] == ["this is a sound of violin."]  # unused, as it says
    parts = {"high flute": ("high", "flute"), "low flute": ("low", "flute")}
    comp = CLAPCompositionalClassifier(label_parts=parts, label_prompts={"hihg": "a high note"}, **KW)
    messages = [str(w.message) for w in caught(comp.fit) if w.category is UserWarning]
    assert len(messages) == 1 and "not a part" in messages[0] and "did you mean 'high'?" in messages[0]
