"""Which words a model can read, and a warning for labels written in words it cannot.

A CLAP model maps any text to a vector, so a label in words its training never used still gets a
class vector: one close to every other unknown word's, so a zero-shot classifier over such labels
fits and predicts without a word of warning. :func:`unknown_words` finds those words where the
model can tell:

- any tokenizer with an unknown token of its own (``[UNK]``): a word it reads (in part) as that token;
- skclap's basic vocabulary (:func:`skclap.models.tokenizer.basic_vocab`: the bundled models and
  models trained from a preset with it): a word that is not one word of the vocabulary (the
  tokenizer spells it out in characters), and a vocabulary word whose embedding training never
  moved from its random start (no caption used it). Rows start as independent normal draws of the
  text tower's ``initializer_range``, so an untrained row keeps a norm close to
  ``initializer_range * sqrt(hidden)``, while a row that training updated moves far past it.

Released models cannot tell: their WordPiece (BERT) and byte-level BPE (GPT-2, RoBERTa) tokenizers
split any word into pieces that pretraining learnt, so an unknown word is indistinguishable from a
rare one, and every row of their tables was trained. For them only the first rule applies (BPE
tokenizers have no unknown token).
"""

from __future__ import annotations

import re
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .exceptions import UnknownWordsWarning

__all__ = ["check_label_words", "unknown_words"]

#: A row is trained when its norm is past the untrained rows' norm by this many standard deviations
#: (an untrained row's squared norm over the init variance is chi-squared with ``hidden`` degrees of
#: freedom: a random row lands this far out with a probability under one in a million).
TRAINED_SIGMAS = 8.0

_WORD = re.compile(r"[^\W_]+")  # letters and digits: "_" and punctuation are pieces of their own
_READERS: weakref.WeakKeyDictionary[Any, Callable[[str], bool] | None] = weakref.WeakKeyDictionary()


def _trained_rows(model: Any, size: int) -> np.ndarray | None:
    """For each row of the word-embedding table: whether training moved it from its random start;
    None when that cannot be told: no row moved (random weights), or the rows that did not move do
    not look like the initialisation (weights made some other way)."""
    table = getattr(model, "text_input_embeddings", None)
    if table is None:
        return None
    weights = table().weight.detach().float().cpu().numpy()[:size]
    sigma = float(model.config.text.transformer.get("initializer_range", 0.02))
    dim = weights.shape[1]
    norms = np.linalg.norm(weights, axis=1)
    trained = norms > sigma * np.sqrt(dim + TRAINED_SIGMAS * np.sqrt(2 * dim))
    still = norms[~trained & (norms > 0)]  # (the padding row starts at zero)
    if not trained.any() or not len(still) or not 0.5 <= still.mean() / (sigma * np.sqrt(dim)) <= 1.25:
        return None
    return trained


def _reader(model: Any) -> Callable[[str], bool] | None:
    """``known(word)`` for the model, or None when its vocabulary cannot tell (see the module docs)."""
    try:
        return _READERS[model]
    except (KeyError, TypeError):
        pass
    tokenizer = getattr(model, "tokenizer", None)
    known: Callable[[str], bool] | None = None
    if tokenizer is not None:
        from .models.tokenizer import basic_vocab

        unk = getattr(tokenizer, "unk_token", None)
        vocab = tokenizer.get_vocab()
        basic = basic_vocab()
        trained = _trained_rows(model, len(vocab)) if len(vocab) == len(basic) and set(vocab) == set(basic) else None
        if trained is not None:

            def known(word: str) -> bool:
                pieces = tokenizer.tokenize(word)
                return len(pieces) == 1 and pieces[0] != unk and bool(trained[vocab[pieces[0]]])

        elif unk is not None and unk not in (getattr(tokenizer, "eos_token", None), getattr(tokenizer, "bos_token", None)):
            # (GPT-2's byte-level BPE names its end-of-text token as unknown too: it reads every
            # byte, so no word is unknown to it)

            def known(word: str) -> bool:
                return unk not in tokenizer.tokenize(word)

    try:
        _READERS[model] = known
    except TypeError:  # not weakly referable: no cache
        pass
    return known


def unknown_words(model: Any, texts: Iterable[str]) -> list[str]:
    """The words of ``texts`` that ``model`` cannot read (see the module docs), each once, in order;
    empty when the model's vocabulary cannot tell."""
    known = _reader(model)
    if known is None:
        return []
    words = dict.fromkeys(w for t in texts for w in _WORD.findall(t))
    return [w for w in words if not known(w)]


def _plain(value: Any) -> Any:
    """A numpy scalar label as the Python value it holds (``'dog'``, not ``np.str_('dog')``)."""
    return value.item() if isinstance(value, np.generic) else value


def check_label_words(model: Any, wordings: Mapping[Any, Sequence[str]], estimator: str) -> None:
    """Warn (:class:`UnknownWordsWarning`) about the labels at least half of whose words ``model``
    cannot read, naming the words; ``wordings``: each label's texts (its ``label_prompts``, or the
    label itself)."""
    if _reader(model) is None:
        return
    bad = {}
    for label, texts in wordings.items():
        words = dict.fromkeys(w for t in texts for w in _WORD.findall(t))
        unknown = unknown_words(model, texts)
        if unknown and 2 * len(unknown) >= len(words):
            bad[label] = unknown
    if not bad:
        return
    from .registry import BUNDLED

    source = str(getattr(model, "source", "") or "the model")
    shown = {_plain(label): words for label, words in bad.items()}
    named = "; ".join(f"{label!r}: {', '.join(words)}" for label, words in shown.items())
    first = next(iter(shown))
    knows = f" It knows {BUNDLED[source].knows}." if source in BUNDLED else ""
    warnings.warn(
        f"{estimator}: {source} cannot read most words of {len(bad)} label(s) ({named}): no caption it was "
        f"trained on used them, so their prompts embed alike and these classes are not told apart by meaning. "
        f"Word them as the model knows, e.g. label_prompts={{{first!r}: '...'}}.{knows}",
        UnknownWordsWarning,
        stacklevel=3,
    )
