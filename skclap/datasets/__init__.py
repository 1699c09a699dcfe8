"""Data sets made offline — real sampled instruments rendered from a General MIDI soundfont (with the
``instruments`` extra: ``skclap install-extra instruments``): single notes of two registers
(:func:`make_instrument_corpus`), playing as people play for training (:func:`make_performance_corpus`)
and, drawn apart from both, the user-played test set (:func:`make_played_set`); synthetic sounds
(the unit tests' fast fixture) — loaders for downstream datasets' standard local layouts, and readers for the captioning sets
that retrieval is reported on (AudioCaps, Clotho) in their released layouts."""

from ..exceptions import DatasetNotFoundError
from .captioned import AUDIOCAPS_NAMES, CaptionedAudio, LeftOutClip, load_audiocaps, load_clotho
from .corpus import CaptionedCorpus, Clip
from .downstream import LOADERS, LabelledAudio, load_downstream
from .instruments import INSTRUMENTS, InstrumentCorpus, attribute_classes, instrument_prompts, make_instrument_corpus
from .performances import PerformanceCorpus, make_performance_corpus
from .played import PlayedSet, condition_table, make_played_set
from .synthetic import FAMILIES, SyntheticCorpus, attribute_words, class_prompts, make_corpus, pitched_labels, render

__all__ = [
    "AUDIOCAPS_NAMES",
    "CaptionedAudio",
    "LeftOutClip",
    "load_audiocaps",
    "load_clotho",
    "FAMILIES",
    "INSTRUMENTS",
    "CaptionedCorpus",
    "Clip",
    "InstrumentCorpus",
    "PerformanceCorpus",
    "PlayedSet",
    "attribute_classes",
    "instrument_prompts",
    "make_instrument_corpus",
    "make_performance_corpus",
    "make_played_set",
    "condition_table",
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
