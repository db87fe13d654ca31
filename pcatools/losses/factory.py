"""``build_loss(name)``: a registered loss (:mod:`pcatools.loss_registry`) built with its own defaults."""

from __future__ import annotations

from typing import Any

from torch import nn

from pcatools.loss_registry import resolve_loss, study_losses

__all__ = ["build_loss", "LOSS_NAMES"]


def build_loss(name: str, **overrides: Any) -> nn.Module:
    """A loss module taking ``(logits (B, 2, *spatial), labels (B, 1, *spatial))``, from the registry.

    ``name`` is a registered name (``dice``, ``dice_focal``, ``l1dfl``, ``focal`` or one registered
    by :func:`~pcatools.loss_registry.register_loss` or an entry point), an alias or label
    (case-insensitive: ``DL``, ``DFL``, ``L1DFL``), or ``NAME=SPEC`` (registered first). The loss
    is its factory called with the registered options and ``overrides``: the defaults are the
    class signature's, so ``build_loss("l1dfl", convention="reference-code")`` is
    ``L1DiceFocalLoss(convention="reference-code")`` (bin width 0.05).

    Examples
    --------
    >>> build_loss("l1dfl")
    L1DiceFocalLoss(bin_width=0.1, gamma=2.0, convention='paper', smooth=1e-05, histogram='batch', fused=True)
    >>> build_loss("l1dfl", convention="reference-code").bin_width
    0.05
    >>> type(build_loss("DFL")).__name__
    'DiceFocalLoss'
    """
    entry = resolve_loss(name)
    loss: nn.Module = entry.load()(**{**entry.options, **overrides})
    return loss


LOSS_NAMES: tuple[str, ...] = study_losses()
"""The study's losses (DL, DFL, L1DFL); every registered one: :func:`pcatools.loss_registry.loss_names`."""
