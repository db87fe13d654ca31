"""Per-case and per-cohort evaluation: every metric of the paper (2.7) from one labelling per mask."""

from __future__ import annotations

import multiprocessing
import os
import signal
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, cast

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pcatools._process import die_with_parent
from pcatools.data.errors import DataError
from pcatools.data.io import Grid, load_nifti
from pcatools.data.manifest import read_manifest
from pcatools.metrics.autopet import false_negative_volume, false_positive_volume
from pcatools.metrics.burden import gt_suv, lesion_suv, pred_component_suv, pred_suv
from pcatools.metrics.components import CONNECTIVITY, Components, check_connectivity, components, scenario
from pcatools.metrics.detection import Criterion, detect, f1_score
from pcatools.metrics.dmax import dmax_points
from pcatools.metrics.overlap import check_lesion_dice_reading, dice_from_counts, lesion_dice
from pcatools.metrics.panoptic import panoptic_quality

CASE_COLUMNS: tuple[str, ...] = (
    "dice",
    "tp",
    "fp",
    "fn",
    "f1",
    "fpv_ml",
    "fnv_ml",
    "tmtv_ml",
    "tla",
    "dmax_mm",
    "n_gt_lesions",
    "n_pred_lesions",
    "scenario",
    "suvmax",
    "pred_tmtv_ml",
    "pred_tla",
    "pred_suvmax",
    "pred_dmax_mm",
    "criterion",
)
"""Keys of :func:`evaluate_case` (and metric columns of the per-case table), in order."""

PANOPTIC_COLUMNS: tuple[str, ...] = ("rq", "sq", "pq")
"""Columns added after :data:`CASE_COLUMNS` with ``panoptic=True`` (:mod:`pcatools.metrics.panoptic`)."""

LESION_COLUMNS: tuple[str, ...] = (
    "lesion_id",
    "n_voxels",
    "volume_ml",
    "suvmax",
    "suvmean",
    "tla",
    "matched",
    "dice",
    "detected",
    "pred_components",
    "pred_volume_ml",
    "pred_suvmax",
)
"""Columns of :func:`lesion_table`, in order."""

COMPONENT_COLUMNS: tuple[str, ...] = (
    "component_id",
    "n_voxels",
    "volume_ml",
    "suvmax",
    "suvmean",
    "tla",
    "lesions",
    "dice",
    "false_positive",
)
"""Columns of the per-predicted-component table (:func:`component_table`), in order."""


def _ids(values: np.ndarray) -> str:
    """Component or lesion ids as one CSV-safe cell, e.g. ``"2;5"`` (``""`` for none)."""
    return ";".join(str(int(v)) for v in values)


def _evaluate(
    comp: Components,
    suv: np.ndarray | None,
    criterion: Criterion,
    iou_threshold: float,
    with_dmax: bool = True,
    lesion_dice_reading: str = "union",
    panoptic: bool = False,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Case metrics, lesion table and predicted-component table from one labelling of a case
    (``criterion`` checked by the caller, :meth:`Criterion.parse`)."""
    vox = comp.voxel_ml
    n = comp.n_gt
    if suv is not None:
        stats = lesion_suv(comp, gt_suv(comp, suv))
        suvmax, suvmean, les_tla = stats.suvmax, stats.suvmean, stats.suv_sum * vox
        argmax: np.ndarray | None = stats.argmax
        total_tla = float(stats.suv_sum.sum()) * vox
        case_suvmax = float(suvmax.max()) if n else float("nan")
        pstats = pred_component_suv(comp, pred_suv(comp, suv))
        comp_suvmax, comp_suvmean, comp_tla = pstats.suvmax, pstats.suvmean, pstats.suv_sum * vox
        pred_tla = float(pstats.suv_sum.sum()) * vox
        pred_suvmax = float(comp_suvmax.max()) if comp.n_pred else float("nan")
    else:
        suvmax = suvmean = les_tla = np.full(n, np.nan)
        comp_suvmax = comp_suvmean = comp_tla = np.full(comp.n_pred, np.nan)
        argmax = None
        total_tla = case_suvmax = pred_tla = pred_suvmax = float("nan")
        if criterion.needs_suv:
            warnings.warn(
                f"criterion {criterion!r} needs a SUV image; without one, detection uses 'overlap' "
                "(Ahamed et al. criterion 1) and SUV-based values (tla, suvmax) are NaN",
                UserWarning,
                stacklevel=3,
            )
            criterion = Criterion.OVERLAP
    det = detect(comp, argmax, criterion, iou_threshold)
    case = {
        "dice": dice_from_counts(comp.overlap_voxels, comp.gt_voxels, comp.pred_voxels),
        "tp": det.tp,
        "fp": det.fp,
        "fn": det.fn,
        "f1": f1_score(det.tp, det.fp, det.fn),
        "fpv_ml": false_positive_volume(comp),
        "fnv_ml": false_negative_volume(comp),
        "tmtv_ml": comp.gt_voxels * vox,
        "tla": total_tla,
        "dmax_mm": dmax_points(comp.gt_coords, comp.spacing) if with_dmax else float("nan"),
        "n_gt_lesions": n,
        "n_pred_lesions": comp.n_pred,
        "scenario": scenario(n),
        "suvmax": case_suvmax,
        "pred_tmtv_ml": comp.pred_voxels * vox,
        "pred_tla": pred_tla,
        "pred_suvmax": pred_suvmax,
        "pred_dmax_mm": dmax_points(comp.pred_coords, comp.spacing) if with_dmax else float("nan"),
        "criterion": det.criterion.value,
    }
    if panoptic:
        pq = panoptic_quality(comp)
        case.update(rq=pq.rq, sq=pq.sq, pq=pq.pq)
    # matched components of each lesion, and matched lesions of each component (pairs are sorted)
    by_lesion = np.split(comp.pairs[:, 1], np.searchsorted(comp.pairs[:, 0], np.arange(2, n + 1)))
    order = np.lexsort((comp.pairs[:, 0], comp.pairs[:, 1]))
    by_comp_pairs = comp.pairs[order]
    by_comp = np.split(
        by_comp_pairs[:, 0], np.searchsorted(by_comp_pairs[:, 1], np.arange(2, comp.n_pred + 1))
    )
    sizes = comp.gt_sizes[1:]
    pred_ml = comp.pred_sizes * vox
    lesions = pd.DataFrame(
        {
            "lesion_id": np.arange(1, n + 1, dtype=np.int64),
            "n_voxels": sizes.astype(np.int64),
            "volume_ml": sizes * vox,
            "suvmax": suvmax,
            "suvmean": suvmean,
            "tla": les_tla,
            "matched": comp.gt_overlapped()[1:],
            "dice": lesion_dice(comp, lesion_dice_reading),
            "detected": det.detected,
            "pred_components": [_ids(c) for c in by_lesion] if n else [],
            "pred_volume_ml": [float(pred_ml[c].sum()) for c in by_lesion] if n else [],
            "pred_suvmax": [float(comp_suvmax[c - 1].max()) if c.size else np.nan for c in by_lesion]
            if n
            else [],
        },
        columns=list(LESION_COLUMNS),
    )
    inter = np.bincount(by_comp_pairs[:, 1], weights=comp.pair_overlap[order], minlength=comp.n_pred + 1)
    gt_matched = np.array([comp.gt_sizes[c].sum() for c in by_comp] if comp.n_pred else [], dtype=np.float64)
    psizes = comp.pred_sizes[1:]
    denom = psizes + gt_matched
    comps = pd.DataFrame(
        {
            "component_id": np.arange(1, comp.n_pred + 1, dtype=np.int64),
            "n_voxels": psizes.astype(np.int64),
            "volume_ml": psizes * vox,
            "suvmax": comp_suvmax,
            "suvmean": comp_suvmean,
            "tla": comp_tla,
            "lesions": [_ids(c) for c in by_comp] if comp.n_pred else [],
            "dice": np.divide(2.0 * inter[1:], denom, out=np.zeros(comp.n_pred), where=denom > 0),
            "false_positive": det.false_positive,
        },
        columns=list(COMPONENT_COLUMNS),
    )
    return case, lesions, comps


def evaluate_case(
    gt: np.ndarray,
    pred: np.ndarray,
    suv: np.ndarray | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
    connectivity: int = CONNECTIVITY,
    panoptic: bool = False,
) -> dict[str, Any]:
    """All patient-level metrics of one case (paper 2.7.1 and autoPET), each mask labelled once.

    Parameters
    ----------
    gt, pred : ndarray (x, y, z)
        Binary ground-truth and predicted masks on one grid.
    suv : ndarray (x, y, z), optional
        PET in SUVbw on the same grid. Without it SUV-based values (``tla``, ``suvmax``) are NaN and
        the SUV-based criteria fall back to ``"overlap"`` (with a warning; ``criterion`` in the
        result says which one was used).
    spacing : sequence of 3 float
        Voxel spacing in mm.
    criterion : {"suvmax", "overlap", "iou", "suvmax_iou"}
        Detection criterion (:mod:`pcatools.metrics.detection`); ``"suvmax"`` is the paper's.
    iou_threshold : float
        For ``criterion="iou"``.
    connectivity : {6, 18, 26}
        Connectivity of the lesion components (18: autoPET's official; panoptica uses 26).
    panoptic : bool
        Also return ``rq``, ``sq`` and ``pq`` (:func:`pcatools.metrics.panoptic.panoptic_quality`).

    Returns
    -------
    dict
        ``dice`` (eq. 13; 1.0 when both masks are empty), ``tp``, ``fp``, ``fn``, ``f1`` (eq. 14;
        1.0 when all three are 0), ``fpv_ml``, ``fnv_ml`` (autoPET), ``tmtv_ml`` (ground truth),
        ``tla`` (ground truth, SUV x ml), ``dmax_mm`` (ground truth, eq. 15; NaN without lesions),
        ``n_gt_lesions``, ``n_pred_lesions`` (18-connected components), ``scenario`` (``"none"``,
        ``"S"``, ``"M"``), ``suvmax`` (highest SUV in the ground truth), the same measures of the
        prediction (``pred_tmtv_ml``, ``pred_tla``, ``pred_suvmax``, ``pred_dmax_mm``; on an empty
        prediction 0, 0, NaN, NaN, as for an empty ground truth), and ``criterion``.

    Examples
    --------
    >>> g = np.zeros((10, 1, 1), np.uint8); g[0:2] = 1; g[5:7] = 1
    >>> p = np.zeros_like(g); p[1:3] = 1; p[9] = 1
    >>> suv = np.arange(10.0).reshape(10, 1, 1)
    >>> r = evaluate_case(g, p, suv, spacing=(10.0, 10.0, 10.0))
    >>> r["tp"], r["fp"], r["fn"], r["dice"], r["fnv_ml"], r["dmax_mm"]
    (1, 1, 1, 0.2857142857142857, 2.0, 60.0)
    """
    rule = Criterion.parse(criterion)
    comp = components(gt, pred, spacing, connectivity)
    return _evaluate(comp, suv, rule, iou_threshold, panoptic=panoptic)[0]


def lesion_table(
    gt: np.ndarray,
    pred: np.ndarray,
    suv: np.ndarray | None,
    spacing: Sequence[float],
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
    connectivity: int = CONNECTIVITY,
    lesion_dice_reading: str = "union",
) -> pd.DataFrame:
    """One row per ground-truth lesion (18-connected component unless ``connectivity``), paper 2.7.2.

    Columns: ``lesion_id`` (1..n, in C order of each lesion's first voxel), ``n_voxels``,
    ``volume_ml`` (MTV), ``suvmax``, ``suvmean``, ``tla`` (SUV x ml), ``matched`` (any voxel
    overlap with a predicted component), ``dice`` (eq. 16 against the union of the matched
    components, or its best matched pair with ``lesion_dice_reading="pair"``:
    :func:`~pcatools.metrics.overlap.lesion_dice`; 0 when unmatched), ``detected`` (under ``criterion``), ``pred_components`` (ids
    of the matched predicted components, ``"2;5"``, as in :func:`component_table`; ``""`` when
    unmatched), ``pred_volume_ml`` (their volume, 0 when unmatched) and ``pred_suvmax`` (their
    highest SUV, NaN when unmatched). SUV columns are NaN without ``suv``.

    Examples
    --------
    >>> g = np.zeros((10, 1, 1), np.uint8); g[0:2] = 1; g[5:7] = 1
    >>> p = np.zeros_like(g); p[1:3] = 1
    >>> lesion_table(g, p, None, (10.0, 10.0, 10.0), criterion="overlap")[["lesion_id", "matched", "dice"]]
       lesion_id  matched  dice
    0          1     True   0.5
    1          2    False   0.0
    """
    rule = Criterion.parse(criterion)
    comp = components(gt, pred, spacing, connectivity)
    return _evaluate(comp, suv, rule, iou_threshold, False, lesion_dice_reading)[1]


def component_table(
    gt: np.ndarray,
    pred: np.ndarray,
    suv: np.ndarray | None,
    spacing: Sequence[float],
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
    connectivity: int = CONNECTIVITY,
) -> pd.DataFrame:
    """One row per predicted component (18-connected unless ``connectivity``), the prediction-side twin of :func:`lesion_table`.

    Columns: ``component_id`` (1..n, C order of each component's first voxel), ``n_voxels``,
    ``volume_ml``, ``suvmax``, ``suvmean``, ``tla`` (SUV x ml; NaN without ``suv``), ``lesions``
    (ids of the ground-truth lesions it overlaps, ``"1;3"``, ``""`` for none),
    ``dice`` (``2 |P_c ∩ G| / (|P_c| + |G_c|)`` with ``G_c`` the union of the lesions it
    overlaps; 0 when it overlaps none) and ``false_positive`` (counted as an FP under ``criterion``).

    Examples
    --------
    >>> g = np.zeros((10, 1, 1), np.uint8); g[0:2] = 1; g[5:7] = 1
    >>> p = np.zeros_like(g); p[1:3] = 1; p[9] = 1
    >>> component_table(g, p, None, (10.0, 10.0, 10.0), criterion="overlap")[["component_id", "lesions", "dice"]]
       component_id lesions  dice
    0             1       1   0.5
    1             2           0.0
    """
    rule = Criterion.parse(criterion)
    comp = components(gt, pred, spacing, connectivity)
    return _evaluate(comp, suv, rule, iou_threshold, with_dmax=False)[2]


# --------------------------------------------------------------------------- cohort


def _mask_reading(data: np.ndarray, label_value: int, what: str) -> tuple[np.ndarray, str, str]:
    """The class ``label_value`` of a mask file's voxels: ``(mask, reading, values)``.

    ``reading`` is ``"class"`` (the file holds ``label_value``, or several other classes: a label
    map, read as ``data == label_value``), ``"binary"`` (only 0 and 1: a 0/1 mask, its 1s read as
    the class) or ``"empty"`` (only 0). A file holding 0 and one value that is neither 1 nor
    ``label_value`` could be a mask stored 0/v or a map without the class: refused, not guessed.
    ``values`` lists the values found, for messages.
    """
    if not np.issubdtype(data.dtype, np.integer) and not np.array_equal(data, np.round(data)):
        raise DataError(f"{what}: --label {label_value} needs an integer label map, found fractional values")
    nonzero = np.unique(data[data != 0])
    shown = ", ".join(f"{v:g}" for v in [0, *nonzero[:10].tolist()]) + (" ..." if nonzero.size > 10 else "")
    if np.isin(label_value, nonzero):
        return data == label_value, "class", f"[{shown}]"
    if nonzero.size == 0:
        return np.zeros(data.shape, bool), "empty", "[0]"
    if nonzero.size == 1 and nonzero[0] == 1:
        return data == 1, "binary", "[0, 1]"
    if nonzero.size == 1:
        v = f"{nonzero[0]:g}"
        raise DataError(
            f"{what}: --label {label_value} asks for class {label_value}, found values [0, {v}] only (a 0/{v} "
            f"mask, or a label map without class {label_value}?); pass --label {v} if {v} marks the lesions"
        )
    return np.zeros(data.shape, bool), "class", f"[{shown}]"


def read_mask(
    path: str | os.PathLike[str], label_value: int | None = None, name: str = "mask", onto: Grid | None = None
) -> nib.Nifti1Image:
    """A binary (uint8) mask from a NIfTI file: values must be 0/1 (checked by
    :func:`~pcatools.data.io.load_nifti`), or, with ``label_value``, the voxels of that class
    (:func:`_mask_reading`: a 0/1 file is a 0/1 mask, a file holding the class or several
    classes a label map); ``name`` is what error messages call the file; ``onto`` the grid it
    must lie on (flips and permutations of its axes are undone exactly)."""
    return _read_mask(path, label_value, name, onto)[0]


def _read_mask(
    path: str | os.PathLike[str], label_value: int | None, name: str, onto: Grid | None = None
) -> tuple[nib.Nifti1Image, str, str]:
    """:func:`read_mask` and how the file was read (``"mask"`` without ``label_value``) and its values."""
    if label_value is None:
        return load_nifti(path, "label", name=name, onto=onto), "mask", "[0, 1]"
    img = load_nifti(path, name=name, onto=onto)
    mask, reading, values = _mask_reading(np.asanyarray(img.dataobj), label_value, f"{name} {path}")
    return nib.Nifti1Image(mask.astype(np.uint8), img.affine, header=img.header), reading, values


def _evaluate_files(
    case: str,
    label: str,
    pet: str | None,
    preds: list[tuple[str, str]],
    criterion: Criterion,
    iou_threshold: float,
    label_value: int | None = None,
    rules: tuple[int, str, bool] = (CONNECTIVITY, "union", False),
) -> list[tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]]:
    """Evaluate every prediction ``(model, path)`` of one case, reading its ground truth and PET once.

    A bad file is a DataError that names ``case`` (and the model, for a prediction). PET and
    predictions stored in another orientation of the ground truth's grid are put on it exactly.
    Each case dict also holds ``_readings`` (how the ground truth and the prediction were read, for
    :func:`_check_readings`). ``rules``: connectivity, lesion-DSC reading and panoptic quality.
    """
    connectivity, reading, panoptic = rules
    try:
        gt_img, gt_reading, gt_values = _read_mask(label, label_value, "ground truth")
        grid = Grid(tuple(gt_img.shape), np.asarray(gt_img.affine), "ground truth", label)
        suv = None
        if pet is not None:
            suv = np.asanyarray(load_nifti(pet, "pet", onto=grid).dataobj)
    except DataError as err:
        raise DataError(f"{case}: {err}") from None
    zooms = gt_img.header.get_zooms()[:3]
    spacing = (float(zooms[0]), float(zooms[1]), float(zooms[2]))
    gt_arr = np.asanyarray(gt_img.dataobj)
    out = []
    for model, pred in preds:
        try:
            pred_img, pred_reading, pred_values = _read_mask(pred, label_value, "prediction", onto=grid)
        except DataError as err:
            raise DataError(f"{case}{model}: {err}") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the fallback is reported once by evaluate_cohort
            comp = components(gt_arr, np.asanyarray(pred_img.dataobj), spacing, connectivity)
            metrics, lesions, comps = _evaluate(comp, suv, criterion, iou_threshold, True, reading, panoptic)
        metrics["_readings"] = ((label, gt_reading, gt_values), (pred, pred_reading, pred_values))
        out.append((metrics, lesions, comps))
    return out


def _check_readings(label_value: int, readings: list[tuple[str, tuple[str, str, str]]]) -> None:
    """Refuse a folder whose files were read two ways under ``--label`` (some 0/1 masks, some label maps).

    ``readings`` holds ``(folder name, (path, reading, values))`` per file. A 0/1 file beside label
    maps is most likely a label map whose class 1 is something else, so it is not guessed.
    """
    by_folder: dict[str, dict[str, tuple[str, str]]] = {}
    for folder, (path, reading, values) in readings:
        by_folder.setdefault(folder, {}).setdefault(reading, (path, values))
    for folder, kinds in by_folder.items():
        if "binary" in kinds and "class" in kinds:
            (bpath, _), (cpath, cvalues) = kinds["binary"], kinds["class"]
            raise DataError(
                f"--label {label_value}: the {folder} files are of two kinds: {bpath} holds values [0, 1] "
                f"(a 0/1 mask) and {cpath} holds values {cvalues} (a label map); expected one kind per folder"
            )


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and str(value) != ""


@dataclass(frozen=True)
class CohortTables:
    """The tables of :func:`evaluate_cohort_tables`: per case, per lesion, per predicted component,
    and the detection rule they were counted with."""

    cases: pd.DataFrame
    lesions: pd.DataFrame
    components: pd.DataFrame
    #: the rule asked for, or ``overlap`` where it needs SUV and no case had any (each case's own
    #: rule is the case table's ``criterion`` column)
    criterion: Criterion = Criterion.SUVMAX


def _where(row: pd.Series, index: int) -> tuple[str, str]:
    """How an error names a manifest row: its case id (or row number), and its model after a comma."""
    case = f"case {row['case_id']!r}" if "case_id" in row.index else f"manifest row {index}"
    for col in ("model", "network", "loss"):
        if col in row.index and _present(row[col]) and str(row[col]):
            return case, f", {col} {row[col]!r}"
    return case, ""


def evaluate_cohort_tables(
    manifest: pd.DataFrame | str | os.PathLike[str],
    pred_col: str = "pred",
    workers: int | None = None,
    progress: bool = True,
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
    label_col: str = "label",
    pet_col: str = "pet",
    label_value: int | None = None,
    connectivity: int = CONNECTIVITY,
    lesion_dice_reading: str = "union",
    panoptic: bool = False,
) -> CohortTables:
    """Evaluate every row of a manifest: per-case, per-lesion and per-predicted-component tables.

    Each row names NIfTI files in ``label_col`` (ground truth), ``pred_col`` (prediction on the
    label's grid) and, optionally, ``pet_col`` (SUV); spacing is read from the label's header. All
    other manifest columns (``case_id``, ``patient_id``, ``network``, ``loss``, ...) are carried into
    every output, except those whose names clash with a computed column (``tmtv_ml``, ...), which
    the computed value replaces. Every file is checked as it is read
    (:func:`pcatools.data.io.load_nifti`: masks 0/1, finite SUV) and must lie on the label's grid;
    a bad file is a :class:`~pcatools.data.errors.DataError` naming the case, the model and the file.

    Parameters
    ----------
    manifest : DataFrame or path to a CSV
    pred_col : str
        Column with the prediction paths.
    workers : int, optional
        Worker processes (``spawn``); ``None``: one per CPU (at most one per case); ``0`` or ``1``:
        in this process.
    progress : bool
        Show a tqdm progress bar.
    criterion, iou_threshold
        Detection criterion, as in :func:`evaluate_case`. Without a ``pet_col`` column (or with
        an empty cell) the SUV criteria fall back to ``"overlap"`` (warned once).
    label_value : int, optional
        Masks are integer label maps and this value is the lesion class (e.g. 1 of a multi-class
        prediction); ``None``: masks must hold 0 and 1 only.
    connectivity, lesion_dice_reading, panoptic
        Connectivity of the components (6, 18 or 26), the reading of eq. 16 (``"union"`` or
        ``"pair"``, :func:`~pcatools.metrics.overlap.lesion_dice`) and whether the case table gets
        :data:`PANOPTIC_COLUMNS`.

    Returns
    -------
    CohortTables
        ``cases``: one row per manifest row, manifest columns then :data:`CASE_COLUMNS`;
        ``lesions``: one row per ground-truth lesion, manifest columns then :data:`LESION_COLUMNS`
        and ``scenario``; ``components``: one row per predicted component, manifest columns then
        :data:`COMPONENT_COLUMNS`; ``criterion``: the rule used.
    """
    manifest = read_manifest(manifest)
    for col in (label_col, pred_col):
        if col not in manifest.columns:
            raise KeyError(
                f"manifest: expected a column {col!r} of NIfTI paths, found columns {list(manifest.columns)}"
            )
    rule = Criterion.parse(criterion)
    check_connectivity(connectivity)
    check_lesion_dice_reading(lesion_dice_reading)
    rules = (int(connectivity), lesion_dice_reading, bool(panoptic))
    rows = manifest.reset_index(drop=True)
    has_pet = pet_col in rows.columns
    # one job per (ground truth, PET): each case's files are read once for all of its models
    groups: dict[tuple[str, str, str | None], list[tuple[int, str, str]]] = {}
    for i, row in rows.iterrows():
        pet = str(row[pet_col]) if has_pet and _present(row[pet_col]) else None
        case, model = _where(row, int(cast(int, i)))
        groups.setdefault((case, str(row[label_col]), pet), []).append(
            (int(cast(int, i)), model, str(row[pred_col]))
        )
    jobs = [
        ((case, label, pet, [(m, p) for _, m, p in members], rule, iou_threshold, label_value, rules),
         [i for i, _, _ in members])
        for (case, label, pet), members in groups.items()
    ]  # fmt: skip
    if rule.needs_suv and any(args[2] is None for args, _ in jobs):
        warnings.warn(
            f"criterion {rule!r} needs PET (SUV) images; cases without column {pet_col!r} use 'overlap'",
            UserWarning,
            stacklevel=2,
        )
    n = len(rows)
    results: list[tuple[dict[str, Any], pd.DataFrame, pd.DataFrame] | None] = [None] * n
    n_workers = min(os.cpu_count() or 1, len(jobs)) if workers is None else min(workers, len(jobs))
    bar = tqdm(total=n, desc="evaluate", unit="case", disable=not progress)

    def store(indices: list[int], res: list[tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]]) -> None:
        for i, r in zip(indices, res, strict=True):
            results[i] = r
        bar.update(len(indices))

    try:
        if n_workers <= 1:
            for args, indices in jobs:
                store(indices, _evaluate_files(*args))
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=n_workers,
                mp_context=ctx,
                initializer=die_with_parent,
                initargs=(signal.SIGKILL, os.getpid()),
            ) as pool:
                futures = {pool.submit(_evaluate_files, *args): indices for args, indices in jobs}
                try:
                    for fut in as_completed(futures):
                        store(futures[fut], fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    finally:
        bar.close()

    case_columns = [*CASE_COLUMNS, *(PANOPTIC_COLUMNS if panoptic else ())]
    computed = set(case_columns) | set(LESION_COLUMNS) | set(COMPONENT_COLUMNS)
    carried = [c for c in rows.columns if c not in computed]
    case_records = []
    lesion_frames = []
    comp_frames = []
    readings: list[tuple[str, tuple[str, str, str]]] = []
    for i, res in enumerate(results):
        assert res is not None
        metrics, les, comps = res
        gt_read, pred_read = metrics.pop("_readings")
        model = _where(rows.iloc[i], i)[1].removeprefix(",")
        readings += [("ground truth", gt_read), (f"prediction{model}", pred_read)]
        extra = {c: rows.at[i, c] for c in carried}
        case_records.append({**extra, **metrics})
        les = les.assign(scenario=metrics["scenario"])
        for c in reversed(carried):
            les.insert(0, c, [extra[c]] * len(les))
            comps.insert(0, c, [extra[c]] * len(comps))
        lesion_frames.append(les)
        comp_frames.append(comps)

    if label_value is not None:
        _check_readings(label_value, readings)

    def frame(frames: list[pd.DataFrame], cols: list[str]) -> pd.DataFrame:
        return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)

    used = {r["criterion"] for r in case_records}
    return CohortTables(
        pd.DataFrame.from_records(case_records, columns=[*carried, *case_columns]),
        frame(lesion_frames, [*carried, *LESION_COLUMNS, "scenario"]),
        frame(comp_frames, [*carried, *COMPONENT_COLUMNS]),
        rule if rule in used or not used else Criterion.OVERLAP,
    )


def evaluate_cohort(
    manifest: pd.DataFrame | str | os.PathLike[str], *args: Any, **kwargs: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-case and per-lesion tables of a manifest: :func:`evaluate_cohort_tables` without the
    component table; every other argument is passed on to it (its parameters, and their defaults
    written once, there)."""
    t = evaluate_cohort_tables(manifest, *args, **kwargs)
    return t.cases, t.lesions
