"""What every consumer of a model relies on: the contract a CLAP backend implements.

:class:`CLAPModel` and the backends of :mod:`skclap.backends` implement it, and so can a model of
your own: pass it as ``model=`` to any estimator, :class:`skclap.Encoder`, collection or score, and
:func:`check_clap_model` says by name what it lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..backends.laion import LaionCLAP
    from .clap import CLAPModel

    #: A model skclap trains or tunes prompts on: its own architecture or a LAION one (training
    #: needs the modules themselves, not only the encoding contract).
    TrainableModel: TypeAlias = CLAPModel | LaionCLAP

__all__ = ["ClapLike", "ClapModelProtocol", "check_clap_model"]


@runtime_checkable
class ClapModelProtocol(Protocol):
    """A CLAP model as skclap drives it.

    - ``config``: ``sample_rate`` (Hz of the waveforms ``encode_audio`` takes), ``window_samples``
      (samples per window) and ``proj_dim`` (embedding size);
    - ``device``: where its weights are; ``logit_scale``: the log of its temperature (a tensor);
    - ``audio_encoder``: the module whose weights make an audio embedding (the embedding cache
      fingerprints it, with :meth:`audio_settings`);
    - ``window_padding``: how a clip shorter than a window fills it (:data:`skclap.audio.PADDINGS`);
      ``quiet_window_db``: windows this many dB under an item's loudest are left out of its mean
      (None: every window counts);
    - ``encode_audio(waves)``: ``(batch, window_samples)`` float tensor -> ``(batch, proj_dim)``;
      ``encode_text(texts)``: a list of strings -> ``(batch, proj_dim)``; both before L2
      normalisation unless ``normalize=True``.
    """

    config: Any

    @property
    def audio_encoder(self) -> torch.nn.Module: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def logit_scale(self) -> torch.Tensor: ...

    @property
    def window_padding(self) -> str: ...

    @property
    def quiet_window_db(self) -> float | None: ...

    def audio_settings(self) -> dict[str, Any]: ...

    def encode_audio(self, wave: torch.Tensor, normalize: bool = False) -> torch.Tensor: ...

    def encode_text(self, text: Any, normalize: bool = False) -> torch.Tensor: ...


#: The type every consumer takes a model as.
ClapLike = ClapModelProtocol

_MEMBERS = (
    "config",
    "audio_encoder",
    "device",
    "logit_scale",
    "window_padding",
    "quiet_window_db",
    "audio_settings",
    "encode_audio",
    "encode_text",
)
_CONFIG = ("sample_rate", "window_samples", "proj_dim")


def check_clap_model(model: Any) -> ClapModelProtocol:
    """``model`` itself when it implements :class:`ClapModelProtocol`; a ``TypeError`` naming each
    missing member otherwise."""
    missing = [m for m in _MEMBERS if not hasattr(model, m)]
    config = getattr(model, "config", None)
    if config is not None:
        missing += [f"config.{m}" for m in _CONFIG if not hasattr(config, m)]
    if missing:
        raise TypeError(
            f"{type(model).__name__} is not a CLAP model: it lacks {', '.join(missing)} "
            "(see skclap.models.protocol.ClapModelProtocol; a name, a checkpoint directory or a CLAPModel works)"
        )
    return model
