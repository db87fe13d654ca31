# Written by `pcatools nnunet install-trainers`; remove with `pcatools nnunet install-trainers --uninstall`.
"""pcatools' nnU-Net trainers, importable where nnU-Net looks trainers up by class name (``-tr NAME``)."""

from pcatools.nnunet.trainers import nnUNetTrainerDiceFocal, nnUNetTrainerL1DFL

__all__ = ["nnUNetTrainerDiceFocal", "nnUNetTrainerL1DFL"]
