"""LAION CLAP through transformers' ``ClapModel``, behind the interface of :class:`CLAPModel`.

The estimators and the inference core see the same surface as for the paper's model: a config with
``sample_rate`` (48 kHz), ``window_samples`` (10 s), ``proj_dim``; ``encode_audio`` on fixed windows,
``encode_text`` on strings, ``logit_scale``, ``audio_encoder`` (for the embedding cache's fingerprint).
skclap's own loading, resampling, windowing (whole repeats then zeros, as the references pad; consecutive
windows and mean pooling instead of a random crop) and caching are used unchanged; only the per-window features are
``ClapFeatureExtractor``'s (:func:`window_log_mel`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import quantize_int16
from ..exceptions import CheckpointError
from ..hub import explain_hub_error, from_cache_or_hub, hub_offline
from ..loss import similarity_logits
from ..registry import PRETRAINED

__all__ = ["LAION_CHECKPOINTS", "LaionCLAP", "LaionConfig", "fusion_input", "is_laion_checkpoint", "window_log_mel"]

#: Hugging Face hub ids of LAION CLAP checkpoints in the transformers format.
LAION_CHECKPOINTS = tuple(name for name, p in PRETRAINED.items() if p.format == "hf-clap")


@dataclass
class LaionConfig:
    sample_rate: int
    clip_seconds: float
    proj_dim: int
    text_max_length: int = 77

    @property
    def window_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


def is_laion_checkpoint(name_or_path: str | os.PathLike) -> bool:
    """A registered LAION hub id, or a directory whose config says ``"model_type": "clap"``."""
    name = os.fspath(name_or_path)
    if name in LAION_CHECKPOINTS:
        return True
    cfg = Path(name).expanduser() / "config.json"
    if cfg.is_file():
        try:
            meta = json.loads(cfg.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return False
        return isinstance(meta, dict) and meta.get("model_type") == "clap"
    return False


#: Frames per FFT call in :func:`window_log_mel`.
FRAME_BLOCK = 64


def window_log_mel(extractor: Any, window: np.ndarray, fused: bool) -> np.ndarray:
    """``ClapFeatureExtractor``'s input for one window of exactly its ``max_length_s``: ``(1, frames,
    mels)`` unfused (its ``"rand_trunc"``), ``(4, frames, mels)`` fused (``"fusion"``: the one mel
    four times, since no window is longer).

    The same numbers as the extractor's, bit for bit: its window, filter banks and dB conversion,
    the spectrum stored as complex64 as its ``spectrogram`` stores it. Frames are transformed
    :data:`FRAME_BLOCK` at a time, where the extractor loops over them one by one in Python: a
    block's temporaries stay in the CPU's cache, where a whole window's (megabytes each) would
    not. Calling the extractor itself also costs a draw from numpy's global random state on fused
    models (it marks an item as longer at random), which this does not.
    """
    if window.ndim != 1 or window.shape[0] != extractor.nb_max_samples:
        raise ValueError(f"a window of {extractor.nb_max_samples} samples is expected; got shape {window.shape}")
    log_mel = _log_mel(extractor, window, extractor.mel_filters if fused else extractor.mel_filters_slaney)
    return np.stack([log_mel] * 4) if fused else log_mel[None]


def _log_mel(extractor: Any, wave: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """The extractor's log-mel of a waveform of any length, ``(frames, mels)`` float32."""
    from transformers.audio_utils import power_to_db, window_function

    n, hop = int(extractor.fft_window_size), int(extractor.hop_length)
    wave = np.pad(wave.astype(np.float64), n // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(wave, n)[::hop]
    hann = window_function(n, "hann").astype(np.float64)
    power = np.empty((len(frames), n // 2 + 1))
    block = np.empty((FRAME_BLOCK, n))
    for start in range(0, len(frames), FRAME_BLOCK):
        rows = frames[start : start + FRAME_BLOCK]
        windowed = np.multiply(rows, hann, out=block[: len(rows)])
        magnitude = np.abs(np.fft.rfft(windowed, axis=-1).astype(np.complex64), dtype=np.float64, out=power[start : start + len(rows)])
        np.square(magnitude, out=magnitude)
    mel = np.maximum(1e-10, np.dot(filters.T, power.T))
    return np.asarray(power_to_db(mel, 1.0, 1e-10, None), dtype=np.float32).T


def fusion_input(extractor: Any, wave: np.ndarray, choose: Callable[[list[np.ndarray]], Sequence[int]]) -> tuple[np.ndarray, bool]:
    """A fused model's input for a clip longer than its window, as laion_clap's ``get_audio_features``
    makes it (``training/data.py``, ``data_truncating="fusion"``): the clip's whole mel, shrunk to a
    window's frames (bilinear, no antialiasing: torchvision's ``Resize`` on a tensor before 0.17), and
    three windows of it, one from each third of its start frames, at the starts ``choose(ranges)``
    gives (laion_clap draws each with ``np.random.choice``). Returns ``(4, frames, mels)`` and
    whether the clip counts as longer (False in laion_clap's corner case of a clip less than a hop
    over the window: its whole mel four times)."""
    mel = _log_mel(extractor, np.asarray(wave), extractor.mel_filters)
    chunk = int(extractor.nb_max_samples) // int(extractor.hop_length) + 1
    total = mel.shape[0]
    if chunk == total:
        return np.stack([mel] * 4), False
    ranges = np.array_split(list(range(0, total - chunk + 1)), 3)
    for k in (1, 2):
        if len(ranges[k]) == 0:  # a clip too short for three parts: its first start
            ranges[k] = np.array([0])
    front, middle, back = (int(i) for i in choose(ranges))
    shrink = F.interpolate(torch.from_numpy(mel)[None, None], size=[chunk, mel.shape[1]], mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()
    return np.stack([shrink, mel[front : front + chunk], mel[middle : middle + chunk], mel[back : back + chunk]]), True


#: The preprocessing file beside a saved model: what laion_clap does that transformers does not.
PREPROCESSING_FILE = "skclap_preprocessing.json"


def _twin(module: nn.Module, **children: nn.Module) -> nn.Module:
    """A shallow copy of ``module`` (its parameters shared) whose named children are replaced."""
    twin = copy.copy(module)
    twin._modules = {**module._modules, **children}
    return twin


class LaionCLAP(nn.Module):
    """A ``transformers.ClapModel`` with its feature extractor and tokenizer.

    Preprocessing follows the reference of the format the weights came in. Both pad a clip shorter
    than 10 s with whole repeats, then zeros (:attr:`window_padding`). laion_clap's ``.pt`` files
    (``quantize_int16=True``, ``text_max_length=77``): the audio is rounded through 16-bit PCM and
    texts are cut at 77 tokens, as ``CLAP_Module`` does. transformers' repos (``ClapProcessor``):
    no rounding, texts up to the tokenizer's ``model_max_length``.
    """

    window_padding = "repeatpad"
    quiet_window_db = None  # every window counts, as in laion_clap

    def __init__(
        self,
        model: Any,
        feature_extractor: Any,
        tokenizer: Any,
        source: str | None = None,
        *,
        quantize_int16: bool = False,
        text_max_length: int | None = None,
    ) -> None:
        super().__init__()
        self.clap = model.eval()
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.source = source
        self.quantize_int16 = bool(quantize_int16)
        positions = int(model.config.text_config.max_position_embeddings) - 2  # RoBERTa numbers positions from pad_id + 1
        limit = text_max_length if text_max_length is not None else getattr(tokenizer, "model_max_length", positions)
        limit = min(int(limit), positions)
        # The audio tower as one module: the embedding cache fingerprints it.
        self.audio_encoder = nn.ModuleList([model.audio_model, model.audio_projection])
        self.config = LaionConfig(
            sample_rate=int(feature_extractor.sampling_rate),
            clip_seconds=float(feature_extractor.max_length_s),
            proj_dim=int(model.config.projection_dim),
            text_max_length=limit,
        )

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None) -> LaionCLAP:
        """Load a checkpoint directory, or a hub id from the local cache (or the hub when reachable)."""
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        name = os.fspath(name_or_path)

        def load(local_only: bool) -> tuple[Any, Any, Any]:
            return (
                ClapModel.from_pretrained(name, local_files_only=local_only),
                ClapFeatureExtractor.from_pretrained(name, local_files_only=local_only),
                AutoTokenizer.from_pretrained(name, local_files_only=local_only),
            )

        local = Path(name).expanduser().is_dir()
        try:
            model, fe, tok = from_cache_or_hub(load, local=local)
        except (OSError, ValueError) as last:
            if local:
                what = f"could not be loaded from its directory ({explain_hub_error(last)})"
            elif hub_offline():
                what = "is not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"
            else:
                what = f"could not be downloaded: {explain_hub_error(last)}"
            raise CheckpointError(
                f"LAION CLAP checkpoint {name!r} {what}. Where the hub is reachable, run `hf download {name}`; "
                f"or pass a directory that holds config.json, model.safetensors (or pytorch_model.bin), "
                f"preprocessor_config.json and the tokenizer files (vocab.json, merges.txt, tokenizer_config.json)."
            ) from last
        extra: dict[str, Any] = {}
        settings = Path(name).expanduser() / PREPROCESSING_FILE
        if settings.is_file():
            extra = {k: v for k, v in json.loads(settings.read_text()).items() if k in ("quantize_int16", "text_max_length")}
        return cls(model, fe, tok, source=name, **extra).to(device or "cpu")

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the model, feature extractor and tokenizer in the transformers format."""
        from ..models.tokenizer import save_tokenizer

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.clap.save_pretrained(out)
        self.feature_extractor.save_pretrained(out)
        save_tokenizer(self.tokenizer, out)
        if self.quantize_int16:  # laion_clap's preprocessing travels with the weights
            settings = {"quantize_int16": True, "text_max_length": self.config.text_max_length}
            (out / PREPROCESSING_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        return out

    # ---------------------------------------------------------------- CLAPModel's surface
    @property
    def audio_backbone(self) -> nn.Module:
        """The HTS-AT before its projection (what ``freeze_audio`` freezes)."""
        return self.clap.audio_model

    @property
    def text_backbone(self) -> nn.Module:
        """The RoBERTa before its projection (what ``freeze_text`` freezes)."""
        return self.clap.text_model

    def as_laion_clap_module(self) -> LaionCLAP:
        """This model, the same weights, preprocessing as laion_clap's ``CLAP_Module`` does on data
        handed to it as tensors (what every CLAP-score and FAD tool calls): no 16-bit rounding of the
        audio (each tool rounds before, or not at all), texts cut at 77 tokens (its tokenizer)."""
        if not self.quantize_int16 and self.config.text_max_length == 77:
            return self
        twin = copy.copy(self)  # shares the modules: no weights are copied
        twin.quantize_int16 = False
        twin.config = dataclasses.replace(self.config, text_max_length=77)
        return twin

    def audio_settings(self) -> dict[str, Any]:
        """What besides the audio tower's weights changes an audio embedding (for cache keys)."""
        fe = self.feature_extractor.to_dict()
        fe.pop("mel_filters", None)
        fe.pop("mel_filters_slaney", None)
        return {
            "family": "laion",
            "fusion": bool(self.clap.config.audio_config.enable_fusion),
            "padding": self.window_padding,
            "quantize_int16": self.quantize_int16,
            "features": fe,
            "window_samples": self.config.window_samples,
        }

    @property
    def device(self) -> torch.device:
        return self.clap.logit_scale_a.device

    @property
    def logit_scale(self) -> torch.Tensor:
        """The audio-side temperature (``logits_per_audio`` in transformers)."""
        return self.clap.logit_scale_a

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.config.text_max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}

    def features(self, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        """Log-mel input of ``ClapModel`` for fixed windows ``(batch, window_samples)``."""
        arrays = [np.asarray(w, dtype=np.float32) for w in wave.detach().float().cpu().numpy()]
        if self.quantize_int16:
            arrays = [quantize_int16(a) for a in arrays]
        fused = self.clap.config.audio_config.enable_fusion
        mels = torch.from_numpy(np.stack([window_log_mel(self.feature_extractor, a, fused) for a in arrays]))
        out = {"input_features": mels.to(self.device, self.logit_scale.dtype)}
        if fused:
            # No window is longer than 10 s, so every one takes the global branch, as laion_clap's
            # own inference does for clips up to 10 s. (The feature extractor would mark a random
            # item of each such batch as longer, making embeddings depend on random state and batch.)
            out["is_longer"] = torch.zeros(len(arrays), 1, dtype=torch.bool, device=self.device)
        return out

    def graph_constants(self) -> dict[str, torch.Tensor]:
        """The front-end's window and mel filters as float64 tensors, for :meth:`encode_audio_graph`
        (a graph holds them as its own constants)."""
        from transformers.audio_utils import window_function

        fe = self.feature_extractor
        filters = fe.mel_filters if self.clap.config.audio_config.enable_fusion else fe.mel_filters_slaney
        return {
            "hann": torch.from_numpy(np.asarray(window_function(int(fe.fft_window_size), "hann"), dtype=np.float64)),
            "filters": torch.from_numpy(np.asarray(filters, dtype=np.float64)),
        }

    def log_mel_graph(self, wave: torch.Tensor, hann: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
        """:meth:`features`' input features computed in torch alone (``torch.stft``), for a graph
        export: in float64, as :func:`window_log_mel` computes them in numpy (in float32 a loud tone
        would move by hundredths of a dB). The 16-bit rounding of ``.pt`` models included."""
        fe = self.feature_extractor
        if self.quantize_int16:  # laion_clap's float32_to_int16 truncates toward zero
            wave = torch.trunc(torch.clamp(wave, -1.0, 1.0) * 32767.0) / 32767.0
        n, hop = int(fe.fft_window_size), int(fe.hop_length)
        spec = torch.stft(
            wave.double(), n_fft=n, hop_length=hop, win_length=n, window=hann, center=True, pad_mode="reflect", return_complex=True
        )
        power = spec.real.square() + spec.imag.square()
        log_mel = (10.0 * torch.log10(torch.clamp(power.transpose(1, 2) @ filters, min=1e-10))).float()[:, None]
        return log_mel.expand(-1, 4, -1, -1) if self.clap.config.audio_config.enable_fusion else log_mel

    def encode_audio_graph(self, wave: torch.Tensor, hann: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
        """:meth:`encode_audio` (projected, not normalised) with :meth:`log_mel_graph`'s front-end
        (its constants from :meth:`graph_constants`): what an ONNX export traces."""
        mel = self.log_mel_graph(wave, hann, filters)
        if not self.clap.config.audio_config.enable_fusion:
            return self.clap.audio_projection(self.clap.audio_model(input_features=mel).pooler_output)
        # No window is longer than 10 s: every one takes the global branch. transformers picks the
        # longer items with torch.where, a data-dependent branch a graph cannot hold; a twin of the
        # audio model (the same weights, nothing of the model changed) hands its patch embedding none.
        audio = self.clap.audio_model
        patch = audio.audio_encoder.patch_embed
        global_only = copy.copy(patch)
        global_only.forward = lambda hidden_states, is_longer_idx=None: type(patch).forward(patch, hidden_states, [])
        twin = _twin(audio, audio_encoder=_twin(audio.audio_encoder, patch_embed=global_only))
        longer = torch.zeros(wave.shape[0], 1, dtype=torch.bool, device=wave.device)
        out = twin(input_features=mel, is_longer=longer)
        return self.clap.audio_projection(out.pooler_output)

    def encode_audio(self, wave: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        if wave.ndim != 2:
            raise ValueError(f"encode_audio takes (batch, samples); got shape {tuple(wave.shape)}")
        out = self.clap.audio_model(**self.features(wave))
        emb = self.clap.audio_projection(out.pooler_output)
        return F.normalize(emb, dim=-1) if normalize else emb

    def encode_fusion(self, mel_fusion: torch.Tensor, longer: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """A fused model's projected embeddings of :func:`fusion_input` features ``(batch, 4, frames,
        mels)``, ``longer`` ``(batch,)`` saying which are clips longer than the window."""
        if not self.clap.config.audio_config.enable_fusion:
            raise ValueError(f"{self.source or 'this model'} has no feature fusion: its clips are cut into windows")
        feats = mel_fusion.to(self.device, self.logit_scale.dtype)
        out = self.clap.audio_model(input_features=feats, is_longer=longer.reshape(-1, 1).to(self.device))
        emb = self.clap.audio_projection(out.pooler_output)
        return F.normalize(emb, dim=-1) if normalize else emb

    def encode_text(
        self, text: list[str] | dict[str, torch.Tensor], normalize: bool = False, inputs_embeds: torch.Tensor | None = None
    ) -> torch.Tensor:
        tokens = text if isinstance(text, dict) else self.tokenize(text)
        if inputs_embeds is not None:
            # RoBERTa numbers the positions of embeddings as it numbers non-pad tokens (right padding)
            tokens = {k: v for k, v in tokens.items() if k != "input_ids"}
            out = self.clap.text_model(**tokens, inputs_embeds=inputs_embeds)
        else:
            out = self.clap.text_model(**tokens)
        emb = self.clap.text_projection(out.pooler_output)
        return F.normalize(emb, dim=-1) if normalize else emb

    def text_input_embeddings(self) -> nn.Embedding:
        """RoBERTa's word-embedding table (what ``inputs_embeds`` of :meth:`encode_text` replaces)."""
        return self.clap.text_model.get_input_embeddings()

    def similarity(self, audio_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """``logit_scale * cos(audio_i, text_j)``, shape ``(n_audio, n_text)``."""
        return similarity_logits(audio_embeds, text_embeds, self.logit_scale.exp())

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.clap.parameters())
        return f"LaionCLAP(sample_rate={self.config.sample_rate}, proj_dim={self.config.proj_dim}, params={n / 1e6:.1f}M, source={self.source!r})"
