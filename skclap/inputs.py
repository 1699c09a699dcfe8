"""Validation of what users pass as audio, text and targets: lists of items, with errors that name
the item and say what to fix. Shared by the estimators and the collection tools."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

__all__ = ["as_items", "as_texts", "check_targets", "class_codes", "class_index", "is_label_lists", "resolve_classes", "sorted_classes"]


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


#: A 2-D array with at least this many rows and at most :data:`RECORDING_CHANNELS` columns is a
#: recording laid out (samples, channels), as soundfile reads one, not that many clips of a few samples.
TRANSPOSED_ROWS = 1000
RECORDING_CHANNELS = 8


def _as_waveform_matrix(X: np.ndarray, what: str) -> list[np.ndarray]:
    """Rows of a 2-D array as waveforms, checked once for the whole matrix."""
    rows, cols = X.shape
    if rows >= TRANSPOSED_ROWS and 0 < cols <= RECORDING_CHANNELS:
        raise ValueError(
            f"{what} has shape {X.shape}: as one waveform per row, that is {rows} clips of {cols} sample(s) each. "
            f"It looks like one recording laid out (samples, channels): pass [{what}] (a list of waveforms; channels "
            f"are averaged) to embed it as one clip, or {what}.T if each column is a clip of its own"
        )
    if X.dtype == object:
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what} is a 2-D object array whose entries are not numbers; rows must be numeric waveforms") from None
    if np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {what} rows must be real-valued waveforms")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise ValueError(f"{what} is a 2-D array of dtype {X.dtype}; rows must be numeric waveforms")
    if X.shape[1] == 0:
        raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required: every row of {what} is an empty waveform")
    finite = np.isfinite(X).all(axis=1) if np.issubdtype(X.dtype, np.floating) else np.ones(len(X), bool)
    if not finite.all():
        raise ValueError(f"{what} row {int(np.argmin(finite))}: the waveform contains NaN or infinite values")
    return list(X)


_SPACE = re.compile(r"\s")


def _reads_as_text(item: Any) -> bool:
    """A string that names no file and does not look like a path: words with spaces, no extension."""
    return (
        isinstance(item, str)
        and not os.path.splitext(item.rstrip(".!?"))[1]
        and _SPACE.search(item.strip()) is not None
        and not os.path.exists(item)
    )


def _check_not_text(items: list[Any], what: str, text_hint: str | None) -> None:
    for i, item in enumerate(items):
        if _reads_as_text(item):
            hint = text_hint or f"{what} holds audio: file paths, waveforms or (array, rate) pairs"
            raise FileNotFoundError(
                f"{what} item {i}: audio file not found: {item!r}, which reads as text rather than a path "
                f"(spaces, no file extension); {hint}"
            )


def as_items(X: Any, what: str = "X", text_hint: str | None = None) -> list[Any]:
    """Audio input as a list of items: paths, waveforms, ``(array, rate)`` pairs or mappings.

    Accepts a list/tuple, a 1-D array of paths or objects, a 2-D numeric array or tensor (one
    waveform per row), a pandas Series or a one-column DataFrame, or any other iterable (a generator,
    ``Path(...).glob(...)``), read once into the list returned. A string that names no file and reads
    as text is refused, with ``text_hint`` (e.g. where text goes instead) in the message.
    """
    if sp.issparse(X):
        raise ValueError(f"sparse input is not supported: {what} must hold dense waveforms or file paths")
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # DataFrame
        from pandas.api.types import is_numeric_dtype

        if len(X.columns) and all(is_numeric_dtype(t) for t in X.dtypes):
            X = X.to_numpy()  # numeric columns: one waveform per row
        elif X.shape[1] != 1:
            raise ValueError(
                f"{what} is a DataFrame with {X.shape[1]} columns; pass one column of audio "
                f"(e.g. df[['path']], or a ColumnTransformer selecting it)"
            )
        else:
            X = X.iloc[:, 0]
    if hasattr(X, "iloc"):  # Series
        X = X.to_list()
    torch = sys.modules.get("torch")  # a tensor means torch is loaded; without it there is none to convert
    if torch is not None and isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, (str, os.PathLike, Mapping)):
        raise ValueError(f"{what} must be a collection of audio items; got a single {type(X).__name__}. Wrap it in a list.")
    if not isinstance(X, (list, tuple, np.ndarray)) and hasattr(X, "__array__"):
        X = np.asarray(X)
    if isinstance(X, np.ndarray):
        if X.ndim == 2:
            items: list[Any] = _as_waveform_matrix(X, what)
        elif X.ndim == 1 and (X.dtype == object or np.issubdtype(X.dtype, np.str_)):
            items = list(X)
        elif X.ndim == 1:
            raise ValueError(
                f"{what} is a 1-D numeric array. Reshape your data: a 2-D array holds one waveform "
                f"per row (X.reshape(1, -1) for a single clip), or pass a list of waveforms"
            )
        else:
            raise ValueError(f"{what} must be 1-D (items) or 2-D (one waveform per row); got shape {X.shape}")
    else:
        try:
            items = list(X)
        except TypeError:
            raise ValueError(f"{what} must be a collection of audio items; got {type(X).__name__}") from None
    if len(items) == 0:
        spent = " (an iterator that yielded nothing: was it already consumed? pass a list)" if isinstance(X, Iterator) else ""
        raise ValueError(f"Found array with 0 sample(s) (shape=(0,)) while a minimum of 1 is required: {what} is empty{spent}")
    _check_not_text(items, what, text_hint)
    return items


def is_label_lists(y: Any) -> bool:
    """A list of label collections (``[["dog"], ["cat", "bird"]]``), not a nested indicator matrix."""
    if not (isinstance(y, (list, tuple)) and len(y) > 0 and all(isinstance(v, (list, tuple, set, frozenset)) for v in y)):
        return False
    try:
        return type_of_target(y) != "multilabel-indicator"
    except ValueError:
        return True


def check_targets(y: Any, n_items: int, estimator: str) -> Any:
    """``y`` must be present and pair up with the items; a (n, 1) column becomes 1-D with a warning."""
    if y is None:
        raise ValueError(f"{estimator} requires y to be passed, but the target y is None")
    if not isinstance(y, (list, tuple)):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
    if len(y) != n_items:
        raise ValueError(f"X has {n_items} items but y has {len(y)} labels")
    return y


def as_texts(X: Any, what: str = "X") -> list[str]:
    """Text input as a list of strings (list, array, Series or one-column DataFrame)."""
    if hasattr(X, "iloc") and hasattr(X, "columns"):
        if X.shape[1] != 1:
            raise ValueError(f"{what} is a DataFrame with {X.shape[1]} columns; pass one column of text")
        X = X.iloc[:, 0]
    if isinstance(X, str):
        raise ValueError(f"{what} must be a collection of texts; got a single string. Wrap it in a list.")
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if isinstance(X, np.ndarray) and X.ndim != 1:
        raise ValueError(f"{what} must be a 1-D collection of texts; got an array of shape {X.shape}")
    texts = list(X.to_list() if hasattr(X, "to_list") else X)
    if not texts:
        raise ValueError(f"Found array with 0 sample(s) while a minimum of 1 is required: {what} is empty")
    for i, t in enumerate(texts):
        if _is_missing(t):
            raise ValueError(f"{what}: text item {i} is missing (None/NaN)")
        if not isinstance(t, str):
            raise ValueError(f"{what}: text item {i} must be a string; got {type(t).__name__}: {t!r}")
    return texts


def check_labels(labels: Any) -> list | None:
    """``labels`` (the classes an estimator is told, in any order) as a list: non-empty and without
    duplicates (equal values, or values that print alike); None passes through."""
    if labels is None:
        return None
    labels = list(labels)
    if not labels:
        raise ValueError("labels is empty; give at least one class name")
    if len(set(map(repr, labels))) != len(labels) or len(set(labels)) != len(labels):
        raise ValueError(f"labels has duplicates: {labels}")
    return labels


def sorted_classes(labels: Sequence[Any]) -> np.ndarray:
    """The classes as scikit-learn keeps them: sorted, as ``np.unique`` would order ``y``. Scorers and
    metrics (``neg_log_loss``, ``roc_auc_ovr``, ``label_binarize``) read ``predict_proba``'s columns in
    that order, whatever order the classes were named in."""
    try:
        ordered = sorted(labels)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in labels})
        raise ValueError(
            f"labels mix types that cannot be ordered ({', '.join(kinds)}): {list(labels)[:10]}; give labels of one type"
        ) from None
    return np.asarray(ordered, dtype=object if any(isinstance(v, str) for v in ordered) else None)


def check_known_labels(values: Any, labels: list) -> None:
    """Every label of ``y`` (``values``) must be one of ``labels``."""
    known = set(labels)
    unknown = sorted({v for v in values if v not in known}, key=repr)
    if unknown:
        raise ValueError(f"y contains labels that are not in labels: {unknown[:10]}")


def resolve_classes(
    y: Any,
    labels: Any,
    estimator: str,
    *,
    multilabel: bool | str | None = None,
    default: Sequence[Any] | None = None,
    hint: str | None = "give the class names as labels=[...]",
) -> tuple[np.ndarray, bool]:
    """The classes an estimator is fitted to, in the order of ``predict_proba``'s columns, and whether
    ``y`` holds tag sets.

    ``labels`` name the classes in any order (:func:`check_labels`); the classes are then those names
    sorted (:func:`sorted_classes`), and every label of ``y`` must be one of them. Without ``labels``
    they are the values of ``y`` (``np.unique``); without ``y`` either, ``default`` (e.g. the keys of a
    mapping the estimator was given), else the error says that ``y`` is needed, ``(or hint)``; with
    ``hint=None`` ``y`` is always needed. ``multilabel`` is the estimator's tag-set parameter
    (``"auto"``, True, False), None for an estimator that takes one label per clip. Tag sets are a list
    of label lists (classes sorted) or an indicator matrix, whose classes keep its columns' order:
    ``labels`` then name its columns, and sorting them would score each column as another class.
    """
    names = check_labels(labels)
    if y is None:
        named = names if names is not None else default
        if hint is None or not named:
            alternative = f" (or {hint})" if hint else ""
            raise ValueError(f"{estimator} requires y to be passed, but the target y is None{alternative}")
        return sorted_classes(named), multilabel is True
    if multilabel is not None:
        tags = _tag_set_classes(y, names, multilabel)
        if tags is not None:
            return tags, True
    wanted = "one label per clip (1-D y)" + ("" if multilabel is None else " or tag sets (an indicator matrix or label lists)")
    if is_label_lists(y):
        raise ValueError(f"{estimator} takes {wanted}; got a list of label lists")
    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise ValueError(f"{estimator} takes {wanted}; got {type_of_target(y_arr, input_name='y')} targets of shape {y_arr.shape}")
    check_classification_targets(y_arr)
    if multilabel is True:
        raise ValueError("multilabel=True needs y as an indicator matrix or a list of label lists")
    if names is None:
        return np.unique(y_arr), False
    check_known_labels(y_arr.tolist(), names)
    return sorted_classes(names), False


def _tag_set_classes(y: Any, names: list | None, multilabel: bool | str) -> np.ndarray | None:
    """The classes of tag sets (a list of label lists, or an indicator matrix: 2-D ``y`` read as one
    with ``multilabel=True``); None when ``y`` holds one label per clip."""
    if is_label_lists(y):
        if multilabel is False:
            raise ValueError("y is a list of label lists, but multilabel=False")
        if names is None:
            from sklearn.preprocessing import MultiLabelBinarizer

            return MultiLabelBinarizer().fit(y).classes_
        check_known_labels((v for row in y for v in row), names)
        return sorted_classes(names)
    y_arr = np.asarray(y)
    if not (type_of_target(y_arr, input_name="y") == "multilabel-indicator" or (y_arr.ndim == 2 and multilabel is True)):
        return None
    if multilabel is False:
        raise ValueError("y is a 2-D indicator matrix, but multilabel=False")
    n_cls = y_arr.shape[1]
    if names is not None and len(names) != n_cls:
        raise ValueError(f"y has {n_cls} columns but labels has {len(names)} names")
    # an indicator matrix orders the classes by its columns; labels name them in that order
    return np.asarray(names if names is not None else np.arange(n_cls))


def class_index(classes: np.ndarray, y: Any) -> np.ndarray:
    """Each clip's class in single-label ``y`` as its index in ``classes``."""
    index = {c: i for i, c in enumerate(classes.tolist())}
    return np.asarray([index[v] for v in np.asarray(y).tolist()], dtype=np.int64)


def class_codes(y: Any, labels: Any, estimator: str) -> tuple[np.ndarray, np.ndarray]:
    """Single-label targets as ``(classes, index of each clip's class)``, the classes as
    :func:`resolve_classes` gives them."""
    classes, _ = resolve_classes(y, labels, estimator, hint=None)
    return classes, class_index(classes, y)
