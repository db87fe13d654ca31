"""A cohort (the synthetic phantom, or any dataset pcatools discovers) as an nnU-Net raw dataset.

:func:`export_dataset` writes ``OUT/DatasetNNN_Name/``::

    dataset.json        channel_names {"0": "CT", "1": "noNorm"}, labels {"background": 0, "lesion": 1},
                        numTraining, file_ending ".nii.gz", and a "pcatools" entry saying how it was made
    imagesTr/           <case>_0000.nii.gz (CT), <case>_0001.nii.gz (PET in SUV)
    labelsTr/           <case>.nii.gz (0 background, 1 lesion)
    imagesTs/, labelsTs/  the held-out test cases, same names (nnU-Net ignores labelsTs)
    splits_final.json   nnU-Net's five folds over imagesTr, patient-level and scenario-stratified
    manifest.csv        case_id, patient_id, ct, pet, label, split (train/test), fold, n_lesions, tmtv_ml

The phantom (:func:`pcatools.data.phantom.make_cohort`) already writes nnU-Net's file names
(``layout="nnunet"``); here it is generated in a staging folder and its files are moved into the
training or test folders. A discovered cohort (:func:`pcatools.data.discovery.discover_cases`, any layout
pcatools reads; CT and PET on one grid, as nnU-Net requires) is copied, or hard-linked.

Test set and folds come from :func:`pcatools.data.splits.make_splits` (the paper's 57/380 test
fraction by default): all scans of a patient stay in one set and lesion-free, single- and
multiple-lesion scans are spread evenly. nnU-Net's own folds are a random ``KFold`` over case ids,
which puts studies of one patient on both sides when a patient has several (autoPET does);
:func:`pcatools.nnunet.plan_and_preprocess` therefore copies ``splits_final.json`` to the
preprocessed folder, where nnU-Net reads its folds from.

PET normalisation. nnU-Net reads each channel name as the intensity normalisation to apply: "CT"
clips to the foreground's 0.5-99.5 percentiles and z-scores with the dataset's foreground
statistics; any name it does not know ("PET" included) means a z-score per image. The PET is
written as "noNorm" by default: SUV is already normalised to injected dose and body weight, so an
SUV of 10 means the same uptake in every scan, and the lesions the paper counts are defined on
absolute SUV (the SUVmax detection rule); a per-image z-score would divide each scan by its own
spread, which grows with its lesion burden, so the same lesion would reach the network at
different values in different scans. This is also what pcatools' own MONAI pipeline feeds its
networks (PET in SUV, untouched), so nnU-Net and the pcatools models see the same PET.
``pet_normalization="zscore"`` gives nnU-Net's default instead.

The dataset folder is written whole or not at all (staged beside it and renamed into place); an
earlier pcatools export of the same name is replaced, any other folder is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pcatools._atomic import write_text_atomic

__all__ = ["CHANNEL_NAMES", "LABELS", "FILE_ENDING", "dataset_name", "export_dataset"]

CHANNEL_NAMES = {"0": "CT", "1": "noNorm"}
"""nnU-Net channel names (= normalisation schemes): CT, and PET in SUV left as it is."""
LABELS = {"background": 0, "lesion": 1}
"""nnU-Net label names and values of the exported dataset."""
FILE_ENDING = ".nii.gz"
"""File ending of the exported images and labels."""
PET_NORMALIZATIONS = ("noNorm", "zscore")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def dataset_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name ``DatasetNNN_Name``.

    Examples
    --------
    >>> dataset_name(501, "PSMA")
    'Dataset501_PSMA'
    """
    if int(dataset_id) != dataset_id or not 1 <= dataset_id <= 999:
        raise ValueError(
            f"dataset_id: expected an integer in 1..999 (nnU-Net uses three digits), found {dataset_id!r}"
        )
    if not _NAME.match(name):
        raise ValueError(f"name: expected letters, digits, '_' or '-' (e.g. PSMA), found {name!r}")
    return f"Dataset{int(dataset_id):03d}_{name}"


def _is_pcatools_export(folder: Path) -> bool:
    try:
        return "pcatools" in json.loads((folder / "dataset.json").read_text())
    except (OSError, ValueError):
        return False


def _folds(splits: Any) -> list[dict[str, list[str]]]:
    """nnU-Net's ``splits_final.json`` content from a :func:`make_splits` table with a ``fold`` column."""
    train = splits[splits["fold"] >= 0]
    return [
        {
            "train": sorted(train.loc[train["fold"] != k, "case_id"].astype(str)),
            "val": sorted(train.loc[train["fold"] == k, "case_id"].astype(str)),
        }
        for k in sorted(int(f) for f in set(train["fold"]))
    ]


def export_dataset(
    out: str | os.PathLike[str],
    n_cases: int | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    spacing: float = 4.0,
    dataset_id: int = 501,
    name: str = "PSMA",
    seed: int = 0,
    test_fraction: float | None = None,
    n_folds: int = 5,
    pet_normalization: str = "noNorm",
    link: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write a phantom cohort of ``n_cases`` (or the cohort in ``data_dir``) as nnU-Net raw dataset under ``out``.

    Parameters
    ----------
    out : path-like
        nnU-Net's raw folder (``nnUNet_raw``); the dataset goes to ``out/DatasetNNN_Name``.
    n_cases : int, optional
        Phantom cases to generate (:func:`pcatools.data.phantom.make_cohort`, seed ``seed``).
    data_dir : path-like, optional
        A dataset pcatools discovers instead (nnU-Net, autoPET or flat layout, with labels).
    spacing : float
        Phantom voxel size in mm (isotropic).
    dataset_id, name : int, str
        nnU-Net's dataset id (three digits) and name.
    seed : int
        Phantom seed and split seed.
    test_fraction : float, optional
        Share of the scans held out in ``imagesTs``/``labelsTs`` (default: the paper's 57/380).
    n_folds : int
        Cross-validation folds over the training scans (nnU-Net's 5; fewer when there are fewer patients).
    pet_normalization : {"noNorm", "zscore"}
        Channel 1's name in ``dataset.json`` (see the module docstring).
    link : bool
        Hard-link the files of ``data_dir`` instead of copying them (same file system only).
    workers, progress
        Phantom worker processes (``None``: one per CPU) and progress bars.

    Returns
    -------
    Path
        The dataset folder.
    """
    import pandas as pd  # deferred: start-up (see tests/test_imports.py)

    from pcatools.data.case import layout_paths  # deferred: start-up (see tests/test_imports.py)
    from pcatools.data.manifest import write_manifest  # deferred: start-up (see tests/test_imports.py)
    from pcatools.data.splits import (  # deferred: start-up (see tests/test_imports.py)
        PAPER_FRACTIONS,
        make_splits,
    )

    if (n_cases is None) == (data_dir is None):
        raise ValueError(
            "export_dataset: give either n_cases (a phantom cohort) or data_dir (a dataset), not both"
        )
    if pet_normalization not in PET_NORMALIZATIONS:
        raise ValueError(
            f"pet_normalization: expected one of {PET_NORMALIZATIONS}, found {pet_normalization!r}"
        )
    tf = PAPER_FRACTIONS[2] if test_fraction is None else float(test_fraction)
    if not 0.0 <= tf < 1.0:
        raise ValueError(f"test_fraction: expected a number in [0, 1), found {test_fraction!r}")
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"n_folds: expected an integer >= 2, found {n_folds!r}")
    folder_name = dataset_name(dataset_id, name)
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    dest = root / folder_name
    taken = [p.name for p in root.glob(f"Dataset{int(dataset_id):03d}_*") if p.name != folder_name]
    if taken:
        raise FileExistsError(
            f"{root}: dataset id {dataset_id} is already used by {taken[0]}; choose another --dataset-id"
        )
    if dest.exists() and not _is_pcatools_export(dest):
        raise FileExistsError(f"{dest} exists and is not a pcatools export; left as it is")

    stage = root / f".{folder_name}.{uuid.uuid4().hex[:8]}.staging"
    try:
        stage.mkdir()
        if n_cases is not None:
            from pcatools.data.phantom import make_cohort  # deferred: start-up (see tests/test_imports.py)

            manifest = make_cohort(
                n_cases, stage / "cohort", seed=seed, layout="nnunet", spacing=(spacing,) * 3,
                workers=workers, progress=progress,
            )  # fmt: skip
            source: dict[str, Any] = {
                "source": "phantom",
                "n_cases": int(n_cases),
                "spacing_mm": float(spacing),
            }
            place: Callable[[str, Path], object] = os.replace
        else:
            from pcatools.data.discovery import (  # deferred: start-up (see tests/test_imports.py)
                discover_cases,
            )

            manifest = discover_cases(data_dir, progress=progress)  # type: ignore[arg-type]
            source = {"source": str(Path(data_dir).resolve())}  # type: ignore[arg-type]
            place = os.link if link else shutil.copy2
        folds = min(int(n_folds), int(manifest["patient_id"].nunique()))
        while True:  # as many folds as there are training patients, up to n_folds
            try:
                splits = make_splits(manifest, fractions=(1.0 - tf, 0.0, tf), seed=seed, n_folds=folds)
                break
            except ValueError as err:
                if "non-test patients" not in str(err) or folds <= 2:
                    raise ValueError(
                        f"export_dataset: {len(manifest)} case(s) leave fewer than 2 training patients "
                        "for the folds; use more cases or a lower test_fraction"
                    ) from None
                folds -= 1
        splits["split"] = ["test" if f < 0 else "train" for f in splits["fold"]]
        if not (splits["split"] == "train").any():
            raise ValueError("export_dataset: no training case left; lower test_fraction or add cases")

        ds = stage / folder_name
        rows: list[dict[str, Any]] = []
        for row in splits.to_dict("records"):
            paths = layout_paths(
                ds, str(row["case_id"]), "nnunet", split="Ts" if row["split"] == "test" else "Tr"
            )
            for role, path in paths.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                place(row[role], path)
            rows.append({str(k): v for k, v in row.items()} | {k: str(v) for k, v in paths.items()})
        table = pd.DataFrame(rows)
        n_train = int((table["split"] == "train").sum())
        info = {
            "channel_names": {"0": CHANNEL_NAMES["0"], "1": pet_normalization},
            "labels": dict(LABELS),
            "numTraining": n_train,
            "file_ending": FILE_ENDING,
            "name": name,
            "description": "PSMA PET/CT lesion segmentation; channel 0 CT (HU), channel 1 PET (SUV)",
            "pcatools": {
                **source, "seed": int(seed), "test_cases": int(len(table) - n_train), "folds": folds,
                "test_fraction": tf, "pet_normalization": pet_normalization,
            },
        }  # fmt: skip
        write_text_atomic(ds / "dataset.json", json.dumps(info, indent=2))
        write_text_atomic(ds / "splits_final.json", json.dumps(_folds(table), indent=2))
        keep = ["case_id", "patient_id", "ct", "pet", "label", "split", "fold", "n_lesions", "tmtv_ml"]
        write_manifest(table[keep], ds / "manifest.csv", root=ds)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(ds, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return dest
