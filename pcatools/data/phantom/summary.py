"""A cohort's lesion statistics beside the paper's (section 2.1), as notebook ``01_data`` shows them.

The same four quantities the paper reports for its 380 scans: lesions per scan, and the mean and
standard deviation of lesion volume (ml), SUVmax and SUVmean over all lesions. They work on any
cohort (synthetic or real) whose cases carry a label.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from pcatools.data.case import Case
from pcatools.data.phantom.lesions import PAPER, CohortStats
from pcatools.metrics import lesion_table

QUANTITIES = ("lesions per scan", "volume (ml)", "SUVmax", "SUVmean")
"""The rows of :func:`cohort_vs_paper`, in order."""


def cohort_lesions(cases: Iterable[Case]) -> pd.DataFrame:
    """One row per lesion of every case that has a label: ``case_id`` and the columns of
    :func:`pcatools.metrics.lesion_table` (``volume_ml``, ``suvmax``, ``suvmean`` ...).

    Lesions are the label's 18-connected components and their SUV is read from the case's PET,
    so the statistics are those every metric of pcatools uses. Cases without a label (or with an
    empty one) add no rows.
    """

    frames = [
        lesion_table(case.label, case.label, case.pet, case.spacing).assign(case_id=case.case_id)
        for case in cases
        if case.label is not None
    ]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["case_id", "lesion_id", "volume_ml", "suvmax", "suvmean"])
    lesions = pd.concat(frames, ignore_index=True)
    return lesions[["case_id", *[c for c in lesions.columns if c != "case_id"]]]


def cohort_vs_paper(lesions: pd.DataFrame, n_scans: int, paper: CohortStats = PAPER) -> pd.DataFrame:
    """The cohort's lesion statistics beside the paper's: rows :data:`QUANTITIES`, columns
    ``cohort_mean``, ``cohort_sd``, ``paper_mean``, ``paper_sd``.

    ``lesions`` has one row per lesion with ``volume_ml``, ``suvmax`` and ``suvmean`` (as
    :func:`cohort_lesions` returns it); ``n_scans`` counts every scan, lesion-free ones too, which
    the lesion table cannot know. SDs are sample SDs (``ddof=1``, NaN for fewer than two lesions);
    lesions per scan has no SD (the paper gives none). Numbers, not text, so that a caller can
    round, compare or plot them.

    Examples
    --------
    >>> lesions = pd.DataFrame({"volume_ml": [1.0, 2.0, 6.0], "suvmax": [3.0, 5.0, 10.0], "suvmean": [2.0, 3.0, 4.0]})
    >>> cohort_vs_paper(lesions, n_scans=4).round(2)
                      cohort_mean  cohort_sd  paper_mean  paper_sd
    lesions per scan         0.75        NaN        1.80       NaN
    volume (ml)              3.00       2.65        6.68     10.20
    SUVmax                   6.00       3.61       12.65     14.46
    SUVmean                  3.00       1.00        4.62      3.88
    """
    missing = sorted({"volume_ml", "suvmax", "suvmean"} - set(lesions.columns))
    if missing:
        raise ValueError(
            f"cohort_vs_paper: the lesion table lacks columns {missing}; expected one row per lesion "
            f"with volume_ml, suvmax and suvmean (cohort_lesions returns it), found {list(lesions.columns)}"
        )
    if int(n_scans) < 1:
        raise ValueError(f"cohort_vs_paper: n_scans must be at least 1, found {n_scans}")
    if "case_id" in lesions and lesions["case_id"].nunique() > n_scans:
        raise ValueError(
            f"cohort_vs_paper: the lesions come from {lesions['case_id'].nunique()} cases but "
            f"n_scans is {n_scans}; n_scans counts every scan of the cohort"
        )
    rows = {
        "lesions per scan": (len(lesions) / n_scans, np.nan, paper.mean_count, np.nan),
        "volume (ml)": (*_mean_sd(lesions["volume_ml"]), paper.volume_mean_ml, paper.volume_sd_ml),
        "SUVmax": (*_mean_sd(lesions["suvmax"]), paper.suvmax_mean, paper.suvmax_sd),
        "SUVmean": (*_mean_sd(lesions["suvmean"]), paper.suvmean_mean, paper.suvmean_sd),
    }
    return pd.DataFrame.from_dict(
        rows, orient="index", columns=["cohort_mean", "cohort_sd", "paper_mean", "paper_sd"]
    ).loc[list(QUANTITIES)]


def _mean_sd(values: pd.Series) -> tuple[float, float]:
    v = values.astype(float)
    return (float(v.mean()) if len(v) else np.nan, float(v.std(ddof=1)) if len(v) > 1 else np.nan)
