"""Training CLAP: data, objectives, the training step, the trainer, distributed helpers."""

from ..metrics import retrieval_metrics
from .data import CaptionDataset, EpochBatchSampler, read_manifest
from .objectives import ContrastiveObjective, Objective, SupervisedObjective
from .step import cached_backward, contrastive_backward, objective_backward
from .trainer import TrainConfig, Trainer, train

__all__ = [
    "CaptionDataset",
    "ContrastiveObjective",
    "EpochBatchSampler",
    "Objective",
    "SupervisedObjective",
    "TrainConfig",
    "Trainer",
    "cached_backward",
    "contrastive_backward",
    "objective_backward",
    "read_manifest",
    "retrieval_metrics",
    "train",
]
