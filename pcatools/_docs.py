"""One description per parameter, shared by a function's docstring and its command-line help.

A docstring names a shared description as ``{{name}}``; :func:`fill_doc` puts the text in, so that
``help(evaluate_folders)`` and ``pcatools evaluate --help`` say the same words from one place
(nilearn's ``docdict`` pattern).

Examples
--------
>>> @fill_doc({"seed": "Seed of the bootstrap."})
... def f(seed: int = 0) -> None:
...     '''Parameters: seed -- {{seed}}'''
>>> f.__doc__
'Parameters: seed -- Seed of the bootstrap.'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["EVALUATE_PARAMETERS", "fill_doc"]

F = TypeVar("F", bound=Callable[..., object])

EVALUATE_PARAMETERS: dict[str, str] = {
    "gt": "Ground-truth masks: <case_id>.nii.gz files (a plain folder, nnU-Net labelsTs/) or a dataset "
    "root (nnU-Net, autoPET, flat).",
    "pred": "one model's predictions, <case_id>.nii.gz files (also _pred / _seg suffixes and MONAI's "
    "<id>/<id>_seg.nii.gz) on the ground truth's grid. A NAME network/loss (e.g. segresnet/l1dfl) fills "
    "both columns; a bare DIR is named after its folder.",
    "suv": "PET in SUV on the same grid (<id>_0001.nii.gz / <id>.nii.gz files or a dataset root).",
    "reference": "Model whose DSC the P values compare with every other (default: the first).",
    "criterion": "Detection rule: suvmax (the paper), suvmax_iou, overlap, iou; without SUV images it "
    "falls back to overlap.",
    "label": "Lesion class N of integer label maps: a file holding N (or several classes) gives its class N, "
    "a file holding only 0 and 1 is a 0/1 mask; a folder mixing both, or a file holding 0 and one other "
    "value, is refused (default: masks must hold 0 and 1 only).",
    "allow_missing": "Evaluate the cases every folder has and list those left out, instead of refusing.",
    "empty_cases": "How a case without ground-truth lesion counts in Table 1: autopet (the challenge's rule: in "
    "FP and FPV only, not in DSC, F1, TP, FN or the P values), count (in every column: DSC and F1 are 1 when "
    "nothing is predicted, else 0), exclude (in no column).",
    "connectivity": "Connectivity of lesions and predicted components: 6, 18 (autoPET's official) or 26 "
    "(panoptica's).",
    "lesion_dice": "Lesion DSC (eq. 16): union (each lesion against the union of its matched components) or "
    "pair (each matched lesion-component pair alone, the lesion reporting its best pair).",
    "panoptic": "Also compute panoptic quality per case (RQ, SQ, PQ; lesions matched at IoU > 0.5) into "
    "cases.csv.",
    "patients": "CSV with columns case_id, patient_id naming each case's patient (default: the autoPET "
    "patient folder, a patients.csv at the dataset root, or the case id).",
    "workers": "Worker processes (default: one per CPU).",
    "progress": "Show a progress bar.",
    "seed": "Seed of the bootstrap confidence intervals.",
}
"""One description per option of :func:`pcatools.evaluation.evaluate_folders`, shared with
``pcatools evaluate --help``; here, beside :func:`fill_doc`, so the command line reads it without
importing the evaluation (pandas, nibabel) at start-up."""


def fill_doc(descriptions: Mapping[str, str]) -> Callable[[F], F]:
    """Replace each ``{{name}}`` in the decorated function's docstring with ``descriptions[name]``.

    A name missing from ``descriptions`` raises ``KeyError`` at import, so that a docstring never
    shows a bare placeholder.
    """

    def decorate(func: F) -> F:
        if func.__doc__:
            func.__doc__ = re.sub(r"\{\{(\w+)\}\}", lambda m: descriptions[m.group(1)], func.__doc__)
        return func

    return decorate
