"""nnU-Net trainers that train with a registered loss: ``nnUNetTrainerL1DFL``, ``nnUNetTrainerDiceFocal``, ...

One trainer per loss of the registry (:mod:`pcatools.loss_registry`), made from it on first use
(:func:`trainer_for`), named by the loss's ``nnunet_trainer`` (``nnUNetTrainer_<name>`` for a loss
without one, e.g. your own ``NAME=SPEC``). Each subclasses nnU-Net's ``nnUNetTrainer`` and replaces
only ``_build_loss``, so planning, preprocessing, network, augmentation, optimiser, schedule and
inference stay nnU-Net's own:

* ``nnUNetTrainerL1DFL``: :class:`pcatools.losses.L1DiceFocalLoss` (L1DFL, eq. 12);
* ``nnUNetTrainerDiceFocal``: :class:`pcatools.losses.DiceFocalLoss` (DFL, eq. 3, softmax focal);
* ``nnUNetTrainerDice``, ``nnUNetTrainerFocal`` and every registered loss likewise;
* the Dice+CE baseline is nnU-Net's ``nnUNetTrainer`` itself (``DC_and_CE_loss``), unchanged.

The loss is built as ``build_loss`` builds it (the class's own defaults), with the settings below
passed only to a loss that takes them: the trainer, ``build_loss`` and the class build the same
loss for every convention (tested).

Deep supervision. ``_build_loss`` calls nnU-Net's own ``nnUNetTrainer._build_loss`` and puts the
pcatools loss into the ``DeepSupervisionWrapper`` it returns, so the scale weights are exactly
nnU-Net's (``1 / 2^i``, the lowest scale zeroed, or ``1e-6`` under DDP, normalised to sum 1)
rather than a copy that could drift from the installed version. Each scale's loss is computed on
that scale alone: L1DFL's histogram of ``Delta`` is taken over each output separately.

Tensors. nnU-Net hands the loss logits ``(b, c, *spatial)`` and integer labels ``(b, 1, *spatial)``
(float dtype at the downsampled scales), which is what both pcatools losses take: they apply the
softmax over the ``c`` channels and one-hot the labels themselves, background included (the
paper's definition), so nothing is converted here. Both disable autocast and compute in float32.

Settings. nnU-Net instantiates a trainer from its class name alone (``-tr NAME``), so the loss
settings are class attributes, each overridden by an environment variable where it is set:

=====================  ==============================  ==================================
class attribute        environment variable            default
=====================  ==============================  ==================================
``loss_bin_width``     ``PCATOOLS_NNUNET_BIN_WIDTH``   ``None``: 0.1 (paper), 0.05 (reference code)
``loss_gamma``         ``PCATOOLS_NNUNET_GAMMA``       2.0 (focal exponent, losses with a ``gamma``)
``loss_convention``    ``PCATOOLS_NNUNET_CONVENTION``  ``"paper"`` (or ``"reference-code"``)
=====================  ==============================  ==================================

nnU-Net names the output folder after the class, so a run with other settings should be a
subclass (``class nnUNetTrainerL1DFL_bw005(nnUNetTrainerL1DFL): loss_bin_width = 0.05``), which
keeps the runs apart; the loss actually built is written to nnU-Net's training log.

Refused configurations. Region-based training (sigmoid outputs over overlapping regions) and an
``ignore`` label in ``dataset.json``: L1DFL and DFL are defined on softmax probabilities over
exclusive classes, and every voxel enters the L1 histogram and the Dice sums, so an unlabelled
voxel has no meaning in them; ``_build_loss`` raises a one-line ``ValueError`` for both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

try:
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"pcatools.nnunet.trainers needs nnU-Net (nnunetv2): pip install 'pcatools[nnunet]' ({err})"
    ) from err
import torch
from torch import nn

from pcatools.loss_registry import fitting_options, resolve_loss
from pcatools.losses import build_loss
from pcatools.nnunet.names import STOCK, trainer_names
from pcatools.nnunet.paths import nnunet_paths

__all__ = [
    "ENV_BIN_WIDTH",
    "ENV_CONVENTION",
    "ENV_GAMMA",
    "PcatoolsLossTrainer",
    "loss_settings",
    "plans_for_patch",
    "standalone_trainer",
    "trainer_for",
]

ENV_BIN_WIDTH = "PCATOOLS_NNUNET_BIN_WIDTH"
"""Environment variable that overrides the L1 bin width of the loss (``nnUNetv2_train`` takes no loss options)."""
ENV_GAMMA = "PCATOOLS_NNUNET_GAMMA"
"""Environment variable that overrides the focal gamma of the loss."""
ENV_CONVENTION = "PCATOOLS_NNUNET_CONVENTION"
"""Environment variable that overrides the L1 convention of the loss (``paper`` or ``reference-code``)."""
_CONVENTIONS = ("paper", "reference-code")


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}: expected a number, found {raw!r}") from None


def loss_settings(trainer: Any) -> dict[str, Any]:
    """``{"bin_width", "gamma", "convention"}`` of a trainer (class or instance): environment first, then class.

    Examples
    --------
    >>> loss_settings(nnUNetTrainerL1DFL)  # doctest: +SKIP
    {'bin_width': None, 'gamma': 2.0, 'convention': 'paper'}
    """
    bin_width = _env_float(ENV_BIN_WIDTH)
    gamma = _env_float(ENV_GAMMA)
    convention = os.environ.get(ENV_CONVENTION, "").strip() or trainer.loss_convention
    if convention not in _CONVENTIONS:
        raise ValueError(f"loss convention: expected one of {_CONVENTIONS}, found {convention!r}")
    return {
        "bin_width": trainer.loss_bin_width if bin_width is None else bin_width,
        "gamma": float(trainer.loss_gamma if gamma is None else gamma),
        "convention": convention,
    }


class PcatoolsLossTrainer(nnUNetTrainer):
    """Base of the pcatools trainers: nnU-Net's ``nnUNetTrainer`` with ``_build_loss`` swapped for ``loss_name``."""

    loss_name: ClassVar[str] = ""
    loss_bin_width: ClassVar[float | None] = None
    loss_gamma: ClassVar[float] = 2.0
    loss_convention: ClassVar[str] = "paper"

    def build_pcatools_loss(self) -> nn.Module:
        """The loss of one deep-supervision scale: ``build_loss(loss_name)`` with this trainer's settings
        that the loss takes (``bin_width`` only where set)."""
        s = {k: v for k, v in loss_settings(self).items() if v is not None}
        return build_loss(self.loss_name, **fitting_options(self.loss_name, s))

    def _build_loss(self) -> nn.Module:
        name = type(self).__name__
        if self.label_manager.has_regions:
            raise ValueError(
                f"{name}: region-based training (dataset.json 'regions_class_order') is not supported: "
                f"{self.loss_name} needs softmax over exclusive classes; train with nnUNetTrainer"
            )
        if self.label_manager.has_ignore_label:
            raise ValueError(
                f"{name}: dataset.json declares an ignore label ({self.label_manager.ignore_label}); "
                f"{self.loss_name} counts every voxel (no unlabelled voxels), so it is refused; train with nnUNetTrainer"
            )
        loss = self.build_pcatools_loss()
        self.print_to_log_file(f"pcatools loss ({type(self).__name__}): {loss!r}")
        stock = super()._build_loss()  # nnU-Net's DC_and_CE, wrapped with nnU-Net's deep-supervision weights
        if isinstance(stock, DeepSupervisionWrapper):
            stock.loss = loss
            return stock
        return loss


_TRAINERS: dict[str, type] = {}


def trainer_for(loss: str) -> type:
    """The nnU-Net trainer class of a registered loss (or ``NAME=SPEC``), made once and kept.

    Its name is the loss's ``nnunet_trainer`` (``nnUNetTrainerL1DFL``) and its module this one, so
    ``pcatools.nnunet.trainers.<name>`` finds it (nnU-Net's lookup by name, pickling).
    """
    entry = resolve_loss(loss)
    name = entry.trainer_name
    if name not in _TRAINERS:
        doc = f"nnU-Net trained with the registered loss {entry.name!r} ({entry.label}), built by build_loss."
        cls = type(
            name, (PcatoolsLossTrainer,), {"loss_name": entry.name, "__doc__": doc, "__module__": __name__}
        )
        _TRAINERS[name] = cls
    return _TRAINERS[name]


def __getattr__(name: str) -> Any:
    """``nnUNetTrainerL1DFL`` and every registered loss's trainer, by class name (PEP 562)."""
    for loss, trainer in trainer_names().items():
        if trainer == name and loss != STOCK:
            return trainer_for(loss)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plans_for_patch(
    patch_size: Sequence[int] = (64, 64, 64), spacing_mm: float = 2.0, batch_size: int = 2
) -> dict[str, Any]:
    """nnU-Net plans with one ``3d_fullres`` configuration for a cubic-ish patch, no dataset needed.

    The network is the ``PlainConvUNet`` nnU-Net's ``ExperimentPlanner`` builds: stride 2 in every
    axis until the smallest side is 4 voxels, 32 features doubling per stage up to 320, two 3x3x3
    convolutions per stage, instance norm, leaky ReLU; ``batch_dice`` False. So a trainer (and its
    loss and network) can be made without planning a dataset (tests, benchmarks).

    Examples
    --------
    >>> plans_for_patch((64, 64, 64))["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"]
    [32, 64, 128, 256, 320]
    """
    patch = [int(p) for p in patch_size]
    if len(patch) != 3 or min(patch) < 8:
        raise ValueError(f"patch_size: expected three sizes >= 8, found {tuple(patch_size)}")
    n_stages = 1
    while min(patch) // 2 ** (n_stages - 1) > 4:
        n_stages += 1
    if any(p % 2 ** (n_stages - 1) for p in patch):
        raise ValueError(
            f"patch_size: every side must be divisible by {2 ** (n_stages - 1)}, found {tuple(patch)}"
        )
    arch = {
        "n_stages": n_stages,
        "features_per_stage": [min(32 * 2**i, 320) for i in range(n_stages)],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * n_stages,
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n_stages - 1),
        "n_conv_per_stage": [2] * n_stages,
        "n_conv_per_stage_decoder": [2] * (n_stages - 1),
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    return {
        "dataset_name": "Dataset999_Standalone",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [spacing_mm] * 3,
        "original_median_shape_after_transp": patch,
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": int(batch_size),
                "patch_size": patch,
                "spacing": [spacing_mm] * 3,
                "normalization_schemes": ["CTNormalization", "NoNormalization"],
                "use_mask_for_norm": [False, False],
                "batch_dice": False,
                "architecture": {
                    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                    "arch_kwargs": arch,
                    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
                },
            }
        },
    }


PSMA_DATASET_JSON = {
    "channel_names": {"0": "CT", "1": "noNorm"},
    "labels": {"background": 0, "lesion": 1},
    "numTraining": 1,
    "file_ending": ".nii.gz",
}
"""``dataset.json`` of an exported PSMA dataset (:mod:`pcatools.nnunet.dataset`)."""


def standalone_trainer(
    cls: type,
    results: str | os.PathLike[str],
    patch_size: Sequence[int] = (64, 64, 64),
    dataset_json: dict[str, Any] | None = None,
    device: str = "cpu",
) -> Any:
    """A trainer of class ``cls`` on :func:`plans_for_patch` plans, its log and output folder under ``results``.

    nnU-Net's trainer wants plans, a ``dataset.json`` and an ``nnUNet_results`` folder; this gives
    it all three without a dataset, so its ``_build_loss()`` and, after ``initialize()``, its
    ``network``, ``loss`` and ``train_step`` can be used as nnU-Net uses them.
    """
    plans = plans_for_patch(patch_size)
    plans["continue_training"] = False
    with nnunet_paths(results=results):
        return cls(
            plans=plans, configuration="3d_fullres", fold=0, dataset_json=dataset_json or PSMA_DATASET_JSON,
            device=torch.device(device),
        )  # fmt: skip
