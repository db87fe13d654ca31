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
``element_weights(logits, labels)``) gets a layer ``"<label> weights"`` on request
(:func:`loss_weights`), so that a user's own weighted loss is inspected as L1DFL is; which losses
qualify is asked of the registry, never written here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from pcatools.loss_registry import fitting_options, loss_entries, resolve_loss
from pcatools.viewer.layer_style import L1_LAYER_NAMES, LayerData

__all__ = ["l1_layers", "loss_weights", "weight_layer_name", "weighted_loss", "weighted_losses"]


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
    import torch  # for start-up time: the viewer's display checks and static figure need no torch

    from pcatools.losses import l1_binning

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
    request is refused before a window opens.

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


def weight_layer_name(loss: str) -> str:
    """Name of the layer holding ``loss``'s voxel weights: its display label and ``weights``.

    Examples
    --------
    >>> weight_layer_name("l1dfl")
    'L1DFL weights'
    """
    return f"{resolve_loss(loss).label} weights"


def loss_weights(label: np.ndarray, probs: np.ndarray, loss: str, bin_width: float = 0.1) -> np.ndarray:
    """The voxel weights that registered ``loss`` applies to a case: its ``element_weights``, foreground channel.

    The loss is built from the registry with ``bin_width`` where its factory takes one, and asked
    for ``element_weights(log [1 - p, p], g)`` on the whole case (batch of one), so that the layer
    shows what the loss would weigh in training. A loss declaring no weights is refused, naming
    those that do.

    Parameters
    ----------
    label, probs : arrays of one shape
        Ground truth g (0/1) and foreground probability p (in [0, 1]), as for :func:`l1_layers`.
    loss : str
        A registered loss name, alias or label with ``weights=True``.
    bin_width : float
        Gamma, for a loss that takes ``bin_width``.

    Returns
    -------
    numpy.ndarray
        float32, the input shape: the last channel of ``element_weights`` (the foreground).

    Examples
    --------
    >>> import numpy as np
    >>> g = np.array([[0, 0, 1, 1]]); p = np.array([[0.2, 0.2, 0.9, 0.35]])
    >>> loss_weights(g, p, "l1dfl").astype(float).round(2).tolist()  # the L1 weights of l1_layers
    [[0.2, 0.2, 0.4, 0.4]]
    """
    import torch  # for start-up time: the viewer's display checks and static figure need no torch

    from pcatools.losses import build_loss

    name = weighted_loss(loss)
    g = np.asarray(label)
    p = np.asarray(probs, dtype=np.float32)
    if g.shape != p.shape:
        raise ValueError(f"loss_weights: label and probs must have one shape, found {g.shape} and {p.shape}")
    module: Any = build_loss(name, **fitting_options(name, {"bin_width": bin_width}))
    two = torch.from_numpy(np.stack([1.0 - p, p])[None])  # (1, 2, *spatial)
    labels = torch.from_numpy((g > 0).astype(np.int64)[None, None])
    with torch.no_grad():
        weights = module.element_weights(torch.log(two.clamp_min(1e-30)), labels)
    return np.asarray(weights[0, -1].detach().cpu().numpy(), dtype=np.float32)


def _loss_weight_tuples(
    label: np.ndarray, probs: np.ndarray, losses: Iterable[str], geo: dict[str, Any], bin_width: float
) -> list[LayerData]:
    """One hidden image layer ``"<label> weights"`` per loss of ``losses`` (:func:`loss_weights`)."""
    layers: list[LayerData] = []
    for loss in losses:
        name = weighted_loss(loss)
        w = loss_weights(label, probs, name, bin_width)
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
