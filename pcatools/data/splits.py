"""Patient-level train / validation / test splits, stratified by lesion scenario (paper 2.5).

The paper divides its 380 scans into 258 / 65 / 57 for training, validation and testing
(:data:`PAPER_FRACTIONS`) and reports results separately for single-lesion (S) and
multiple-lesion (M) scans (2.7). :func:`make_splits` therefore

- groups by ``patient_id``: all scans of a patient go to one set (autoPET PSMA has several studies
  per patient; scans of one patient in both training and test sets inflate test scores);
- stratifies by scenario: lesion-free scans (``n_lesions == 0``), single-lesion scans (1) and
  multiple-lesion scans (>= 2) are spread over the sets in the requested proportions; unlabelled
  scans (``n_lesions`` NaN) form a fourth stratum;
- is seeded and deterministic; optionally splits the non-test patients into k folds.

**The paper's public code does not do this.** ``create_data_split_files`` in
``segmentation/initialize_train.py`` of https://github.com/ObedDzik/pca_segment sorts the
``imagesTr`` file names and cuts the sorted list into 5 consecutive folds (the test set is the
separate ``imagesTs`` folder). Sorted autoPET ids put the studies of one patient next to each
other, so any fold boundary that falls inside a patient's run of studies puts that patient in both
training and validation. :func:`reference_code_folds` reproduces that split so that the leak can be
measured with :func:`leaked_patients`.

Assignment algorithm (a seeded greedy, like scikit-learn's ``StratifiedGroupKFold`` but with
unequal set sizes): integer targets per set and stratum are derived from the fractions
(largest-remainder rounding that keeps both the set totals and the stratum totals); patients are
visited in a seeded random order, larger patients (more scans) first, and each goes to the set whose
squared deviation from its targets grows least. With one scan per patient the targets are met
exactly, e.g. 258 / 65 / 57 of 380.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pcatools.data.errors import DataError
from pcatools.data.manifest import write_manifest

PAPER_FRACTIONS: tuple[float, float, float] = (258 / 380, 65 / 380, 57 / 380)
"""Training / validation / test proportions of the paper (258, 65 and 57 of 380 scans)."""

SPLITS: tuple[str, str, str] = ("train", "val", "test")
"""The names of the three sets, in order: the values of the manifest's ``split`` column."""
STRATA: tuple[str, ...] = ("none", "single", "multiple", "unlabelled")
"""The lesion strata the split balances, :func:`lesion_stratum`'s values: no lesion, one, several, no label."""


def lesion_stratum(n_lesions: float | int | None) -> str:
    """Stratum of a scan from its lesion count: ``none`` (0), ``single`` (1), ``multiple`` (>= 2), ``unlabelled`` (NaN).

    Examples
    --------
    >>> [lesion_stratum(n) for n in (0, 1, 2, 7, float("nan"))]
    ['none', 'single', 'multiple', 'multiple', 'unlabelled']
    """
    if n_lesions is None or pd.isna(n_lesions):
        return "unlabelled"
    n = float(n_lesions)
    if n < 0 or n != int(n):
        raise DataError(f"n_lesions: expected a count >= 0, found {n_lesions!r}")
    return "none" if n == 0 else "single" if n == 1 else "multiple"


def _largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``total`` close to ``quotas`` (Hamilton's method; ties to the lower index)."""
    base = np.floor(quotas + 1e-9).astype(np.int64)
    rest = total - int(base.sum())
    order = np.argsort(-(quotas - base), kind="stable")
    base[order[:rest]] += 1
    return base


def integer_targets(counts: np.ndarray, fractions: Sequence[float] | np.ndarray) -> np.ndarray:
    """Integer targets ``T[set, stratum]`` whose row sums round ``fractions * total`` and column sums equal ``counts``.

    Examples
    --------
    >>> integer_targets(np.array([380]), PAPER_FRACTIONS)[:, 0].tolist()
    [258, 65, 57]
    >>> integer_targets(np.array([60, 40]), (0.6, 0.2, 0.2)).tolist()
    [[36, 24], [12, 8], [12, 8]]
    """
    counts = np.asarray(counts, dtype=np.int64)
    frac = np.asarray(fractions, dtype=np.float64)
    rows = _largest_remainder(frac * counts.sum(), int(counts.sum()))
    quotas = np.outer(frac, counts)
    targets = np.floor(quotas + 1e-9).astype(np.int64)
    row_left = rows - targets.sum(axis=1)
    col_left = counts - targets.sum(axis=0)
    remainders = quotas - targets
    # cells by decreasing remainder, then any cell: always completes since sum(row_left) == sum(col_left)
    cells = sorted(np.ndindex(*targets.shape), key=lambda ij: (-remainders[ij], ij))
    for pass_no in range(2):
        for i, j in cells:
            if row_left[i] > 0 and col_left[j] > 0 and (remainders[i, j] > 1e-9 or pass_no == 1):
                targets[i, j] += 1
                row_left[i] -= 1
                col_left[j] -= 1
    return targets


def assign_groups(
    group_counts: np.ndarray, fractions: Sequence[float] | np.ndarray, seed: int | np.random.Generator
) -> np.ndarray:
    """Assign groups (patients) to sets; ``group_counts[g, k]`` is the number of scans of group g in stratum k.

    Returns the set index of each group. Seeded greedy described in the module docstring.

    Examples
    --------
    >>> sets = assign_groups(np.ones((10, 1), int), (0.5, 0.3, 0.2), seed=0)
    >>> np.bincount(sets).tolist()
    [5, 3, 2]
    """
    counts = np.asarray(group_counts, dtype=np.int64)
    rng = np.random.default_rng(seed)
    targets = integer_targets(counts.sum(axis=0), fractions)
    filled = np.zeros_like(targets)
    order = rng.permutation(len(counts))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    out = np.empty(len(counts), dtype=np.int64)
    for g in order:
        c = counts[g]
        # growth of sum_k (filled - target)^2 when group g joins each set
        growth = (c * (2 * (filled - targets) + c)).sum(axis=1)
        s = int(np.argmin(growth))
        out[g] = s
        filled[s] += c
    return out


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    frac = np.asarray(fractions, dtype=np.float64)
    if frac.shape != (3,) or not np.all(np.isfinite(frac)) or np.any(frac < 0) or abs(frac.sum() - 1) > 1e-6:
        raise ValueError(
            f"fractions: expected three non-negative numbers (train, val, test) summing to 1, found {tuple(fractions)}"
        )
    return frac


def make_splits(
    manifest: pd.DataFrame,
    fractions: Sequence[float] = PAPER_FRACTIONS,
    seed: int = 0,
    stratify: bool = True,
    n_folds: int | None = None,
    out_csv: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Patient-level, scenario-stratified, seeded train / val / test split of a manifest.

    Parameters
    ----------
    manifest : pandas.DataFrame
        At least ``case_id`` and ``patient_id``; ``n_lesions`` too when ``stratify``
        (as :func:`pcatools.data.discovery.discover_cases` returns).
    fractions : three floats
        Train, validation and test proportions of the scans (sum 1); default the paper's
        258 / 65 / 57 of 380.
    seed : int
        Seed of the patient order; the same seed gives the same split.
    stratify : bool
        Balance lesion-free, single-lesion, multiple-lesion (and unlabelled) scans across sets.
    n_folds : int, optional
        k >= 2: the test set is drawn with ``fractions[2]``, the other patients are split into k
        stratified patient-level folds (column ``fold`` 0..k-1, -1 for test) and ``split`` is
        ``"val"`` for fold 0 and ``"train"`` for the others (``fractions[0:2]`` are then unused);
        :func:`fold_split` selects another fold as validation.
    out_csv : path-like, optional
        Save the result there (atomically).

    Returns
    -------
    pandas.DataFrame
        The manifest (same rows, same order) with column ``split`` in {"train", "val", "test"}
        (and ``fold`` with ``n_folds``). No patient is in two sets.

    Raises
    ------
    DataError
        Missing columns, duplicate case ids, bad lesion counts.
    ValueError
        Bad fractions or ``n_folds``.
    """
    need = ["case_id", "patient_id"] + (["n_lesions"] if stratify else [])
    missing = [c for c in need if c not in manifest.columns]
    if missing:
        raise DataError(f"make_splits: manifest lacks columns {missing}; found {list(manifest.columns)}")
    if manifest["case_id"].duplicated().any():
        dup = manifest.loc[manifest["case_id"].duplicated(), "case_id"].tolist()
        raise DataError(f"make_splits: duplicate case ids {dup[:5]}")
    if len(manifest) == 0:
        raise DataError("make_splits: the manifest has no rows")
    if manifest["patient_id"].isna().any():
        raise DataError("make_splits: patient_id is missing for some cases")
    frac = _check_fractions(fractions)

    out = manifest.copy()
    strata = [lesion_stratum(n) for n in out["n_lesions"]] if stratify else ["all"] * len(out)
    patients = out["patient_id"].astype(str).to_numpy()
    patient_ids, patient_index = np.unique(patients, return_inverse=True)
    stratum_names, stratum_index = np.unique(np.asarray(strata), return_inverse=True)
    counts = np.zeros((len(patient_ids), len(stratum_names)), dtype=np.int64)
    np.add.at(counts, (patient_index, stratum_index), 1)

    rng = np.random.default_rng(seed)
    if n_folds is None:
        set_of_patient = assign_groups(counts, frac, rng)
        out["split"] = np.asarray(SPLITS, dtype=object)[set_of_patient[patient_index]]
    else:
        if int(n_folds) != n_folds or n_folds < 2:
            raise ValueError(f"n_folds: expected an integer >= 2 or None, found {n_folds!r}")
        is_test = assign_groups(counts, (1.0 - float(frac[2]), float(frac[2])), rng) == 1
        rest = np.flatnonzero(~is_test)
        if len(rest) < n_folds:
            raise ValueError(f"n_folds={n_folds} but only {len(rest)} non-test patients")
        fold_of_patient = np.full(len(patient_ids), -1, dtype=np.int64)
        fold_of_patient[rest] = assign_groups(counts[rest], [1.0 / n_folds] * n_folds, rng)
        out["fold"] = fold_of_patient[patient_index]
        out = fold_split(out, 0)
    if out_csv is not None:
        write_manifest(out, out_csv)
    return out


def fold_split(splits: pd.DataFrame, fold: int) -> pd.DataFrame:
    """Copy of a k-fold split with fold ``fold`` as ``"val"``, the other folds ``"train"``, test unchanged."""
    if "fold" not in splits.columns:
        raise DataError("fold_split: expected a 'fold' column (make_splits(..., n_folds=k))")
    folds = sorted(int(f) for f in set(splits["fold"]) if int(f) >= 0)
    if fold not in folds:
        raise ValueError(f"fold: expected one of {folds}, found {fold!r}")
    out = splits.copy()
    fold_col = out["fold"].astype(int)
    out["split"] = np.where(fold_col < 0, "test", np.where(fold_col == fold, "val", "train"))
    return out


def leaked_patients(splits: pd.DataFrame, column: str = "split") -> list[str]:
    """Patients whose scans fall into more than one value of ``column`` (empty for a patient-level split).

    Examples
    --------
    >>> df = pd.DataFrame({"patient_id": ["a", "a", "b"], "split": ["train", "test", "val"]})
    >>> leaked_patients(df)
    ['a']
    """
    n_sets = splits.groupby(splits["patient_id"].astype(str))[column].nunique()
    return sorted(n_sets.index[n_sets > 1].tolist())


def reference_code_folds(manifest: pd.DataFrame, n_folds: int = 5) -> pd.DataFrame:
    """The public code's split: sort by case id, cut into ``n_folds`` consecutive folds (column ``fold``).

    Reproduced for comparison only: it ignores patients, so scans of one patient land in different
    folds (see :func:`leaked_patients`). The first ``len % n_folds`` folds get one extra case, as in
    ``create_data_split_files`` of the paper's repository.
    """
    out = manifest.sort_values("case_id", kind="stable").reset_index(drop=True).copy()
    size, extra = divmod(len(out), n_folds)
    out["fold"] = np.repeat(np.arange(n_folds), [size + (1 if i < extra else 0) for i in range(n_folds)])
    return out
