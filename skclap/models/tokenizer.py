"""Tokenizers: the built-in basic WordPiece vocabulary and loading by directory or hub id."""

from __future__ import annotations

import os
import string
from functools import lru_cache
from pathlib import Path

from ..hub import explain_hub_error, from_cache_or_hub, hub_offline

__all__ = ["BASIC", "basic_tokenizer", "basic_vocab", "load_tokenizer", "tokenizer_files"]

#: Name of the built-in tokenizer (small presets use it; it needs no files).
BASIC = "skclap-basic"

_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = """
a an the this that these is are was be it its of in on at to from with by and or as for into over under
through while then than very quite rather slightly more less most least not no one two three many few
sound sounds noise noises audio recording clip tone tones note notes beep beeps hum buzz buzzing whistle
sine square saw sawtooth triangle pure harmonic harmonics chord pitch pitched frequency high low mid
medium deep shrill bright dark soft loud quiet faint strong gentle harsh smooth rough steady constant
rising falling sweep sweeping chirp chirps glide up down fast slow quick rapid short long brief
sustained repeated repeating pulse pulses pulsing click clicks clicking tick ticking knock knocking
drum drums beat beats rhythm tempo burst bursts hit hits strike tap tapping bell bells ring ringing
chime chimes decaying decay fading fade siren sirens alarm wailing wobble tremolo vibrato warble
white pink brown noisy hiss hissing static rain wind water engine motor speech voice vowel vowels
talking speaking humming singing formant formants dog dogs bark barking cat meow bird birds chirping
car horn door train clock glass breaking music guitar piano violin flute instrument playing played
someone something background foreground followed again each every several pattern patterns sequence
heard hear hearing you can there here like similar kind type made producing produced
warbling wavering throbbing chiming ticking hollow buzzy upward downward rumbling rumble leisurely
powerful talking pulsed sweeps bursts tonal atonal metallic wooden airy
organ church grand acoustic harp fiddle cello trumpet trombone saxophone sax clarinet marimba synth
synthesizer kick snare hi hat hihat crash cymbal staccato held forceful single played bass
""".split()


def basic_vocab() -> list[str]:
    """A small lowercase WordPiece vocabulary: special tokens, characters, ``##`` characters, words.

    Every lowercase ASCII text tokenizes without ``[UNK]`` (characters back up unknown words).
    """
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = _SPECIALS + chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    seen = set(vocab)
    for w in _WORDS:
        for token in (w, "##" + w):
            if token not in seen:
                seen.add(token)
                vocab.append(token)
    return vocab


@lru_cache(maxsize=1)
def _basic_tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab={t: i for i, t in enumerate(basic_vocab())}, do_lower_case=True)


def basic_tokenizer():
    """The built-in tokenizer (a BERT WordPiece tokenizer over :func:`basic_vocab`)."""
    return _basic_tokenizer()


def save_tokenizer(tokenizer, directory: str | os.PathLike) -> None:
    """Write ``tokenizer``'s files to ``directory`` as the tokenizer loads, free of call state: a fast
    tokenizer keeps the padding and truncation of its last call on its backend and would save them
    into ``tokenizer.json``. Clearing them changes no result, as every call sets its own."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_padding()
        backend.no_truncation()
    tokenizer.save_pretrained(directory)


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else that does not exist is a missing path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def load_tokenizer(name_or_path: str | os.PathLike):
    """Load a tokenizer: :data:`BASIC`, a local directory, or a Hugging Face hub id.

    A hub id is looked up in the local Hugging Face cache first; when it is not there and the hub
    cannot be reached, the error says which files to place where.
    """
    from transformers import AutoTokenizer

    name = os.fspath(name_or_path)
    if name == BASIC:
        return basic_tokenizer()
    path = Path(name).expanduser()
    if path.is_dir():
        try:
            return AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as err:
            raise OSError(f"no usable tokenizer files in directory {name!r}: {err}") from None
    if _looks_like_path(name):
        raise OSError(f"tokenizer directory not found: {name!r}")
    try:
        return from_cache_or_hub(lambda local_only: AutoTokenizer.from_pretrained(name, local_files_only=local_only))
    except (OSError, ValueError) as err:
        cause = "HF_HUB_OFFLINE is set" if hub_offline() else explain_hub_error(err)
        files = " ".join(tokenizer_files(name))
        raise OSError(
            f"tokenizer {name!r} is not in the local Hugging Face cache and could not be downloaded ({cause}). "
            f"Either download it where the hub is reachable (hf download {name} {files}), or save it to a "
            f"directory (AutoTokenizer.from_pretrained({name!r}).save_pretrained(DIR)) and pass tokenizer=DIR."
        ) from err


def tokenizer_files(name: str) -> list[str]:
    """The files a tokenizer is made of: WordPiece (BERT) keeps ``vocab.txt``; byte-level BPE
    (GPT-2, RoBERTa) ``vocab.json`` and ``merges.txt``."""
    bpe = any(k in name.lower() for k in ("gpt", "roberta", "bart", "clap"))
    return ["vocab.json", "merges.txt", "tokenizer_config.json"] if bpe else ["vocab.txt", "tokenizer_config.json"]
