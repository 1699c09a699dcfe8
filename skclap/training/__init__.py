"""Contrastive training of CLAP: data, the training step, the trainer, distributed helpers."""

from ..metrics import retrieval_metrics
from .data import CaptionDataset, EpochBatchSampler, read_manifest
from .step import contrastive_backward
from .trainer import TrainConfig, Trainer, train

__all__ = [
    "CaptionDataset",
    "EpochBatchSampler",
    "TrainConfig",
    "Trainer",
    "contrastive_backward",
    "read_manifest",
    "retrieval_metrics",
    "train",
]
