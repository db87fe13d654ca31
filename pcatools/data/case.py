"""The ``Case``: one PET/CT scan on one grid, as every loader and the phantom return it."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np

from pcatools._atomic import atomic_path

Layout = Literal["nnunet", "autopet", "flat"]
"""A dataset layout of :func:`layout_paths`: ``nnunet``, ``autopet`` or ``flat``."""


@dataclass
class Case:
    """One PET/CT case on a single voxel grid.

    Arrays are ``(x, y, z)`` as nibabel returns them; ``affine`` maps voxel
    indices to RAS+ millimetres (NIfTI convention).

    Attributes
    ----------
    case_id : str
        Unique id of the scan (study).
    pet : ndarray, float32
        PET in SUVbw.
    ct : ndarray, float32
        CT in Hounsfield units, on the PET grid.
    label : ndarray of uint8 or None
        Lesion mask (0/1), or None where there is none.
    affine : ndarray (4, 4)
        Voxel -> RAS+ mm.
    patient_id : str
        Patient the scan belongs to (several scans may share one).
    meta : dict
        Free-form provenance (generator parameters, DICOM UIDs ...).
    """

    case_id: str
    pet: np.ndarray
    ct: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    patient_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.patient_id:
            self.patient_id = self.case_id
        if self.pet.shape != self.ct.shape or (self.label is not None and self.label.shape != self.pet.shape):
            shapes = {"pet": self.pet.shape, "ct": self.ct.shape}
            if self.label is not None:
                shapes["label"] = self.label.shape
            raise ValueError(
                f"Case {self.case_id!r}: PET, CT and label must share one grid, found shapes {shapes}"
            )

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing in mm, ``(x, y, z)``, from the affine's column norms."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in ml."""
        return float(np.prod(self.spacing)) / 1000.0

    def images(self) -> dict[str, nib.Nifti1Image]:
        """The case as NIfTI images: ``ct`` (float32 HU), ``pet`` (float32 SUV), ``label`` (uint8)."""
        out = {
            "ct": _nifti(self.ct.astype(np.float32), self.affine),
            "pet": _nifti(self.pet.astype(np.float32), self.affine),
        }
        if self.label is not None:
            out["label"] = _nifti(self.label.astype(np.uint8), self.affine)
        return out


def _nifti(array: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def save_nifti(img: nib.Nifti1Image, path: str | os.PathLike[str]) -> Path:
    """Save a NIfTI image atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def layout_paths(
    root: str | os.PathLike[str],
    case_id: str,
    layout: Layout = "nnunet",
    patient_id: str | None = None,
    split: Literal["Tr", "Ts"] = "Tr",
) -> dict[str, Path]:
    """Where a case's files live in each supported dataset layout.

    - ``nnunet``: ``imagesTr/<id>_0000.nii.gz`` (CT), ``imagesTr/<id>_0001.nii.gz`` (PET),
      ``labelsTr/<id>.nii.gz`` (``Ts`` for the test split).
    - ``autopet``: ``<patient>/<study>/CTres.nii.gz``, ``SUV.nii.gz``, ``SEG.nii.gz``;
      the study folder is ``case_id`` (autoPET uses the study date).
    - ``flat``: ``<id>_ct.nii.gz``, ``<id>_pet.nii.gz``, ``<id>_label.nii.gz`` in one folder.
    """
    root = Path(root)
    if layout == "nnunet":
        return {
            "ct": root / f"images{split}" / f"{case_id}_0000.nii.gz",
            "pet": root / f"images{split}" / f"{case_id}_0001.nii.gz",
            "label": root / f"labels{split}" / f"{case_id}.nii.gz",
        }
    if layout == "autopet":
        d = root / (patient_id or case_id) / case_id
        return {"ct": d / "CTres.nii.gz", "pet": d / "SUV.nii.gz", "label": d / "SEG.nii.gz"}
    if layout == "flat":
        return {k: root / f"{case_id}_{k}.nii.gz" for k in ("ct", "pet", "label")}
    raise ValueError(f"Unknown layout {layout!r}; expected one of 'nnunet', 'autopet', 'flat'")


def save_niftis(
    images: Mapping[str, nib.Nifti1Image], paths: Mapping[str, str | os.PathLike[str]]
) -> dict[str, Path]:
    """Save several NIfTI images (``images[key]`` to ``paths[key]``) so that a failure leaves none of them.

    Each image is first saved under a hidden staging name beside its final path; only when all are
    saved are they renamed into place. If saving fails, the staged files are removed; if a rename
    fails, the files already renamed in this call are removed too. A case whose CT was written but
    whose PET was not would otherwise look complete to a loader that globs ``imagesTr``.
    """
    finals = {key: Path(paths[key]) for key in images}
    token = uuid.uuid4().hex[:12]
    staged = {
        key: path.with_name(f".{path.name}.{token}.staged{''.join(path.suffixes)}")
        for key, path in finals.items()
    }
    renamed: list[Path] = []
    try:
        for key, img in images.items():
            save_nifti(img, staged[key])
        for key, path in finals.items():
            os.replace(staged[key], path)
            renamed.append(path)
    except BaseException:
        for path in [*staged.values(), *renamed]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    return finals


def write_case(
    case: Case, root: str | os.PathLike[str], layout: Layout = "nnunet", split: Literal["Tr", "Ts"] = "Tr"
) -> dict[str, Path]:
    """Write a case's NIfTI files in ``layout`` under ``root`` together (:func:`save_niftis`); return their paths."""
    paths = layout_paths(root, case.case_id, layout, case.patient_id, split)
    return save_niftis(case.images(), paths)
