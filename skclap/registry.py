"""One registry of models: architectures (random weights) and released weights, each named once.

A model is named by one of these forms (:func:`parse_spec`):

========================  ===========================================================================
``"msclap-2022"``         released weights, by registered name (:data:`PRETRAINED`)
``"laion/clap-htsat-fused"``  a LAION checkpoint in the transformers format, by hub id (registered)
``"skclap-instruments"``  a model shipped inside the package (:data:`BUNDLED`), loaded offline
``"preset:tiny"``         an architecture with random weights (:data:`skclap.PRESETS`); the name of a
                          release gives its architecture (``"preset:msclap-2022"``)
``"hf-hub:ORG/NAME"``     any transformers-format CLAP checkpoint on the hub
``"local-dir:PATH"``      a checkpoint directory (skclap's or transformers')
``PATH``                  a directory, or a released file (``.pth``/``.pt``), recognised by its keys
========================  ===========================================================================

A bare name is never guessed between the two kinds: released names load weights, and a bare preset
name (``"tiny"``) is an error that points at ``"preset:tiny"``. :func:`list_models` lists everything.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from .exceptions import UnknownModelError
from .models.clap import PRESETS, preset_description

__all__ = [
    "BUNDLED",
    "PRETRAINED",
    "Bundled",
    "ModelInfo",
    "Pretrained",
    "Spec",
    "bundled_path",
    "example_query",
    "list_models",
    "model_names",
    "parse_spec",
    "unknown_name_message",
]


@dataclass(frozen=True)
class Pretrained:
    """A released checkpoint: what it is and where its weights come from."""

    name: str
    format: str  # "msclap" (reference .pth), "laion" (laion_clap .pt), "hf-clap" (transformers ClapModel repo)
    architecture: str
    repo_id: str
    filename: str | None  # the file in repo_id; None: the whole repository (transformers format)
    tokenizer: str | None
    description: str
    preset: str | None = None  # skclap architecture of the weights (format "msclap")
    note: str = ""  # a known issue of the released weights, with where it was reported
    example: str = "dog barking in the rain"  # a query in what it was trained to hear (the search page offers it)

    @property
    def download(self) -> str:
        """The command that fetches the weights where the hub is reachable."""
        return f"hf download {self.repo_id}" + (f" {self.filename}" if self.filename else "")

    @property
    def url(self) -> str:
        if self.filename is None:
            return f"https://huggingface.co/{self.repo_id}"
        return f"https://huggingface.co/{self.repo_id}/blob/main/{self.filename}"


def _laion_file(name: str, filename: str, arch: str, what: str, example: str = "dog barking in the rain") -> Pretrained:
    return Pretrained(name, "laion", arch, "lukewys/laion_clap", filename, "roberta-base", what, example=example)


_MUSIC = "a slow piano melody with soft strings"


def _laion_hub(repo: str, arch: str, what: str, note: str = "", example: str = "dog barking in the rain") -> Pretrained:
    return Pretrained(repo, "hf-clap", arch, repo, None, None, what, note=note, example=example)


_HTSAT_TINY = "HTS-AT tiny + RoBERTa-base"
_HTSAT_BASE = "HTS-AT base + RoBERTa-base"

#: Released weights by name.
PRETRAINED: dict[str, Pretrained] = {
    p.name: p
    for p in [
        Pretrained(
            "msclap-2022",
            "msclap",
            "CNN14 + BERT-base",
            "microsoft/msclap",
            "CLAP_weights_2022.pth",
            "bert-base-uncased",
            "CLAP 2022 (Elizalde et al.), 128k pairs; ESC-50 zero-shot 82.6 %",
            preset="msclap-2022",
        ),
        Pretrained(
            "msclap-2023",
            "msclap",
            "HTS-AT + GPT-2",
            "microsoft/msclap",
            "CLAP_weights_2023.pth",
            "gpt2",
            "CLAP 2023 (Elizalde et al.), 4.6M pairs; the reference code's default version",
            preset="msclap-2023",
        ),
        _laion_file("laion-630k-best", "630k-best.pt", _HTSAT_TINY, "LAION-630k, unfused"),
        _laion_file("laion-630k-audioset-best", "630k-audioset-best.pt", _HTSAT_TINY, "LAION-630k + AudioSet, unfused"),
        _laion_file("laion-630k-fusion-best", "630k-fusion-best.pt", _HTSAT_TINY, "LAION-630k, feature fusion"),
        _laion_file(
            "laion-630k-audioset-fusion-best",
            "630k-audioset-fusion-best.pt",
            _HTSAT_TINY,
            "LAION-630k + AudioSet, feature fusion",
        ),
        _laion_file(
            "laion-music-speech-audioset",
            "music_speech_audioset_epoch_15_esc_89.98.pt",
            _HTSAT_BASE,
            "music + speech + AudioSet (the usual CLAP-score model of text-to-audio papers)",
        ),
        _laion_file("laion-music-audioset", "music_audioset_epoch_15_esc_90.14.pt", _HTSAT_BASE, "music + AudioSet"),
        _laion_file("laion-music-speech", "music_speech_epoch_15_esc_89.25.pt", _HTSAT_BASE, "music + speech", _MUSIC),
        _laion_hub("laion/clap-htsat-unfused", _HTSAT_TINY, "LAION-630k + AudioSet, unfused (transformers format)"),
        _laion_hub("laion/clap-htsat-fused", _HTSAT_TINY, "LAION-630k + AudioSet, feature fusion (transformers format)"),
        _laion_hub("laion/larger_clap_general", _HTSAT_BASE, "general audio (transformers format)"),
        _laion_hub(
            "laion/larger_clap_music",
            _HTSAT_BASE,
            "music (transformers format)",
            example=_MUSIC,
            note=(
                "reported upstream to have a collapsed text tower: near-constant text embeddings "
                "(text-text cosine 0.9993; embeddings-benchmark/mteb issue 5069), so zero-shot scores are near "
                "constant; its audio embeddings may still serve a probe. skclap.check_model(model) measures it"
            ),
        ),
        _laion_hub("laion/larger_clap_music_and_speech", _HTSAT_BASE, "music and speech (transformers format)", example=_MUSIC),
    ]
}


@dataclass(frozen=True)
class Bundled:
    """A model shipped inside the package (``skclap/bundled/NAME/``): a skclap checkpoint directory
    whose weights are stored in float16 (they load as float32)."""

    name: str
    architecture: str
    description: str
    knows: str  # what it was trained to hear and name
    does_not_know: str
    sha256: str  # of its model.safetensors, as docs/bundled.md quotes it
    recipe: str  # the command that made it
    example: str = ""  # a query in words it knows (the search page offers it)


#: Models inside the package, by name.
BUNDLED: dict[str, Bundled] = {
    b.name: b
    for b in [
        Bundled(
            "skclap-instruments",
            "CNN14 16-256 ch + word embeddings",
            "a small CLAP trained from scratch on captioned playing of 17 General MIDI instruments from two soundfonts",
            "piano, organ, guitar, harp, violin, cello, trumpet, trombone, saxophone, clarinet, flute, marimba, synth, "
            "kick drum, snare drum, hi hat, crash cymbal: notes, melodies and chords over each compass, hits and patterns; "
            "low/high (the extreme registers), soft/loud, short/long notes (16 kHz, 1 s windows, quiet ones left out)",
            "any other sound (speech, animals, environments, other instruments) nor any word its captions never used; "
            "a piano, cello or clarinet unlike its two training soundfonts' is often misnamed",
            "212319ae5c056116244dc7eb56cdb30573e68685287eb3f49f48be283a6512bb",
            "python -m recipes.instruments --seeds 0,1,2 --ship skclap/bundled/skclap-instruments",
            example="a soft low cello note",
        )
    ]
}


def bundled_path(name: str) -> Path:
    """The directory of a bundled model inside the installed package."""
    if name not in BUNDLED:
        raise UnknownModelError(f"no bundled model {name!r}; bundled: {sorted(BUNDLED)}")
    return Path(str(resources.files(__package__).joinpath("bundled").joinpath(name)))


def example_query(model: str) -> str:
    """A search query in what ``model`` was trained to hear, from its entry in the registry; for a
    model registered nowhere (a directory, a preset), an invitation to describe a sound."""
    if model in BUNDLED and BUNDLED[model].example:
        return BUNDLED[model].example
    if model in PRETRAINED:
        return PRETRAINED[model].example
    return "describe a sound"


def model_names() -> list[str]:
    """Every name a model loads by: bundled models, released weights, then ``preset:NAME``."""
    return [*BUNDLED, *PRETRAINED, *(f"preset:{name}" for name in PRESETS)]


def _closeness(query: str, name: str) -> float:
    bare = name.removeprefix("preset:")
    return max(difflib.SequenceMatcher(None, query.lower(), n.lower()).ratio() for n in {name, bare})


def unknown_name_message(name: str) -> str:
    """What to say of a model name that is registered nowhere: the closest names ("did you mean"),
    then every model, closest first."""
    query = name.removeprefix("preset:")
    ranked = sorted(model_names(), key=lambda n: -_closeness(query, n))
    close = [n for n in ranked if _closeness(query, n) >= 0.6][:3]
    guess = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return (
        f"no model named {name!r}, and no directory or file of that name: {guess}Every model, closest first: "
        f"{', '.join(ranked)}; or 'hf-hub:ID' for any transformers CLAP checkpoint on the hub (`skclap info` describes each)"
    )


class Spec(NamedTuple):
    """A parsed model name: ``kind`` is "bundled", "preset", "pretrained", "hf-hub" or "path"."""

    kind: str
    value: str


def parse_spec(spec: str | os.PathLike) -> Spec:
    """Classify a model name without loading anything (see the module docstring); an
    :class:`~skclap.UnknownModelError` for an architecture that does not exist or a bare preset name."""
    text = os.fspath(spec)
    if text.startswith("preset:"):
        name = text[len("preset:") :]
        if name in PRESETS:
            return Spec("preset", name)
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        guess = f"did you mean 'preset:{close[0]}'? " if close else ""
        raise UnknownModelError(
            f"unknown architecture {name!r} in {text!r}: {guess}choose from {', '.join(f'preset:{n}' for n in PRESETS)}"
        )
    if text.startswith("hf-hub:"):
        return Spec("hf-hub", text[len("hf-hub:") :])
    if text.startswith("local-dir:"):
        return Spec("path", text[len("local-dir:") :])
    if text in BUNDLED:
        return Spec("bundled", text)
    if text in PRETRAINED:
        return Spec("pretrained", text)
    if text in PRESETS and not os.path.exists(text):
        raise UnknownModelError(
            f"{text!r} is an architecture, not released weights: pass 'preset:{text}' for random weights "
            f"(released weights: {', '.join(n for n in PRETRAINED if not n.startswith('laion/'))})"
        )
    return Spec("path", text)


class ModelInfo(NamedTuple):
    """One row of :func:`list_models`."""

    name: str
    kind: str  # "pretrained" or "preset"
    architecture: str
    source: str  # where the weights come from (a URL), or "random init"
    description: str
    note: str = ""  # a known issue of the released weights


def list_models() -> list[ModelInfo]:
    """Every registered model: bundled models, released weights by name, then architectures as ``preset:NAME``."""
    rows = [
        ModelInfo(
            b.name,
            "bundled",
            b.architecture,
            "inside the package",
            f"{b.description}. Knows: {b.knows}.",
            f"does not know {b.does_not_know}",
        )
        for b in BUNDLED.values()
    ]
    rows += [ModelInfo(p.name, "pretrained", p.architecture, p.url, p.description, p.note) for p in PRETRAINED.values()]
    for name in PRESETS:
        cfg = PRESETS[name]
        tower = cfg.audio["name"].upper()
        arch = f"{tower} + {cfg.text.transformer.get('model_type', '?')}, {cfg.sample_rate} Hz, {cfg.frontend.clip_seconds:g} s windows"
        rows.append(ModelInfo(f"preset:{name}", "preset", arch, "random init", f"proj {cfg.proj_dim}-d; {preset_description(name)}"))
    return rows
