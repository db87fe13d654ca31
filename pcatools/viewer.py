"""napari inspection of a case: PET, CT, masks, and the L1 norms, bins and weights of L1DFL.

:func:`build_layers` returns plain napari *layer data tuples* ``(data, kwargs, layer_type)`` (no
napari import needed to build them); :func:`view_case` opens a viewer with them, a dock with the
ground-truth lesion table (:func:`add_lesion_dock`, click a row to jump to the lesion) and, when
a probability map is given, a bin-width slider (:func:`bin_width_widget`) that recomputes the
Delta / bins / weights layers.

Geometry: every layer gets ``scale`` = the case's voxel spacing (mm) and ``translate`` = the
affine's origin, so napari's world coordinates are physical millimetres and all layers overlay.
The affine's rotation / axis flips are not applied (array axes are shown as stored, as
everywhere in pcatools).

The L1 layers (section 2.6, eq. 4-10) for a foreground probability map ``p`` and the ground truth
``g`` are: ``Delta = |g - p|`` (eq. 4), the bin index ``k`` of each voxel (nearest centre
``B_k = k * Gamma``, a tie going up, as :func:`pcatools.losses.l1_weights` assigns it) shown as
labels, and the weight ``w_i = N / D(B_k)`` (eq. 10). The histogram is taken over the whole case
(N = number of voxels); in training it is taken over the batch. The background channel of the
two-channel loss has the same Delta (``|(1-g) - (1-p)| = |g - p|``), so the one-channel histogram
gives the same weights as the two-channel one. Bin 0 (Delta near 0, the easy voxels) is label 0,
which napari draws transparent: what remains visible are the harder voxels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pcatools.data.case import Case, layout_paths

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = [
    "LayerData",
    "GT_COLORMAP",
    "PRED_COLORMAP",
    "physical_kwargs",
    "l1_layers",
    "build_layers",
    "lesion_table",
    "lesion_world_centroid",
    "jump_to_lesion",
    "lesion_table_widget",
    "add_lesion_dock",
    "update_l1_layers",
    "bin_width_widget",
    "resolve_case_paths",
    "load_target",
    "view_case",
]

LayerData = tuple[Any, dict[str, Any], str]
"""One napari layer data tuple: ``(data, kwargs, layer_type)``."""

GT_COLORMAP: dict[Any, str] = {1: "#00c000", None: "transparent"}
PRED_COLORMAP: dict[Any, str] = {1: "#ff2020", None: "transparent"}
L1_LAYER_NAMES = ("Delta |g - p|", "L1 bin index", "L1 weights")
_PRED_COLOURS = ("#ff2020", "#ff9900", "#ff00ff", "#00c8ff", "#ffff00", "#8080ff")


def physical_kwargs(case: Case) -> dict[str, tuple[float, float, float]]:
    """``scale`` (voxel spacing, mm) and ``translate`` (affine origin, mm) shared by all layers.

    Examples
    --------
    >>> import numpy as np
    >>> from pcatools.data.case import Case
    >>> aff = np.diag([4.0, 4.0, 2.0, 1.0]); aff[:3, 3] = (-10, 0, 5)
    >>> c = Case("c", np.zeros((2, 2, 2), np.float32), np.zeros((2, 2, 2), np.float32), None, aff)
    >>> physical_kwargs(c)
    {'scale': (4.0, 4.0, 2.0), 'translate': (-10.0, 0.0, 5.0)}
    """
    return {
        "scale": tuple(float(s) for s in case.spacing),  # type: ignore[dict-item]
        "translate": tuple(float(t) for t in np.asarray(case.affine)[:3, 3]),  # type: ignore[dict-item]
    }


def _check_case(case: Any) -> Case:
    if not isinstance(case, Case):
        raise TypeError(f"expected a pcatools.data.case.Case, found {type(case).__name__}")
    return case


def _as_mask_u8(mask: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.shape != shape:
        raise ValueError(f"{what}: expected shape {shape} (the case grid), found {arr.shape}")
    if arr.dtype != np.bool_:
        values = np.unique(arr)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{what}: expected a binary 0/1 mask, found values {values[:8].tolist()}")
    return (arr > 0).astype(np.uint8)


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
    import torch

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


def build_layers(
    case: Case,
    pred: np.ndarray | Mapping[str, np.ndarray] | None = None,
    probs: np.ndarray | None = None,
    bin_width: float = 0.1,
    suv_window: tuple[float, float] = (0.0, 10.0),
    ct_window: tuple[float, float] = (-160.0, 240.0),
) -> list[LayerData]:
    """napari layer data tuples for a case, all in physical mm (scale = spacing, same translate).

    Layers, bottom to top: ``CT`` (image, grey, HU window ``ct_window``), ``PET (SUV)`` (image,
    ``hot`` colormap, SUV window ``suv_window``, additive over the CT), ``ground truth`` (labels
    uint8, green), one labels layer per prediction (uint8, red; ``pred`` is a mask or
    ``{name: mask}``), and where ``probs`` (foreground probability) and a ground truth are given:
    ``Delta |g - p|`` (image), ``L1 bin index`` (labels, uint8) and ``L1 weights`` (image) with
    bin width ``bin_width`` (see the module docstring). The L1 layers start hidden.

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
    for name, win in (("suv_window", suv_window), ("ct_window", ct_window)):
        if len(win) != 2 or not float(win[1]) > float(win[0]):
            raise ValueError(f"{name}: expected (low, high) with high > low, found {win!r}")
    geo = physical_kwargs(case)
    shape = case.pet.shape
    layers: list[LayerData] = [
        (
            np.asarray(case.ct, dtype=np.float32),
            {"name": "CT", "colormap": "gray", "contrast_limits": tuple(map(float, ct_window)), **geo},
            "image",
        ),
        (
            np.asarray(case.pet, dtype=np.float32),
            {
                "name": "PET (SUV)",
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
                {"name": "ground truth", "colormap": dict(GT_COLORMAP), "opacity": 0.5, **geo},
                "labels",
            )
        )
    if pred is not None:
        preds = pred.items() if isinstance(pred, Mapping) else [("prediction", pred)]
        for i, (name, mask) in enumerate(preds):
            colour = _PRED_COLOURS[i % len(_PRED_COLOURS)]
            layers.append(
                (
                    _as_mask_u8(mask, shape, f"pred {name!r}"),
                    {"name": str(name), "colormap": {1: colour, None: "transparent"}, "opacity": 0.5, **geo},
                    "labels",
                )
            )
    if probs is not None:
        if case.label is None:
            raise ValueError("probs given but the case has no ground truth label: Delta = |g - p| needs g")
        p = _check_probs(probs, shape)
        layers.extend(_l1_layer_tuples(l1_layers(case.label, p, bin_width), geo, bin_width))
    return layers


# --------------------------------------------------------------------------- lesion table


def lesion_table(case: Case) -> pd.DataFrame:
    """Ground-truth lesions of a case (18-connected components, :mod:`pcatools.metrics`).

    Columns: ``lesion_id`` (component label), ``volume_ml``, ``suvmax``, ``centroid_i, _j, _k``
    (voxel indices, float) and ``x_mm, y_mm, z_mm`` (the centroid in napari world coordinates:
    ``translate + index * spacing``). Empty table when there is no label or no lesion.

    Examples
    --------
    >>> import numpy as np
    >>> from pcatools.data.case import Case
    >>> lab = np.zeros((4, 4, 4), np.uint8); lab[0, 0, 0:2] = 1
    >>> pet = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    >>> c = Case("c", pet, pet, lab, np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> lesion_table(c)[["lesion_id", "volume_ml", "suvmax", "z_mm"]].values.tolist()
    [[1.0, 0.016, 1.0, 1.0]]
    """
    from pcatools.metrics import label_components

    case = _check_case(case)
    cols = [
        "lesion_id",
        "volume_ml",
        "suvmax",
        "centroid_i",
        "centroid_j",
        "centroid_k",
        "x_mm",
        "y_mm",
        "z_mm",
    ]
    if case.label is None or not np.any(case.label):
        return pd.DataFrame(columns=cols)
    labels, n = label_components(_as_mask_u8(case.label, case.pet.shape, "case.label").astype(bool))
    ids = np.arange(1, n + 1)
    # foreground voxels only (a whole-body grid has ~10^7 voxels, its lesions ~10^4)
    idx = np.flatnonzero(labels)
    lab = labels.ravel()[idx].astype(np.int64)
    counts = np.bincount(lab, minlength=n + 1)[1:]
    suvmax = np.full(n, -np.inf)
    np.maximum.at(suvmax, lab - 1, np.asarray(case.pet).ravel()[idx].astype(np.float64))
    coords = np.stack(np.unravel_index(idx, labels.shape), axis=1).astype(np.float64)
    sums = np.stack([np.bincount(lab, weights=coords[:, a], minlength=n + 1)[1:] for a in range(3)], axis=1)
    centroids = sums / counts[:, None].astype(np.float64)
    geo = physical_kwargs(case)
    world = np.asarray(geo["translate"]) + centroids * np.asarray(geo["scale"])
    return pd.DataFrame(
        {
            "lesion_id": ids,
            "volume_ml": counts * case.voxel_volume_ml,
            "suvmax": suvmax,
            "centroid_i": centroids[:, 0],
            "centroid_j": centroids[:, 1],
            "centroid_k": centroids[:, 2],
            "x_mm": world[:, 0],
            "y_mm": world[:, 1],
            "z_mm": world[:, 2],
        }
    )


def lesion_world_centroid(table: pd.DataFrame, lesion_id: int) -> tuple[float, float, float]:
    """World (mm) centroid of ``lesion_id`` in a :func:`lesion_table`."""
    row = table.loc[table["lesion_id"] == lesion_id]
    if row.empty:
        raise KeyError(f"lesion {lesion_id} not in the table (ids {table['lesion_id'].tolist()[:20]})")
    r = row.iloc[0]
    return float(r["x_mm"]), float(r["y_mm"]), float(r["z_mm"])


def _camera(viewer: napari.Viewer) -> Any:
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def jump_to_lesion(viewer: napari.Viewer, table: pd.DataFrame, lesion_id: int) -> tuple[float, float, float]:
    """Move the viewer to a lesion: slice position (``dims``) and camera centre at its centroid (mm)."""
    world = lesion_world_centroid(table, lesion_id)
    ndim = viewer.dims.ndim
    if ndim < 3:
        raise ValueError(f"jump_to_lesion: expected a viewer with 3 dimensions (x, y, z), found {ndim}")
    axes = list(range(ndim - 3, ndim))
    viewer.dims.set_point(axes, world)
    displayed = [d - (ndim - 3) for d in viewer.dims.displayed]
    _camera(viewer).center = tuple(world[d] for d in displayed)
    return world


def lesion_table_widget(case: Case, viewer: napari.Viewer | None = None) -> Any:
    """A Qt table of the ground-truth lesions (id, volume ml, SUVmax, centroid mm).

    Clicking a row calls ``widget.select_lesion(row)``, which jumps ``viewer`` to that lesion
    (:func:`jump_to_lesion`) and returns the lesion's world centroid. ``widget.lesions`` is the
    :func:`lesion_table`.
    """
    from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

    table = lesion_table(case)
    headers = ["id", "volume (ml)", "SUVmax", "x (mm)", "y (mm)", "z (mm)"]
    widget: Any = QTableWidget(len(table), len(headers))
    widget.setHorizontalHeaderLabels(headers)
    widget.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    widget.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    for r, row in enumerate(table.itertuples(index=False)):
        values = [
            f"{row.lesion_id}",
            f"{row.volume_ml:.3f}",
            f"{row.suvmax:.2f}",
            f"{row.x_mm:.1f}",
            f"{row.y_mm:.1f}",
            f"{row.z_mm:.1f}",
        ]
        for c, text in enumerate(values):
            widget.setItem(r, c, QTableWidgetItem(text))
    widget.resizeColumnsToContents()
    widget.lesions = table

    def select_lesion(row: int, column: int = 0) -> tuple[float, float, float] | None:
        if not 0 <= row < len(table):
            raise IndexError(f"row {row} outside the lesion table (0..{len(table) - 1})")
        lesion_id = int(table.iloc[row]["lesion_id"])
        if viewer is None:
            return lesion_world_centroid(table, lesion_id)
        return jump_to_lesion(viewer, table, lesion_id)

    widget.select_lesion = select_lesion
    widget.cellClicked.connect(select_lesion)
    return widget


def add_lesion_dock(viewer: napari.Viewer, case: Case) -> Any:
    """Dock a :func:`lesion_table_widget` on the right of ``viewer``; return the table widget."""
    widget = lesion_table_widget(case, viewer)
    viewer.window.add_dock_widget(widget, name=f"Lesions ({len(widget.lesions)})", area="right")
    return widget


# --------------------------------------------------------------------------- bin width


def update_l1_layers(
    viewer: napari.Viewer, case: Case, probs: np.ndarray, bin_width: float
) -> dict[str, np.ndarray]:
    """Recompute the Delta / bin index / weights layers of ``viewer`` for a new bin width.

    Layers missing from the viewer are added (hidden); existing ones get new data (and, for the
    weights, new contrast limits). Returns the arrays (see :func:`l1_layers`).
    """
    from napari.layers import Layer

    case = _check_case(case)
    if case.label is None:
        raise ValueError("update_l1_layers: the case has no ground truth label")
    p = _check_probs(probs, case.pet.shape)
    l1 = l1_layers(case.label, p, bin_width)
    for data, kwargs, kind in _l1_layer_tuples(l1, physical_kwargs(case), bin_width):
        name = kwargs["name"]
        if name in viewer.layers:
            layer = viewer.layers[name]
            layer.data = data
            layer.metadata["bin_width"] = bin_width
            if name == L1_LAYER_NAMES[2]:
                layer.contrast_limits = kwargs["contrast_limits"]
        else:
            viewer.add_layer(Layer.create(data, kwargs, kind))
    return l1


def bin_width_widget(
    viewer: napari.Viewer,
    case: Case,
    probs: np.ndarray,
    value: float = 0.1,
    min_width: float = 0.01,
    max_width: float = 0.5,
    add_dock: bool = True,
) -> Any:
    """A magicgui slider for the bin width Gamma that recomputes the L1 layers (eq. 4-10).

    Returns the magicgui ``FunctionGui``; calling it (``widget(bin_width=0.2)``) or moving the
    slider runs :func:`update_l1_layers`. Docked on the right when ``add_dock``.
    """
    from magicgui import magicgui

    @magicgui(
        auto_call=True,
        bin_width={
            "widget_type": "FloatSlider",
            "min": min_width,
            "max": max_width,
            "step": 0.01,
            "label": "bin width \u0393",
        },
    )
    def l1_bin_width(bin_width: float = value) -> None:
        update_l1_layers(viewer, case, probs, bin_width)

    if add_dock:
        viewer.window.add_dock_widget(l1_bin_width, name="L1 bin width", area="right")
    return l1_bin_width


# --------------------------------------------------------------------------- opening cases


def resolve_case_paths(
    target: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None
) -> dict[str, Path]:
    """Find a case's ``ct``, ``pet`` (and ``label`` when present) files.

    ``target`` may be: an autoPET study folder (``CTres.nii.gz``, ``SUV.nii.gz``, ``SEG.nii.gz``);
    a folder holding one flat-layout case (``<id>_ct/_pet/_label.nii.gz``); or a case id looked up
    under ``data_dir`` in the nnU-Net layout (``imagesTr``/``labelsTr``, then ``Ts``), the flat
    layout, or the autoPET layout (``<data_dir>/<patient>/<id>``).
    """
    t = Path(target)
    candidates: list[dict[str, Path]] = []
    if t.is_dir():
        candidates.append({"ct": t / "CTres.nii.gz", "pet": t / "SUV.nii.gz", "label": t / "SEG.nii.gz"})
        flat_ids = sorted(p.name[: -len("_pet.nii.gz")] for p in t.glob("*_pet.nii.gz"))
        if len(flat_ids) > 1:
            raise ValueError(
                f"{t}: holds {len(flat_ids)} flat-layout cases {flat_ids[:5]}; pass a case id "
                f"with --data-dir {t}"
            )
        candidates += [layout_paths(t, cid, "flat") for cid in flat_ids]
    if data_dir is not None:
        root, cid = Path(data_dir), str(target)
        candidates += [
            layout_paths(root, cid, "nnunet", split="Tr"),
            layout_paths(root, cid, "nnunet", split="Ts"),
            layout_paths(root, cid, "flat"),
        ]
        candidates += [
            layout_paths(root, cid, "autopet", patient_id=p.name) for p in sorted(root.glob(f"*/{cid}"))
        ]
    for paths in candidates:
        if paths["ct"].is_file() and paths["pet"].is_file():
            if not paths["label"].is_file():
                paths = {k: v for k, v in paths.items() if k != "label"}
            return paths
    tried = "; ".join(f"{c['pet']}" for c in candidates) or "(no candidate: not a folder and no --data-dir)"
    raise FileNotFoundError(
        f"No case found for {str(target)!r}: expected CT and PET NIfTI files; tried PET at {tried}"
    )


def load_target(target: Any, data_dir: str | os.PathLike[str] | None = None) -> Case:
    """A :class:`Case` from a Case, a ``{ct, pet, label}`` mapping / manifest row, or a folder / id."""
    if isinstance(target, Case):
        return target
    if isinstance(target, Mapping | pd.Series):
        from pcatools.data.io import load_case

        return load_case(target)
    if isinstance(target, str | os.PathLike):
        paths = resolve_case_paths(target, data_dir)
        from pcatools.data.io import load_case

        return load_case({k: str(v) for k, v in paths.items()})
    raise TypeError(
        f"expected a Case, a mapping of paths, a folder or a case id, found {type(target).__name__}"
    )


def _nifti_dataobj(path: str | os.PathLike[str]) -> Any:
    import nibabel as nib

    img: Any = nib.load(str(path))
    return img.dataobj


def _load_mask(mask: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    if isinstance(mask, str | os.PathLike):
        mask = np.asanyarray(_nifti_dataobj(mask))
    return _as_mask_u8(mask, shape, what)


def set_coronal(viewer: napari.Viewer) -> None:
    """Slice along y (array axis 1) and show x horizontally, z pointing up (a coronal view)."""
    viewer.dims.order = (1, 2, 0)
    _camera(viewer).orientation2d = ("up", "right")


def view_case(
    case_or_paths: Any,
    pred: Any = None,
    probs: Any = None,
    bin_width: float = 0.1,
    data_dir: str | os.PathLike[str] | None = None,
    suv_window: tuple[float, float] = (0.0, 10.0),
    show: bool = True,
    block: bool = True,
) -> napari.Viewer:
    """Open a case in napari with the PET, CT, masks, the L1 layers and the lesion dock.

    Parameters
    ----------
    case_or_paths : Case, mapping of paths, folder or case id
        See :func:`load_target`.
    pred : mask, path, or ``{name: mask or path}``, optional
        Predictions on the case grid.
    probs : array or path, optional
        Foreground probability map; adds Delta / bins / weights and the bin-width slider.
    bin_width : float
        Initial Gamma.
    data_dir : path, optional
        Dataset root for a case id.
    show, block : bool
        Show the window; run the Qt event loop until it is closed (``napari.run()``).
    """
    case = load_target(case_or_paths, data_dir)
    shape = case.pet.shape
    preds: dict[str, np.ndarray] | None = None
    if pred is not None:
        items = (
            pred.items()
            if isinstance(pred, Mapping)
            else [
                (Path(pred).name.split(".")[0] if isinstance(pred, str | os.PathLike) else "prediction", pred)
            ]
        )
        preds = {str(k): _load_mask(v, shape, f"pred {k!r}") for k, v in items}
    p = None
    if probs is not None:
        if isinstance(probs, str | os.PathLike):
            probs = np.asarray(_nifti_dataobj(probs), dtype=np.float32)
        p = _check_probs(probs, shape)
    import napari
    from napari.layers import Layer

    viewer = napari.Viewer(title=f"pcatools: {case.case_id}", show=show)
    for data, kwargs, kind in build_layers(case, preds, p, bin_width=bin_width, suv_window=suv_window):
        viewer.add_layer(Layer.create(data, kwargs, kind))
    set_coronal(viewer)
    if case.label is not None:
        add_lesion_dock(viewer, case)
    if p is not None:
        bin_width_widget(viewer, case, p, value=bin_width)
    viewer.reset_view()
    if show and block:
        napari.run()
    return viewer
