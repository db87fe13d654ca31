"""The voxel weights a registered loss applies, for the losses that declare them (``weights=True``).

A loss declares the ``weights`` capability in :mod:`pcatools.loss_registry` when its module has
``element_weights(logits, labels)``. Figure 1's panel w (:func:`pcatools.figures.figure1_data`)
and the viewer's ``"<label> weights"`` layers (:mod:`pcatools.viewer.weights`) both show those
weights for a ground truth g and a foreground probability p; they are computed here, once, so
that the figure and the viewer cannot disagree about what a loss weighs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pcatools.loss_registry import fitting_options, loss_entries, resolve_loss
from pcatools.losses.factory import build_loss

__all__ = ["loss_weights", "weighted_loss", "weighted_losses"]


def weighted_losses() -> tuple[str, ...]:
    """The registered losses that declare voxel weights (``weights=True``), in registry order.

    Examples
    --------
    >>> "l1dfl" in weighted_losses(), "dice" in weighted_losses()
    (True, False)
    """
    return tuple(e.name for e in loss_entries() if e.weights)


def weighted_loss(loss: str) -> str:
    """The registered name of ``loss`` (a name, alias or label) when it declares voxel weights.

    Raises ``ValueError`` for a loss without weights, naming those with weights, so that a
    request is refused before any weight is computed (or a window opens).

    Examples
    --------
    >>> weighted_loss("L1DFL")
    'l1dfl'
    >>> weighted_loss("dice")
    Traceback (most recent call last):
    ValueError: loss 'dice' declares no voxel weights; losses with weights: ['l1dfl']
    """
    entry = resolve_loss(loss)
    if not entry.weights:
        raise ValueError(
            f"loss {entry.name!r} declares no voxel weights; losses with weights: {list(weighted_losses())}"
        )
    return entry.name


def loss_weights(label: Any, probs: Any, loss: str, bin_width: float = 0.1) -> np.ndarray:
    """The voxel weights that registered ``loss`` applies to one image: its ``element_weights``, foreground channel.

    The loss is built from the registry with ``bin_width`` where its factory takes one, and asked
    for ``element_weights(log [1 - p, p], g)`` on the whole image (a batch of one), so that what is
    drawn is what the loss would weigh in training. The computation keeps the precision of
    ``probs`` (float64 stays float64, anything else is float32), so that Figure 1's float64
    matrices give the exact weights of :func:`pcatools.losses.l1_weights`. A loss declaring no
    weights is refused, naming those that do (:func:`weighted_loss`).

    Parameters
    ----------
    label, probs : arrays of one shape
        Ground truth g (0/1) and foreground probability p (in [0, 1]).
    loss : str
        A registered loss name, alias or label with ``weights=True``.
    bin_width : float
        Gamma of eq. 5, for a loss that takes ``bin_width``.

    Returns
    -------
    numpy.ndarray
        The input shape, float64 for float64 ``probs`` and float32 otherwise: the last channel of
        ``element_weights`` (the foreground).

    Examples
    --------
    >>> import numpy as np
    >>> g = np.array([[0, 0, 1, 1]]); p = np.array([[0.2, 0.2, 0.9, 0.35]])
    >>> loss_weights(g, p, "l1dfl").round(2).tolist()  # Delta 0.2, 0.2, 0.1, 0.65: N / D of eq. 10
    [[0.2, 0.2, 0.4, 0.4]]
    """
    name = weighted_loss(loss)
    g = np.asarray(label)
    p = np.asarray(probs)
    p = p.astype(np.float64 if p.dtype == np.float64 else np.float32, copy=False)
    if g.shape != p.shape:
        raise ValueError(f"loss_weights: label and probs must have one shape, found {g.shape} and {p.shape}")
    module: Any = build_loss(name, **fitting_options(name, {"bin_width": bin_width}))
    two = torch.from_numpy(np.stack([1.0 - p, p])[None])  # (1, 2, *spatial)
    labels = torch.from_numpy((g > 0).astype(np.int64)[None, None])
    with torch.no_grad():
        weights = module.element_weights(torch.log(two.clamp_min(torch.finfo(two.dtype).tiny)), labels)
    return np.asarray(weights[0, -1].detach().cpu().numpy(), dtype=p.dtype)
