"""The napari layer data tuples of a case, built without napari: PET, CT, masks and the weight layers.

:func:`build_layers` returns plain napari *layer data tuples* ``(data, kwargs, layer_type)``, so
that the napari window (:mod:`pcatools.viewer.window`), the static figure
(:mod:`pcatools.viewer.static`) and the tests read one set of layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from pcatools.data.case import Case
from pcatools.viewer.cases import _as_mask_u8, _check_case, physical_kwargs
from pcatools.viewer.layer_style import BASE_LAYER_NAMES, GT_COLORMAP, LayerData, pred_colour
from pcatools.viewer.predictions import name_predictions
from pcatools.viewer.weights import _check_probs, _l1_layer_tuples, _loss_weight_tuples, l1_layers

__all__ = ["build_layers"]


def build_layers(
    case: Case,
    pred: np.ndarray | Mapping[str, np.ndarray] | None = None,
    probs: np.ndarray | None = None,
    bin_width: float = 0.1,
    suv_window: tuple[float, float] = (0.0, 10.0),
    ct_window: tuple[float, float] = (-160.0, 240.0),
    weights_of: Iterable[str] = (),
) -> list[LayerData]:
    """napari layer data tuples for a case, all in physical mm (scale = spacing, same translate).

    Layers, bottom to top: ``CT`` (image, grey, HU window ``ct_window``), ``PET (SUV)`` (image,
    ``hot`` colormap, SUV window ``suv_window``, additive over the CT), ``ground truth`` (labels
    uint8, green), one labels layer per prediction (uint8, named after its key, colours
    :func:`~pcatools.viewer.layer_style.pred_colour` in order; ``pred`` is a mask or ``{name: mask}``), and where ``probs``
    (foreground probability) and a ground truth are given: ``Delta |g - p|`` (image), ``L1 bin
    index`` (labels, uint8) and ``L1 weights`` (image) with bin width ``bin_width`` (see
    :mod:`pcatools.viewer.weights`), then for each loss of ``weights_of`` (registered with
    ``weights=True``) its voxel weights ``"<label> weights"`` (image,
    :func:`pcatools.losses.loss_weights`). The L1 and weight layers start hidden.

    Examples
    --------
    >>> import numpy as np
    >>> from pcatools.data.case import Case
    >>> c = Case("c", np.ones((3, 3, 3), np.float32), np.zeros((3, 3, 3), np.float32),
    ...          np.zeros((3, 3, 3), np.uint8), np.diag([2.0, 2.0, 3.0, 1.0]))
    >>> [(kw["name"], kind, kw["scale"]) for _, kw, kind in build_layers(c)][:2]
    [('CT', 'image', (2.0, 2.0, 3.0)), ('PET (SUV)', 'image', (2.0, 2.0, 3.0))]
    """
    case = _check_case(case)
    losses = tuple(weights_of)
    for name, win in (("suv_window", suv_window), ("ct_window", ct_window)):
        if len(win) != 2 or not float(win[1]) > float(win[0]):
            raise ValueError(f"{name}: expected (low, high) with high > low, found {win!r}")
    geo = physical_kwargs(case)
    shape = case.pet.shape
    layers: list[LayerData] = [
        (
            np.asarray(case.ct, dtype=np.float32),
            {
                "name": BASE_LAYER_NAMES[0],
                "colormap": "gray",
                "contrast_limits": tuple(map(float, ct_window)),
                **geo,
            },
            "image",
        ),
        (
            np.asarray(case.pet, dtype=np.float32),
            {
                "name": BASE_LAYER_NAMES[1],
                "colormap": "hot",
                "contrast_limits": tuple(map(float, suv_window)),
                "blending": "additive",
                **geo,
            },
            "image",
        ),
    ]
    if case.label is not None:
        layers.append(
            (
                _as_mask_u8(case.label, shape, "case.label"),
                {"name": BASE_LAYER_NAMES[2], "colormap": dict(GT_COLORMAP), "opacity": 0.5, **geo},
                "labels",
            )
        )
    if pred is not None:
        preds = name_predictions(pred.items() if isinstance(pred, Mapping) else [("prediction", pred)])
        for i, (name, mask) in enumerate(preds.items()):
            layers.append(
                (
                    _as_mask_u8(mask, shape, f"pred {name!r}"),
                    {
                        "name": name,
                        "colormap": {1: pred_colour(i), None: "transparent"},
                        "opacity": 0.5,
                        **geo,
                    },
                    "labels",
                )
            )
    if probs is not None:
        if case.label is None:
            raise ValueError("probs given but the case has no ground truth label: Delta = |g - p| needs g")
        p = _check_probs(probs, shape)
        layers.extend(_l1_layer_tuples(l1_layers(case.label, p, bin_width), geo, bin_width))
        layers.extend(_loss_weight_tuples(case.label, p, losses, geo, bin_width))
    elif losses:
        raise ValueError(f"weights_of={list(losses)} needs probs (the foreground probability map)")
    return layers
