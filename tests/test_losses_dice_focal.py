"""Dice (eq. 1), Focal (eq. 2), Dice Focal (eq. 3): hand-computed values and agreement with MONAI."""

from __future__ import annotations

import math

import monai
import pytest
import torch
import torch.nn.functional as F

from pcatools.losses import (
    LOSS_NAMES,
    DiceFocalLoss,
    DiceLoss,
    L1DiceFocalLoss,
    build_loss,
    dice_focal_loss,
    dice_loss,
    focal_loss,
    weighted_dice_loss,
)


def _random(
    b: int = 2, c: int = 2, spatial: tuple[int, ...] = (4, 5, 3), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, *spatial, generator=gen, dtype=torch.float64) * 2
    labels = torch.randint(0, c, (b, 1, *spatial), generator=gen)
    return logits, labels


def _onehot(labels: torch.Tensor, c: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return F.one_hot(labels[:, 0], c).movedim(-1, 1).to(dtype)


def test_dice_hand_computed_2x2x2() -> None:
    """Eq. 1 on a 2x2x2 patch with one lesion voxel (p = 0.7) and one false positive (p = 0.3)."""
    p1 = torch.tensor([0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3], dtype=torch.float64).view(1, 1, 2, 2, 2)
    g1 = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.float64).view(1, 1, 2, 2, 2)
    probs, target = torch.cat([1 - p1, p1], 1), torch.cat([1 - g1, g1], 1)
    # class 1: 2*0.7 / (1.6 + 1) = 1.4/2.6; class 0: 2*(6*0.9 + 0.7) / (6.4 + 7) = 12.2/13.4
    expected = 1 - 0.5 * (1.4 / 2.6 + 12.2 / 13.4)
    assert float(dice_loss(probs, target, smooth_nr=0.0, smooth_dr=0.0)) == pytest.approx(expected, rel=1e-12)
    assert float(dice_loss(probs, target, smooth_nr=0.0, smooth_dr=1e-5)) == pytest.approx(
        1 - 0.5 * (1.4 / (2.6 + 1e-5) + 12.2 / (13.4 + 1e-5)), rel=1e-12
    )


@pytest.mark.parametrize("batch", [False, True])
def test_dice_matches_monai(batch: bool) -> None:
    logits, labels = _random()
    ours = dice_loss(torch.softmax(logits, 1), _onehot(labels, 2), batch=batch)
    monai_loss = monai.losses.DiceLoss(to_onehot_y=True, softmax=True, batch=batch)(logits, labels)
    torch.testing.assert_close(ours, monai_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(DiceLoss(batch=batch)(logits, labels), monai_loss, rtol=1e-12, atol=1e-12)


def test_dice_batch_mean_is_mean_of_per_patch_eq1() -> None:
    logits, labels = _random(b=3)
    probs, target = torch.softmax(logits, 1), _onehot(labels, 2)
    per_patch = [float(dice_loss(probs[i : i + 1], target[i : i + 1])) for i in range(3)]
    assert float(dice_loss(probs, target)) == pytest.approx(sum(per_patch) / 3, rel=1e-12)
    torch.testing.assert_close(
        dice_loss(probs, target, reduction="none"), torch.tensor(per_patch, dtype=torch.float64)
    )


def test_focal_hand_computed_and_reductions() -> None:
    # two voxels, C = 2: true-class probabilities 0.7 and 0.9
    probs = torch.tensor([[[0.3, 0.9], [0.7, 0.1]]], dtype=torch.float64)
    target = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]], dtype=torch.float64)
    terms = [-(0.3**2) * math.log(0.7), -(0.1**2) * math.log(0.9)]
    # eq. 2 as printed: (1/2) sum_c sum_i; MONAI mean divides further by the 2 voxels
    assert float(focal_loss(probs, target, reduction="sum")) == pytest.approx(sum(terms) / 2, rel=1e-12)
    assert float(focal_loss(probs, target)) == pytest.approx(sum(terms) / 4, rel=1e-12)
    # gamma = 0 is cross-entropy
    ce = -(math.log(0.7) + math.log(0.9)) / 4
    assert float(focal_loss(probs, target, gamma=0.0)) == pytest.approx(ce, rel=1e-12)


def test_focal_matches_monai_softmax_and_alpha_one() -> None:
    logits, labels = _random(c=3)
    target = _onehot(labels, 3)
    ref = monai.losses.FocalLoss(gamma=2.0, use_softmax=True)(logits, target)
    ours = focal_loss(torch.softmax(logits, 1), target)
    # MONAI's FocalLoss computes in float32
    torch.testing.assert_close(ours.float(), ref, rtol=1e-6, atol=1e-7)
    # the paper's alpha = 1 (every class weighted 1) is MONAI's alpha=None, and MONAI's alpha=[1, 1, 1]
    ref_alpha = monai.losses.FocalLoss(gamma=2.0, use_softmax=True, alpha=[1.0, 1.0, 1.0])(logits, target)
    torch.testing.assert_close(ref_alpha, ref)
    torch.testing.assert_close(focal_loss(torch.softmax(logits, 1), target, alpha=1.0), ours)


def test_focal_sigmoid_kind_matches_monai_sigmoid() -> None:
    logits, labels = _random()
    target = _onehot(labels, 2)
    ref = monai.losses.FocalLoss(gamma=2.0)(logits, target)
    ours = focal_loss(torch.sigmoid(logits), target, kind="sigmoid")
    torch.testing.assert_close(ours.float(), ref, rtol=1e-6, atol=1e-7)


def test_dice_focal_matches_monai() -> None:
    logits, labels = _random()
    probs, target = torch.softmax(logits, 1), _onehot(labels, 2)
    expected = dice_focal_loss(probs, target)
    torch.testing.assert_close(DiceFocalLoss()(logits, labels), expected, rtol=1e-6, atol=1e-7)
    # eq. 3 = eq. 1 + eq. 2
    torch.testing.assert_close(expected, dice_loss(probs, target) + focal_loss(probs, target))
    # focal="sigmoid" is MONAI's DiceFocalLoss as trained by the public code
    monai_dfl = monai.losses.DiceFocalLoss(to_onehot_y=True, softmax=True)(logits, labels)
    torch.testing.assert_close(DiceFocalLoss(focal="sigmoid")(logits, labels), monai_dfl)
    sig = dice_loss(probs, target) + focal_loss(torch.sigmoid(logits), target, kind="sigmoid")
    torch.testing.assert_close(monai_dfl, sig, rtol=1e-6, atol=1e-7)


def test_uniform_weights_reduce_to_squared_dice() -> None:
    logits, labels = _random(seed=4)
    probs, target = torch.softmax(logits, 1), _onehot(labels, 2)
    squared = monai.losses.DiceLoss(to_onehot_y=True, softmax=True, squared_pred=True)(logits, labels)
    ones = torch.ones_like(probs[:, :1])
    # (MONAI's squared path takes norms of its float32 one-hot target: float32 rounding)
    torch.testing.assert_close(weighted_dice_loss(probs, target, ones), squared, rtol=1e-6, atol=1e-7)
    squared_batch = monai.losses.DiceLoss(to_onehot_y=True, softmax=True, squared_pred=True, batch=True)
    torch.testing.assert_close(
        weighted_dice_loss(probs, target, ones, batch=True),
        squared_batch(logits, labels),
        rtol=1e-6,
        atol=1e-7,
    )
    with pytest.raises(ValueError, match="batch=False"):
        weighted_dice_loss(probs, target, ones, batch=True, reduction="none")
    # any constant weight cancels exactly without smoothing
    plain = weighted_dice_loss(probs, target, ones, smooth=0.0)
    torch.testing.assert_close(
        weighted_dice_loss(probs, target, 7.5 * ones, smooth=0.0), plain, rtol=1e-12, atol=1e-12
    )


def test_build_loss_names_and_settings() -> None:
    assert LOSS_NAMES == ("dice", "dice_focal", "l1dfl")
    logits, labels = _random()
    assert isinstance(build_loss("dice"), DiceLoss)
    assert isinstance(build_loss("DFL"), DiceFocalLoss)
    l1 = build_loss("L1DFL")
    assert isinstance(l1, L1DiceFocalLoss)
    # the class's own defaults (the registry passes nothing else): classes taken from the logits
    assert (l1.bin_width, l1.gamma, l1.num_classes, l1.convention) == (0.1, 2.0, None, "paper")
    torch.testing.assert_close(
        build_loss("dice")(logits, labels), dice_loss(torch.softmax(logits, 1), _onehot(labels, 2))
    )
    assert build_loss("l1dfl", bin_width=0.05).bin_width == 0.05
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("tversky")
