"""skclap's exceptions and warnings (a leaf module: it imports nothing from the package)."""

from __future__ import annotations

__all__ = ["AudioError", "CheckpointError", "DatasetNotFoundError", "UnknownModelError", "UnknownWordsWarning"]


class AudioError(ValueError):
    """An audio item that cannot be turned into a waveform: unreadable, empty, NaN, wrong shape..."""


class CheckpointError(OSError):
    """A checkpoint that is missing, unreadable, or does not fit the model (a name that is
    registered nowhere is an :class:`UnknownModelError`)."""


class UnknownModelError(ValueError):
    """A model or architecture name that is registered nowhere (and no directory or file of that
    name): the message names the closest registered names. A bad argument, not a failed read, so a
    ``ValueError`` wherever the name is given (``load_model``, ``train``, an estimator's ``model=``)."""


class DatasetNotFoundError(FileNotFoundError):
    """A downstream dataset that is not where its standard layout puts it (the message says which files)."""


class UnknownWordsWarning(UserWarning):
    """Label words the model cannot read: its training never used them, so their prompts embed near
    every other unknown word's and the classes they name are not told apart by meaning."""
