"""Key maps from released CLAP checkpoints to skclap's modules: pure functions over state dicts.

Three formats are read (:func:`detect_format`):

- ``msclap-2022`` — the reference code's CNN14 + BERT (``audio_encoder.base.conv_block1...``);
- ``msclap-2023`` — the reference code's HTS-AT + GPT-2 (``audio_encoder.base.htsat...``);
- ``laion`` — ``laion_clap``'s original ``.pt`` files (``audio_branch...``/``text_branch...``), mapped onto
  transformers' ``ClapModel``.

Every key of a file is accounted for: mapped onto a module, recognised as *derived* (buffers the
model recomputes: attention masks, relative-position indices, position ids), as the *front-end*
(STFT kernels and mel filters, which skclap computes and checks against the stored ones), as
*unused* (AudioSet tagging heads and training-only MLPs that no embedding passes through), or
reported as unknown. Both HTS-AT families share one map onto transformers' ``ClapAudioEncoder``
(the fused ``qkv`` projection is split into query, key and value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from .models.serialization import DERIVED

__all__ = ["Converted", "detect_format", "laion_to_transformers", "msclap_2022", "msclap_2023"]

_FRONTEND = re.compile(r"(spectrogram_extractor|logmel_extractor)\.")
_TAGGING_HEAD = re.compile(r"^(tscam_conv|head)\.")


@dataclass
class Converted:
    """The result of a key map: tensors under skclap's names and the keys set aside."""

    state: dict[str, torch.Tensor] = field(default_factory=dict)
    frontend: dict[str, torch.Tensor] = field(default_factory=dict)  # stored front-end tensors, to check
    unused: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that (Distributed)DataParallel adds to every key."""
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def detect_format(state: dict[str, torch.Tensor]) -> str | None:
    """``"msclap-2022"``, ``"msclap-2023"``, ``"laion"`` or None, from a state dict's keys."""
    keys = list(state)
    if any(k.startswith("audio_encoder.base.htsat.") for k in keys):
        return "msclap-2023"
    if any(k.startswith("audio_encoder.base.") for k in keys) and any(k.startswith("caption_encoder.") for k in keys):
        return "msclap-2022"
    if any(k.startswith("audio_branch.") for k in keys) and any(k.startswith("text_branch.") for k in keys):
        return "laion"
    return None


# ------------------------------------------------------------------------------------- HTS-AT
_HTSAT_RENAMES = [
    (re.compile(r"^bn0\."), "batch_norm."),
    (re.compile(r"\.norm1\."), ".layernorm_before."),
    (re.compile(r"\.norm2\."), ".layernorm_after."),
    (re.compile(r"\.attn\.proj\."), ".attention.output.dense."),
    (re.compile(r"\.attn\.relative_position_bias_table$"), ".attention.self.relative_position_bias_table"),
    (re.compile(r"\.mlp\.fc1\."), ".intermediate.dense."),
    (re.compile(r"\.mlp\.fc2\."), ".output.dense."),
]


def _htsat(key: str, value: torch.Tensor, dst: str, out: Converted, origin: str) -> None:
    """One key of an HTS-AT module (relative to it) onto transformers' ``ClapAudioEncoder``."""
    if _FRONTEND.match(key):
        out.frontend[key] = value
        return
    if _TAGGING_HEAD.match(key):
        out.unused.append(origin)
        return
    if DERIVED.search(key):
        return
    qkv = re.search(r"\.attn\.qkv\.(weight|bias)$", key)
    if qkv:
        q, k, v = value.chunk(3, dim=0)
        stem = key[: qkv.start()] + ".attention.self."
        for name, part in (("query", q), ("key", k), ("value", v)):
            out.state[f"{dst}{stem}{name}.{qkv.group(1)}"] = part.clone()
        return
    for pattern, new in _HTSAT_RENAMES:
        key = pattern.sub(new, key)
    out.state[dst + key] = value


# ------------------------------------------------------------------------------------- msclap
def msclap_2022(state: dict[str, torch.Tensor]) -> Converted:
    """The reference code's 2022 model (CNN14 + BERT) onto :class:`skclap.CLAPModel`."""
    prefixes = [
        ("audio_encoder.base.", "audio_encoder.backbone."),
        ("audio_encoder.projection.", "audio_encoder.projection."),
        ("caption_encoder.base.", "text_encoder.backbone.model."),
        ("caption_encoder.projection.", "text_encoder.projection."),
    ]
    out = Converted()
    for key, value in strip_module(state).items():
        if key == "logit_scale":
            out.state[key] = value
        elif key.startswith("audio_encoder.base.") and _FRONTEND.match(key[len("audio_encoder.base.") :]):
            out.frontend[key[len("audio_encoder.base.") :]] = value
        elif DERIVED.search(key):
            continue
        else:
            for old, new in prefixes:
                if key.startswith(old):
                    out.state[new + key[len(old) :]] = value
                    break
            else:
                out.unknown.append(key)
    return out


def msclap_2023(state: dict[str, torch.Tensor]) -> Converted:
    """The reference code's 2023 model (HTS-AT + GPT-2) onto :class:`skclap.CLAPModel`
    (``audio_encoder="htsat"``): the HTS-AT onto transformers' ``ClapAudioEncoder``, GPT-2 as is."""
    out = Converted()
    for key, value in strip_module(state).items():
        if key == "logit_scale":
            out.state[key] = value
        elif key.startswith("audio_encoder.base.htsat."):
            _htsat(key[len("audio_encoder.base.htsat.") :], value, "audio_encoder.backbone.model.audio_encoder.", out, key)
        elif key.startswith("audio_encoder.projection."):
            out.state[key] = value
        elif key.startswith("caption_encoder.base."):
            if not DERIVED.search(key):
                out.state["text_encoder.backbone.model." + key[len("caption_encoder.base.") :]] = value
        elif key.startswith("caption_encoder.projection."):
            out.state["text_encoder.projection." + key[len("caption_encoder.projection.") :]] = value
        else:
            out.unknown.append(key)
    return out


# --------------------------------------------------------------------------------------- LAION
def _sequential_projection(key: str, branch: str) -> str | None:
    """laion_clap's ``nn.Sequential(Linear, act, Linear)`` heads -> ``ClapProjectionLayer``."""
    m = re.match(rf"^{branch}_projection\.(0|2)\.(weight|bias)$", key)
    if m is None:
        return None
    return f"{branch}_projection.linear{1 if m.group(1) == '0' else 2}.{m.group(2)}"


def laion_to_transformers(state: dict[str, torch.Tensor]) -> Converted:
    """laion_clap's original state dict onto transformers' ``ClapModel`` (HTS-AT + RoBERTa)."""
    out = Converted()
    for key, value in strip_module(state).items():
        if key in ("logit_scale_a", "logit_scale_t"):
            out.state[key] = value
        elif key.startswith("audio_branch."):
            _htsat(key[len("audio_branch.") :], value, "audio_model.audio_encoder.", out, key)
        elif key.startswith("text_branch."):
            if not DERIVED.search(key):
                out.state["text_model." + key[len("text_branch.") :]] = value
        elif key.startswith(("audio_transform.", "text_transform.")):
            out.unused.append(key)  # the optional MLP loss's heads, used in training only
        else:
            new = _sequential_projection(key, "audio") or _sequential_projection(key, "text")
            if new is None:
                out.unknown.append(key)
            else:
                out.state[new] = value
    return out


def laion_config(state: dict[str, torch.Tensor]) -> dict:
    """transformers ``ClapConfig`` arguments read off a laion_clap state dict's shapes."""
    state = strip_module(state)

    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise KeyError(key)
        return state[key]

    embed = need("audio_branch.patch_embed.proj.weight").shape[0]
    depths, heads = [], []
    for i in range(16):
        blocks = {int(m.group(1)) for k in state if (m := re.match(rf"audio_branch\.layers\.{i}\.blocks\.(\d+)\.", k))}
        if not blocks:
            break
        depths.append(max(blocks) + 1)
        heads.append(need(f"audio_branch.layers.{i}.blocks.0.attn.relative_position_bias_table").shape[1])
    table = need("audio_branch.layers.0.blocks.0.attn.relative_position_bias_table").shape[0]
    window = (int(round(table**0.5)) + 1) // 2
    fused = any(k.startswith("audio_branch.patch_embed.fusion_model.") for k in state)
    proj = need("audio_projection.0.weight").shape[0]

    words = need("text_branch.embeddings.word_embeddings.weight")
    hidden = words.shape[1]
    layers = {int(m.group(1)) for k in state if (m := re.match(r"text_branch\.encoder\.layer\.(\d+)\.", k))}
    if not layers:
        raise KeyError("text_branch.encoder.layer.0 (a RoBERTa text tower)")
    audio_config = {
        "patch_embeds_hidden_size": embed,
        "depths": depths,
        "num_attention_heads": heads,
        "window_size": window,
        "hidden_size": embed * 2 ** (len(depths) - 1),
        "enable_fusion": fused,
        "fusion_type": "aff_2d" if fused else None,
        "projection_dim": proj,
        "hidden_dropout_prob": 0.0,
        "drop_path_rate": 0.1,
    }
    text_config = {
        "vocab_size": words.shape[0],
        "hidden_size": hidden,
        "num_hidden_layers": max(layers) + 1,
        "num_attention_heads": max(1, hidden // 64),  # RoBERTa's 64-wide heads (not stored in the weights)
        "intermediate_size": need("text_branch.encoder.layer.0.intermediate.dense.weight").shape[0],
        "max_position_embeddings": need("text_branch.embeddings.position_embeddings.weight").shape[0],
        "type_vocab_size": need("text_branch.embeddings.token_type_embeddings.weight").shape[0],
        "layer_norm_eps": 1e-5,
        "pad_token_id": 1,
        "projection_dim": proj,
    }
    return {"audio_config": audio_config, "text_config": text_config, "projection_dim": proj}
