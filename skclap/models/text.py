"""Text encoder: a Hugging Face transformer built from its config, pooled to one vector per text."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

__all__ = ["TextBackbone", "build_text_backbone"]

POOLINGS = ("cls", "mean", "last")


def build_text_backbone(config: dict[str, Any]) -> nn.Module:
    """Instantiate (randomly initialised) the transformer described by a Hugging Face config dict."""
    cfg = dict(config)
    model_type = cfg.pop("model_type", None)
    if model_type is None:
        raise ValueError("the text config needs a 'model_type' (e.g. 'bert')")
    for key in ("transformers_version", "architectures", "_name_or_path"):
        cfg.pop(key, None)
    hf_config = AutoConfig.for_model(model_type, **cfg)
    return AutoModel.from_config(hf_config)


class TextBackbone(nn.Module):
    """Token ids -> one vector per text.

    Poolings: ``"cls"``, the first token (BERT's [CLS]); ``"mean"``, the masked mean of the tokens;
    ``"last"``, msclap 2023's GPT-2 rule, kept exactly for parity: the hidden state at position
    ``(number of ids != 0) - 1``. Its pad token ``!`` has id 0 in GPT-2's vocabulary, so with right
    padding this is the last real token (the appended ``<|endoftext|>``); a ``!`` inside the text also
    has id 0 and moves the position back by one, as it does in the reference code.
    """

    def __init__(self, config: dict[str, Any], pooling: str = "cls") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"text pooling must be one of {POOLINGS}; got {pooling!r}")
        self.pooling = pooling
        self.model: Any = build_text_backbone(config)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, inputs_embeds: torch.Tensor | None = None, **extra: torch.Tensor
    ) -> torch.Tensor:
        """``inputs_embeds`` (batch, tokens, hidden), when given, replaces the word embeddings of
        ``input_ids`` (prompt learning); the ids still decide the pooled position."""
        if inputs_embeds is None:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)[0]
        else:
            hidden = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **extra)[0]
        if self.pooling == "cls":
            return hidden[:, 0, :]
        if self.pooling == "last":
            last = (input_ids != 0).sum(dim=-1) - 1
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
