"""A case on screen: its files found in any layout, its geometry in millimetres, its masks checked.

Geometry: every layer gets ``scale`` = the case's voxel spacing (mm) and ``translate`` = the
affine's origin, so napari's world coordinates are physical millimetres and all layers overlay.
The affine's rotation / axis flips are not applied (array axes are shown as stored, as
everywhere in pcatools).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from pcatools.data.case import Case, layout_paths
from pcatools.data.io import load_case

__all__ = ["lesion_slice", "load_target", "physical_kwargs", "resolve_case_paths", "slice_mm"]


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


def lesion_slice(case: Case, axis: int = 1) -> int:
    """Index along ``axis`` of the slice with the most lesion voxels; the middle one without lesions.

    The default view of :func:`~pcatools.viewer.window.view_case` and
    :func:`~pcatools.viewer.static.static_layers_figure`, so that both open
    on a lesion.

    Examples
    --------
    >>> import numpy as np
    >>> from pcatools.data.case import Case
    >>> lab = np.zeros((4, 6, 4), np.uint8); lab[1, 4, 1:3] = 1
    >>> pet = np.ones((4, 6, 4), np.float32)
    >>> lesion_slice(Case("c", pet, pet, lab, np.eye(4))), lesion_slice(Case("c", pet, pet, None, np.eye(4)))
    (4, 3)
    """
    case = _check_case(case)
    if axis not in (0, 1, 2):
        raise ValueError(f"lesion_slice: expected axis 0, 1 or 2, found {axis!r}")
    if case.label is None:
        return case.pet.shape[axis] // 2
    label = _as_mask_u8(case.label, case.pet.shape, "case.label")
    per_slice = label.sum(axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(per_slice)) if per_slice.any() else case.pet.shape[axis] // 2


def slice_mm(case: Case, axis: int, index: float) -> float:
    """World position (mm, napari's coordinates) of slice ``index`` along ``axis``: origin + index * spacing."""
    geo = physical_kwargs(case)
    return geo["translate"][axis] + index * geo["scale"][axis]


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
    """A :class:`~pcatools.data.case.Case` from a Case, a ``{ct, pet, label}`` mapping / manifest row, or a folder / id."""
    if isinstance(target, Case):
        return target
    if isinstance(target, Mapping | pd.Series):
        return load_case(target)
    if isinstance(target, str | os.PathLike):
        paths = resolve_case_paths(target, data_dir)
        return load_case({k: str(v) for k, v in paths.items()})
    raise TypeError(
        f"expected a Case, a mapping of paths, a folder or a case id, found {type(target).__name__}"
    )


def _nifti_dataobj(path: str | os.PathLike[str]) -> Any:
    img: Any = nib.load(str(path))
    return img.dataobj


def _load_mask(mask: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    if isinstance(mask, str | os.PathLike):
        mask = np.asanyarray(_nifti_dataobj(mask))
    return _as_mask_u8(mask, shape, what)
