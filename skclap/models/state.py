"""Module state helpers: a cheap identity of a module's weights, and eval mode for a block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["eval_mode", "weights_stamp"]


def weights_stamp(module: torch.nn.Module) -> tuple:
    """Cheap identity of a module's current tensors: which tensor objects it holds and their
    version counters, so both an in-place update (training step, ``load_state_dict``) and a
    replaced parameter change it. For memoising what is derived from the weights."""
    return tuple((name, id(t), t._version) for name, t in module.state_dict(keep_vars=True).items())


@contextmanager
def eval_mode(*modules: Any) -> Iterator[None]:
    """Run a block with ``modules`` in eval mode, then give every submodule back its own mode
    (a frozen backbone kept in eval inside a model in training stays so). What is not a torch
    module (None, a model of another runtime) has no mode and is left alone."""
    torch_modules = [m for m in modules if isinstance(m, torch.nn.Module)]
    subs = [(m, m.training) for module in torch_modules for m in module.modules()]
    for module in torch_modules:
        module.eval()
    try:
        yield
    finally:
        for m, training in subs:
            m.training = training
