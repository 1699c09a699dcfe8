"""Data sets: a synthetic captioned corpus made offline, and loaders for downstream datasets'
standard local layouts."""

from .downstream import LOADERS, DatasetNotFoundError, LabelledAudio, load_downstream
from .synthetic import FAMILIES, SyntheticCorpus, attribute_words, class_prompts, make_corpus, pitched_labels, render

__all__ = [
    "FAMILIES",
    "LOADERS",
    "DatasetNotFoundError",
    "LabelledAudio",
    "SyntheticCorpus",
    "attribute_words",
    "class_prompts",
    "load_downstream",
    "make_corpus",
    "pitched_labels",
    "render",
]
