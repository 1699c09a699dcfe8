"""Data sets: a synthetic captioned corpus made offline."""

from .synthetic import FAMILIES, SyntheticCorpus, make_corpus, render

__all__ = ["FAMILIES", "SyntheticCorpus", "make_corpus", "render"]
