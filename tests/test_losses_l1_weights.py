"""L1 weights (eq. 4-10): Figure 1 of the paper, ties, conventions, non-integer 1/Gamma, a slow reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pcatools.losses import (
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

# Figure 1 of the paper: (a) G, (b) P(G), (c) Delta, (d) D, (e) w
FIG1_G = [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
FIG1_P = [
    [0.21, 0.24, 0.1, 0.35],
    [0.2, 0.15, 0.18, 0.45],
    [0.74, 0.61, 0.16, 0.18],
    [0.58, 0.62, 0.2, 0.21],
]
FIG1_DELTA = [
    [0.21, 0.24, 0.9, 0.65],
    [0.2, 0.15, 0.82, 0.55],
    [0.74, 0.61, 0.16, 0.18],
    [0.58, 0.62, 0.2, 0.21],
]
FIG1_D = [[80, 80, 10, 20], [80, 80, 10, 50], [20, 50, 80, 80], [50, 50, 80, 80]]
FIG1_W = [[0.2, 0.2, 1.6, 0.8], [0.2, 0.2, 1.6, 0.32], [0.8, 0.32, 0.2, 0.2], [0.32, 0.32, 0.2, 0.2]]


def _slow_paper_weights(delta: list[float], bw: float, tol: float = 1e-6) -> tuple[list[float], list[float]]:
    """Independent pure-Python eq. 5-10 for integer 1/Gamma: (per-element density, per-element weight)."""
    n = int(round(1 / bw)) + 1
    centres = [k * bw for k in range(n)]
    counts = [sum(1 for d in delta if abs(c - d) <= bw / 2 + tol) for c in centres]
    widths = [min(c + bw / 2, 1.0) - max(c - bw / 2, 0.0) for c in centres]
    dens = [cnt / wd for cnt, wd in zip(counts, widths, strict=True)]
    out_d, out_w = [], []
    for d in delta:
        # nearest centre; among centres at (nearly) equal distance take the larger one
        dist = [abs(c - d) for c in centres]
        best = min(dist)
        k = max(i for i, x in enumerate(dist) if x <= best + 2 * tol)
        out_d.append(dens[k])
        out_w.append(len(delta) / dens[k])
    return out_d, out_w


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_figure1_density_and_weights(dtype: torch.dtype) -> None:
    g = torch.tensor(FIG1_G, dtype=dtype)
    p = torch.tensor(FIG1_P, dtype=dtype)
    b = l1_binning(p, g, bin_width=0.1)
    torch.testing.assert_close(b.delta, torch.tensor(FIG1_DELTA, dtype=dtype), rtol=0, atol=1e-6)
    torch.testing.assert_close(b.element_density(), torch.tensor(FIG1_D, dtype=dtype), rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(l1_weights(p, g), torch.tensor(FIG1_W, dtype=dtype), rtol=1e-6, atol=1e-6)
    # the bin table behind it: N = 16; bin 0.2 holds 8 values (0.15 counted in 0.1 and 0.2)
    assert b.n_elements == 16
    assert b.counts.tolist() == [0, 1, 8, 0, 0, 1, 5, 2, 1, 1, 0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_figure1_reference_code_differs_on_ties(dtype: torch.dtype) -> None:
    """Half-open float32 bins: 0.15, 0.55, 0.65 are counted once, in the upper bin."""
    g = torch.tensor(FIG1_G, dtype=dtype)
    p = torch.tensor(FIG1_P, dtype=dtype)
    b = l1_binning(p, g, bin_width=0.1, convention="reference-code")
    # paper: [0, 1, 8, 0, 0, 1, 5, 2, 1, 1, 0]; bins 0.1, 0.5 lose 0.15, 0.55; bin 0.6 loses 0.65
    assert b.counts.tolist() == [0, 0, 8, 0, 0, 0, 4, 2, 1, 1, 0]
    expected_d = torch.tensor(FIG1_D, dtype=dtype)
    expected_d[expected_d == 50] = 40  # D(0.6) = 4 / 0.1
    torch.testing.assert_close(b.element_density(), expected_d, rtol=1e-6, atol=1e-4)
    expected_w = torch.tensor(FIG1_W, dtype=dtype)
    expected_w[expected_w == 0.32] = 0.4  # w = 16 / 40
    torch.testing.assert_close(l1_weights(p, g, 0.1, "reference-code"), expected_w, rtol=1e-6, atol=1e-6)


def test_ties_hand_computed_both_conventions() -> None:
    """Gamma = 0.25: boundaries 0.125, 0.375, 0.625, 0.875 are exact in binary floating point."""
    delta = torch.tensor([0.375, 0.375, 0.5, 0.0, 1.0, 0.625, 0.3, 0.3])
    g = torch.zeros(8)
    # paper: inclusive counts. bin 0.25: 0.375 x2, 0.3 x2 = 4; bin 0.5: 0.375 x2, 0.5, 0.625 = 4;
    # bin 0.75: 0.625 = 1; bin 0: 0.0 = 1; bin 1: 1.0 = 1
    b = l1_binning(delta, g, 0.25)
    assert b.counts.tolist() == [1, 4, 4, 1, 1]
    widths = [0.125, 0.25, 0.25, 0.25, 0.125]
    assert b.widths.tolist() == widths
    # elements take the upper bin on a tie: 0.375 -> 0.5, 0.625 -> 0.75
    assert b.index.tolist() == [2, 2, 2, 0, 4, 3, 1, 1]
    w_paper = [8 / (4 / 0.25)] * 3 + [
        8 / (1 / 0.125),
        8 / (1 / 0.125),
        8 / (1 / 0.25),
        8 / (4 / 0.25),
        8 / (4 / 0.25),
    ]
    torch.testing.assert_close(b.element_weights(), torch.tensor(w_paper), rtol=1e-6, atol=0)
    # reference code: half-open [left_k, left_k+1): 0.375 in bin 0.5 only, 0.625 in bin 0.75 only
    r = l1_binning(delta, g, 0.25, "reference-code")
    assert r.counts.tolist() == [1, 2, 3, 1, 1]
    assert r.index.tolist() == [2, 2, 2, 0, 4, 3, 1, 1]
    w_ref = [8 / (3 / 0.25)] * 3 + [
        8 / (1 / 0.125),
        8 / (1 / 0.125),
        8 / (1 / 0.25),
        8 / (2 / 0.25),
        8 / (2 / 0.25),
    ]
    torch.testing.assert_close(r.element_weights(), torch.tensor(w_ref), rtol=1e-6, atol=0)


def test_decimal_tie_survives_float_rounding() -> None:
    """1 - 0.35 and 1 - 0.45 are not exactly 0.65 / 0.55 in float32; the tolerance keeps them ties."""
    p = torch.tensor([0.35, 0.45, 0.85], dtype=torch.float32)
    g = torch.ones(3)
    assert assign_bins(l1_norm(p, g), 0.1).tolist() == [7, 6, 2]
    counts = bin_counts(l1_norm(p, g), 0.1)
    assert counts.tolist() == [0, 1, 1, 0, 0, 1, 2, 1, 0, 0, 0]
    # without tolerance float32 rounding would decide: 1 - 0.35f = 0.64999998 < 0.65
    assert float(l1_norm(p, g)[0]) < 0.65


@pytest.mark.parametrize("bw", [0.1, 0.05, 0.2])
def test_matches_slow_reference_on_random_inputs(bw: float) -> None:
    gen = torch.Generator().manual_seed(7)
    p = torch.rand(300, generator=gen, dtype=torch.float64)
    g = (torch.rand(300, generator=gen) < 0.3).to(torch.float64)
    # add exact decimal ties on purpose
    p[:4] = torch.tensor([0.15, 0.55, 0.65, 0.25], dtype=torch.float64)
    g[:4] = 0
    b = l1_binning(p, g, bw)
    dens, w = _slow_paper_weights((g - p).abs().tolist(), bw)
    np.testing.assert_allclose(b.element_density().numpy(), dens, rtol=1e-9)
    np.testing.assert_allclose(b.element_weights().numpy(), w, rtol=1e-9)


def test_bin_counts_equals_indicator_sum() -> None:
    gen = torch.Generator().manual_seed(3)
    delta = torch.rand(500, generator=gen)
    delta[:6] = torch.tensor([0.05, 0.15, 0.95, 0.0, 1.0, 0.45])
    for bw in (0.1, 0.05, 0.3, 0.35, 1.0):
        ind = bin_indicator(delta, bw)
        assert ind.shape == (500, number_of_bins(bw))
        assert bin_counts(delta, bw).tolist() == ind.sum(0).to(torch.float64).tolist()
        # every element is in its assigned bin
        k = assign_bins(delta, bw)
        assert bool(ind.gather(1, k.unsqueeze(1)).all())


def test_equation_helpers_known_values() -> None:
    assert [number_of_bins(x) for x in (0.1, 0.05, 0.2, 0.25, 1 / 3, 0.3, 0.35, 1.0)] == [
        11,
        21,
        6,
        5,
        4,
        4,
        3,
        2,
    ]
    torch.testing.assert_close(bin_centres(0.1), torch.arange(11, dtype=torch.float64) * 0.1)
    widths = effective_bin_widths(0.1)
    assert widths[0].item() == pytest.approx(0.05) and widths[-1].item() == pytest.approx(0.05)
    assert widths[1:-1].tolist() == pytest.approx([0.1] * 9)
    assert float(widths.sum()) == pytest.approx(1.0)
    d = bin_density(torch.tensor([8.0, 1.0, 0.0]), torch.tensor([0.1, 0.1, 0.05]))
    torch.testing.assert_close(d, torch.tensor([80.0, 10.0, 0.0]))
    torch.testing.assert_close(bin_weights(d, 16), torch.tensor([0.2, 1.6, 0.0]))


def test_uniform_delta_gives_equal_weights() -> None:
    """Paper: uniformly distributed L1 norms -> equal densities -> equal weights (eq. 10)."""
    # two values inside each full-width bin, one inside each half-width end bin (no boundaries)
    centres = [k / 10 for k in range(11)]
    delta = [0.02, 0.98] + [c + s for c in centres[1:-1] for s in (-0.02, 0.02)]
    w = l1_weights(torch.tensor(delta, dtype=torch.float64), torch.zeros(len(delta), dtype=torch.float64))
    n = len(delta)
    torch.testing.assert_close(w, torch.full((n,), n / 20.0, dtype=torch.float64))


def test_conventions_agree_without_ties() -> None:
    gen = torch.Generator().manual_seed(11)
    for bw in (0.1, 0.05, 0.25):
        p = torch.rand(2, 2, 6, 6, 6, generator=gen)
        g = (torch.rand(2, 2, 6, 6, 6, generator=gen) < 0.2).float()
        delta = (g - p).abs()
        u = delta / bw + 0.5
        dist = (u - u.round()).abs() * bw
        keep = dist > 1e-4  # away from every boundary; elsewhere put Delta on the centre B_1 = Gamma
        p = torch.where(keep, p, torch.full_like(p, bw))
        g = torch.where(keep, g, torch.zeros_like(g))
        for per_sample in (False, True):
            a = l1_weights(p, g, bw, "paper", per_sample=per_sample)
            b = l1_weights(p, g, bw, "reference-code", per_sample=per_sample)
            torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


def test_non_integer_inverse_bin_width_paper() -> None:
    """Gamma = 0.35: n = floor(1/0.35 + 1) = 3 centres 0, 0.35, 0.7; last bin extended to [0.525, 1]."""
    delta = torch.tensor([0.1, 0.3, 0.5, 0.6, 0.8, 0.95, 1.0], dtype=torch.float64)
    b = l1_binning(delta, torch.zeros(7, dtype=torch.float64), 0.35)
    assert b.centres.tolist() == pytest.approx([0.0, 0.35, 0.7])
    assert b.widths.tolist() == pytest.approx([0.175, 0.35, 0.475])
    assert b.index.tolist() == [0, 1, 1, 2, 2, 2, 2]
    assert b.counts.tolist() == [1, 2, 4]
    expected = [7 / (1 / 0.175)] + [7 / (2 / 0.35)] * 2 + [7 / (4 / 0.475)] * 4
    np.testing.assert_allclose(b.element_weights().numpy(), expected, rtol=1e-12)
    # Gamma = 0.3: bins reach 1 (0.9 + 0.15), so eq. 8 applies unchanged: last width 1 - 0.75
    assert effective_bin_widths(0.3).tolist() == pytest.approx([0.15, 0.3, 0.3, 0.25])


def test_non_integer_inverse_bin_width_reference_code() -> None:
    """Public code, Gamma = 0.35: int(1/0.35 + 1) = 3 centres from linspace(0, 1, 3) = 0, 0.5, 1."""
    centres, left, widths = reference_code_bins(0.35)
    assert centres.tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert left.tolist() == pytest.approx([0.0, 0.325, 0.825])
    assert widths.tolist() == pytest.approx([0.175, 0.35, 0.175])
    delta = torch.tensor([0.1, 0.3, 0.5, 0.6, 0.8, 0.95, 1.0])
    b = l1_binning(delta, torch.zeros(7), 0.35, "reference-code")
    assert b.index.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert b.counts.tolist() == [2, 3, 2]
    expected = [7 / (2 / 0.175)] * 2 + [7 / (3 / 0.35)] * 3 + [7 / (2 / 0.175)] * 2
    np.testing.assert_allclose(b.element_weights().numpy(), expected, rtol=1e-6)


def test_per_sample_histograms_equal_separate_calls() -> None:
    gen = torch.Generator().manual_seed(5)
    p = torch.rand(3, 2, 5, 5, generator=gen)
    g = (torch.rand(3, 2, 5, 5, generator=gen) < 0.3).float()
    for conv in ("paper", "reference-code"):
        w = l1_weights(p, g, 0.1, conv, per_sample=True)
        for i in range(3):
            torch.testing.assert_close(w[i], l1_weights(p[i], g[i], 0.1, conv))
        b = l1_binning(p, g, 0.1, conv, per_sample=True)
        assert b.counts.shape == (3, 11) and b.n_elements == 50


def test_weights_carry_no_gradient() -> None:
    p = torch.rand(2, 2, 4, 4, requires_grad=True)
    g = torch.zeros(2, 2, 4, 4)
    w = l1_weights(p, g)
    assert not w.requires_grad and w.grad_fn is None


def test_bad_input_errors() -> None:
    p, g = torch.rand(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="equal shapes"):
        l1_weights(p, torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        l1_weights(p + 1.5, g)
    with pytest.raises(ValueError, match="bin_width"):
        l1_weights(p, g, bin_width=0.0)
    with pytest.raises(ValueError, match="bin_width"):
        l1_weights(p, g, bin_width=1.5)
    with pytest.raises(ValueError, match="convention"):
        l1_weights(p, g, convention="code")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tol"):
        l1_weights(p, g, tol=0.2)
    assert not math.isnan(float(l1_weights(p, g).sum()))
