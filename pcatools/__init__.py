"""pcatools: reference toolkit for loss-function research in PSMA PET/CT lesion segmentation.

The common entry points are offered here, e.g. ``from pcatools import run_study, evaluate_folders``;
each is imported from its module on first use (module ``__getattr__``), so that ``import pcatools``
stays fast and does not import torch, MONAI or napari. The API reference (``docs/reference/``, the
documentation site built by ``mkdocs``) lists the whole public API by module.
"""

from __future__ import annotations

from pcatools._lazy import lazy_exports

__version__ = "0.1.0"
"""The package's version (also ``pyproject.toml``'s and ``pcatools --version``'s)."""

#: entry point -> the module that defines it
_LAZY = {
    # data in
    "dicom_pet_to_suv": "pcatools.data.dicom.suv",
    "convert_study": "pcatools.data.dicom",
    "load_case": "pcatools.data.io",
    "discover_cases": "pcatools.data.discovery",
    "case_files": "pcatools.data.folders",
    "make_splits": "pcatools.data.splits",
    "make_case": "pcatools.data.phantom",
    "make_cohort": "pcatools.data.phantom",
    # losses, networks, training, inference
    "L1DiceFocalLoss": "pcatools.losses",
    "build_loss": "pcatools.losses",
    "build_model": "pcatools.models",
    "train": "pcatools.training",
    "predict_manifest": "pcatools.inference",
    # evaluation and statistics
    "evaluate_case": "pcatools.metrics",
    "lesion_table": "pcatools.metrics",
    "evaluate_cohort": "pcatools.metrics",
    "evaluate_folders": "pcatools.evaluation",
    "table1": "pcatools.stats",
    # the study, the viewer
    "run_study": "pcatools.study",
    "load_study": "pcatools.analysis",
    "ensure_study": "pcatools.study",
    "view_case": "pcatools.viewer",
}

__all__ = ["__version__", *_LAZY]


# entry points of _LAZY imported on first use (PEP 562); dir() lists them, not this file's helpers
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
