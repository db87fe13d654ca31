"""Input checks shared by the losses: shapes, channel counts, label values, dtypes."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_logits_labels", "check_probs_target", "plain"]


def plain(t: Tensor) -> Tensor:
    """The tensor as a plain ``torch.Tensor`` (drops MONAI ``MetaTensor`` bookkeeping, keeps autograd)."""
    return t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t


def check_logits_labels(
    logits: Tensor, labels: Tensor, num_classes: int | None = None, check_values: bool = True
) -> None:
    """Raise ``ValueError``/``TypeError`` unless ``logits (B, C, *sp)`` and ``labels (B, 1, *sp)`` fit.

    Labels must hold integers in ``[0, C)``; a floating label tensor (as MONAI transforms
    produce) is accepted when its values are integral.
    """
    if not isinstance(logits, Tensor) or not isinstance(labels, Tensor):
        raise TypeError(
            f"logits and labels must be torch tensors, found {type(logits).__name__}, {type(labels).__name__}"
        )
    if not logits.is_floating_point():
        raise TypeError(
            f"logits must be a floating-point tensor (B, C, *spatial), found dtype {logits.dtype}"
        )
    if logits.ndim < 3:
        raise ValueError(
            f"logits must be (B, C, *spatial) with at least one spatial dim, found shape {tuple(logits.shape)}"
        )
    c = logits.shape[1]
    if c < 2:
        raise ValueError(
            f"logits need at least 2 channels (softmax over classes, background included), found C={c}"
        )
    if num_classes is not None and c != num_classes:
        raise ValueError(
            f"expected {num_classes} channels in logits, found C={c} (shape {tuple(logits.shape)})"
        )
    expected = (logits.shape[0], 1, *logits.shape[2:])
    if tuple(labels.shape) != expected:
        hint = ""
        if tuple(labels.shape) == (logits.shape[0], *logits.shape[2:]):
            hint = " (add the channel dim: labels.unsqueeze(1))"
        elif tuple(labels.shape) == tuple(logits.shape):
            hint = " (one-hot labels given: pass the class index map, labels.argmax(1, keepdim=True))"
        raise ValueError(
            f"labels must have shape (B, 1, *spatial) = {expected}, found {tuple(labels.shape)}{hint}"
        )
    if labels.dtype == torch.bool:
        raise TypeError("labels must be integer class indices, found dtype torch.bool (use labels.long())")
    if not check_values or labels.numel() == 0:
        return
    lo, hi = labels.aminmax()
    lo_v, hi_v = float(lo), float(hi)
    if lo_v < 0 or hi_v >= c:
        raise ValueError(
            f"label values must lie in [0, {c}) for C={c} channels, found range [{lo_v:g}, {hi_v:g}]"
        )
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise ValueError("labels must be integral class indices, found non-integer values")


def check_probs_target(probs: Tensor, target: Tensor) -> None:
    """Raise ``ValueError`` unless ``probs`` and one-hot ``target`` are ``(B, C, *sp)`` of equal shape."""
    if probs.shape != target.shape:
        raise ValueError(
            f"probs and target must both be (B, C, *spatial) with equal shapes, found {tuple(probs.shape)} and {tuple(target.shape)}"
        )
    if probs.ndim < 3:
        raise ValueError(f"probs must be (B, C, *spatial), found shape {tuple(probs.shape)}")
