"""Per-case and per-cohort evaluation: every metric of the paper (2.7) from one labelling per mask."""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pcatools.metrics.autopet import false_negative_volume, false_positive_volume
from pcatools.metrics.burden import gt_suv, lesion_suv
from pcatools.metrics.components import Components, components, scenario
from pcatools.metrics.detection import CRITERIA, NEEDS_SUV, Criterion, detect, f1_score
from pcatools.metrics.dmax import dmax_points
from pcatools.metrics.overlap import dice_from_counts, lesion_dice

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
    "pred_volume_ml",
    "suvmax",
    "criterion",
)
"""Keys of :func:`evaluate_case` (and metric columns of the per-case table), in order."""

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
)
"""Columns of :func:`lesion_table`, in order."""


def _evaluate(
    comp: Components,
    suv: np.ndarray | None,
    criterion: Criterion | str,
    iou_threshold: float,
    with_dmax: bool = True,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Case metrics and lesion table from a labelled case (internal: one labelling for both)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: expected one of {CRITERIA}, found {criterion!r}")
    vox = comp.voxel_ml
    n = comp.n_gt
    if suv is not None:
        stats = lesion_suv(comp, gt_suv(comp, suv))
        suvmax, suvmean, les_tla = stats.suvmax, stats.suvmean, stats.suv_sum * vox
        argmax: np.ndarray | None = stats.argmax
        total_tla = float(stats.suv_sum.sum()) * vox
        case_suvmax = float(suvmax.max()) if n else float("nan")
    else:
        suvmax = suvmean = les_tla = np.full(n, np.nan)
        argmax = None
        total_tla = case_suvmax = float("nan")
        if criterion in NEEDS_SUV:
            warnings.warn(
                f"criterion {criterion!r} needs a SUV image; without one, detection uses 'overlap' "
                "(Ahamed et al. criterion 1) and SUV-based values (tla, suvmax) are NaN",
                UserWarning,
                stacklevel=3,
            )
            criterion = "overlap"
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
        "pred_volume_ml": comp.pred_voxels * vox,
        "suvmax": case_suvmax,
        "criterion": det.criterion,
    }
    sizes = comp.gt_sizes[1:]
    lesions = pd.DataFrame(
        {
            "lesion_id": np.arange(1, n + 1, dtype=np.int64),
            "n_voxels": sizes.astype(np.int64),
            "volume_ml": sizes * vox,
            "suvmax": suvmax,
            "suvmean": suvmean,
            "tla": les_tla,
            "matched": comp.gt_overlapped()[1:],
            "dice": lesion_dice(comp),
            "detected": det.detected,
        },
        columns=list(LESION_COLUMNS),
    )
    return case, lesions


def evaluate_case(
    gt: np.ndarray,
    pred: np.ndarray,
    suv: np.ndarray | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
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

    Returns
    -------
    dict
        ``dice`` (eq. 13; 1.0 when both masks are empty), ``tp``, ``fp``, ``fn``, ``f1`` (eq. 14;
        1.0 when all three are 0), ``fpv_ml``, ``fnv_ml`` (autoPET), ``tmtv_ml`` (ground truth),
        ``tla`` (ground truth, SUV x ml), ``dmax_mm`` (ground truth, eq. 15; NaN without lesions),
        ``n_gt_lesions``, ``n_pred_lesions`` (18-connected components), ``scenario`` (``"none"``,
        ``"S"``, ``"M"``), ``pred_volume_ml``, ``suvmax`` (highest SUV in the ground truth),
        ``criterion``.

    Examples
    --------
    >>> g = np.zeros((10, 1, 1), np.uint8); g[0:2] = 1; g[5:7] = 1
    >>> p = np.zeros_like(g); p[1:3] = 1; p[9] = 1
    >>> suv = np.arange(10.0).reshape(10, 1, 1)
    >>> r = evaluate_case(g, p, suv, spacing=(10.0, 10.0, 10.0))
    >>> r["tp"], r["fp"], r["fn"], r["dice"], r["fnv_ml"], r["dmax_mm"]
    (1, 1, 1, 0.2857142857142857, 2.0, 60.0)
    """
    comp = components(gt, pred, spacing)
    return _evaluate(comp, suv, criterion, iou_threshold)[0]


def lesion_table(
    gt: np.ndarray,
    pred: np.ndarray,
    suv: np.ndarray | None,
    spacing: Sequence[float],
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
) -> pd.DataFrame:
    """One row per ground-truth lesion (18-connected component), paper 2.7.2.

    Columns: ``lesion_id`` (1..n, in C order of each lesion's first voxel), ``n_voxels``,
    ``volume_ml`` (MTV), ``suvmax``, ``suvmean``, ``tla`` (SUV x ml), ``matched`` (any voxel
    overlap with a predicted component), ``dice`` (eq. 16 against the union of the matched
    components, 0 when unmatched), ``detected`` (under ``criterion``). SUV columns are NaN
    without ``suv``.

    Examples
    --------
    >>> g = np.zeros((10, 1, 1), np.uint8); g[0:2] = 1; g[5:7] = 1
    >>> p = np.zeros_like(g); p[1:3] = 1
    >>> lesion_table(g, p, None, (10.0, 10.0, 10.0), criterion="overlap")[["lesion_id", "matched", "dice"]]
       lesion_id  matched  dice
    0          1     True   0.5
    1          2    False   0.0
    """
    comp = components(gt, pred, spacing)
    return _evaluate(comp, suv, criterion, iou_threshold, with_dmax=False)[1]


# --------------------------------------------------------------------------- cohort


def _load(
    path: str | os.PathLike[str], what: str
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what}: file not found: {p}")
    img = nib.load(str(p))
    data = np.asanyarray(img.dataobj)  # type: ignore[attr-defined]
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{what}: expected a 3-D image, found shape {data.shape} in {p}")
    zooms = img.header.get_zooms()[:3]  # type: ignore[attr-defined]
    affine = np.asarray(img.affine)  # type: ignore[attr-defined]
    return data, affine, (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def _evaluate_paths(
    label: str, pred: str, pet: str | None, criterion: str, iou_threshold: float
) -> tuple[dict[str, Any], pd.DataFrame]:
    gt_arr, gt_aff, spacing = _load(label, "label")
    pred_arr, pred_aff, _ = _load(pred, "pred")
    if pred_arr.shape != gt_arr.shape or not np.allclose(pred_aff, gt_aff, atol=1e-3):
        raise ValueError(
            f"pred {pred} is not on the grid of label {label}: shapes {pred_arr.shape} vs {gt_arr.shape}, "
            f"affines equal: {np.allclose(pred_aff, gt_aff, atol=1e-3)} (resample the prediction to the label grid)"
        )
    suv = None
    if pet is not None:
        suv_arr, pet_aff, _ = _load(pet, "pet")
        if suv_arr.shape != gt_arr.shape or not np.allclose(pet_aff, gt_aff, atol=1e-3):
            raise ValueError(
                f"pet {pet} is not on the grid of label {label}: shapes {suv_arr.shape} vs {gt_arr.shape}"
            )
        suv = suv_arr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the fallback is reported once by evaluate_cohort
        return _evaluate(components(gt_arr, pred_arr, spacing), suv, criterion, iou_threshold)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and str(value) != ""


def evaluate_cohort(
    manifest: pd.DataFrame | str | os.PathLike[str],
    pred_col: str = "pred",
    workers: int | None = None,
    progress: bool = True,
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
    label_col: str = "label",
    pet_col: str = "pet",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every row of a manifest: per-case and per-lesion tables.

    Each row names NIfTI files in ``label_col`` (ground truth), ``pred_col`` (prediction on the
    label's grid) and, optionally, ``pet_col`` (SUV); spacing is read from the label's header. All
    other manifest columns (``case_id``, ``patient_id``, ``network``, ``loss``, ...) are carried into
    both outputs, except those whose names clash with a computed column (``tmtv_ml``, ...), which
    the computed value replaces.

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

    Returns
    -------
    cases : DataFrame
        One row per manifest row, manifest columns then :data:`CASE_COLUMNS`.
    lesions : DataFrame
        One row per ground-truth lesion, manifest columns then :data:`LESION_COLUMNS` and
        ``scenario`` of the case.
    """
    if not isinstance(manifest, pd.DataFrame):
        manifest = pd.read_csv(manifest)
    for col in (label_col, pred_col):
        if col not in manifest.columns:
            raise KeyError(
                f"manifest: expected a column {col!r} of NIfTI paths, found columns {list(manifest.columns)}"
            )
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: expected one of {CRITERIA}, found {criterion!r}")
    rows = manifest.reset_index(drop=True)
    has_pet = pet_col in rows.columns
    jobs = []
    for _, row in rows.iterrows():
        pet = str(row[pet_col]) if has_pet and _present(row[pet_col]) else None
        jobs.append((str(row[label_col]), str(row[pred_col]), pet, criterion, iou_threshold))
    if criterion in NEEDS_SUV and any(j[2] is None for j in jobs):
        warnings.warn(
            f"criterion {criterion!r} needs PET (SUV) images; cases without column {pet_col!r} use 'overlap'",
            UserWarning,
            stacklevel=2,
        )
    n = len(jobs)
    results: list[tuple[dict[str, Any], pd.DataFrame] | None] = [None] * n
    n_workers = min(os.cpu_count() or 1, n) if workers is None else min(workers, n)
    bar = tqdm(total=n, desc="evaluate", unit="case", disable=not progress)
    try:
        if n_workers <= 1:
            for i, job in enumerate(jobs):
                results[i] = _evaluate_paths(*job)
                bar.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
                futures = {pool.submit(_evaluate_paths, *job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update()
    finally:
        bar.close()

    computed = set(CASE_COLUMNS) | set(LESION_COLUMNS)
    carried = [c for c in rows.columns if c not in computed]
    case_records = []
    lesion_frames = []
    for i, res in enumerate(results):
        assert res is not None
        case, les = res
        extra = {c: rows.at[i, c] for c in carried}
        case_records.append({**extra, **case})
        les = les.assign(scenario=case["scenario"])
        for c in reversed(carried):
            les.insert(0, c, [extra[c]] * len(les))
        lesion_frames.append(les)
    cases_df = pd.DataFrame.from_records(case_records, columns=[*carried, *CASE_COLUMNS])
    lesion_cols = [*carried, *LESION_COLUMNS, "scenario"]
    lesions_df = (
        pd.concat(lesion_frames, ignore_index=True)[lesion_cols]
        if lesion_frames
        else pd.DataFrame(columns=lesion_cols)
    )
    return cases_df, lesions_df
