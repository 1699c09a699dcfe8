"""Other CLAP families behind the interface of :class:`skclap.CLAPModel`."""

from .laion import LAION_CHECKPOINTS, LaionCLAP, is_laion_checkpoint

__all__ = ["LAION_CHECKPOINTS", "LaionCLAP", "is_laion_checkpoint"]
