"""The lesion dock: the ground-truth lesions of a case, which prediction detects each, a click to jump there.

:func:`lesion_table` counts lesions and detections as the study's tables do
(:func:`pcatools.metrics.lesion_table`, the paper's SUVmax rule); :func:`add_lesion_dock` shows it
in napari, where clicking a row moves the view to the lesion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pcatools.data.case import Case
from pcatools.metrics import components
from pcatools.metrics import lesion_table as metrics_lesion_table
from pcatools.metrics.burden import gt_suv, lesion_suv
from pcatools.viewer.cases import _as_mask_u8, _check_case, _load_mask, physical_kwargs
from pcatools.viewer.predictions import name_predictions

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = [
    "add_lesion_dock",
    "detection_column",
    "jump_to_lesion",
    "lesion_table",
    "lesion_table_widget",
    "lesion_world_centroid",
]


def detection_column(name: str) -> str:
    """Column of :func:`lesion_table` saying whether prediction ``name`` detects each lesion."""
    return f"detected: {name}"


def lesion_table(case: Case, pred: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Ground-truth lesions of a case (18-connected components, :mod:`pcatools.metrics`).

    Columns: ``lesion_id`` (component label), ``volume_ml``, ``suvmax``, ``centroid_i, _j, _k``
    (voxel indices, float), ``x_mm, y_mm, z_mm`` (the centroid in napari world coordinates:
    ``translate + index * spacing``) and, for each prediction ``{name: mask}`` of ``pred``, a
    boolean column :func:`detection_column` ``(name)``: the paper's detection rule (2.7.1, the
    prediction covers the lesion's SUVmax voxel), from :func:`pcatools.metrics.lesion_table`, so
    that the viewer and the study's tables count detections alike. Empty table when there is no
    label or no lesion.

    Examples
    --------
    >>> import numpy as np
    >>> from pcatools.data.case import Case
    >>> lab = np.zeros((4, 4, 4), np.uint8); lab[0, 0, 0:2] = 1
    >>> pet = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    >>> c = Case("c", pet, pet, lab, np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> lesion_table(c)[["lesion_id", "volume_ml", "suvmax", "z_mm"]].values.tolist()
    [[1.0, 0.016, 1.0, 1.0]]
    >>> hit = np.zeros_like(lab); hit[0, 0, 1] = 1  # covers the SUVmax voxel (SUV 1)
    >>> lesion_table(c, {"A": hit, "B": lab - hit})[["detected: A", "detected: B"]].values.tolist()
    [[True, False]]
    """
    case = _check_case(case)
    shape = case.pet.shape
    named = name_predictions((pred or {}).items())
    preds = {name: _load_mask(m, shape, f"pred {name!r}") for name, m in named.items()}
    cols = ["lesion_id", "volume_ml", "suvmax", "centroid_i", "centroid_j", "centroid_k"]
    cols += ["x_mm", "y_mm", "z_mm"]
    cols += [detection_column(name) for name in preds]
    if case.label is None or not np.any(case.label):
        return pd.DataFrame(columns=cols)
    label = _as_mask_u8(case.label, shape, "case.label")
    pet = np.asarray(case.pet)
    comp = components(label, np.zeros(shape, np.uint8), case.spacing)
    n = comp.n_gt
    lab = comp.gt_voxel_label
    counts = comp.gt_sizes[1:]
    coords = comp.gt_coords.astype(np.float64)
    sums = np.stack([np.bincount(lab, weights=coords[:, a], minlength=n + 1)[1:] for a in range(3)], axis=1)
    centroids = sums / counts[:, None].astype(np.float64)
    geo = physical_kwargs(case)
    world = np.asarray(geo["translate"]) + centroids * np.asarray(geo["scale"])
    table = pd.DataFrame(
        {
            "lesion_id": np.arange(1, n + 1),
            "volume_ml": counts * comp.voxel_ml,
            "suvmax": lesion_suv(comp, gt_suv(comp, pet)).suvmax,
            "centroid_i": centroids[:, 0],
            "centroid_j": centroids[:, 1],
            "centroid_k": centroids[:, 2],
            "x_mm": world[:, 0],
            "y_mm": world[:, 1],
            "z_mm": world[:, 2],
        }
    )
    for name, mask in preds.items():
        det = metrics_lesion_table(label, mask, pet, case.spacing, criterion="suvmax")
        # both tables number lesions 1..n in C order of their first voxel (label_components)
        table[detection_column(name)] = det["detected"].to_numpy(dtype=bool)
    return table[cols]


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


def lesion_table_widget(
    case: Case, viewer: napari.Viewer | None = None, pred: Mapping[str, Any] | None = None
) -> Any:
    """A Qt table of the ground-truth lesions (id, volume ml, SUVmax, centroid mm, detections).

    One column per prediction of ``pred`` (``{name: mask}``) says ``yes`` / ``no``: whether it
    detects the lesion (the paper's SUVmax rule, see :func:`lesion_table`). Clicking a row calls
    ``widget.select_lesion(row)``, which jumps ``viewer`` to that lesion (:func:`jump_to_lesion`)
    and returns the lesion's world centroid. ``widget.lesions`` is the :func:`lesion_table`.
    """
    # for start-up time and headless use: Qt loads only where a window is made
    from qtpy.QtWidgets import (  # deferred: start-up (see tests/test_imports.py)
        QAbstractItemView,
        QTableWidget,
        QTableWidgetItem,
    )

    table = lesion_table(case, pred)
    detect_cols = [c for c in table.columns if c.startswith(detection_column(""))]
    # two-line headers keep the columns narrow: "detected by" over the prediction's name
    headers = ["id", "volume (ml)", "SUVmax", "x (mm)", "y (mm)", "z (mm)"]
    headers += [c.replace(detection_column(""), "detected by\n") for c in detect_cols]
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
        values += ["yes" if table.iloc[r][col] else "no" for col in detect_cols]
        for c, text in enumerate(values):
            widget.setItem(r, c, QTableWidgetItem(text))
    widget.resizeColumnsToContents()
    # wide enough for every column (up to 600 px), so that the detection columns are in view
    columns_px = sum(widget.columnWidth(c) for c in range(len(headers)))
    widget.setMinimumWidth(min(columns_px + widget.verticalHeader().sizeHint().width() + 8, 600))
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


def add_lesion_dock(viewer: napari.Viewer, case: Case, pred: Mapping[str, Any] | None = None) -> Any:
    """Dock a :func:`lesion_table_widget` (detections by ``pred``) on the right of ``viewer``; return it."""
    widget = lesion_table_widget(case, viewer, pred)
    viewer.window.add_dock_widget(widget, name=f"Lesions ({len(widget.lesions)})", area="right")
    return widget
