"""L1DiceFocalLoss (eq. 11-12): hand-computed cases, a slow numpy reference, gradients, numerics, errors."""

from __future__ import annotations

import math

import monai
import numpy as np
import pytest
import torch

from pcatools.losses import (
    L1DiceFocalLoss,
    ReferenceCodeL1DFL,
    l1_dice_focal_loss,
    loss_vs_probability,
)
from pcatools.losses.l1_weights import DEFAULT_TOL


def _random(
    b: int = 2,
    c: int = 2,
    spatial: tuple[int, ...] = (4, 4, 3),
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, c, *spatial, generator=gen, dtype=torch.float64) * 2).to(dtype)
    labels = torch.randint(0, c, (b, 1, *spatial), generator=gen)
    return logits, labels


def _slow_l1dfl(
    logits: np.ndarray, labels: np.ndarray, bw: float, gamma: float, eps: float, per_sample: bool
) -> float:
    """Independent numpy/pure-Python eq. 4-12 (paper convention, integer 1/Gamma), loops over elements."""
    b, c = logits.shape[:2]
    x = logits.reshape(b, c, -1).astype(np.float64)
    lab = labels.reshape(b, -1)
    v = x.shape[2]
    e = np.exp(x - x.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    g = np.zeros_like(p)
    for i in range(b):
        for j in range(v):
            g[i, lab[i, j], j] = 1.0
    n_bins = int(round(1 / bw)) + 1
    centres = [k * bw for k in range(n_bins)]
    widths = [min(ck + bw / 2, 1.0) - max(ck - bw / 2, 0.0) for ck in centres]

    def weights_of(deltas: list[float]) -> list[float]:
        counts = [sum(1 for d in deltas if abs(ck - d) <= bw / 2 + DEFAULT_TOL) for ck in centres]
        out = []
        for d in deltas:
            dist = [abs(ck - d) for ck in centres]
            k = max(i for i, dd in enumerate(dist) if dd <= min(dist) + 2 * DEFAULT_TOL)
            out.append(len(deltas) / (counts[k] / widths[k]))
        return out

    delta = np.abs(g - p)
    w = np.zeros_like(p)
    if per_sample:
        for i in range(b):
            w[i] = np.array(weights_of(delta[i].ravel().tolist())).reshape(c, v)
    else:
        w = np.array(weights_of(delta.ravel().tolist())).reshape(b, c, v)
    dice = []
    for i in range(b):
        for k in range(c):
            num = 2 * sum(w[i, k, j] * g[i, k, j] * p[i, k, j] for j in range(v)) + eps
            den = sum(w[i, k, j] * (g[i, k, j] ** 2 + p[i, k, j] ** 2) for j in range(v)) + eps
            dice.append(num / den)
    focal = 0.0
    for i in range(b):
        for j in range(v):
            pt = p[i, lab[i, j], j]
            focal += -((1 - pt) ** gamma) * math.log(pt)
    return 1 - sum(dice) / len(dice) + focal / (b * c * v)


def _boundary_distance(logits: torch.Tensor, labels: torch.Tensor, bw: float) -> float:
    """Smallest distance of any Delta = 1 - p_t (or p_c) to a bin boundary."""
    p = torch.softmax(logits.double(), 1)
    g = torch.nn.functional.one_hot(labels[:, 0], logits.shape[1]).movedim(-1, 1).double()
    u = (g - p).abs() / bw + 0.5
    return float(((u - u.round()).abs() * bw).min())


def test_hand_computed_2x2x2() -> None:
    """One lesion voxel predicted 0.7, six background voxels at 0.1, one false positive at 0.3.

    Delta = 0.3 (x2) and 0.1 (x6); N = 8 voxels (the 2-channel histogram doubles counts and N alike).
    D(0.3) = 2/0.1 = 20 -> w = 0.4; D(0.1) = 6/0.1 = 60 -> w = 2/15.
    class 1: I = 0.4*0.7 = 0.28, U = 0.4*(1 + 0.49) + 6*(2/15)*0.01 + 0.4*0.09 = 0.64
    class 0: I = 6*(2/15)*0.9 + 0.4*0.7 = 1.0, U = 0.4*0.09 + 6*(2/15)*1.81 + 0.4*1.49 = 2.08
    focal: (2 * 0.09 * -ln 0.7 + 6 * 0.01 * -ln 0.9) / 16
    """
    eps = 1e-5
    wdice = 1 - 0.5 * ((0.56 + eps) / (0.64 + eps) + (2.0 + eps) / (2.08 + eps))
    focal = (2 * 0.09 * -math.log(0.7) + 6 * 0.01 * -math.log(0.9)) / 16
    expected = wdice + focal
    assert expected == pytest.approx(0.0861374, abs=1e-7)
    p1 = torch.tensor([0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3], dtype=torch.float64).view(1, 1, 2, 2, 2)
    lab = torch.tensor([1, 0, 0, 0, 0, 0, 0, 0]).view(1, 1, 2, 2, 2)
    logits = torch.cat([torch.log(1 - p1), torch.log(p1)], 1)
    for fused in (True, False):
        got = L1DiceFocalLoss(fused=fused)(logits, lab)
        assert float(got) == pytest.approx(expected, rel=1e-9)
    g1 = (lab == 1).double()
    assert float(l1_dice_focal_loss(torch.cat([1 - p1, p1], 1), torch.cat([1 - g1, g1], 1))) == pytest.approx(
        expected, rel=1e-9
    )


def test_hand_computed_2x2x2_tie_goes_up() -> None:
    """Delta = 0.15 on the 0.1 | 0.2 boundary: counted in both bins, weighted by bin 0.2.

    Voxels: lesion p = 0.85 (Delta 0.15), lesion p = 0.8 (0.2), six background at p = 0.02 (Delta 0.02).
    Counts (one channel, N = 8): bin 0: 6, bin 0.1: 1 (the tie), bin 0.2: 2 -> D = 120, 10, 20.
    Weights: background 8/120, both lesion voxels 8/20 = 0.4 (the tie takes the upper bin).
    """
    p1 = torch.tensor([0.85, 0.8] + [0.02] * 6, dtype=torch.float64).view(1, 1, 2, 2, 2)
    lab = torch.tensor([1, 1, 0, 0, 0, 0, 0, 0]).view(1, 1, 2, 2, 2)
    logits = torch.cat([torch.log(1 - p1), torch.log(p1)], 1)
    w = L1DiceFocalLoss().element_weights(logits, lab)
    expected = (
        torch.tensor([0.4, 0.4] + [8 / 120] * 6, dtype=torch.float64)
        .view(1, 1, 2, 2, 2)
        .expand(1, 2, 2, 2, 2)
    )
    torch.testing.assert_close(w, expected, rtol=1e-9, atol=0)
    eps = 1e-5
    pv = [0.85, 0.8] + [0.02] * 6
    wv = [0.4, 0.4] + [8 / 120] * 6
    gv = [1, 1] + [0] * 6
    d1 = (2 * sum(a * b * c for a, b, c in zip(wv, gv, pv, strict=True)) + eps) / (
        sum(a * (b + c * c) for a, b, c in zip(wv, gv, pv, strict=True)) + eps
    )
    d0 = (2 * sum(a * (1 - b) * (1 - c) for a, b, c in zip(wv, gv, pv, strict=True)) + eps) / (
        sum(a * ((1 - b) + (1 - c) ** 2) for a, b, c in zip(wv, gv, pv, strict=True)) + eps
    )
    focal = (
        sum(
            -((1 - (c if b else 1 - c)) ** 2) * math.log(c if b else 1 - c)
            for b, c in zip(gv, pv, strict=True)
        )
        / 16
    )
    assert float(L1DiceFocalLoss()(logits, lab)) == pytest.approx(1 - (d0 + d1) / 2 + focal, rel=1e-9)


@pytest.mark.parametrize("c", [2, 3])
@pytest.mark.parametrize("per_sample", [False, True])
def test_matches_slow_numpy_reference(c: int, per_sample: bool) -> None:
    logits, labels = _random(b=2, c=c, spatial=(3, 3, 2), seed=10 + c)
    assert _boundary_distance(logits, labels, 0.1) > 1e-5
    expected = _slow_l1dfl(logits.numpy(), labels.numpy(), 0.1, 2.0, 1e-5, per_sample)
    hist = "sample" if per_sample else "batch"
    for fused in (True, False):
        got = L1DiceFocalLoss(histogram=hist, fused=fused)(logits, labels)
        assert float(got) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("c", [2, 4])
@pytest.mark.parametrize("spatial", [(6, 5), (4, 3, 5)])
@pytest.mark.parametrize("convention", ["paper", "reference-code"])
def test_fused_equals_autograd(c: int, spatial: tuple[int, ...], convention: str) -> None:
    logits, labels = _random(b=3, c=c, spatial=spatial, seed=c, dtype=torch.float32)
    for hist, batch in (("batch", False), ("sample", False), ("batch", True), ("sample", True)):
        values, grads = [], []
        for fused in (True, False):
            x = logits.clone().requires_grad_(True)
            loss = L1DiceFocalLoss(convention=convention, histogram=hist, batch=batch, fused=fused)(x, labels)  # type: ignore[arg-type]
            loss.backward()
            values.append(loss.detach())
            grads.append(x.grad)
        torch.testing.assert_close(values[0], values[1], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("gamma", [2.0, 1.5, 0.5])
@pytest.mark.parametrize("c", [2, 3])
def test_gradcheck_float64(gamma: float, c: int) -> None:
    logits, labels = _random(b=2, c=c, spatial=(3, 2, 2), seed=21)
    assert _boundary_distance(logits, labels, 0.1) > 1e-4  # finite differences stay inside the bins
    loss = L1DiceFocalLoss(gamma=gamma)
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: loss(t, labels), (x,), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("c", [2, 3])
def test_batch_dice_is_one_sample_of_all_voxels(c: int) -> None:
    """batch=True: the Dice sums run over the whole batch, so with the batch histogram the loss of
    B samples equals the loss of one sample holding all their voxels (value and gradient)."""
    logits, labels = _random(b=3, c=c, spatial=(4, 3, 2), seed=40 + c)
    joined = logits.movedim(0, 1).reshape(1, c, 3 * 4, 3, 2)
    joined_labels = labels.movedim(0, 1).reshape(1, 1, 3 * 4, 3, 2)
    x = logits.clone().requires_grad_(True)
    xj = joined.clone().requires_grad_(True)
    got = L1DiceFocalLoss(batch=True)(x, labels)
    expected = L1DiceFocalLoss()(xj, joined_labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    assert got.item() != pytest.approx(L1DiceFocalLoss()(logits, labels).item(), rel=1e-3)
    got.backward()
    expected.backward()
    torch.testing.assert_close(x.grad.movedim(0, 1).reshape(xj.shape), xj.grad, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda t: L1DiceFocalLoss(batch=True)(t, labels), (logits.clone().requires_grad_(True),), eps=1e-6
    )
    # one sample: batch=True changes nothing
    one = logits[:1]
    assert float(L1DiceFocalLoss(batch=True)(one, labels[:1])) == pytest.approx(
        float(L1DiceFocalLoss()(one, labels[:1])), rel=1e-12
    )


def test_matches_public_code_reimplementation() -> None:
    logits, labels = _random(b=2, c=2, spatial=(6, 6, 6), seed=3, dtype=torch.float32)
    ref_x = logits.clone().requires_grad_(True)
    ref = ReferenceCodeL1DFL()(ref_x, labels)
    ref.backward()
    x = logits.clone().requires_grad_(True)
    got = L1DiceFocalLoss(convention="reference-code")(x, labels)
    got.backward()
    torch.testing.assert_close(got.detach(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-4, atol=1e-7)
    assert L1DiceFocalLoss(convention="reference-code").bin_width == 0.05


def test_focal_part_is_monai_softmax_focal() -> None:
    logits, labels = _random(c=3, dtype=torch.float32)
    only_focal = L1DiceFocalLoss(lambda_dice=0.0)(logits, labels)
    target = torch.nn.functional.one_hot(labels[:, 0], 3).movedim(-1, 1).float()
    torch.testing.assert_close(
        only_focal, monai.losses.FocalLoss(use_softmax=True)(logits, target), rtol=1e-5, atol=1e-7
    )


def test_perfect_prediction_is_about_zero() -> None:
    _, labels = _random(b=2, c=2, spatial=(5, 5, 5), seed=2)
    labels[1] = 0  # second sample: empty foreground
    logits = torch.where(
        torch.cat([labels == 0, labels == 1], 1), torch.tensor(20.0), torch.tensor(-20.0)
    ).float()
    for hist in ("batch", "sample"):
        for fused in (True, False):
            assert float(L1DiceFocalLoss(histogram=hist, fused=fused)(logits, labels)) == pytest.approx(
                0.0, abs=1e-6
            )


def test_empty_foreground_extreme_logits_and_2d_are_finite() -> None:
    labels = torch.zeros(2, 1, 8, 8, 8, dtype=torch.long)  # all background
    gen = torch.Generator().manual_seed(0)
    for scale in (1.0, 1e2, 1e4):
        x = (torch.randn(2, 2, 8, 8, 8, generator=gen) * scale).requires_grad_(True)
        loss = L1DiceFocalLoss()(x, labels)
        loss.backward()
        assert math.isfinite(loss.item()) and bool(torch.isfinite(x.grad).all())
    x2 = torch.randn(3, 2, 16, 16, requires_grad=True)
    lab2 = torch.randint(0, 2, (3, 1, 16, 16))
    loss2 = L1DiceFocalLoss()(x2, lab2)
    loss2.backward()
    assert math.isfinite(loss2.item()) and x2.grad.shape == x2.shape


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_and_autocast_logits(dtype: torch.dtype) -> None:
    logits, labels = _random(b=2, c=2, spatial=(6, 6, 6), seed=8, dtype=torch.float32)
    ref = L1DiceFocalLoss()(logits.to(dtype).float(), labels)
    x = logits.to(dtype).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = L1DiceFocalLoss()(x, labels)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    loss.backward()
    assert x.grad.dtype == dtype and bool(torch.isfinite(x.grad.float()).all())
    # logits produced inside autocast by a conv (bf16) with all-background labels
    conv = torch.nn.Conv3d(1, 2, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(torch.randn(1, 1, 4, 4, 4))
        val = L1DiceFocalLoss()(out, torch.zeros(1, 1, 4, 4, 4, dtype=torch.long))
    assert out.dtype == torch.bfloat16 and math.isfinite(val.item())


def test_metatensor_and_float_labels() -> None:
    logits, labels = _random(dtype=torch.float32)
    expected = L1DiceFocalLoss()(logits, labels)
    mt_logits = monai.data.MetaTensor(logits)
    mt_labels = monai.data.MetaTensor(labels.float())
    torch.testing.assert_close(L1DiceFocalLoss()(mt_logits, mt_labels), expected)


def test_input_errors() -> None:
    logits, labels = _random(c=2, dtype=torch.float32)
    loss = L1DiceFocalLoss()
    with pytest.raises(ValueError, match=r"labels must have shape \(B, 1, \*spatial\).*unsqueeze"):
        loss(logits, labels[:, 0])
    with pytest.raises(ValueError, match="one-hot"):
        loss(logits, torch.cat([labels, labels], 1))
    with pytest.raises(ValueError, match="at least 2 channels"):
        loss(logits[:, :1], labels)
    with pytest.raises(ValueError, match="expected 2 channels"):
        L1DiceFocalLoss(num_classes=2)(torch.randn(2, 3, 4, 4, 3), labels)
    with pytest.raises(ValueError, match=r"\[0, 2\).*\[0, 2\]"):
        loss(logits, labels * 2)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        loss(logits, labels - (labels == 0).long())
    with pytest.raises(ValueError, match="non-integer"):
        loss(logits, labels.float() * 0.5)
    with pytest.raises(ValueError, match="spatial"):
        loss(torch.randn(4, 2), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point"):
        loss(logits.long(), labels)
    with pytest.raises(ValueError, match="histogram"):
        L1DiceFocalLoss(histogram="voxel")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gamma"):
        L1DiceFocalLoss(gamma=-1.0)


def test_loss_vs_probability_curves() -> None:
    df = loss_vs_probability(
        [0.05, 0.3, 0.5, 0.75, 0.95],
        losses=("dice", "focal", "dice_focal", "l1dfl"),
        background_p=0.9,
        construction="patch",
    )
    assert list(df.columns) == ["p", "dice", "focal", "dice_focal", "l1dfl"]
    # each loss module as in training (registry): MONAI's DiceFocalLoss sums its terms in float32 steps
    np.testing.assert_allclose(df["dice_focal"], df["dice"] + df["focal"], rtol=1e-8)
    # dice by hand at p = 0.5: 10 lesion voxels at 0.5, 990 background voxels at p_bg = 0.9
    fg, bg = 10, 990
    d1 = (2 * fg * 0.5 + 1e-5) / (fg * 0.5 + bg * 0.1 + fg + 1e-5)
    d0 = (2 * bg * 0.9 + 1e-5) / (fg * 0.5 + bg * 0.9 + bg + 1e-5)
    assert df.loc[2, "dice"] == pytest.approx(1 - (d0 + d1) / 2, rel=1e-12)
    # focal decreases with p; all curves finite
    assert bool(np.all(np.diff(df["focal"]) < 0)) and bool(np.isfinite(df.to_numpy()).all())
    # at p = 0.9 every Delta is 0.1: one bin, uniform weights -> squared Dice + focal
    row = loss_vs_probability([0.9], losses=("l1dfl", "focal"), background_p=0.9, construction="patch")
    w = (fg + bg) / ((fg + bg) / 0.1)  # 0.1: cancels except against epsilon
    sq1 = (2 * w * fg * 0.9 + 1e-5) / (w * (fg * 1.81 + bg * 0.01) + 1e-5)
    sq0 = (2 * w * bg * 0.9 + 1e-5) / (w * (bg * 1.81 + fg * 0.01) + 1e-5)
    assert row.loc[0, "l1dfl"] == pytest.approx(1 - (sq0 + sq1) / 2 + row.loc[0, "focal"], rel=1e-9)
    # the patch's defaults (background at 0.99): L1DFL above DL for hard lesion voxels, below for easy ones
    default = loss_vs_probability([0.1, 0.9], construction="patch")
    assert (
        default.loc[0, "l1dfl"] > default.loc[0, "dice_focal"]
        and default.loc[1, "l1dfl"] < default.loc[1, "dice"]
    )
    with pytest.raises(ValueError, match="unknown loss"):
        loss_vs_probability(losses=("hinge",))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        loss_vs_probability([0.0, 0.5])


# --- the L1DFL versions in the public code's history (docs/conventions.md) -----------------------


def _public_loop_version(logits: torch.Tensor, labels: torch.Tensor, width: float = 0.1) -> torch.Tensor:
    """Re-implementation of the public code's earliest L1DFL (a Python loop over 11 bins 0.1 wide).

    Float64 softmax and one-hot over both channels; ``Delta = |p - g|`` flattened (N = all elements);
    for each centre ``c`` of ``linspace(0, 1, 11)`` (float32), the half-open bin
    ``c - 0.05 <= Delta < c + 0.05`` gets density ``count / (min(c + 0.05, 1) - max(c - 0.05, 0))``;
    ``w = N / (density + 1e-8)``; weighted squared Dice per sample and class with 1e-8, averaged; plus
    MONAI's softmax focal loss.
    """
    x = logits.double()
    p = torch.softmax(x, 1)
    g = torch.nn.functional.one_hot(labels[:, 0].long(), x.shape[1]).movedim(-1, 1).double()
    focal = monai.losses.FocalLoss(gamma=2.0, use_softmax=True, to_onehot_y=False)(x, g)
    delta = (p - g).abs().reshape(-1)
    density = torch.zeros_like(delta)
    for c in torch.linspace(0, 1, int(round(1 / width)) + 1):
        lo, hi = float(c - width / 2), float(c + width / 2)  # float32 edges, as on the GPU there
        inside = (delta >= lo) & (delta < hi)
        density[inside] = float(inside.sum()) / (min(hi, 1.0) - max(lo, 0.0))
    w = (delta.numel() / (density + 1e-8)).view_as(p)
    dims = list(range(2, x.ndim))
    dice = (2 * (w * p * g).sum(dims) + 1e-8) / ((w * (p * p + g * g)).sum(dims) + 1e-8)
    return 1 - dice.mean() + focal


def _public_median_weights(delta: torch.Tensor, width: float = 0.05) -> torch.Tensor:
    """Re-implementation of the weights of the public code's count-floor / median version.

    The reference-code bins (bucketize on the left edges of ``linspace(0, 1, int(1/width + 1))``);
    counts floored at ``max(1, N * 1e-6)``; ``beta = N / (count / (width + 1e-8) + 1e-8)``; divided by
    the median of the non-zero betas; clamped to ``[1e-5, 1e5]``.
    """
    flat = delta.reshape(-1).float()
    n = flat.numel()
    centres = torch.linspace(0, 1, int(1 / width + 1))
    left = (centres - width / 2).clamp(min=0)
    widths = (centres + width / 2).clamp(max=1) - left
    idx = (torch.bucketize(flat, left, right=True) - 1).clamp(0, centres.numel() - 1)
    counts = torch.zeros(centres.numel()).scatter_add(0, idx, torch.ones_like(flat))
    counts = counts.clamp(min=max(1.0, n * 1e-6))
    beta = n / (counts / (widths + 1e-8))[idx].add(1e-8)
    beta = beta / (beta[beta > 0].median() + 1e-8)
    return beta.clamp(1e-5, 1e5).view_as(delta)


def test_public_code_loop_version_is_reference_code_with_bin_width_0_1() -> None:
    for seed in (0, 1, 2):
        logits, labels = _random(b=2, c=2, spatial=(6, 5, 4), seed=50 + seed)
        assert _boundary_distance(logits, labels, 0.1) > 1e-6  # no decimal ties: float rounding plays no part
        loop = _public_loop_version(logits, labels)
        ours = L1DiceFocalLoss(bin_width=0.1, convention="reference-code")(logits, labels)
        assert float(ours) == pytest.approx(float(loop), rel=1e-6)
    # the paper convention agrees too away from ties, but not the reference code's default bins (0.05)
    assert float(L1DiceFocalLoss(bin_width=0.1)(logits, labels)) == pytest.approx(float(loop), rel=1e-5)
    assert float(L1DiceFocalLoss(convention="reference-code")(logits, labels)) != pytest.approx(
        float(loop), rel=1e-3
    )


def test_public_code_median_version_differs_only_where_floor_or_clamp_bind() -> None:
    from pcatools.losses import l1_weights

    # Small N: the floor is 1 (never above an occupied bin's count) and the median division is one
    # constant factor, so the weights are the reference code's up to that factor.
    logits, labels = _random(b=2, c=2, spatial=(6, 5, 4), seed=60)
    p = torch.softmax(logits, 1)
    g = torch.nn.functional.one_hot(labels[:, 0], 2).movedim(-1, 1).double()
    ref = l1_weights(p, g, convention="reference-code")
    med = _public_median_weights((p - g).abs()).double()
    ratio = med / ref
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio.flatten()[0])), rtol=1e-5, atol=0)
    # The clamp binds as soon as one occupied bin is 1e5 times rarer than the median bin: 200 000 easy
    # elements (Delta = 0.01, bin 0, width 0.025) and one hard one (Delta = 0.9, width 0.05):
    # densities 8e6 and 20, weight ratio 4e5 -> clamped to 1e5.
    delta = torch.full((200_001,), 0.01)
    delta[0] = 0.9
    ones = torch.zeros_like(delta)
    ref = l1_weights(1 - delta, ones + 1, convention="reference-code")  # Delta = |1 - (1 - delta)|
    med = _public_median_weights(delta)
    assert float(ref[0] / ref[1]) == pytest.approx(4e5, rel=1e-4)
    assert float(med[0] / med[1]) == pytest.approx(1e5, rel=1e-4)
    # The count floor binds once N >= 1e6: with N = 1 200 000 a bin holding 1 element counts as 1.2, so
    # its weight drops by 1/1.2. The other elements are spread over 19 bins (63 158 each, Delta =
    # 0.05 k + 0.01) so that every weight stays within 1e5 of the median and the clamp does not bind.
    n = 1_200_000
    bins = torch.tensor([k for k in range(20) if k != 10])
    delta = (bins[torch.arange(n) % 19] * 0.05 + 0.01).float()
    delta[0] = 0.51  # alone in bin 10
    ones = torch.zeros_like(delta)
    ref = l1_weights(1 - delta, ones + 1, convention="reference-code")
    med = _public_median_weights(delta)
    assert float(ref[0] / ref[5]) == pytest.approx(63_158, rel=1e-3)  # element 5 sits in bin 5
    assert float((med[0] / med[5]) / (ref[0] / ref[5])) == pytest.approx(1 / 1.2, rel=1e-4)
