"""Figure 7 curves (``pcatools.losses.curves``): hand-computed values and the caption's claims.

The paper (Figure 7 and the discussion around it): loss against the probability P of the true
class for samples of label 1; L1DFL applies a reduced penalty for P > 0.5 and penalises P < 0.5
more heavily; DFL "similarly" increases the penalty for low P "but it applies a much steeper
penalty".
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pcatools.losses import loss_vs_probability
from pcatools.losses.curves import per_sample_dice, per_sample_focal, per_sample_weighted_dice

ALL = ("dice", "focal", "dice_focal", "l1dfl")


def test_per_sample_values_by_hand() -> None:
    df = loss_vs_probability([0.1, 0.5, 0.9, 0.99], losses=ALL)
    assert df.attrs["construction"] == "per_sample"
    e = 1e-5  # MONAI's smooth_nr = smooth_dr for DL, the paper convention's epsilon of eq. 11
    # DL of one label-1 voxel, its class: 1 - (2P + e) / (P + 1 + e)
    dl = [1 - (2 * p + e) / (p + 1 + e) for p in (0.1, 0.5, 0.9, 0.99)]
    np.testing.assert_allclose(df["dice"], dl, rtol=1e-12)
    assert dl[1] == pytest.approx(1 / 3, abs=1e-5) and dl[2] == pytest.approx(0.1 / 1.9, abs=1e-5)
    # focal: -(1 - P)^2 ln P; P = 0.5 -> 0.25 ln 2 = 0.1732868
    fl = [-((1 - p) ** 2) * math.log(p) for p in (0.1, 0.5, 0.9, 0.99)]
    np.testing.assert_allclose(df["focal"], fl, rtol=1e-12)
    assert fl[1] == pytest.approx(0.1732868, abs=1e-7)
    np.testing.assert_allclose(df["dice_focal"], np.add(dl, fl), rtol=1e-12)
    # weighted Dice with the sample's own weight w = lambda_k (N = 1, D = 1 / lambda_k):
    # Delta = 0.9, 0.5, 0.1 -> interior bins, w = 0.1; Delta = 0.01 -> bin 0, w = 0.05 (truncated at 0)
    w = [0.1, 0.1, 0.1, 0.05]
    wd = [
        1 - (2 * wi * p + e) / (wi * (1 + p * p) + e) for wi, p in zip(w, (0.1, 0.5, 0.9, 0.99), strict=True)
    ]
    np.testing.assert_allclose(df["l1dfl"], np.add(wd, fl), rtol=1e-12)
    # the weight cancels but for epsilon: (1 - P)^2 / (1 + P^2); P = 0.5 -> 0.2, P = 0.9 -> 0.01 / 1.81
    assert wd[1] == pytest.approx(0.2, abs=1e-4) and wd[2] == pytest.approx(0.01 / 1.81, abs=1e-4)
    np.testing.assert_allclose(per_sample_dice([0.5]), dl[1:2], rtol=1e-12)
    np.testing.assert_allclose(per_sample_focal([0.5]), fl[1:2], rtol=1e-12)
    np.testing.assert_allclose(per_sample_weighted_dice([0.5]), wd[1:2], rtol=1e-12)
    # P = 1: every loss 0
    assert loss_vs_probability([1.0], losses=ALL).iloc[0, 1:].abs().max() < 1e-12


def test_per_sample_weight_cancels() -> None:
    grid = np.linspace(0.01, 0.99, 99)
    paper = loss_vs_probability(grid, losses=("l1dfl",))["l1dfl"]
    for kw in ({"bin_width": 0.05}, {"bin_width": 0.25}, {"convention": "reference-code"}):
        other = loss_vs_probability(grid, losses=("l1dfl",), **kw)["l1dfl"]
        np.testing.assert_allclose(other, paper, atol=5e-4)
    squared = (1 - grid) ** 2 / (1 + grid**2) - (1 - grid) ** 2 * np.log(grid)
    np.testing.assert_allclose(paper, squared, atol=5e-4)


def test_default_curves_show_the_captions_claims() -> None:
    df = loss_vs_probability()  # the default: per sample, 199 points 0.005 ... 0.995
    p, dl, dfl, l1 = (df[c].to_numpy() for c in ("p", "dice", "dice_focal", "l1dfl"))
    # DFL above DL everywhere below P = 1 ...
    assert bool(np.all(dfl > dl))
    # ... and much steeper for small P: slope at least twice DL's for P <= 0.3, ten times at P = 0.05
    slope_dl, slope_dfl = np.gradient(dl, p), np.gradient(dfl, p)
    small = p <= 0.3
    assert bool(np.all(slope_dfl[small] < 2 * slope_dl[small]))
    i = int(np.argmin(np.abs(p - 0.05)))
    # DL' = -2 / (1 + P)^2 = -1.81; DFL' = DL' + 2 (1 - P) ln P - (1 - P)^2 / P = -1.81 - 5.69 - 18.05 = -25.55
    assert slope_dl[i] == pytest.approx(-2 / 1.05**2, rel=1e-3)
    assert slope_dfl[i] == pytest.approx(-25.55, rel=0.01)
    assert slope_dfl[i] < 10 * slope_dl[i]
    # L1DFL: "reduced penalty" for easy samples: below DL and DFL from P = 0.5354 on
    cross = p[np.argmax(l1 < dl)]
    assert 0.5 < cross < 0.55
    assert bool(np.all(l1[p >= 0.54] < dl[p >= 0.54])) and bool(np.all(l1 < dfl))
    # ... and penalises hard samples "more heavily" than DL for every P <= 0.5
    assert bool(np.all(l1[p <= 0.5] > dl[p <= 0.5]))
    # Per sample, L1DFL shares DFL's focal term: for hard samples the two nearly coincide (the
    # squared and plain single-voxel Dice differ by 2P^2 (1 - P) / ((1 + P)(1 + P^2)) <= 0.0162 for P <= 0.1),
    # so DFL is "much steeper" than DL, not than L1DFL
    assert bool(np.all(np.abs(l1 - dfl)[p <= 0.1] < 0.02))
    # the numbers quoted in the docs
    at = {round(float(x), 3): k for k, x in enumerate(p)}
    assert [round(float(v[at[0.1]]), 3) for v in (dl, dfl, l1)] == [0.818, 2.683, 2.667]
    assert [round(float(v[at[0.9]]), 4) for v in (dl, dfl, l1)] == [0.0526, 0.0537, 0.0066]


def test_patch_construction_is_kept() -> None:
    df = loss_vs_probability([0.05, 0.3, 0.5, 0.75, 0.95], losses=ALL, construction="patch", background_p=0.9)
    assert df.attrs["construction"] == "patch"
    # each loss module as in training (registry): MONAI's DiceFocalLoss sums its terms in float32 steps
    np.testing.assert_allclose(df["dice_focal"], df["dice"] + df["focal"], rtol=1e-8)
    # dice by hand at P = 0.5: 10 lesion voxels at 0.5, 990 background voxels at p_bg = 0.9
    fg, bg = 10, 990
    d1 = (2 * fg * 0.5 + 1e-5) / (fg * 0.5 + bg * 0.1 + fg + 1e-5)
    d0 = (2 * bg * 0.9 + 1e-5) / (fg * 0.5 + bg * 0.9 + bg + 1e-5)
    assert df.loc[2, "dice"] == pytest.approx(1 - (d0 + d1) / 2, rel=1e-12)
    # focal averaged over 2 x 1000 elements: at P = 0.5, 10 terms 0.25 ln 2 and 990 terms 0.01 ln(1/0.9)
    focal = (10 * 0.25 * math.log(2) + 990 * 0.01 * -math.log(0.9)) / 2000
    assert df.loc[2, "focal"] == pytest.approx(focal, rel=1e-12)
    # with the patch defaults DFL never leaves DL by 0.03: the reason it is not the default
    default = loss_vs_probability(construction="patch")
    gap = (default["dice_focal"] - default["dice"]).to_numpy()
    assert 0 < gap.max() < 0.03
    p, l1 = default["p"].to_numpy(), default["l1dfl"].to_numpy()
    assert bool(np.all(l1[p <= 0.32] > default["dice_focal"].to_numpy()[p <= 0.32]))
    assert bool(np.all(l1[p >= 0.33] < default["dice"].to_numpy()[p >= 0.33]))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="only used with construction='patch'"):
        loss_vs_probability([0.5], background_p=0.9)
    with pytest.raises(ValueError, match="construction must be one of"):
        loss_vs_probability([0.5], construction="voxel")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown loss"):
        loss_vs_probability(losses=("hinge",))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        loss_vs_probability([0.0, 0.5])
    with pytest.raises(ValueError, match="n_foreground >= 1"):
        loss_vs_probability([0.5], construction="patch", n_foreground=0)
