"""The check every loss passes before anything trains: build, a finite scalar, a finite gradient.

A user's loss that returns a vector, NaN or a value detached from the logits would otherwise
fail hours into a run (or train nothing without a word); on a small random batch the failure
shows at once, as one line naming the spec and what was found.

Examples
--------
>>> check_loss("dice").name
'dice'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from pcatools.loss_registry import LossEntry, LossError, resolve_loss

__all__ = ["CHECK_SHAPE", "check_loss"]

CHECK_SHAPE = (2, 2, 8, 8, 8)
"""Logits of the check batch: two samples, two classes, 8^3 voxels (labels ``(2, 1, 8, 8, 8)``)."""


def check_loss(name: str, options: Mapping[str, Any] | None = None) -> LossEntry:
    """Build ``name`` (a registered name or ``NAME=SPEC``) and try it on a fixed random batch.

    The loss must build with ``options``, return a 0-dim finite tensor on logits ``(2, 2, 8, 8, 8)``
    (float32) and labels ``(2, 1, 8, 8, 8)`` in {0, 1} (both classes present), and give the logits
    a finite gradient. Raises :class:`~pcatools.loss_registry.LossError` (a ``ValueError``)
    otherwise, e.g. ``loss broken=my_losses.py:BrokenLoss returns shape (2,), expected a scalar``.
    """

    entry = resolve_loss(name)
    shown = entry.shown
    factory = entry.load()
    try:
        loss = factory(**{**entry.options, **dict(options or {})})
    except Exception as err:
        raise LossError(f"loss {shown}: building it failed ({type(err).__name__}: {err})") from None
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(CHECK_SHAPE, generator=gen).requires_grad_(True)
    labels = torch.randint(0, 2, (CHECK_SHAPE[0], 1, *CHECK_SHAPE[2:]), generator=gen)
    labels[:, :, 0, 0, 0], labels[:, :, 0, 0, 1] = 0, 1
    what = f"on logits {tuple(logits.shape)} and labels {tuple(labels.shape)}"
    try:
        value = loss(logits, labels)
    except Exception as err:
        raise LossError(f"loss {shown}: calling it {what} failed ({type(err).__name__}: {err})") from None
    if not isinstance(value, torch.Tensor):
        raise LossError(f"loss {shown} returns a {type(value).__name__}, expected a scalar tensor")
    if value.dim() != 0:
        raise LossError(f"loss {shown} returns shape {tuple(value.shape)}, expected a scalar")
    if not bool(torch.isfinite(value.detach())):
        raise LossError(f"loss {shown} returns {value.item()} {what}, expected a finite value")
    if not value.requires_grad:
        raise LossError(f"loss {shown} gives no gradient to the logits (its value does not depend on them)")
    try:
        value.backward()
    except Exception as err:
        raise LossError(f"loss {shown}: its backward pass failed ({type(err).__name__}: {err})") from None
    grad = logits.grad
    if grad is None:
        raise LossError(f"loss {shown} gives no gradient to the logits (its value does not depend on them)")
    if not bool(torch.isfinite(grad).all()):
        bad = int((~torch.isfinite(grad)).sum())
        raise LossError(
            f"loss {shown} gives a non-finite gradient to the logits ({bad} of {grad.numel()} entries)"
        )
    return entry
