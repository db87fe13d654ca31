"""Statistics of a study trained from several seeds (``pcatools study --seeds``, beyond the paper).

A loss comparison trained once is partly a comparison of training seeds: on the demo a cell's DSC
moves by 0.1-0.3 with the seed alone. Each model's per-case (per-lesion) values are averaged over
the seeds (:func:`seed_average`) before Table 1 and the Wilcoxon tests, so they see one value per
model and case as in a one-seed study; the spread across seeds (:func:`seed_spread`, Table 1's
:data:`pcatools.stats.SEED_SPREAD` column) and each seed's own Table 1 (:func:`table1_by_seed`)
say how much of a difference the seed alone makes. docs/conventions.md ("Training seeds") states
how each column is averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pcatools.stats import SEED_SPREAD, _require, scored_cases, table1
from pcatools.vocabulary import loss_label, network_label

__all__ = ["seed_average", "seed_means", "seed_spread", "table1_by_seed", "table1_over_seeds", "seed_note"]


def seed_average(
    table: pd.DataFrame, keys: Sequence[str] = ("network", "loss", "case_id"), seed_col: str = "seed"
) -> pd.DataFrame:
    """One row per ``keys`` (a model's case, or with ``lesion_id`` its lesion) averaged over the
    training seeds, so that statistics meant for one model per case see one value per case.

    Numeric columns are the mean over seeds (NaN left out; a boolean column becomes the fraction of
    seeds where it holds); other columns are kept where every seed agrees and left out where they
    differ (the prediction's path). Rows keep their order of first appearance; ``seed_col`` goes.

    Examples
    --------
    >>> df = pd.DataFrame({"network": "n", "loss": "l", "case_id": ["a", "a"], "seed": [0, 1],
    ...                    "dice": [0.2, 0.6], "tp": [1, 2], "pred": ["s0/a.nii", "s1/a.nii"]})
    >>> seed_average(df)
      network loss case_id  dice   tp
    0       n    l       a   0.4  1.5
    """
    _require(table, [*keys, seed_col], "seed_average")
    rest = [c for c in table.columns if c not in (*keys, seed_col)]
    numeric = [c for c in rest if pd.api.types.is_numeric_dtype(table[c])]
    groups = table.groupby(list(keys), sort=False, dropna=False)
    out = groups[numeric].mean() if numeric else groups.size().to_frame("_n").iloc[:, :0]
    others = [c for c in rest if c not in numeric]
    if others:
        agree = groups[others].nunique(dropna=False).le(1).all()
        kept = [c for c in others if agree[c]]
        out = out.join(groups[kept].first())
    out = out.reset_index()
    return out[[c for c in table.columns if c in out.columns]]


def seed_means(
    cases: pd.DataFrame,
    metric: str = "dice",
    empty_cases: str = "autopet",
    seed_col: str = "seed",
    arm: str = "loss",
) -> pd.DataFrame:
    """Each seed's mean ``metric`` per model: one row per (``network``, ``arm``, seed) with
    ``n_cases`` and ``mean`` over the scored cases (:func:`scored_cases`), in order of appearance."""
    _require(cases, ["network", arm, seed_col, metric], "seed_means")
    scored = scored_cases(cases, empty_cases, metric)
    values = pd.to_numeric(scored[metric], errors="coerce")
    grouped = values.groupby([scored["network"], scored[arm], scored[seed_col]], sort=False)
    return grouped.agg(n_cases="count", mean="mean").reset_index()


def seed_spread(cases: pd.DataFrame, arm: str = "loss", **options: Any) -> pd.DataFrame:
    """The spread of a model's result across training seeds: per (``network``, ``arm``) the number
    of seeds and the SD (``ddof=1``) of the seeds' means (:func:`seed_means`, which takes
    ``options``: ``metric``, ``empty_cases``, ``seed_col``); NaN with one seed.

    Examples
    --------
    >>> df = pd.DataFrame({"network": "n", "loss": "l", "case_id": ["a", "b"] * 2, "seed": [0, 0, 1, 1],
    ...                    "n_gt_lesions": 1, "dice": [0.2, 0.4, 0.6, 0.8]})
    >>> seed_spread(df)  # seed means 0.3 and 0.7: SD = 0.4 / sqrt(2)
      network loss  n_seeds  sd_of_seed_means
    0       n    l        2          0.282843
    """
    means = seed_means(cases, arm=arm, **options)
    out = means.groupby(["network", arm], sort=False)["mean"].agg(
        n_seeds="size", sd_of_seed_means=lambda s: s.std(ddof=1) if s.size > 1 else np.nan
    )
    return out.reset_index()


def table1_by_seed(cases: pd.DataFrame, seed_col: str = "seed", **kwargs: Any) -> pd.DataFrame:
    """Each training seed's own Table 1 (:func:`table1` on that seed's rows, ``kwargs`` passed on),
    one below the other with the seed in a first column ``seed``."""
    _require(cases, [seed_col], "table1_by_seed")
    tables = [table1(rows, **kwargs).assign(seed=seed) for seed, rows in cases.groupby(seed_col, sort=True)]
    out = pd.concat(tables, ignore_index=True)
    return out[["seed", *(c for c in out.columns if c != "seed")]]


def table1_over_seeds(
    cases: pd.DataFrame, seed_col: str = "seed", digits: int = 2, **kwargs: Any
) -> pd.DataFrame:
    """Table 1 of a study trained from several seeds: :func:`table1` of the per-case values averaged
    over seeds (:func:`seed_average`), with :data:`SEED_SPREAD` after ``DSC mean``.

    Averaging first keeps one value per model and case, so the Wilcoxon tests pair cases as in a
    one-seed study; the spread column says how far a model's mean DSC moves with the seed alone.
    ``kwargs`` go to :func:`table1` (``empty_cases`` also to :func:`seed_spread`).
    """
    averaged = seed_average(cases, seed_col=seed_col)
    table = table1(averaged, digits=digits, **kwargs)
    arm = kwargs.get("arm", "loss")
    spread = seed_spread(cases, arm=arm, empty_cases=kwargs.get("empty_cases", "autopet"), seed_col=seed_col)
    rows = spread[["network", arm, "sd_of_seed_means"]].itertuples(index=False)
    by_label = {(network_label(net), loss_label(loss)): sd for net, loss, sd in rows}
    values = [by_label.get((n, lo), np.nan) for n, lo in table[["Network", "Loss"]].itertuples(index=False)]
    table.insert(
        list(table.columns).index("DSC mean") + 1,
        SEED_SPREAD,
        ["n/a" if not np.isfinite(v) else f"{v:.{digits}f}" for v in values],
    )
    return table


def seed_note(seeds: Sequence[int]) -> str:
    """The line under a seed-averaged Table 1 that says how its values were made.

    Examples
    --------
    >>> seed_note([0, 1, 2])[:62]
    'Training seeds: 3 (0, 1, 2). Every column is computed from eac'
    """
    return (
        f"Training seeds: {len(seeds)} ({', '.join(str(s) for s in seeds)}). Every column is computed "
        "from each model's per-case values averaged over the seeds (DSC, F1 and the TP, FP and FN counts; "
        "under the suvmax criterion TP + FN is the case's number of lesions in every seed, so a TP or FN "
        "rate is the seeds' mean rate), and the P values pair these averages; "
        f"{SEED_SPREAD} is the SD (ddof=1) of the seeds' mean DSC. results/table1_by_seed.csv holds each "
        "seed's own table."
    )
