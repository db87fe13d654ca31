"""Patient-level, stratified, seeded splits (issue 2, item 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcatools.data.errors import DataError
from pcatools.data.splits import (
    PAPER_FRACTIONS,
    assign_groups,
    fold_split,
    integer_targets,
    leaked_patients,
    lesion_stratum,
    make_splits,
    reference_code_folds,
)


def one_scan_per_patient(n_lesions: list[int]) -> pd.DataFrame:
    ids = [f"c{i:04d}" for i in range(len(n_lesions))]
    return pd.DataFrame({"case_id": ids, "patient_id": ids, "n_lesions": n_lesions})


def autopet_like(n_patients: int = 120, seed: int = 3) -> pd.DataFrame:
    """1-4 studies per patient with ids ``PSMA_<patient>_<study>`` (sorted ids keep a patient's studies together)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for s in range(int(rng.integers(1, 5))):
            rows.append(
                {
                    "case_id": f"PSMA_{p:03d}_{s}",
                    "patient_id": f"PSMA_{p:03d}",
                    "n_lesions": int(rng.choice([0, 1, 2, 4])),
                }
            )
    return pd.DataFrame(rows)


def test_integer_targets_known_answers() -> None:
    assert integer_targets(np.array([380]), PAPER_FRACTIONS).ravel().tolist() == [258, 65, 57]
    # 7 scans in strata (4, 3) at 50/50: row totals 4/3 (largest remainder, tie to the first set)
    t = integer_targets(np.array([4, 3]), (0.5, 0.5))
    assert t.sum(axis=0).tolist() == [4, 3] and t.sum(axis=1).tolist() == [4, 3]
    t = integer_targets(np.array([5, 5, 5]), (1 / 3, 1 / 3, 1 / 3))
    assert t.sum(axis=0).tolist() == [5, 5, 5] and t.sum(axis=1).tolist() == [5, 5, 5]


def test_paper_proportions_are_exact_for_380_scans() -> None:
    rng = np.random.default_rng(0)
    manifest = one_scan_per_patient(rng.choice([1, 2, 3], size=380, p=[0.5, 0.3, 0.2]).tolist())
    counts = make_splits(manifest)["split"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (258, 65, 57)


def test_stratification_exact_with_one_scan_per_patient() -> None:
    # 20 lesion-free, 60 single-lesion, 40 multiple-lesion scans; 60/20/20 -> every stratum split 60/20/20
    manifest = one_scan_per_patient([0] * 20 + [1] * 60 + [2, 5] * 20)
    out = make_splits(manifest, fractions=(0.6, 0.2, 0.2), seed=7)
    table = pd.crosstab(out["split"], out["n_lesions"].map(lesion_stratum))
    assert table.loc["train"].to_dict() == {"multiple": 24, "none": 12, "single": 36}
    assert table.loc["val"].to_dict() == {"multiple": 8, "none": 4, "single": 12}
    assert table.loc["test"].to_dict() == {"multiple": 8, "none": 4, "single": 12}


def test_without_stratify_only_totals_are_matched() -> None:
    manifest = one_scan_per_patient([1] * 50 + [3] * 50)
    out = make_splits(manifest, fractions=(0.5, 0.3, 0.2), stratify=False, seed=1)
    assert out["split"].value_counts().to_dict() == {"train": 50, "val": 30, "test": 20}
    # stratify=False does not need n_lesions
    make_splits(manifest.drop(columns="n_lesions"), stratify=False)


def test_no_patient_in_two_sets_and_reference_code_leaks() -> None:
    manifest = autopet_like()
    for seed in range(5):
        out = make_splits(manifest, seed=seed)
        assert leaked_patients(out) == []
        assert out.groupby("patient_id")["split"].nunique().max() == 1
        # proportions of scans within 2 of the paper's (patients carry up to 4 scans)
        expected = np.array(PAPER_FRACTIONS) * len(manifest)
        got = out["split"].value_counts()[["train", "val", "test"]].to_numpy()
        assert np.abs(got - expected).max() <= 2.5
        # strata proportions close too
        share = pd.crosstab(out["split"], out["n_lesions"].map(lesion_stratum), normalize="columns")
        assert np.abs(share.loc["test"] - PAPER_FRACTIONS[2]).max() < 0.05
    # the public code's sorted-id folds cut patients' runs of studies
    assert len(leaked_patients(reference_code_folds(manifest, 5), column="fold")) >= 1


def test_reference_code_folds_sizes() -> None:
    folds = reference_code_folds(one_scan_per_patient([1] * 12), n_folds=5)
    assert folds["fold"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4]


def test_same_seed_same_split_other_seed_other_split() -> None:
    manifest = autopet_like()
    a = make_splits(manifest, seed=11)
    b = make_splits(manifest.sample(frac=1.0, random_state=0).sort_values("case_id"), seed=11)
    pd.testing.assert_series_equal(a["split"], b["split"])
    c = make_splits(manifest, seed=12)
    assert (a["split"] != c["split"]).any()
    assert a.drop(columns="split").equals(manifest)  # rows and columns of the manifest kept as they were


def test_k_folds() -> None:
    manifest = autopet_like()
    out = make_splits(manifest, n_folds=5, seed=2)
    assert leaked_patients(out, column="fold") == []
    test_rows = out["fold"] == -1
    assert (out.loc[test_rows, "split"] == "test").all()
    assert abs(test_rows.sum() - PAPER_FRACTIONS[2] * len(manifest)) <= 2.5
    sizes = out.loc[~test_rows, "fold"].value_counts()
    assert sorted(sizes.index) == [0, 1, 2, 3, 4] and sizes.max() - sizes.min() <= 3
    assert (out.loc[out["fold"] == 0, "split"] == "val").all()
    assert (out.loc[out["fold"] > 0, "split"] == "train").all()
    third = fold_split(out, 3)
    assert (third.loc[third["fold"] == 3, "split"] == "val").all()
    assert (third.loc[third["fold"] == 0, "split"] == "train").all()
    assert (third.loc[test_rows, "split"] == "test").all()
    # seeded: the same folds again
    pd.testing.assert_frame_equal(out, make_splits(manifest, n_folds=5, seed=2))


def test_assign_groups_big_patients_first() -> None:
    # one patient with 6 scans, 6 patients with 1: 50/50 -> the big one alone in a set
    counts = np.array([[6]] + [[1]] * 6)
    sets = assign_groups(counts, (0.5, 0.5), seed=0)
    assert np.bincount(sets, weights=counts[:, 0]).tolist() == [6.0, 6.0]
    assert (sets[1:] != sets[0]).all()


def test_saved_csv(tmp_path: Path) -> None:
    manifest = one_scan_per_patient([1, 2, 0, 1, 1, 3, 2, 1, 0, 1])
    out = make_splits(manifest, out_csv=tmp_path / "split.csv")
    back = pd.read_csv(tmp_path / "split.csv", dtype={"case_id": str, "patient_id": str})
    pd.testing.assert_frame_equal(back, out, check_dtype=False)


def test_bad_arguments() -> None:
    manifest = one_scan_per_patient([1, 2, 3])
    with pytest.raises(DataError, match=r"manifest lacks columns \['n_lesions'\]"):
        make_splits(manifest.drop(columns="n_lesions"))
    with pytest.raises(
        ValueError,
        match=r"fractions: expected three non-negative numbers .* summing to 1, found \(0\.5, 0\.5, 0\.5\)",
    ):
        make_splits(manifest, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"n_folds: expected an integer >= 2"):
        make_splits(manifest, n_folds=1)
    with pytest.raises(DataError, match=r"duplicate case ids \['c0000'\]"):
        make_splits(pd.concat([manifest, manifest.iloc[:1]]))
    with pytest.raises(DataError, match=r"n_lesions: expected a count >= 0, found -1"):
        lesion_stratum(-1)
