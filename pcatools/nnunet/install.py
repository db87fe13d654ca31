"""Make ``nnUNetv2_train ... -tr nnUNetTrainerL1DFL`` find the pcatools trainers, and undo it.

nnU-Net resolves ``-tr NAME`` (and a trained model's trainer at prediction) with
``recursive_find_python_class`` over its own package ``nnunetv2.training.nnUNetTrainer``: it imports
the modules of that folder first, then those of its subfolders, and takes the first module with an
attribute ``NAME``. :func:`install_trainers` writes one module there,
``nnunetv2/training/nnUNetTrainer/pcatools_l1dfl.py`` (a copy of ``pcatools/nnunet/shim/pcatools_l1dfl.py``),
which imports ``nnUNetTrainerL1DFL`` and ``nnUNetTrainerDiceFocal`` from :mod:`pcatools.nnunet.trainers`.

Why beside ``nnUNetTrainer.py`` and not in ``variants/``: the lookup reaches ``variants/`` only after
``primus/``, whose trainers import ``timm`` and so ``torchvision``; with the CPU build of torch,
the torchvision wheel pip installs (a CUDA build) fails to load (``operator torchvision::nms does
not exist``) and the lookup stops there. A module in the top folder is found before any subfolder
is imported.

The module's first line is :data:`MARKER`. Installing is idempotent (an identical file is left
alone, an older pcatools shim is updated); :func:`uninstall_trainers` removes the file and the
bytecode Python compiled from it, and nothing else. A file of that name without the marker is
someone else's: both refuse to touch it.

Without writing into nnU-Net: ``pcatools nnunet train`` instantiates the trainer class itself, and
nnU-Net also searches the folders in ``nnUNet_extTrainer`` (after its own package, so only where
that search does not stop at ``primus/``): ``export nnUNet_extTrainer=$(python -c "import
pcatools.nnunet.install as i; print(i.SHIM_DIR)")``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pcatools._atomic import write_text_atomic

__all__ = [
    "MARKER",
    "SHIM_DIR",
    "SHIM_NAME",
    "Change",
    "install_trainers",
    "nnunet_trainer_dir",
    "uninstall_trainers",
]

SHIM_DIR = Path(__file__).resolve().with_name("shim")
"""The folder holding the shim module (also usable as ``nnUNet_extTrainer``)."""
SHIM_NAME = "pcatools_l1dfl.py"
"""File name of the shim module written into nnU-Net's trainer folder."""
MARKER = "# Written by `pcatools nnunet install-trainers`"
"""First line of every shim pcatools writes: what :func:`uninstall_trainers` may remove."""


@dataclass(frozen=True)
class Change:
    """One file install or uninstall looked at: ``action`` in written, updated, unchanged, removed, absent."""

    action: str
    path: Path

    def __str__(self) -> str:
        return f"{self.action:<9} {self.path}"


def nnunet_trainer_dir() -> Path:
    """``nnunetv2/training/nnUNetTrainer`` of the installed nnU-Net (the folder its trainer lookup starts in)."""
    try:
        import nnunetv2  # deferred: start-up (see tests/test_imports.py)
    except ImportError as err:
        raise ImportError(
            f"nnU-Net (nnunetv2) is not installed: pip install 'pcatools[nnunet]' ({err})"
        ) from None
    return Path(nnunetv2.__path__[0]) / "training" / "nnUNetTrainer"


def _target(target: str | os.PathLike[str] | None) -> Path:
    folder = nnunet_trainer_dir() if target is None else Path(target)
    if not folder.is_dir():
        raise FileNotFoundError(f"trainer folder {folder}: expected an existing directory")
    return folder


def _is_ours(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.readline().startswith(MARKER)


def install_trainers(target: str | os.PathLike[str] | None = None) -> list[Change]:
    """Write the shim module into nnU-Net's trainer folder (or ``target``); returns what changed.

    Raises
    ------
    FileExistsError
        ``pcatools_l1dfl.py`` exists there and was not written by pcatools.
    FileNotFoundError
        ``target`` is not a directory.
    """
    dest = _target(target) / SHIM_NAME
    text = (SHIM_DIR / SHIM_NAME).read_text(encoding="utf-8")
    if dest.exists():
        if not _is_ours(dest):
            raise FileExistsError(f"{dest} exists and was not written by pcatools; left as it is")
        if dest.read_text(encoding="utf-8") == text:
            return [Change("unchanged", dest)]
        write_text_atomic(dest, text)
        return [Change("updated", dest)]
    write_text_atomic(dest, text)
    return [Change("written", dest)]


def uninstall_trainers(target: str | os.PathLike[str] | None = None) -> list[Change]:
    """Remove the shim module (and its compiled ``__pycache__`` bytecode) that :func:`install_trainers` wrote.

    Raises
    ------
    FileExistsError
        ``pcatools_l1dfl.py`` exists there and was not written by pcatools.
    """
    folder = _target(target)
    dest = folder / SHIM_NAME
    if not dest.exists():
        return [Change("absent", dest)]
    if not _is_ours(dest):
        raise FileExistsError(f"{dest} was not written by pcatools; not removed")
    dest.unlink()
    changes = [Change("removed", dest)]
    for pyc in sorted((folder / "__pycache__").glob(f"{dest.stem}.*.pyc")):
        pyc.unlink()
        changes.append(Change("removed", pyc))
    return changes
