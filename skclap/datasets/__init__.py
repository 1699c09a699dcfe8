"""Data sets made offline — real sampled instruments rendered from a General MIDI soundfont (with the
``instruments`` extra: ``pip install 'skclap[instruments]'``) and synthetic sounds (the unit tests'
fast fixture) — and loaders for downstream datasets' standard local layouts."""

from .corpus import CaptionedCorpus, Clip
from .downstream import LOADERS, DatasetNotFoundError, LabelledAudio, load_downstream
from .instruments import INSTRUMENTS, InstrumentCorpus, attribute_classes, instrument_prompts, make_instrument_corpus
from .synthetic import FAMILIES, SyntheticCorpus, attribute_words, class_prompts, make_corpus, pitched_labels, render

__all__ = [
    "FAMILIES",
    "INSTRUMENTS",
    "CaptionedCorpus",
    "Clip",
    "InstrumentCorpus",
    "attribute_classes",
    "instrument_prompts",
    "make_instrument_corpus",
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
