"""Losses of the study (paper section 2.6): Dice (eq. 1), Focal (eq. 2), Dice Focal (eq. 3),
the L1 weights (eq. 4-10) and the L1-weighted Dice Focal Loss (eq. 11-12); the voxel weights of
any loss that declares them (:func:`loss_weights`, drawn in Figure 1 and napari); the loss registry
(:mod:`pcatools.loss_registry`: each loss declared once, your own by :func:`register_loss`,
``NAME=SPEC`` or the ``pcatools.losses`` entry-point group) and the check every loss passes
before training (:func:`check_loss`).

Conventions (MONAI mean vs the paper's sums, paper vs public-code binning, non-integer
``1 / Gamma``, batch vs per-sample histogram) are documented in ``docs/losses.md``.
"""

from pcatools.loss_registry import LossError, loss_names, register_loss, unregister_loss
from pcatools.losses.check import check_loss
from pcatools.losses.curves import CURVE_LOSSES, loss_vs_probability
from pcatools.losses.dice import DiceLoss, dice_loss, weighted_dice_loss
from pcatools.losses.dice_focal import DiceFocalLoss, dice_focal_loss
from pcatools.losses.factory import LOSS_NAMES, build_loss
from pcatools.losses.focal import focal_loss
from pcatools.losses.l1_weights import (
    DEFAULT_TOL,
    PAPER_BIN_WIDTH,
    REFERENCE_CODE_BIN_WIDTH,
    L1Binning,
    assign_bins,
    bin_centres,
    bin_counts,
    bin_density,
    bin_indicator,
    bin_weights,
    effective_bin_widths,
    l1_binning,
    l1_norm,
    l1_weights,
    number_of_bins,
    reference_code_bins,
)
from pcatools.losses.l1dfl import L1DiceFocalLoss, l1_dice_focal_loss
from pcatools.losses.reference_code import ReferenceCodeL1DFL
from pcatools.losses.voxel_weights import loss_weights, weighted_loss, weighted_losses

__all__ = [
    "CURVE_LOSSES",
    "DEFAULT_TOL",
    "LOSS_NAMES",
    "PAPER_BIN_WIDTH",
    "REFERENCE_CODE_BIN_WIDTH",
    "DiceFocalLoss",
    "LossError",
    "DiceLoss",
    "L1Binning",
    "L1DiceFocalLoss",
    "ReferenceCodeL1DFL",
    "assign_bins",
    "bin_centres",
    "bin_counts",
    "bin_density",
    "bin_indicator",
    "bin_weights",
    "build_loss",
    "check_loss",
    "dice_focal_loss",
    "dice_loss",
    "effective_bin_widths",
    "focal_loss",
    "l1_binning",
    "l1_dice_focal_loss",
    "l1_norm",
    "l1_weights",
    "loss_names",
    "loss_weights",
    "loss_vs_probability",
    "number_of_bins",
    "reference_code_bins",
    "register_loss",
    "unregister_loss",
    "weighted_dice_loss",
    "weighted_loss",
    "weighted_losses",
]
