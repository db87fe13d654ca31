"""Weight layers: the L1 norm, bins and weights of eq. 4-10, and the voxel weights of any loss that declares them.

The L1 layers (section 2.6, eq. 4-10) for a foreground probability map ``p`` and the ground truth
``g`` are: ``Delta = |g - p|`` (eq. 4), the bin index ``k`` of each voxel (nearest centre
``B_k = k * Gamma``, a tie going up, as :func:`pcatools.losses.l1_weights` assigns it) shown as
labels, and the weight ``w_i = N / D(B_k)`` (eq. 10). The histogram is taken over the whole case
(N = number of voxels); in training it is taken over the batch. The background channel of the
two-channel loss has the same Delta (``|(1-g) - (1-p)| = |g - p|``), so the one-channel histogram
gives the same weights as the two-channel one. Bin 0 (Delta near 0, the easy voxels) is label 0,
which napari draws transparent: what remains visible are the harder voxels.

Any registered loss declaring ``weights=True`` (:mod:`pcatools.loss_registry`: its module has
``element_weights(logits, labels)``) gets a layer ``"<label> weights"`` on request, computed by
:func:`pcatools.losses.loss_weights` (the function behind Figure 1's panel w), so that a user's own
weighted loss is inspected as L1DFL is; which losses qualify is asked of the registry
(:func:`pcatools.losses.weighted_losses`), never written here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from pcatools.loss_registry import resolve_loss
from pcatools.viewer.layer_style import L1_LAYER_NAMES, LayerData

__all__ = ["l1_layers", "weight_layer_name"]


def _check_probs(probs: Any, shape: tuple[int, ...]) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float32)
    if p.shape != shape:
        raise ValueError(f"probs: expected the case shape {shape}, found {p.shape}")
    lo, hi = float(np.nanmin(p)), float(np.nanmax(p))
    if not np.isfinite(p).all() or lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"probs: expected foreground probabilities in [0, 1], found range [{lo:.4g}, {hi:.4g}]"
        )
    return p


def l1_layers(label: np.ndarray, probs: np.ndarray, bin_width: float = 0.1) -> dict[str, np.ndarray]:
    """Delta (eq. 4), bin index and weights (eq. 10) of every voxel, from :mod:`pcatools.losses`.

    Parameters
    ----------
    label : array of 0/1
        Ground truth g.
    probs : array in [0, 1], same shape
        Foreground probability p.
    bin_width : float
        Gamma.

    Returns
    -------
    dict
        ``delta`` (float32), ``bins`` (uint8 bin index k) and ``weights`` (float32), input shape.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.array([[0, 0, 1, 1]]); p = np.array([[0.2, 0.2, 0.9, 0.35]])
    >>> d = l1_layers(g, p)
    >>> d["bins"].tolist(), d["weights"].astype(float).round(2).tolist()
    ([[2, 2, 1, 7]], [[0.2, 0.2, 0.4, 0.4]])
    """
    import torch  # deferred: start-up (see tests/test_imports.py)

    from pcatools.losses import l1_binning  # deferred: start-up (see tests/test_imports.py)

    g = np.asarray(label)
    p = np.asarray(probs, dtype=np.float32)
    if g.shape != p.shape:
        raise ValueError(f"l1_layers: label and probs must have one shape, found {g.shape} and {p.shape}")
    binning = l1_binning(
        torch.from_numpy(np.ascontiguousarray(p)),
        torch.from_numpy((g > 0).astype(np.float32)),
        bin_width=bin_width,
    )
    n_bins = int(binning.centres.numel())
    if n_bins > 256:
        raise ValueError(
            f"l1_layers: bin width {bin_width} gives {n_bins} bins; the labels layer holds at most 256"
        )
    return {
        "delta": binning.delta.numpy().astype(np.float32),
        "bins": binning.index.numpy().astype(np.uint8),
        "weights": binning.element_weights().numpy().astype(np.float32),
    }


def _l1_layer_tuples(l1: dict[str, np.ndarray], geo: dict[str, Any], bin_width: float) -> list[LayerData]:
    wmax = float(l1["weights"].max())
    return [
        (
            l1["delta"],
            {
                "name": L1_LAYER_NAMES[0],
                "colormap": "magma",
                "contrast_limits": (0.0, 1.0),
                "blending": "additive",
                "visible": False,
                **geo,
            },
            "image",
        ),
        (
            l1["bins"],
            {
                "name": L1_LAYER_NAMES[1],
                "opacity": 0.6,
                "visible": False,
                "metadata": {"bin_width": bin_width},
                **geo,
            },
            "labels",
        ),
        (
            l1["weights"],
            {
                "name": L1_LAYER_NAMES[2],
                "colormap": "viridis",
                "contrast_limits": (0.0, wmax if wmax > 0 else 1.0),
                "blending": "additive",
                "visible": False,
                "metadata": {"bin_width": bin_width},
                **geo,
            },
            "image",
        ),
    ]


def weight_layer_name(loss: str) -> str:
    """Name of the layer holding ``loss``'s voxel weights: its display label and ``weights``.

    Examples
    --------
    >>> weight_layer_name("l1dfl")
    'L1DFL weights'
    """
    return f"{resolve_loss(loss).label} weights"


def _loss_weight_tuples(
    label: np.ndarray, probs: np.ndarray, losses: Iterable[str], geo: dict[str, Any], bin_width: float
) -> list[LayerData]:
    """One hidden image layer ``"<label> weights"`` per loss of ``losses`` (:func:`pcatools.losses.loss_weights`, float32)."""
    losses = tuple(losses)
    if not losses:
        return []
    from pcatools.losses import loss_weights, weighted_loss  # deferred: start-up (see tests/test_imports.py)

    p = np.asarray(probs, dtype=np.float32)
    layers: list[LayerData] = []
    for loss in losses:
        name = weighted_loss(loss)
        w = loss_weights(label, p, name, bin_width)
        wmax = float(w.max()) if w.size else 0.0
        kwargs = {
            "name": weight_layer_name(name),
            "colormap": "viridis",
            "contrast_limits": (0.0, wmax if wmax > 0 else 1.0),
            "blending": "additive",
            "visible": False,
            "metadata": {"bin_width": bin_width, "loss": name},
            **geo,
        }
        layers.append((w, kwargs, "image"))
    return layers
