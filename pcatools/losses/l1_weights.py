"""L1-norm voxel weights of the L1-weighted Dice Focal Loss (paper section 2.6, eq. 4-10).

Every element (voxel, and class channel where there are several) gets the weight of the
histogram bin its L1 norm ``Delta = |g - p|`` falls in; rare values of Delta (usually the
misclassified lesion voxels) get large weights, the abundant easy background small ones.

Two conventions are offered (see ``docs/losses.md``):

``"paper"`` (default)
    The equations as printed: bin centres ``B_k = k * Gamma`` (eq. 5), the *inclusive*
    indicator ``|B_k - Delta| <= Gamma / 2`` of eq. 7, so a Delta on a bin boundary
    (0.15, 0.55, 0.65 with ``Gamma = 0.1``) is counted in *both* neighbouring bins;
    effective widths (eq. 8), density (eq. 9) and ``w = N / D`` (eq. 10). Each element
    takes the weight of the bin it belongs to: the nearest centre, a tie going to the
    upper bin. Boundaries are compared with a tolerance ``tol`` (in units of Delta) so that
    float rounding never moves a decimal tie (``1 - 0.35`` is 0.6499999 in float32). This
    reading reproduces the paper's Figure 1 exactly (tested).
``"reference-code"``
    The authors' public code (github.com/ObedDzik/pca_segment, ``segmentation/losses.py``):
    ``n = int(1 / Gamma + 1)`` centres from ``linspace(0, 1, n)``, left edges
    ``max(B_k - Gamma / 2, 0)``, each Delta goes to one half-open bin ``[left_k, left_k+1)``
    found by ``torch.bucketize`` (no double counting, no tolerance: float rounding decides
    decimal ties), densities ``count / (width + 1e-8)``; its default bin width is 0.05
    (:data:`REFERENCE_CODE_BIN_WIDTH`). As there, Delta and the edges are float32 whatever the
    input dtype. On Figure 1 it counts 0.15, 0.55 and 0.65 once, in the upper bin, so
    ``D(0.6) = 40`` and ``w = 0.4`` where the paper shows 50 and 0.32 (tested).

Without values on (or within ``tol`` of) a boundary and with an integer ``1 / Gamma`` both
conventions give the same weights (up to the ``1e-8`` added to the widths).

When ``1 / Gamma`` is not an integer (paper convention), eq. 5 still gives
``n = floor(1 / Gamma + 1)`` centres ``k * Gamma``; the last one may then sit so far below 1
that ``[B_{n-1} - Gamma/2, B_{n-1} + Gamma/2]`` does not reach 1. We extend the last bin up to
1: every Delta above ``B_{n-1} - Gamma/2`` belongs to it and its effective width is
``1 - max(B_{n-1} - Gamma/2, 0)``. Where the bins do reach 1 (always for integer
``1 / Gamma``) this is exactly eq. 7 and eq. 8. The reference code instead spaces its
``int(1 / Gamma + 1)`` centres evenly over [0, 1] (spacing ``1 / (n - 1)``, not Gamma) while
still using Gamma for the widths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "PAPER_BIN_WIDTH",
    "REFERENCE_CODE_BIN_WIDTH",
    "DEFAULT_TOL",
    "Convention",
    "L1Binning",
    "l1_norm",
    "number_of_bins",
    "bin_centres",
    "bin_indicator",
    "bin_counts",
    "effective_bin_widths",
    "bin_density",
    "bin_weights",
    "assign_bins",
    "reference_code_bins",
    "l1_binning",
    "l1_weights",
]

Convention = Literal["paper", "reference-code"]
"""The L1 weighting of the paper's equations or of its public code (``docs/conventions.md``)."""

PAPER_BIN_WIDTH = 0.1
"""Gamma used in the paper's experiments (section 2.6)."""
REFERENCE_CODE_BIN_WIDTH = 0.05
"""Default ``epsilon`` (bin width) of the public code's ``L1DFL`` class."""
DEFAULT_TOL = 1e-6
"""Tolerance (units of Delta) within which a Delta counts as lying on a bin boundary."""


def _check_bin_width(bin_width: float) -> float:
    bw = float(bin_width)
    if not (math.isfinite(bw) and 0.0 < bw <= 1.0):
        raise ValueError(f"bin_width (Gamma) must be in (0, 1], found {bin_width!r}")
    return bw


def _check_convention(convention: str) -> None:
    if convention not in ("paper", "reference-code"):
        raise ValueError(f"convention must be 'paper' or 'reference-code', found {convention!r}")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else (fp16, bf16, ints, bool) is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def l1_norm(probs: Tensor, target: Tensor) -> Tensor:
    r"""Element-wise L1 norm between ground truth and prediction (eq. 4).

    .. math:: \Delta_i = \lVert g_i - p_i \rVert_1 = |g_i - p_i|, \quad i = 1 \dots N

    Each element (one voxel of one class channel) is a scalar, so its L1 norm is the absolute
    difference. Computed in float32 (float64 inputs stay float64).

    Parameters
    ----------
    probs : Tensor
        Predicted probabilities in [0, 1].
    target : Tensor
        Ground truth (one-hot or binary) of the same shape.

    Returns
    -------
    Tensor
        ``Delta`` with the shape of ``probs``.

    Examples
    --------
    >>> l1_norm(torch.tensor([0.1, 0.35]), torch.tensor([1.0, 0.0]))
    tensor([0.9000, 0.3500])
    """
    if probs.shape != target.shape:
        raise ValueError(
            f"probs and target must have equal shapes, found {tuple(probs.shape)} and {tuple(target.shape)}"
        )
    dtype = _work_dtype(probs.dtype)
    return (target.to(dtype) - probs.to(dtype)).abs()


def number_of_bins(bin_width: float) -> int:
    r"""Number of bins of eq. 5, :math:`n = \lfloor 1/\Gamma + 1 \rfloor`.

    A ``1 / Gamma`` within 1e-9 of an integer is taken as that integer, so that e.g.
    ``Gamma = 1/3`` gives 4 bins whatever the float rounding of ``1 / Gamma``.

    Examples
    --------
    >>> number_of_bins(0.1), number_of_bins(0.05), number_of_bins(0.3)
    (11, 21, 4)
    """
    inv = 1.0 / _check_bin_width(bin_width)
    nearest = round(inv)
    if abs(inv - nearest) < 1e-9:
        return int(nearest) + 1
    return int(math.floor(inv + 1.0))


def bin_centres(bin_width: float) -> Tensor:
    r"""Bin centres of eq. 5, :math:`B_k = \Gamma k` for :math:`k = 0 \dots n-1` (float64).

    Examples
    --------
    >>> bin_centres(0.25)
    tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000], dtype=torch.float64)
    """
    bw = _check_bin_width(bin_width)
    return torch.arange(number_of_bins(bw), dtype=torch.float64) * bw


def bin_indicator(delta: Tensor, bin_width: float, tol: float = DEFAULT_TOL) -> Tensor:
    r"""Inclusive bin membership of eq. 7 (boolean, shape ``delta.shape + (n,)``).

    .. math:: \delta_\kappa(B_k, \Delta_i) = 1 \text{ if } |B_k - \Delta_i| \le \Gamma/2 \text{ else } 0

    compared with tolerance ``tol``: a Delta within ``tol`` of a boundary belongs to both
    neighbouring bins. The last bin also holds every Delta above its upper edge (only possible
    when ``1 / Gamma`` is not an integer; see the module docstring). Materialises an
    ``(N, n)`` tensor: meant for inspection and tests; :func:`bin_counts` is the fast path.

    Examples
    --------
    >>> bin_indicator(torch.tensor([0.15, 0.3]), 0.1).int()
    tensor([[0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.int32)
    """
    bw = _check_bin_width(bin_width)
    centres = bin_centres(bw).to(torch.float64)
    d = delta.detach().to(torch.float64).unsqueeze(-1)
    inside = (centres - d).abs() <= bw / 2 + tol
    last = d[..., 0] >= centres[-1] - bw / 2 - tol
    inside[..., -1] |= last
    return inside


def bin_counts(delta: Tensor, bin_width: float, tol: float = DEFAULT_TOL, per_sample: bool = False) -> Tensor:
    r"""Number of Delta values in each bin with the inclusive indicator (eq. 6 with eq. 7).

    .. math:: \mathcal{C}(B_k) = \sum_{i=1}^N \delta_\kappa(B_k, \Delta_i)

    Computed without the ``(N, n)`` indicator: with ``u = Delta / Gamma + 1/2``,
    ``H_up = bincount(floor(u + tol/Gamma))`` puts boundary values in the upper bin and
    ``H_dn = bincount(floor(u - tol/Gamma))`` in the lower one; the number of values on the
    boundary between bins k and k+1 is ``T_{k+1} = cumsum(H_dn - H_up)_k`` and
    ``C_k = H_up_k + T_{k+1}``.

    Parameters
    ----------
    delta : Tensor
        L1 norms in [0, 1] (eq. 4).
    bin_width : float
        Gamma.
    tol : float
        Boundary tolerance in units of Delta.
    per_sample : bool
        Count each ``delta[b]`` separately (returns ``(B, n)``) instead of all elements.

    Returns
    -------
    Tensor
        float64 counts, ``(n,)`` or ``(B, n)``.

    Examples
    --------
    >>> bin_counts(torch.tensor([0.15, 0.2, 0.3]), 0.1)[:4]
    tensor([0., 1., 2., 1.], dtype=torch.float64)
    """
    bw = _check_bin_width(bin_width)
    n = number_of_bins(bw)
    groups = delta.shape[0] if per_sample else 1
    flat = delta.detach().reshape(groups, -1)
    up, dn = _paper_bin_indices(flat, bw, n, tol)
    h_up = _grouped_bincount(up, n)
    h_dn = _grouped_bincount(dn, n)
    counts = h_up + torch.cumsum(h_dn - h_up, dim=-1)
    counts = counts.to(torch.float64)
    return counts if per_sample else counts[0]


def effective_bin_widths(bin_width: float) -> Tensor:
    r"""Effective bin widths of eq. 8, truncated to [0, 1] (float64, shape ``(n,)``).

    .. math:: \lambda_\kappa(B_k) = \min\{B_k + \Gamma/2, 1\} - \max\{B_k - \Gamma/2, 0\}

    For the last bin the upper limit is always 1 (the bin is extended up to 1 when
    ``1 / Gamma`` is not an integer, see the module docstring); this equals eq. 8 whenever the
    last bin reaches 1.

    Examples
    --------
    >>> effective_bin_widths(0.25)
    tensor([0.1250, 0.2500, 0.2500, 0.2500, 0.1250], dtype=torch.float64)
    >>> effective_bin_widths(0.35)  # n = 3 centres 0, 0.35, 0.7; last bin [0.525, 1]
    tensor([0.1750, 0.3500, 0.4750], dtype=torch.float64)
    """
    bw = _check_bin_width(bin_width)
    centres = bin_centres(bw)
    upper = torch.clamp(centres + bw / 2, max=1.0)
    upper[-1] = 1.0
    lower = torch.clamp(centres - bw / 2, min=0.0)
    return upper - lower


def bin_density(counts: Tensor, widths: Tensor) -> Tensor:
    r"""Norm density of eq. 9, :math:`\mathcal{D}(B_k) = \mathcal{C}(B_k) / \lambda_\kappa(B_k)`.

    Examples
    --------
    >>> bin_density(torch.tensor([8.0, 1.0]), torch.tensor([0.1, 0.05]))
    tensor([80., 20.])
    """
    return counts / widths


def bin_weights(density: Tensor, n_elements: int) -> Tensor:
    r"""Bin weights of eq. 10, :math:`w(B_k) = N / \mathcal{D}(B_k)`.

    Empty bins (density 0) get weight 0: no element takes their weight (as in the public code).

    Examples
    --------
    >>> bin_weights(torch.tensor([80.0, 10.0, 0.0]), 16)
    tensor([0.2000, 1.6000, 0.0000])
    """
    safe = torch.where(density > 0, density, torch.ones_like(density))
    return torch.where(density > 0, n_elements / safe, torch.zeros_like(density))


def assign_bins(delta: Tensor, bin_width: float, tol: float = DEFAULT_TOL) -> Tensor:
    r"""Bin of each element (paper convention): the nearest centre, a tie going to the upper bin.

    :math:`k_i = \min(\lfloor \Delta_i/\Gamma + 1/2 + tol/\Gamma \rfloor, n - 1)`. This is the
    reading of "w_i = w(B_k) if Delta_i belongs to bin B_k" (eq. 11) that reproduces Figure 1
    (0.15, 0.55 and 0.65 take the weight of the upper bin).

    Examples
    --------
    >>> assign_bins(torch.tensor([0.0, 0.04, 0.15, 0.6499, 0.65, 1.0]), 0.1)
    tensor([ 0,  0,  2,  6,  7, 10])
    """
    bw = _check_bin_width(bin_width)
    up, _ = _paper_bin_indices(delta.detach(), bw, number_of_bins(bw), tol, need_down=False)
    return up


def reference_code_bins(bin_width: float = REFERENCE_CODE_BIN_WIDTH) -> tuple[Tensor, Tensor, Tensor]:
    """Bins of the public code: ``(centres, left_edges, widths)`` as float32 tensors.

    ``n = int(1 / Gamma + 1)``, ``centres = linspace(0, 1, n)``,
    ``left = clamp(centres - Gamma/2, min=0)``, ``widths = clamp(centres + Gamma/2, max=1) - left``.

    Examples
    --------
    >>> c, left, w = reference_code_bins(0.25)
    >>> left
    tensor([0.0000, 0.1250, 0.3750, 0.6250, 0.8750])
    """
    bw = _check_bin_width(bin_width)
    n = int(1.0 / bw + 1)
    centres = torch.linspace(0.0, 1.0, n)
    left = torch.clamp(centres - bw / 2, min=0.0)
    right = torch.clamp(centres + bw / 2, max=1.0)
    return centres, left, right - left


@dataclass
class L1Binning:
    """The histogram of eq. 4-10 for one tensor, with per-element bins.

    Attributes
    ----------
    delta : Tensor
        Eq. 4, shape of the input.
    index : Tensor
        int64 bin index of every element (same shape).
    centres, widths : Tensor
        ``(n,)`` bin centres (eq. 5) and effective widths (eq. 8; reference code: its widths).
    counts, density, weights : Tensor
        Per bin (eq. 6, 9, 10): ``(n,)``, or ``(B, n)`` when ``per_sample``.
    n_elements : int
        N of eq. 10 (elements in one histogram).
    bin_width : float
    convention : str
    per_sample : bool
    """

    delta: Tensor
    index: Tensor
    centres: Tensor
    widths: Tensor
    counts: Tensor
    density: Tensor
    weights: Tensor
    n_elements: int
    bin_width: float
    convention: str
    per_sample: bool

    def _lookup(self, table: Tensor) -> Tensor:
        table = table.to(self.delta.dtype)
        if not self.per_sample:
            return torch.take(table, self.index)
        b = self.index.shape[0]
        flat = (
            self.index.reshape(b, -1)
            + torch.arange(b, device=self.index.device).unsqueeze(1) * table.shape[-1]
        )
        return torch.take(table.reshape(-1), flat).reshape(self.index.shape)

    def element_weights(self) -> Tensor:
        """``w_i = w(B_k)`` for the bin k of each element (eq. 10-11), same shape as the input."""
        return self._lookup(self.weights)

    def element_density(self) -> Tensor:
        """``D(B_k)`` for the bin k of each element (eq. 9), as drawn in Figure 1(d)."""
        return self._lookup(self.density)


def _paper_bin_indices(
    flat: Tensor, bw: float, n: int, tol: float, need_down: bool = True
) -> tuple[Tensor, Tensor | None]:
    """``floor(Delta/Gamma + 1/2 +- tol/Gamma)`` clamped to ``[0, n-1]`` as int64 (ties up / down)."""
    if not 0 <= tol < bw / 2:
        raise ValueError(f"tol must be in [0, bin_width/2) = [0, {bw / 2}), found {tol!r}")
    scale = 1.0 / bw
    u = flat.to(_work_dtype(flat.dtype)) * scale
    u += 0.5 + tol * scale
    up = torch.floor(u).to(torch.int64).clamp_(0, n - 1)
    if not need_down:
        return up, None
    u -= 2 * tol * scale
    dn = torch.floor(u).to(torch.int64).clamp_(0, n - 1)
    return up, dn


def _grouped_bincount(index: Tensor | None, n: int) -> Tensor:
    """Bincount of ``index`` ``(G, M)`` per row -> ``(G, n)`` int64."""
    assert index is not None
    g = index.shape[0]
    if g == 1:
        return torch.bincount(index.reshape(-1), minlength=n).unsqueeze(0)
    offset = torch.arange(g, device=index.device).unsqueeze(1) * n
    return torch.bincount((index + offset).reshape(-1), minlength=g * n).reshape(g, n)


def _paper_tables(
    flat: Tensor, bw: float, tol: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Paper convention on ``flat`` ``(G, M)``: index (ties up), centres, widths, counts, density, weights."""
    n = number_of_bins(bw)
    up, dn = _paper_bin_indices(flat, bw, n, tol)
    h_up = _grouped_bincount(up, n)
    h_dn = _grouped_bincount(dn, n)
    del dn
    counts = (h_up + torch.cumsum(h_dn - h_up, dim=-1)).to(torch.float64)
    widths = effective_bin_widths(bw).to(counts.device)
    density = bin_density(counts, widths)
    weights = bin_weights(density, flat.shape[1])
    return up, bin_centres(bw).to(counts.device), widths, counts, density, weights


def _reference_tables(flat: Tensor, bw: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Reference-code convention on ``flat`` ``(G, M)`` (bucketize on left edges, +1e-8 widths)."""
    centres, left, widths = reference_code_bins(bw)
    d = flat.to(torch.float32)  # the public code bins float32 values against float32 edges
    left = left.to(device=d.device)
    n = left.numel()
    idx = torch.bucketize(d, left, right=True).sub_(1).clamp_(0, n - 1)
    counts = _grouped_bincount(idx, n).to(torch.float64)
    widths64 = widths.to(device=d.device, dtype=torch.float64)
    density = counts / (widths64 + 1e-8)
    weights = bin_weights(density, flat.shape[1])
    return idx, centres.to(d.device, torch.float64), widths64, counts, density, weights


def _binning_flat(
    flat: Tensor, bw: float, convention: str, tol: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    if convention == "paper":
        return _paper_tables(flat, bw, tol)
    return _reference_tables(flat, bw)


def _resolve_bin_width(bin_width: float | None, convention: str) -> float:
    _check_convention(convention)
    if bin_width is None:
        return PAPER_BIN_WIDTH if convention == "paper" else REFERENCE_CODE_BIN_WIDTH
    return _check_bin_width(bin_width)


def _check_unit_interval(name: str, t: Tensor) -> None:
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    lo, hi = float(t.min()), float(t.max())
    if not (lo >= -1e-6 and hi <= 1 + 1e-6):
        raise ValueError(
            f"{name} must lie in [0, 1] (probabilities / one-hot labels), found range [{lo:.6g}, {hi:.6g}]"
        )


def l1_binning(
    probs: Tensor,
    target: Tensor,
    bin_width: float | None = None,
    convention: Convention = "paper",
    *,
    per_sample: bool = False,
    tol: float = DEFAULT_TOL,
) -> L1Binning:
    """Histogram of the L1 norms with bins, counts, densities and weights (eq. 4-10).

    Parameters
    ----------
    probs, target : Tensor
        Predicted probabilities and ground truth (one-hot / binary), equal shapes, values in [0, 1].
        Any shape: ``(B, C, *spatial)`` for a network output, or Figure 1's ``(4, 4)`` matrix.
    bin_width : float, optional
        Gamma; ``None`` takes the convention's default (paper 0.1, reference code 0.05).
    convention : {"paper", "reference-code"}
        See the module docstring.
    per_sample : bool
        One histogram per ``probs[b]`` (N = elements of one sample) instead of one over all
        elements (the public code's choice: the whole batch, N = all elements).
    tol : float
        Boundary tolerance (paper convention only), in units of Delta.

    Returns
    -------
    L1Binning

    Examples
    --------
    >>> g = torch.tensor([0.0, 0.0, 1.0, 1.0])
    >>> p = torch.tensor([0.2, 0.2, 0.9, 0.35])
    >>> b = l1_binning(p, g)
    >>> b.element_weights()  # Delta 0.2, 0.2, 0.1, 0.65 -> bins 0.2, 0.2, 0.1, 0.7
    tensor([0.2000, 0.2000, 0.4000, 0.4000])
    """
    bw = _resolve_bin_width(bin_width, convention)
    delta = l1_norm(probs.detach(), target.detach())
    _check_unit_interval("probs", probs.detach())
    _check_unit_interval("target", target.detach())
    if per_sample and delta.ndim == 0:
        raise ValueError("per_sample=True needs a leading batch dimension, found a 0-d tensor")
    groups = delta.shape[0] if per_sample else 1
    flat = delta.reshape(groups, -1)
    idx, centres, widths, counts, density, weights = _binning_flat(flat, bw, convention, tol)
    if not per_sample:
        counts, density, weights = counts[0], density[0], weights[0]
    return L1Binning(
        delta=delta,
        index=idx.reshape(delta.shape),
        centres=centres,
        widths=widths,
        counts=counts,
        density=density,
        weights=weights,
        n_elements=flat.shape[1],
        bin_width=bw,
        convention=convention,
        per_sample=per_sample,
    )


def l1_weights(
    probs: Tensor,
    target: Tensor,
    bin_width: float | None = None,
    convention: Convention = "paper",
    *,
    per_sample: bool = False,
    tol: float = DEFAULT_TOL,
) -> Tensor:
    """Per-element L1 weights ``w_i`` of eq. 4-10 (same shape as ``probs``, no gradient).

    ``bin_width=None`` means the convention's default: 0.1 for ``"paper"`` (the paper's
    Gamma), 0.05 for ``"reference-code"`` (the public code's default). See :func:`l1_binning`
    for the parameters and the module docstring for the two conventions.

    Examples
    --------
    Figure 1 of the paper (G and P(G) -> w):

    >>> G = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0.]])
    >>> P = torch.tensor([[0.21, 0.24, 0.1, 0.35], [0.2, 0.15, 0.18, 0.45],
    ...                   [0.74, 0.61, 0.16, 0.18], [0.58, 0.62, 0.2, 0.21]])
    >>> l1_weights(P, G)
    tensor([[0.2000, 0.2000, 1.6000, 0.8000],
            [0.2000, 0.2000, 1.6000, 0.3200],
            [0.8000, 0.3200, 0.2000, 0.2000],
            [0.3200, 0.3200, 0.2000, 0.2000]])
    """
    return l1_binning(probs, target, bin_width, convention, per_sample=per_sample, tol=tol).element_weights()
