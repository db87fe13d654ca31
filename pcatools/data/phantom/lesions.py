"""Lesion parameter draws matching the paper's cohort statistics (section 2.1).

The paper's 380 [18F]DCFPyL scans hold 684 lesions (1.8 per scan); 34 of the 57 test scans have a
single lesion (about 60 %); lesion volume is 6.68 +/- 10.20 ml, SUVmax 12.65 +/- 14.46 and SUVmean
4.62 +/- 3.88 (mean +/- SD over lesions). :func:`draw_lesions` draws lesion *parameters* (count,
site, volume, SUVmax, shape, uptake profile, CT appearance) from a :class:`numpy.random.Generator`
alone: it knows nothing of anatomy or voxels, so that statistics over thousands of draws are
cheap to test; :mod:`pcatools.data.phantom.placement` puts the lesions into a body and
:mod:`pcatools.data.phantom.render` draws them on a grid.

Models (our reading; the paper gives only means and SDs):

- **count per scan**: ``P(1) = 34/57``; for two or more lesions ``n - 2`` follows a geometric law
  truncated at ``max_lesions``, its parameter solved so that the mean count is exactly
  ``684/380 = 1.8`` (:func:`lesion_count_pmf`).
- **volume** (ml) and **SUVmax**: lognormal laws truncated to ``[0.2, 150]`` ml and ``[2, 150]``,
  their ``(mu, sigma)`` solved so that the *truncated* law has exactly the paper's mean and SD
  (:func:`fit_truncated_lognormal`). Volume and SUVmax are drawn independently (the paper gives no
  correlation). The lower volume bound is a PET detectability floor (a 7 mm sphere) and keeps
  every lesion at >= 3 voxels on a 4 mm grid (see ``render``); it removes 0.4 % of the
  untruncated law's mass. The lower SUVmax bound keeps lesions above the blood pool.
- **SUVmean** is not drawn: it is measured on the rendered image (it depends on the lesion's
  uptake profile, the scanner blur and the noise) and reported by the cohort tools.

Tolerances (stated in ``docs/phantom.md`` and tested): the fitted laws match the paper's moments
to 1e-6 (checked by numerical integration); over 50,000 drawn scans the mean count is within
+/- 0.02 of 1.8, P(1) within +/- 0.01 of 34/57, the volume and SUVmax means within 2 % and their
SDs within 5 % of the paper's (about 4 standard errors each).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

SITES = ("prostate_bed", "pelvic_ln", "retroperitoneal_ln", "bone")
"""Lesion sites: local recurrence in the prostate bed, pelvic and retroperitoneal lymph nodes, bone."""


@dataclass(frozen=True)
class CohortStats:
    """Lesion statistics of the paper's cohort (section 2.1) and the phantom's modelling choices.

    ``site_probs`` (per lesion, in the order of :data:`SITES`) is our approximation of the usual
    pattern of PSMA-positive findings in biochemical recurrence (local recurrence about a quarter,
    pelvic nodes the most frequent, extrapelvic nodes and bone less so; e.g. the meta-analysis
    of Perera et al., Eur Urol 77 (2020) 403-417); it is not fitted to any data.
    """

    n_scans: int = 380
    n_lesions: int = 684
    p_single: float = 34 / 57
    volume_mean_ml: float = 6.68
    volume_sd_ml: float = 10.20
    volume_bounds_ml: tuple[float, float] = (0.2, 150.0)
    suvmax_mean: float = 12.65
    suvmax_sd: float = 14.46
    suvmax_bounds: tuple[float, float] = (2.0, 150.0)
    suvmean_mean: float = 4.62
    suvmean_sd: float = 3.88
    max_lesions: int = 10
    site_probs: tuple[float, float, float, float] = (0.22, 0.38, 0.15, 0.25)
    p_sclerotic: float = 0.6

    @property
    def mean_count(self) -> float:
        """Mean lesions per scan, ``684 / 380 = 1.8``."""
        return self.n_lesions / self.n_scans


PAPER = CohortStats()
"""The paper's statistics (the default everywhere)."""


def truncated_lognormal_moments(mu: float, sigma: float, low: float, high: float) -> tuple[float, float]:
    """Mean and SD of a lognormal law ``ln X ~ N(mu, sigma^2)`` truncated to ``[low, high]``.

    With ``a = (ln low - mu) / sigma``, ``b = (ln high - mu) / sigma`` and ``Z = Phi(b) - Phi(a)``,

    ``E[X^k] = exp(k mu + k^2 sigma^2 / 2) (Phi(b - k sigma) - Phi(a - k sigma)) / Z``.

    Examples
    --------
    >>> m, s = truncated_lognormal_moments(0.0, 1.0, 1e-12, 1e12)  # untruncated
    >>> round(m, 6), round(s, 6)
    (1.648721, 2.161197)
    """
    a = (np.log(low) - mu) / sigma
    b = (np.log(high) - mu) / sigma
    z = special.ndtr(b) - special.ndtr(a)
    m1, m2 = (
        np.exp(k * mu + k * k * sigma * sigma / 2)
        * (special.ndtr(b - k * sigma) - special.ndtr(a - k * sigma))
        / z
        for k in (1, 2)
    )
    return float(m1), float(np.sqrt(max(m2 - m1 * m1, 0.0)))


def fit_truncated_lognormal(mean: float, sd: float, low: float, high: float) -> tuple[float, float]:
    """``(mu, sigma)`` of the lognormal law that, truncated to ``[low, high]``, has ``mean`` and ``sd``.

    Starts from the untruncated moment fit ``sigma^2 = ln(1 + (sd/mean)^2)``,
    ``mu = ln(mean) - sigma^2 / 2`` and solves the two moment equations (least squares, relative).

    Examples
    --------
    >>> mu, sigma = fit_truncated_lognormal(6.68, 10.20, 0.2, 150.0)
    >>> [round(v, 4) for v in truncated_lognormal_moments(mu, sigma, 0.2, 150.0)]
    [6.68, 10.2]
    """
    if not (0 < low < mean < high) or sd <= 0:
        raise ValueError(
            f"fit_truncated_lognormal: need 0 < low < mean < high and sd > 0, found "
            f"low={low}, mean={mean}, high={high}, sd={sd}"
        )
    s0 = np.sqrt(np.log1p((sd / mean) ** 2))
    mu0 = np.log(mean) - s0 * s0 / 2

    def resid(p: np.ndarray) -> np.ndarray:
        m, s = truncated_lognormal_moments(p[0], float(np.exp(p[1])), low, high)
        return np.array([m / mean - 1.0, s / sd - 1.0])

    sol = optimize.least_squares(resid, [mu0, np.log(s0)], xtol=1e-15, ftol=1e-15, gtol=1e-15)
    if np.max(np.abs(resid(sol.x))) > 1e-8:
        raise ValueError(f"no truncated lognormal on [{low}, {high}] has mean {mean} and SD {sd}")
    return float(sol.x[0]), float(np.exp(sol.x[1]))


def sample_truncated_lognormal(
    rng: np.random.Generator, mu: float, sigma: float, low: float, high: float, size: int
) -> np.ndarray:
    """Inverse-CDF draws from the truncated lognormal law (one uniform per draw)."""
    a = special.ndtr((np.log(low) - mu) / sigma)
    b = special.ndtr((np.log(high) - mu) / sigma)
    u = a + (b - a) * rng.random(size)
    return np.clip(np.exp(mu + sigma * special.ndtri(u)), low, high)


def lesion_count_pmf(
    p_single: float = PAPER.p_single, mean: float = PAPER.mean_count, max_lesions: int = PAPER.max_lesions
) -> np.ndarray:
    """Probabilities of 1 .. ``max_lesions`` lesions per scan (index 0 is one lesion).

    ``P(1) = p_single``; ``P(n) = (1 - p_single) q (1 - q)^(n - 2) / C`` for ``2 <= n <= max_lesions``
    (a geometric law on ``n - 2`` truncated and renormalised by ``C``), with ``q`` solved so that
    ``sum n P(n) = mean``.

    Examples
    --------
    >>> pmf = lesion_count_pmf(0.6, 1.8, 10)
    >>> round(float(pmf[0]), 3), round(float((np.arange(1, 11) * pmf).sum()), 6)
    (0.6, 1.8)
    """
    n = np.arange(2, max_lesions + 1)
    target = (mean - p_single) / (1 - p_single)  # mean count among multi-lesion scans
    if not (0 < p_single < 1) or not (2 < target < max_lesions):
        raise ValueError(
            f"lesion_count_pmf: no law on 1..{max_lesions} has P(1) = {p_single} and mean {mean}"
        )

    def tail(q: float) -> np.ndarray:
        w = q * (1 - q) ** (n - 2)
        return w / w.sum()

    q = optimize.brentq(lambda q: float((n * tail(q)).sum()) - target, 1e-9, 1 - 1e-12, xtol=1e-15)
    return np.concatenate([[p_single], (1 - p_single) * tail(q)])


def lesion_axes_mm(volume_ml: float, ratio_b: float, ratio_c: float) -> tuple[float, float, float]:
    """Semi-axes ``(a, a ratio_b, a ratio_c)`` in mm of an ellipsoid of ``volume_ml``: ``4/3 pi abc = V``.

    Examples
    --------
    >>> [round(v, 3) for v in lesion_axes_mm(4 / 3 * np.pi / 1000 * 1000, 1.0, 1.0)]
    [10.0, 10.0, 10.0]
    """
    a = (3 * volume_ml * 1000.0 / (4 * np.pi * ratio_b * ratio_c)) ** (1 / 3)
    return float(a), float(a * ratio_b), float(a * ratio_c)


def draw_lesions(
    rng: np.random.Generator, n_scans: int = 1, n_lesions: int | None = None, stats: CohortStats = PAPER
) -> pd.DataFrame:
    """Draw the lesion parameters of ``n_scans`` scans (a pure function of ``rng``).

    Parameters
    ----------
    rng : numpy.random.Generator
    n_scans : int
        Number of scans.
    n_lesions : int or None
        Lesions per scan; None draws it from :func:`lesion_count_pmf` (0 gives lesion-free scans).
    stats : CohortStats
        Target statistics (default: the paper's).

    Returns
    -------
    pandas.DataFrame
        One row per lesion: ``scan, lesion, site, volume_ml, suvmax, ratio_b, ratio_c, q0..q3``
        (a random orientation as a unit quaternion), ``profile_width`` (SD of the Gaussian uptake
        profile, relative to the lesion's radius), ``ct_hu`` (CT value inside the lesion; NaN for
        a CT-occult bone lesion), and ``n_in_scan``. Scans without lesions have no rows.

    Examples
    --------
    >>> t = draw_lesions(np.random.default_rng(0), n_scans=3)
    >>> sorted(t.columns)[:4], bool((t.volume_ml >= 0.2).all())
    (['ct_hu', 'lesion', 'n_in_scan', 'profile_width'], True)
    """
    if n_scans < 0:
        raise ValueError(f"n_scans: expected >= 0, found {n_scans}")
    if n_lesions is None:
        pmf = lesion_count_pmf(stats.p_single, stats.mean_count, stats.max_lesions)
        counts = rng.choice(np.arange(1, stats.max_lesions + 1), size=n_scans, p=pmf)
    else:
        if n_lesions < 0:
            raise ValueError(f"n_lesions: expected >= 0 or None, found {n_lesions}")
        counts = np.full(n_scans, int(n_lesions))
    total = int(counts.sum())
    mu_v, s_v = fit_truncated_lognormal(stats.volume_mean_ml, stats.volume_sd_ml, *stats.volume_bounds_ml)
    mu_s, s_s = fit_truncated_lognormal(stats.suvmax_mean, stats.suvmax_sd, *stats.suvmax_bounds)
    volume = sample_truncated_lognormal(rng, mu_v, s_v, *stats.volume_bounds_ml, size=total)
    suvmax = sample_truncated_lognormal(rng, mu_s, s_s, *stats.suvmax_bounds, size=total)
    site_idx = rng.choice(len(SITES), size=total, p=np.asarray(stats.site_probs) / sum(stats.site_probs))
    ratios = np.sort(rng.uniform(0.6, 1.0, size=(total, 2)), axis=1)[:, ::-1]
    quat = rng.standard_normal((total, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    width = np.clip(0.52 * (suvmax / 8.0) ** -0.25 * rng.uniform(0.85, 1.15, size=total), 0.15, 1.0)
    sclerotic = rng.random(total) < stats.p_sclerotic
    hu_soft = rng.uniform(30.0, 50.0, size=total)
    hu_bone = rng.uniform(350.0, 900.0, size=total)
    site = np.asarray(SITES, dtype=object)[site_idx]
    ct_hu = np.where(site == "bone", np.where(sclerotic, hu_bone, np.nan), hu_soft)
    scan = np.repeat(np.arange(n_scans), counts)
    lesion = np.concatenate([np.arange(c) for c in counts]) if n_scans else np.zeros(0, dtype=int)
    return pd.DataFrame(
        {
            "scan": scan.astype(int),
            "lesion": lesion.astype(int),
            "n_in_scan": np.repeat(counts, counts).astype(int),
            "site": pd.Series(site, dtype=object),
            "volume_ml": volume,
            "suvmax": suvmax,
            "ratio_b": ratios[:, 0],
            "ratio_c": ratios[:, 1],
            "q0": quat[:, 0],
            "q1": quat[:, 1],
            "q2": quat[:, 2],
            "q3": quat[:, 3],
            "profile_width": width,
            "ct_hu": ct_hu,
        }
    )
