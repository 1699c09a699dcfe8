"""skclap's exceptions (a leaf module: it imports nothing from the package)."""

from __future__ import annotations

__all__ = ["CheckpointError"]


class CheckpointError(OSError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""
