"""Data in: DICOM -> SUV, NIfTI loading and layouts, the synthetic phantom, splits and MONAI transforms.

Names are imported lazily so that ``import pcatools.data`` (and so any of its light modules, such as
``pcatools.data.errors``) stays fast: ``pcatools.data.case`` alone loads nibabel (about 1 s).
"""

from __future__ import annotations

from pcatools._lazy import lazy_exports

_LAZY = {
    "Case": "pcatools.data.case",
    "layout_paths": "pcatools.data.case",
    "save_nifti": "pcatools.data.case",
    "write_case": "pcatools.data.case",
    "dicom_pet_to_suv": "pcatools.data.dicom.suv",
    "suvbw_factor": "pcatools.data.dicom.suv",
    "SUVConversionError": "pcatools.data.dicom.pet_headers",
    "read_dicom_series": "pcatools.data.dicom.series",
    "convert_study": "pcatools.data.dicom.convert",
    "DicomSeriesError": "pcatools.data.dicom.series",
    "dicom_ct_to_hu": "pcatools.data.dicom.ct",
    "DataError": "pcatools.data.errors",
    "load_nifti": "pcatools.data.io",
    "load_case": "pcatools.data.io",
    "discover_cases": "pcatools.data.discovery",
    "read_manifest": "pcatools.data.manifest",
    "write_manifest": "pcatools.data.manifest",
    "case_files": "pcatools.data.folders",
    "make_splits": "pcatools.data.splits",
    "train_transforms": "pcatools.data.transforms",
    "eval_transforms": "pcatools.data.transforms",
    "invert_to_original": "pcatools.data.transforms",
    "make_case": "pcatools.data.phantom",
    "make_cohort": "pcatools.data.phantom",
}

__all__ = [*_LAZY]


# the names of _LAZY imported on first use (PEP 562)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
