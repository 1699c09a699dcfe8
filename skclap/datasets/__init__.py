"""Data sets: a synthetic captioned corpus made offline."""

from .synthetic import FAMILIES, SyntheticCorpus, attribute_words, class_prompts, make_corpus, pitched_labels, render

__all__ = ["FAMILIES", "SyntheticCorpus", "attribute_words", "class_prompts", "make_corpus", "pitched_labels", "render"]
