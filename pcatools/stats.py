"""Cohort statistics of the paper (2.7, 3): summaries, scenarios, thresholds, Dmax groups, Wilcoxon, Table 1.

Beyond the paper (statsmodels / scipy): Holm correction of the Wilcoxon p-values, seeded bootstrap
confidence intervals of every median in Table 1, and a mixed-effects model of lesion-level DSC
with a random intercept per patient.

Inputs are the per-case and per-lesion tables of :func:`pcatools.metrics.evaluate_cohort`
(columns ``CASE_COLUMNS`` and ``LESION_COLUMNS`` of :mod:`pcatools.metrics`): one row per (case,
network, loss), resp. per (lesion, network, loss).
Conventions: standard deviations are sample SDs (``ddof=1``); quantiles and IQRs use numpy's
default linear interpolation; NaN values are left out of every summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from pcatools.metrics.detection import Criterion
from pcatools.vocabulary import LOSS_LABELS, NETWORK_LABELS, loss_label, network_label, ordered

PAPER_DMAX_EDGES_MM: tuple[float, ...] = (0.0, 90.0, 110.0, 140.0, 600.0)
"""The paper's Dmax groups G0-G3 (3.4): 0-9, 9-11, 11-14 and 14-60 cm, in mm."""

DMAX_GROUPS: tuple[str, ...] = ("G0", "G1", "G2", "G3")
"""The names of the Dmax groups (3.4), in order of :data:`PAPER_DMAX_EDGES_MM`."""

EMPTY_CASE_RULES: tuple[str, ...] = ("autopet", "count", "exclude")
"""How Table 1 scores a case without ground-truth lesion (``pcatools evaluate --empty-cases``):
``"autopet"`` (default, the challenge's rule) counts it in FP (and FPV) only, not in DSC, F1, TP,
FN or the P values; ``"count"`` counts it everywhere (DSC and F1 are 1 when nothing is predicted,
else 0; TP and FN rates leave it out, having no lesion to divide by); ``"exclude"`` leaves it out
of every column."""

SMALL_COHORT = 5
"""Fewer paired cases than this get a note under Table 1: SD, bootstrap CI and Wilcoxon P say little
(with n pairs the smallest one-tailed exact P is 1/2^n, 0.5 for one case)."""

DETECTION_COUNTS: dict[str, tuple[str, str, str]] = {
    "suvmax": ("lesions whose SUVmax voxel a prediction covers", "components overlapping no lesion",
               "lesions whose SUVmax voxel no prediction covers"),
    "overlap": ("components overlapping a lesion", "components overlapping no lesion",
                "lesions no component overlaps"),
    "iou": ("components matched to a lesion at IoU >= the threshold", "components not matched",
            "lesions not matched"),
    "suvmax_iou": ("components covering the SUVmax voxel of their best-IoU lesion",
                   "components that do not", "lesions no TP component is matched to"),
}  # fmt: skip
"""What TP, FP and FN count under each detection criterion (:mod:`pcatools.metrics.detection`), for
Table 1's footnote."""


# --------------------------------------------------------------------------- formatting


def _finite(values: Iterable[float] | pd.Series | np.ndarray) -> np.ndarray:
    """Values as float64 with NaN / inf / non-numeric entries left out."""
    if isinstance(values, pd.Series):
        series = values
    elif isinstance(values, np.ndarray):
        series = pd.Series(values.ravel())
    else:
        series = pd.Series(list(values), dtype=object)
    arr = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    return arr[np.isfinite(arr)]


def fmt_mean_sd(values: Iterable[float], digits: int = 2) -> str:
    """``"mean ± sd"`` (sample SD, ddof=1; NaNs left out), as Table 1 prints DSC, TP, FP, FN, F1.

    Examples
    --------
    >>> fmt_mean_sd([0.5, 0.7, 0.9])
    '0.70 ± 0.20'
    """
    x = _finite(values)
    if x.size == 0:
        return "n/a"
    sd = float(np.std(x, ddof=1)) if x.size > 1 else float("nan")
    return f"{np.mean(x):.{digits}f} ± {sd:.{digits}f}"


def fmt_median_iqr(values: Iterable[float], digits: int = 2) -> str:
    """``"median [Q1, Q3]"`` (numpy linear quantiles; NaNs left out), as Table 1 prints the median DSC.

    Examples
    --------
    >>> fmt_median_iqr([0.1, 0.2, 0.3, 0.4, 0.5])
    '0.30 [0.20, 0.40]'
    """
    x = _finite(values)
    if x.size == 0:
        return "n/a"
    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    return f"{med:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"


def fmt_p(p: float, alpha: float = 0.05) -> str:
    """A p-value as the paper prints it: ``"< 0.01"`` below 0.01, else two significant digits; ``*`` if < alpha.

    Examples
    --------
    >>> [fmt_p(p) for p in (0.003, 0.015, 0.24)]
    ['< 0.01*', '0.015*', '0.24']
    """
    if not np.isfinite(p):
        return ""
    text = "< 0.01" if p < 0.01 else f"{p:.2g}"
    return text + ("*" if p < alpha else "")


# --------------------------------------------------------------------------- summaries


def add_scenario(df: pd.DataFrame, n_col: str = "n_gt_lesions") -> pd.DataFrame:
    """Copy of ``df`` with column ``scenario``: ``"S"`` (one GT lesion), ``"M"`` (two or more), ``"none"``.

    Examples
    --------
    >>> add_scenario(pd.DataFrame({"n_gt_lesions": [0, 1, 3]}))["scenario"].tolist()
    ['none', 'S', 'M']
    """
    if n_col not in df.columns:
        raise KeyError(f"add_scenario: expected a column {n_col!r} (lesion count), found {list(df.columns)}")
    n = pd.to_numeric(df[n_col])
    out = df.copy()
    out["scenario"] = np.where(n >= 2, "M", np.where(n == 1, "S", "none"))
    return out


def _require(df: pd.DataFrame, cols: Iterable[str], who: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{who}: missing column(s) {missing}; found {list(df.columns)}")


def summarize(
    df: pd.DataFrame,
    metrics: Sequence[str] = ("dice", "tp", "fp", "fn", "f1"),
    by: Sequence[str] = ("network", "loss"),
    digits: int = 2,
) -> pd.DataFrame:
    """Mean, SD, median and IQR of each metric per group, with the formatted strings.

    Returns a long table: ``*by, metric, n, mean, sd, median, q1, q3, mean_sd, median_iqr``.

    Examples
    --------
    >>> df = pd.DataFrame({"loss": ["a"] * 3, "dice": [0.5, 0.7, 0.9]})
    >>> summarize(df, metrics=["dice"], by=["loss"])[["loss", "n", "mean_sd", "median_iqr"]]
      loss  n      mean_sd         median_iqr
    0    a  3  0.70 ± 0.20  0.70 [0.60, 0.80]
    """
    _require(df, [*by, *metrics], "summarize")
    rows: list[dict[str, Any]] = []
    groups = df.groupby(list(by), sort=True, dropna=False) if by else [((), df)]
    for keys, grp in groups:
        keys_t = keys if isinstance(keys, tuple) else (keys,)
        for m in metrics:
            x = _finite(grp[m])
            q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75]) if x.size else (np.nan,) * 3
            rows.append(
                {
                    **dict(zip(by, keys_t, strict=True)),
                    "metric": m,
                    "n": int(x.size),
                    "mean": float(np.mean(x)) if x.size else np.nan,
                    "sd": float(np.std(x, ddof=1)) if x.size > 1 else np.nan,
                    "median": float(med),
                    "q1": float(q1),
                    "q3": float(q3),
                    "mean_sd": fmt_mean_sd(x, digits),
                    "median_iqr": fmt_median_iqr(x, digits),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- thresholds and groups


def threshold_curve(
    df: pd.DataFrame,
    value_col: str,
    metric: str = "dice",
    quantiles: Sequence[float] = (0, 0.25, 0.5, 0.75, 0.85),
    by: Sequence[str] = ("network", "loss", "scenario"),
    tla_col: str = "tla",
    q0: str = "zero",
) -> pd.DataFrame:
    """Median metric above volume thresholds (paper 2.7.1 / 2.7.2, Figure 5).

    Patient level: ``df`` = per-case table, ``value_col="tmtv_ml"``; lesion level: per-lesion
    table, ``value_col="volume_ml"`` (MTV). For each group of ``by`` and each ``q`` the threshold
    is ``t_q = quantile_q(values of value_col in the group)`` and the row reports the median of
    ``metric`` (and of ``tla_col``) over the rows with ``value > t_q``.

    Our reading of "thresholds based on the inter-quartile range from 0 to the 85th percentile":
    the thresholds are 0 and the 25th, 50th, 75th and 85th percentiles of the ground-truth values.
    With ``q0="zero"`` (default) ``q = 0`` means the threshold 0 itself (every lesion, since
    volumes are > 0); ``q0="min"`` reads it as the 0th percentile (the minimum, which then drops
    the smallest value). Thresholds are computed inside each group; as every network/loss is
    evaluated on the same test cases, they coincide across networks and losses.

    Returns
    -------
    DataFrame
        ``*by, threshold_q, threshold, n, median_<metric>, median_tla`` (``median_tla`` NaN when
        ``tla_col`` is absent).

    Examples
    --------
    >>> df = pd.DataFrame({"loss": ["a"] * 4, "tmtv_ml": [1.0, 2.0, 3.0, 4.0], "dice": [0.1, 0.2, 0.3, 0.4]})
    >>> threshold_curve(df, "tmtv_ml", quantiles=(0, 0.5), by=["loss"])[["threshold", "n", "median_dice"]]
       threshold  n  median_dice
    0        0.0  4         0.25
    1        2.5  2         0.35
    """
    if q0 not in ("zero", "min"):
        raise ValueError(f"q0: expected 'zero' or 'min', found {q0!r}")
    qs = [float(q) for q in quantiles]
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"quantiles: expected values in [0, 1], found {list(quantiles)}")
    _require(df, [*by, value_col, metric], "threshold_curve")
    has_tla = tla_col in df.columns
    rows: list[dict[str, Any]] = []
    data = df[pd.to_numeric(df[value_col], errors="coerce").notna()]
    groups = data.groupby(list(by), sort=True, dropna=False) if by else [((), data)]
    for keys, grp in groups:
        keys_t = keys if isinstance(keys, tuple) else (keys,)
        vals = grp[value_col].to_numpy(dtype=np.float64)
        for q in qs:
            t = 0.0 if (q == 0.0 and q0 == "zero") else float(np.quantile(vals, q))
            sel = grp[vals > t]
            y = _finite(sel[metric])
            tl = _finite(sel[tla_col]) if has_tla else np.zeros(0)
            rows.append(
                {
                    **dict(zip(by, keys_t, strict=True)),
                    "threshold_q": q,
                    "threshold": t,
                    "n": int(len(sel)),
                    f"median_{metric}": float(np.median(y)) if y.size else np.nan,
                    "median_tla": float(np.median(tl)) if tl.size else np.nan,
                }
            )
    return pd.DataFrame(rows)


def dmax_groups(
    cases: pd.DataFrame,
    edges: Sequence[float] | None = None,
    column: str = "dmax_mm",
    labels: Sequence[str] = DMAX_GROUPS,
) -> pd.DataFrame:
    """Copy of ``cases`` with ``dmax_group`` G0-G3 (paper 2.7.1, 3.4).

    Without ``edges`` the groups are the quartiles of the Dmax values, computed over distinct
    cases (one value per ``case_id`` where that column exists, so that repeating a case for every
    network/loss does not change them): ``[min, Q1], (Q1, Q2], (Q2, Q3], (Q3, max]``. With
    ``edges`` (mm, increasing, ``len(labels) + 1`` values; the paper's are
    :data:`PAPER_DMAX_EDGES_MM`) the bins are ``[e0, e1], (e1, e2], ...``; values outside get NaN.
    The paper uses Dmax groups in the multiple-lesion scenario only: filter ``scenario == "M"``
    first to reproduce it. Cases with NaN Dmax (no lesion) get NaN. Each row also gets its group's
    cut points, ``dmax_low_mm`` and ``dmax_high_mm`` (what Figure 6's labels print, as the paper's
    "G0 0-9 cm").

    Examples
    --------
    >>> df = pd.DataFrame({"dmax_mm": [50.0, 100.0, 120.0, 300.0]})
    >>> dmax_groups(df, edges=PAPER_DMAX_EDGES_MM)["dmax_group"].tolist()
    ['G0', 'G1', 'G2', 'G3']
    """
    _require(cases, [column], "dmax_groups")
    vals = pd.to_numeric(cases[column], errors="coerce")
    if edges is None:
        distinct = cases.drop_duplicates("case_id") if "case_id" in cases.columns else cases
        base = _finite(distinct[column])
        if base.size == 0:
            raise ValueError(f"dmax_groups: no finite values in column {column!r}")
        qs = np.linspace(0.0, 1.0, len(labels) + 1)
        e = np.quantile(base, qs)
    else:
        e = np.asarray(edges, dtype=np.float64)
        if e.size != len(labels) + 1:
            raise ValueError(
                f"dmax_groups: expected {len(labels) + 1} edges for groups {list(labels)}, found {e.size}"
            )
    if np.any(np.diff(e) <= 0):
        raise ValueError(
            f"dmax_groups: group edges must increase strictly, found {e.tolist()} "
            "(ties in the Dmax quartiles: pass explicit edges)"
        )
    out = cases.copy()
    out["dmax_group"] = pd.cut(vals, bins=e, labels=list(labels), include_lowest=True, right=True)
    index = out["dmax_group"].cat.codes.to_numpy()
    has = index >= 0
    out["dmax_low_mm"] = np.where(has, e[np.clip(index, 0, None)], np.nan)
    out["dmax_high_mm"] = np.where(has, e[np.clip(index, 0, None) + 1], np.nan)
    return out


def dmax_edges(grouped: pd.DataFrame) -> dict[str, Any]:
    """The Dmax group edges (mm) of a table from :func:`pcatools.study.dmax_grouped` and their source
    (``dmax_edges``: quartiles, paper, or paper after a quartile tie), for the record of a run."""
    if grouped.empty or "dmax_edges" not in grouped.columns:
        return {"source": "no multiple-lesion case", "edges_mm": []}
    source = str(grouped["dmax_edges"].iloc[0])
    if source.startswith("paper"):
        return {"source": source, "edges_mm": [float(e) for e in PAPER_DMAX_EDGES_MM]}
    cuts = grouped.dropna(subset=["dmax_low_mm"]).drop_duplicates("dmax_group").sort_values("dmax_group")
    edges = [*cuts["dmax_low_mm"].tolist(), *cuts["dmax_high_mm"].tolist()[-1:]]  # quartiles: every group
    return {"source": source, "edges_mm": [float(e) for e in edges]}


def dmax_note(grouped: pd.DataFrame) -> str:
    """:func:`dmax_edges` as a footnote line of Table 1, in cm as the paper prints them.

    Examples
    --------
    >>> df = pd.DataFrame({"dmax_group": ["G1"], "dmax_edges": ["paper"]})
    >>> dmax_note(df)
    'Dmax groups G0-G3 (Figure 6, multiple-lesion cases): edges 0, 9, 11, 14, 60 cm (paper).'
    """
    rec = dmax_edges(grouped)
    if not rec["edges_mm"]:
        return f"Dmax groups (Figure 6): none ({rec['source']})."
    cm = ", ".join(f"{e / 10:.1f}".removesuffix(".0") for e in rec["edges_mm"])
    return f"Dmax groups G0-G3 (Figure 6, multiple-lesion cases): edges {cm} cm ({rec['source']})."


# --------------------------------------------------------------------------- tests


def holm(pvalues: Sequence[float] | np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (``statsmodels.stats.multitest.multipletests(method="holm")``).

    NaN p-values are kept as NaN and left out of the correction.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    from statsmodels.stats.multitest import multipletests  # deferred: start-up (see tests/test_imports.py)

    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return out


def wilcoxon_vs(
    cases: pd.DataFrame,
    reference: str = "l1dfl",
    metric: str = "dice",
    alternative: str = "greater",
    by: str | None = "network",
    pair_on: str = "case_id",
    loss_col: str = "loss",
) -> pd.DataFrame:
    """One-tailed paired Wilcoxon signed-rank test of ``reference`` against each other loss (paper 3.1).

    Per ``by`` group (network; ``None``: all rows are one group), cases are paired on ``pair_on``;
    pairs with a NaN are dropped. ``loss_col`` names what is compared (the loss in the study,
    ``"model"`` for ``pcatools evaluate``).
    ``scipy.stats.wilcoxon(x_reference, x_other, alternative=alternative)`` (default
    ``"greater"``: H1 = the reference loss scores higher; scipy's defaults otherwise, i.e.
    ``zero_method="wilcox"`` and the exact distribution for small samples without ties).
    ``p_holm`` is Holm-corrected over all rows of the result. Two models equal on every case
    give statistic 0 and P = 1 (no evidence that either scores higher; docs/conventions.md).

    Returns
    -------
    DataFrame
        ``network, reference, loss, n, statistic, p_value, p_holm`` (``by`` and ``loss_col`` name
        the first and third columns; no group column when ``by`` is None).
    """
    _require(cases, [*([by] if by else []), pair_on, loss_col, metric], "wilcoxon_vs")
    if reference not in set(cases[loss_col]):
        raise ValueError(
            f"wilcoxon_vs: reference {loss_col} {reference!r} not in {sorted(set(cases[loss_col]))}"
        )
    rows: list[dict[str, Any]] = []
    groups = cases.groupby(by, sort=False) if by else [(None, cases)]
    for group, grp in groups:
        wide = grp.pivot_table(index=pair_on, columns=loss_col, values=metric, aggfunc="first")
        if reference not in wide.columns:
            continue
        for other in ordered(grp[loss_col], LOSS_LABELS):
            if other == reference:
                continue
            pair = wide[[reference, other]].apply(pd.to_numeric, errors="coerce").dropna()
            if len(pair) == 0:
                stat, p = np.nan, np.nan
            elif (pair[reference] == pair[other]).all():  # no difference: scipy would divide 0 by 0
                stat, p = 0.0, 1.0
            else:
                res = sps.wilcoxon(
                    pair[reference].to_numpy(), pair[other].to_numpy(), alternative=alternative
                )
                stat, p = float(res.statistic), float(res.pvalue)
            rows.append(
                {
                    **({by: group} if by else {}),
                    "reference": reference,
                    loss_col: other,
                    "n": len(pair),
                    "statistic": stat,
                    "p_value": p,
                }
            )
    cols = [*([by] if by else []), "reference", loss_col, "n", "statistic", "p_value"]
    out = pd.DataFrame(rows, columns=cols)
    out["p_holm"] = holm(out["p_value"].to_numpy()) if len(out) else []
    return out


def bootstrap_median_ci(
    values: Iterable[float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """Seeded bootstrap confidence interval of the median (``scipy.stats.bootstrap``).

    Percentile method by default (BCa is available through ``method="BCa"``). NaNs are left out;
    fewer than two values give ``(nan, nan)``.

    Examples
    --------
    >>> lo, hi = bootstrap_median_ci(np.arange(101.0), seed=0)
    >>> bool(lo < 50.0 < hi)
    True
    """
    x = _finite(values)
    if x.size < 2 or np.all(x == x[0]):
        return (float(x[0]), float(x[0])) if x.size >= 2 else (np.nan, np.nan)
    kwargs: dict[str, Any] = {
        "confidence_level": confidence,
        "n_resamples": n_resamples,
        "method": method,
        "vectorized": True,
    }
    try:
        res = sps.bootstrap((x,), np.median, rng=np.random.default_rng(seed), **kwargs)
    except TypeError:  # scipy < 1.15
        res = sps.bootstrap((x,), np.median, random_state=np.random.default_rng(seed), **kwargs)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


# --------------------------------------------------------------------------- Table 1


def lesion_free(cases: pd.DataFrame) -> np.ndarray:
    """Boolean per row: the case has no ground-truth lesion (``n_gt_lesions == 0``, else ``tp + fn == 0``,
    which holds under every criterion exactly when there is no lesion).

    Examples
    --------
    >>> lesion_free(pd.DataFrame({"n_gt_lesions": [0, 2]})).tolist()
    [True, False]
    """
    if "n_gt_lesions" in cases.columns:
        return (pd.to_numeric(cases["n_gt_lesions"]) == 0).to_numpy()
    _require(cases, ["tp", "fn"], "lesion_free")
    return (pd.to_numeric(cases["tp"]) + pd.to_numeric(cases["fn"]) == 0).to_numpy()


def check_empty_cases(empty_cases: str) -> str:
    """Validate a rule for lesion-free cases: one of :data:`EMPTY_CASE_RULES`."""
    if empty_cases not in EMPTY_CASE_RULES:
        raise ValueError(f"empty cases: expected one of {list(EMPTY_CASE_RULES)}, found {empty_cases!r}")
    return empty_cases


def scored_cases(cases: pd.DataFrame, empty_cases: str = "autopet", column: str = "dice") -> pd.DataFrame:
    """The rows of ``cases`` that count in ``column`` of Table 1 under the rule ``empty_cases``
    (:data:`EMPTY_CASE_RULES`): lesion-free cases are dropped from every column but ``fp`` under
    ``"autopet"``, from every column under ``"exclude"``, and kept under ``"count"``.

    Examples
    --------
    >>> df = pd.DataFrame({"n_gt_lesions": [0, 2], "dice": [0.0, 0.8]})
    >>> scored_cases(df)["dice"].tolist(), scored_cases(df, "autopet", "fp")["dice"].tolist()
    ([0.8], [0.0, 0.8])
    """
    check_empty_cases(empty_cases)
    if empty_cases == "count" or (empty_cases == "autopet" and column == "fp"):
        return cases
    return cases[~lesion_free(cases)]


def _criterion(cases: pd.DataFrame, criterion: Criterion | str | None) -> Criterion:
    """The detection criterion of a case table: ``criterion``, else its ``criterion`` column, else the paper's."""
    if criterion is not None:
        return Criterion.parse(criterion)
    if "criterion" in cases.columns and len(cases):
        return Criterion.parse(str(cases["criterion"].iloc[0]))
    return Criterion.SUVMAX


def detection_columns(criterion: Criterion | str = "suvmax", detection: str = "rate") -> tuple[str, str, str]:
    """Table 1's TP, FP and FN column names: the paper's ``TP, FP, FN`` for its own criterion, and
    names that say what is counted under the others, where TP counts components.

    Examples
    --------
    >>> detection_columns("overlap")
    ('TP (components)', 'FP (components)', 'FN (lesions)')
    """
    if criterion == "suvmax":
        return ("TP", "FP", "FN")
    return ("TP (components)", "FP (components)", "FN (lesions)")


def table1(
    cases: pd.DataFrame,
    reference: str = "l1dfl",
    metric: str = "dice",
    digits: int = 2,
    alpha: float = 0.05,
    detection: str = "rate",
    ci: bool = True,
    n_resamples: int = 2000,
    seed: int = 0,
    by: str | None = "network",
    arm: str = "loss",
    empty_cases: str = "autopet",
    criterion: Criterion | str | None = None,
) -> pd.DataFrame:
    """Table 1 of the paper as a DataFrame (one row per network and loss, paper order).

    Columns: ``Network, Loss, DSC mean, DSC median [IQR], TP, FP, FN, F1, P value`` (the paper's
    layout), then ``DSC median 95% CI`` (seeded bootstrap, :func:`bootstrap_median_ci`) and
    ``P value (Holm)`` (beyond the paper). P values: :func:`wilcoxon_vs` of ``reference`` against
    each other loss of the same network (``by``, ``arm``: another grouping and compared column,
    e.g. ``by=None, arm="model"`` compares one model against every other); empty on the
    reference rows. Rows follow the paper's order, other names their order of appearance.

    ``detection="rate"`` (default): TP and FN are per-patient rates ``tp / (tp + fn)`` and
    ``fn / (tp + fn)`` (cases without lesions left out), FP the count per patient, each as
    mean ± SD. This is our reading of the paper's "Mean Rates": its TP and FN add up to exactly 1
    in every row (e.g. 0.81 + 0.19), which only rates normalised by the number of lesions do.
    ``detection="count"`` reports all three as counts per patient. Under any criterion but the
    paper's ``"suvmax"`` (``criterion``, default: the table's ``criterion`` column) TP counts
    components, so TP, FP and FN are counts per case whatever ``detection`` says, and their
    columns are named by :func:`detection_columns`.

    ``empty_cases``: how cases without ground-truth lesion count (:data:`EMPTY_CASE_RULES`;
    :func:`scored_cases`); the Wilcoxon tests and the CI use the DSC's cases.
    :func:`table1_notes` gives the footnote that says all this with each column's number of cases.
    """
    if detection not in ("rate", "count"):
        raise ValueError(f"detection: expected 'rate' or 'count', found {detection!r}")
    check_empty_cases(empty_cases)
    _require(cases, ["network", "loss", metric, "tp", "fp", "fn", "f1"], "table1")
    crit = _criterion(cases, criterion)
    if crit != "suvmax":
        detection = "count"
    tp_col, fp_col, fn_col = detection_columns(crit, detection)
    has_pairs = "case_id" in cases.columns
    scored = scored_cases(cases, empty_cases)
    tests = (
        wilcoxon_vs(scored, reference, metric, by=by, loss_col=arm)
        if has_pairs and reference in set(scored[arm])
        else None
    )
    rows: list[dict[str, Any]] = []
    for net in ordered(cases["network"], NETWORK_LABELS):
        sub = cases[cases["network"] == net]
        for loss in ordered(sub["loss"], LOSS_LABELS):
            g_all = sub[sub["loss"] == loss]
            g = scored_cases(g_all, empty_cases)
            g_fp = scored_cases(g_all, empty_cases, "fp")
            tp = pd.to_numeric(g["tp"]).to_numpy(float)
            fn = pd.to_numeric(g["fn"]).to_numpy(float)
            fp = pd.to_numeric(g_fp["fp"]).to_numpy(float)
            if detection == "rate":
                n_les = tp + fn
                with np.errstate(invalid="ignore", divide="ignore"):
                    tp = np.where(n_les > 0, tp / n_les, np.nan)
                    fn = np.where(n_les > 0, fn / n_les, np.nan)
            p = p_holm = np.nan
            if tests is not None and len(g):
                hit = tests[tests[arm] == g[arm].iloc[0]]
                if by:
                    hit = hit[hit[by] == g[by].iloc[0]]
                if len(hit):
                    p, p_holm = float(hit["p_value"].iloc[0]), float(hit["p_holm"].iloc[0])
            row = {
                "Network": network_label(net),
                "Loss": loss_label(loss),
                "DSC mean": fmt_mean_sd(g[metric], digits),
                "DSC median [IQR]": fmt_median_iqr(g[metric], digits),
                tp_col: fmt_mean_sd(tp, digits),
                fp_col: fmt_mean_sd(fp, digits),
                fn_col: fmt_mean_sd(fn, digits),
                "F1": fmt_mean_sd(g["f1"], digits),
                "P value": fmt_p(p, alpha),
            }
            if ci:
                lo, hi = bootstrap_median_ci(g[metric], n_resamples=n_resamples, seed=seed)
                row["DSC median 95% CI"] = (
                    "n/a" if not np.isfinite(lo) else f"[{lo:.{digits}f}, {hi:.{digits}f}]"
                )
            row["P value (Holm)"] = fmt_p(p_holm, alpha)
            rows.append(row)
    return pd.DataFrame(rows)


SEED_SPREAD = "DSC mean SD (seeds)"
"""The column of a seed-averaged Table 1 (:func:`pcatools.seed_stats.table1_over_seeds`) that holds
the spread across training seeds: the SD (``ddof=1``) of each seed's mean DSC."""


def _n_finite(values: pd.Series) -> int:
    return int(_finite(values).size)


def table1_notes(
    cases: pd.DataFrame,
    empty_cases: str = "autopet",
    criterion: Criterion | str | None = None,
    detection: str = "rate",
    arm: str = "loss",
    metric: str = "dice",
) -> list[str]:
    """The footnote of :func:`table1` (same arguments): what TP, FP and FN count, how lesion-free
    cases were scored, how many cases each column holds, how many patients they come from, and a
    warning below :data:`SMALL_COHORT` paired cases, so that a reader of the table alone knows the
    rules behind its numbers.

    Examples
    --------
    >>> df = pd.DataFrame({"case_id": ["a", "b"], "patient_id": ["p", "p"], "network": "", "loss": "m",
    ...                    "n_gt_lesions": [0, 1], "dice": [0.0, 0.5], "tp": [0, 1], "fp": [1, 0],
    ...                    "fn": [0, 0], "f1": [0.0, 1.0]})
    >>> for line in table1_notes(df):  # doctest: +NORMALIZE_WHITESPACE
    ...     print(line)
    TP: lesions whose SUVmax voxel a prediction covers; FP: components overlapping no lesion; FN: lesions
    whose SUVmax voxel no prediction covers (criterion suvmax). TP and FN are rates per case (TP + FN = 1),
    FP a count per case; mean ± SD.
    Lesion-free cases (rule autopet): 1 of 2 case(s); they count in FP (and FPV) only, not in DSC, F1, TP,
    FN or the P values.
    Cases per column: DSC, F1, TP, FN, P value 1; FP 2 (2 case(s) from 1 patient(s); the SD, CI and P values
    treat cases as independent).
    Only 1 paired case(s) (< 5): the SD, the bootstrap CI and the Wilcoxon P value say little (the smallest
    one-tailed P with 1 pair(s) is 0.5).
    """
    check_empty_cases(empty_cases)
    crit = _criterion(cases, criterion)
    if crit != "suvmax":
        detection = "count"
    tp_c, fp_c, fn_c = DETECTION_COUNTS.get(crit, ("TP", "FP", "FN"))
    kind = (
        "TP and FN are rates per case (TP + FN = 1), FP a count per case"
        if detection == "rate"
        else "all three are counts per case"
    )
    notes = [f"TP: {tp_c}; FP: {fp_c}; FN: {fn_c} (criterion {crit}). {kind}; mean ± SD."]
    distinct = cases.drop_duplicates("case_id") if "case_id" in cases.columns else cases
    n_free = int(lesion_free(distinct).sum()) if len(distinct) else 0
    effect = {
        "autopet": "they count in FP (and FPV) only, not in DSC, F1, TP, FN or the P values",
        "count": "they count in DSC and F1 (1 when nothing is predicted, else 0) and in FP; TP and FN "
        "rates leave them out",
        "exclude": "they are left out of every column",
    }[empty_cases]
    notes.append(f"Lesion-free cases (rule {empty_cases}): {n_free} of {len(distinct)} case(s); {effect}.")
    counts = []
    for _, g in cases.groupby([c for c in ("network", arm) if c in cases.columns], sort=False):
        main = scored_cases(g, empty_cases)
        n_main = _n_finite(main[metric])
        n_fp = _n_finite(scored_cases(g, empty_cases, "fp")["fp"])
        counts.append((n_main, n_fp))
    uniq = sorted(set(counts))
    shown = "; ".join(f"DSC, F1, TP, FN, P value {a}; FP {b}" for a, b in uniq) if uniq else "none"
    patients = ""
    if "patient_id" in distinct.columns and len(distinct):
        n_pat = int(distinct["patient_id"].nunique())
        patients = (
            f" ({len(distinct)} case(s) from {n_pat} patient(s); the SD, CI and P values treat cases as "
            "independent)"
        )
    notes.append(f"Cases per column: {shown}{patients}.")
    n_paired = min((a for a, _ in counts), default=0)
    if n_paired < SMALL_COHORT:
        smallest = f"{0.5**n_paired:.2g}" if n_paired else "undefined"
        notes.append(
            f"Only {n_paired} paired case(s) (< {SMALL_COHORT}): the SD, the bootstrap CI and the Wilcoxon "
            f"P value say little (the smallest one-tailed P with {n_paired} pair(s) is {smallest})."
        )
    return notes


def _as_table1(table_or_cases: pd.DataFrame) -> pd.DataFrame:
    return table_or_cases if "Network" in table_or_cases.columns else table1(table_or_cases)


def table1_markdown(table_or_cases: pd.DataFrame, notes: Sequence[str] = ()) -> str:
    """Table 1 as a GitHub Markdown table (the network named on its first row only, as in the paper),
    followed by ``notes`` (:func:`table1_notes`), one paragraph each.

    Accepts the output of :func:`table1` or a per-case table (then calls :func:`table1`).
    """
    t = _as_table1(table_or_cases)
    cols = list(t.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    prev = None
    for _, r in t.iterrows():
        cells = [str(r[c]) for c in cols]
        if r["Network"] == prev:
            cells[0] = ""
        prev = r["Network"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + "".join(f"\n{n}\n" for n in notes)


def _latex_escape(text: str) -> str:
    out = str(text)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        out = out.replace(a, b)
    out = out.replace("±", r"$\pm$").replace("< ", r"$<$ ").replace("*", r"$^{*}$")
    return out


def table1_latex(table_or_cases: pd.DataFrame, caption: str | None = None, label: str = "tab:table1") -> str:
    """Table 1 as a LaTeX ``table`` (booktabs rules, ``\\multirow`` network cells: needs the
    ``booktabs`` and ``multirow`` packages).

    Accepts the output of :func:`table1` or a per-case table (then calls :func:`table1`).
    """
    t = _as_table1(table_or_cases)
    cols = list(t.columns)
    body: list[str] = []
    counts = t["Network"].value_counts(sort=False)
    prev = None
    for _, r in t.iterrows():
        cells = [_latex_escape(r[c]) for c in cols]
        if r["Network"] == prev:
            cells[0] = ""
        else:
            if prev is not None:
                body.append(r"\midrule")
            cells[0] = rf"\multirow{{{int(counts[r['Network']])}}}{{*}}{{{_latex_escape(r['Network'])}}}"
        prev = r["Network"]
        body.append(" & ".join(cells) + r" \\")
    cap = caption or (
        "Comparison of the loss functions on the test set (mean $\\pm$ SD; median [IQR]; "
        "one-tailed paired Wilcoxon signed-rank test of L1DFL, $^{*}$: $p < 0.05$)."
    )
    return "\n".join(
        [
            r"\begin{table}[ht]",
            r"\centering",
            rf"\caption{{{cap}}}",
            rf"\label{{{label}}}",
            r"\begin{tabular}{" + "ll" + "c" * (len(cols) - 2) + "}",
            r"\toprule",
            " & ".join(_latex_escape(c) for c in cols) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


# --------------------------------------------------------------------------- mixed model


def lesion_mixed_model(
    lesions: pd.DataFrame,
    metric: str = "dice",
    group: str = "patient_id",
    reference_loss: str = "dice",
    reference_network: str | None = None,
    covariates: Sequence[str] = ("log_volume_ml", "suvmax"),
    reml: bool = True,
    arm: str | None = None,
    reference: str | None = None,
    seed_col: str | None = None,
) -> pd.DataFrame:
    """Linear mixed model of lesion-level DSC with a random intercept per patient (beyond the paper).

    ``DSC_{pl} = b0 + b_loss + b_network + b_v log(MTV_l) + b_s SUVmax_l + u_p + e_{pl}``,
    ``u_p ~ N(0, s_u^2)``, ``e ~ N(0, s_e^2)``, fitted with ``statsmodels`` ``MixedLM`` (REML).
    Lesions of one patient share ``u_p`` (the paper's per-lesion medians treat them as
    independent). Losses and networks enter as treatment-coded dummies against
    ``reference_loss`` (default DL) and ``reference_network`` (default: the first in Table 1
    order); a factor with a single level is left out. ``log_volume_ml`` is ``log(volume_ml)``
    (natural log, ml); rows with NaN in any used column are dropped. ``group`` falls back to
    ``case_id`` when the table has no ``patient_id``.

    ``arm`` (e.g. ``"model"``, as :func:`pcatools.evaluation.evaluate_folders` passes): the one
    compared factor instead of loss and network, any names, coded against ``reference`` (default:
    the first in order of appearance); terms are then ``<arm>[<name>]``.

    ``seed_col`` (a study trained from several seeds): the training seed enters as a variance
    component within each patient (statsmodels' ``vc_formula={"seed": "0 + C(seed)"}``), so that
    the seeds' lesions of one patient are not taken as independent evidence; its variance is the
    row ``seed_var``. Left out when the column holds one seed.

    Returns
    -------
    DataFrame
        One row per fixed effect (``Intercept``, ``loss[<name>]``, ``network[<name>]``,
        ``log_volume_ml``, ``suvmax``) and the random-intercept variance (``patient_var``), with
        ``estimate, std_err, z, p_value, ci_low, ci_high`` (95 % Wald), plus ``n_obs`` and
        ``n_groups``.
    """
    import statsmodels.api as sm  # deferred: start-up (see tests/test_imports.py)

    if group not in lesions.columns and group == "patient_id" and "case_id" in lesions.columns:
        group = "case_id"
    factors: list[tuple[str, str | None, Sequence[str] | Mapping[str, str]]] = (
        [(arm, reference, ())]
        if arm is not None
        else [("loss", reference_loss, LOSS_LABELS), ("network", reference_network, NETWORK_LABELS)]
    )
    names = [f for f, _, _ in factors]
    needed = [metric, group, *names, *([seed_col] if seed_col else [])]
    needed += [c for c in covariates if c != "log_volume_ml"]
    if "log_volume_ml" in covariates:
        needed.append("volume_ml")
    _require(lesions, needed, "lesion_mixed_model")
    df = lesions.copy()
    if "log_volume_ml" in covariates:
        vol = pd.to_numeric(df["volume_ml"], errors="coerce")
        if (vol <= 0).any():
            raise ValueError("lesion_mixed_model: volume_ml must be > 0 to take its log")
        df["log_volume_ml"] = np.log(vol)
    num_cols = [metric, *covariates]
    df[num_cols] = df[num_cols].apply(pd.to_numeric, errors="coerce")
    df = df.dropna(subset=[*num_cols, group, *names]).reset_index(drop=True)
    if df.empty:
        raise ValueError(f"lesion_mixed_model: no complete rows in columns {num_cols + [group]}")
    exog = pd.DataFrame({"Intercept": np.ones(len(df))}, index=df.index)
    for factor, ref, known in factors:
        levels = ordered(df[factor], known)
        if len(levels) < 2:
            continue
        base = levels[0] if ref is None else ref
        if base not in levels:
            raise ValueError(f"lesion_mixed_model: reference {factor} {base!r} not in {levels}")
        for lev in levels:
            if lev != base:
                exog[f"{factor}[{lev}]"] = (df[factor] == lev).astype(np.float64)
    for c in covariates:
        exog[c] = df[c].astype(np.float64)
    groups = df[group].astype(str)
    exog_vc = None
    if seed_col is not None and df[seed_col].nunique() > 1:
        # what MixedLM.from_formula builds from vc_formula: each group's own 0 + C(seed) design
        exog_vc = {
            "seed": {
                g: pd.get_dummies(df.loc[rows, seed_col].astype(str)).to_numpy(np.float64)
                for g, rows in groups.groupby(groups, sort=False).groups.items()
            }
        }
    # with exog_vc, MixedLM leaves the random intercept out unless it is given (from_formula adds it)
    intercept = np.ones((len(df), 1)) if exog_vc is not None else None
    model = sm.MixedLM(df[metric].astype(np.float64), exog, groups=groups, exog_re=intercept, exog_vc=exog_vc)
    res = model.fit(reml=reml, method=["lbfgs", "powell"])
    ci = res.conf_int()
    fe = list(exog.columns)
    out = pd.DataFrame(
        {
            "term": fe,
            "estimate": [float(res.fe_params[t]) for t in fe],
            "std_err": [float(res.bse_fe[t]) for t in fe],
            "z": [float(res.tvalues[t]) for t in fe],
            "p_value": [float(res.pvalues[t]) for t in fe],
            "ci_low": [float(ci.loc[t, 0]) for t in fe],
            "ci_high": [float(ci.loc[t, 1]) for t in fe],
        }
    )
    variances = {"patient_var": float(res.cov_re.iloc[0, 0])}
    if exog_vc is not None:
        variances["seed_var"] = float(res.vcomp[0])
    var = pd.DataFrame({"term": list(variances), "estimate": list(variances.values())})
    out = pd.concat([out, var], ignore_index=True)  # a variance has no std_err, z, p or CI: NaN
    out["n_obs"] = int(res.nobs)
    out["n_groups"] = int(df[group].nunique())
    return out
