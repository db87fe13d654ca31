"""The paper's losses inside nnU-Net (nnunetv2): trainers, their installation, datasets and the pipeline.

- :mod:`~pcatools.nnunet.trainers`: ``nnUNetTrainerL1DFL`` and ``nnUNetTrainerDiceFocal``, nnU-Net's
  ``nnUNetTrainer`` with only ``_build_loss`` replaced (the baseline is ``nnUNetTrainer`` itself);
- :mod:`~pcatools.nnunet.install`: the module that lets ``nnUNetv2_train -tr nnUNetTrainerL1DFL``
  find them, written into nnU-Net's package and removed again;
- :mod:`~pcatools.nnunet.dataset`: a phantom or discovered cohort as an nnU-Net raw dataset;
- :mod:`~pcatools.nnunet.run`: plan and preprocess, train and predict through nnU-Net's API;
- :mod:`~pcatools.nnunet.paths`: nnU-Net's three folders, set for a while (:func:`nnunet_paths`);
- :mod:`~pcatools.nnunet.names`: each loss's trainer class name (:func:`trainer_names`, :data:`STOCK`).

Needs the ``nnunet`` extra (``pip install 'pcatools[nnunet]'``, the nnU-Net version it was tested
with) for everything but :func:`export_dataset`; the trainer classes are imported on first use, so
importing this package does not import nnU-Net. ``LOSSES`` (loss name -> trainer class name) and
every registered loss's ``nnUNetTrainer<NAME>`` are read from the loss registry on each use.
See ``docs/nnunet.md``.
"""

from __future__ import annotations

from typing import Any

from pcatools._lazy import lazy_exports
from pcatools.nnunet.dataset import export_dataset
from pcatools.nnunet.install import install_trainers, uninstall_trainers
from pcatools.nnunet.names import STOCK, trainer_names
from pcatools.nnunet.paths import nnunet_paths
from pcatools.nnunet.run import plan_and_preprocess, predict, train, trainer_class

__all__ = [
    "LOSSES",
    "STOCK",
    "export_dataset",
    "install_trainers",
    "nnUNetTrainerDiceFocal",
    "nnUNetTrainerL1DFL",
    "nnunet_paths",
    "plan_and_preprocess",
    "predict",
    "train",
    "trainer_class",
    "trainer_names",
    "uninstall_trainers",
]


def _from_the_registry(name: str) -> Any:
    """``LOSSES`` and every registered loss's ``nnUNetTrainer<NAME>``, read anew (a loss may be registered later)."""
    if name == "LOSSES":  # loss name -> trainer class name
        return trainer_names()
    if name.startswith("nnUNetTrainer"):
        from pcatools.nnunet import trainers  # deferred: start-up (see tests/test_imports.py)

        return getattr(trainers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__getattr__, __dir__ = lazy_exports(__name__, {}, computed=_from_the_registry)
