"""Evaluation rules that real data needs (issue 25): lesion-free cases, patients, any model names, what
Table 1 counts, small cohorts, connectivity, panoptic quality, eq. 16 per pair, Dmax edges.

The built cohort (2 mm voxels, 12^3 grid, nnU-Net test layout with SUV) has five cases, one of them
lesion-free, and two models with hand-computed answers. SUV is 1 outside the lesions and constant
inside each lesion (3 + case + lesion), so each lesion's SUVmax voxel is its first voxel in C order.

=====  =========================  ===========================  ==================================
case   ground truth (voxels)      A                            B
=====  =========================  ===========================  ==================================
C1     27-voxel cube              exact: DSC 1                 18 of its voxels: DSC 36/45 = 0.8
C2     two 8-voxel cubes          exact: DSC 1                 the first only: DSC 16/24, FN 1
C3     27-voxel cube              exact + 8-voxel FP: 54/62    exact: DSC 1
C4     8-voxel cube               exact: DSC 1                 nothing: DSC 0, FN 1
E      nothing                    8-voxel FP: DSC 0, F1 0      nothing: DSC 1, F1 1
=====  =========================  ===========================  ==================================

C1 and C2 are two studies of one patient (``--patients``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from typer.testing import CliRunner

from pcatools import stats
from pcatools.cli import app
from pcatools.metrics import components, evaluate_case, lesion_dice, lesion_table, panoptic_quality
from pcatools.stats import fmt_mean_sd

SHAPE = (12, 12, 12)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
CUBE27 = (slice(2, 5), slice(2, 5), slice(2, 5))
GT = {
    "C1": [CUBE27],
    "C2": [(slice(2, 4), slice(2, 4), slice(2, 4)), (slice(8, 10), slice(8, 10), slice(8, 10))],
    "C3": [CUBE27],
    "C4": [(slice(5, 7), slice(5, 7), slice(5, 7))],
    "E": [],
}
FP = (slice(9, 11), slice(9, 11), slice(0, 2))
PRED = {
    "A": {"C1": [CUBE27], "C2": GT["C2"], "C3": [CUBE27, FP], "C4": GT["C4"], "E": [FP]},
    "B": {
        "C1": [(slice(2, 4), slice(2, 5), slice(2, 5))],
        "C2": GT["C2"][:1],
        "C3": [CUBE27],
        "C4": [],
        "E": [],
    },
}
# hand-computed per case: DSC, (TP, FP, FN), F1
DSC = {
    "A": {"C1": 1.0, "C2": 1.0, "C3": 54 / 62, "C4": 1.0, "E": 0.0},
    "B": {"C1": 36 / 45, "C2": 16 / 24, "C3": 1.0, "C4": 0.0, "E": 1.0},
}
COUNTS = {
    "A": {"C1": (1, 0, 0), "C2": (2, 0, 0), "C3": (1, 1, 0), "C4": (1, 0, 0), "E": (0, 1, 0)},
    "B": {"C1": (1, 0, 0), "C2": (1, 0, 1), "C3": (1, 0, 0), "C4": (0, 0, 1), "E": (0, 0, 0)},
}
F1 = {
    "A": {"C1": 1.0, "C2": 1.0, "C3": 1 / 1.5, "C4": 1.0, "E": 0.0},
    "B": {"C1": 1.0, "C2": 1 / 1.5, "C3": 1.0, "C4": 0.0, "E": 1.0},
}
WITH_LESIONS = ["C1", "C2", "C3", "C4"]


def _mask(boxes: list[tuple[slice, slice, slice]]) -> np.ndarray:
    m = np.zeros(SHAPE, np.uint8)
    for box in boxes:
        m[box] = 1
    return m


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, AFFINE), str(path))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rules")
    for i, (case, boxes) in enumerate(GT.items()):
        _save(_mask(boxes), root / "labelsTs" / f"{case}.nii.gz")
        suv = np.ones(SHAPE, np.float32)
        for j, box in enumerate(boxes):
            suv[box] = 3.0 + i + j
        _save(suv, root / "imagesTs" / f"{case}_0001.nii.gz")
        for model, preds in PRED.items():
            _save(_mask(preds[case]), root / "preds" / model / f"{case}.nii.gz")
    (root / "patients.csv").write_text("case_id,patient_id\nC1,P1\nC2,P1\nC3,P3\nC4,P4\nE,P5\n")
    return root


def _cli(root: Path, out: Path, *extra: str) -> tuple[int, str]:
    args = ["evaluate", str(out), "--gt", str(root / "labelsTs"), "--suv", str(root / "imagesTs")]
    args += ["--pred", f"A={root / 'preds' / 'A'}", "--pred", f"B={root / 'preds' / 'B'}"]
    res = CliRunner().invoke(app, [*args, "--workers", "0", "--no-progress", *extra])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def evaluated(cohort: Path) -> Path:
    out = cohort / "out"
    code, output = _cli(cohort, out, "--patients", str(cohort / "patients.csv"))
    assert code == 0, output
    return out


def _row(out: Path, model: str) -> pd.Series:
    t = pd.read_csv(out / "results" / "table1.csv", keep_default_na=False)
    return t.set_index("Loss").loc[model]


def _rates(model: str, cases: list[str]) -> tuple[list[float], list[float]]:
    tp = [COUNTS[model][c][0] / (COUNTS[model][c][0] + COUNTS[model][c][2]) for c in cases]
    return tp, [1 - t for t in tp]


# ----------------------------------------------------------------------------- 1. lesion-free cases


def test_cases_csv_holds_the_hand_computed_values(evaluated: Path) -> None:
    cases = pd.read_csv(evaluated / "results" / "cases.csv", keep_default_na=False)
    for (model, case), r in cases.set_index(["model", "case_id"]).iterrows():
        assert r["dice"] == pytest.approx(DSC[model][case])
        assert (r["tp"], r["fp"], r["fn"]) == COUNTS[model][case]
        assert r["f1"] == pytest.approx(F1[model][case])
    assert set(cases["criterion"]) == {"suvmax"}


def test_autopet_rule_scores_the_lesion_free_case_in_fp_only(evaluated: Path) -> None:
    """Default --empty-cases autopet: DSC, F1, TP, FN, P over C1-C4; FP over all five cases."""
    every = [*WITH_LESIONS, "E"]
    for model in ("A", "B"):
        row = _row(evaluated, model)
        assert row["DSC mean"] == fmt_mean_sd([DSC[model][c] for c in WITH_LESIONS])
        assert row["F1"] == fmt_mean_sd([F1[model][c] for c in WITH_LESIONS])
        tp, fn = _rates(model, WITH_LESIONS)
        assert (row["TP"], row["FN"]) == (fmt_mean_sd(tp), fmt_mean_sd(fn))
        assert row["FP"] == fmt_mean_sd([COUNTS[model][c][1] for c in every])
    assert _row(evaluated, "A")["DSC mean"] == "0.97 ± 0.06"  # (3 + 54/62) / 4 = 0.9677
    assert _row(evaluated, "A")["FP"] == "0.40 ± 0.55"  # C3 and E: 2 of 5
    # Wilcoxon A > B on C1-C4: differences 0.2, 1/3, -0.129, 1 -> W+ = 2 + 3 + 4 = 9, P = 2/16
    assert _row(evaluated, "B")["P value"] == "0.12"
    wil = pd.read_csv(evaluated / "results" / "wilcoxon.csv")
    assert wil["n"].tolist() == [4] and wil["p_value"].item() == pytest.approx(0.125)
    a = [DSC["A"][c] for c in WITH_LESIONS]
    b = [DSC["B"][c] for c in WITH_LESIONS]
    assert sps.wilcoxon(a, b, alternative="greater").pvalue == pytest.approx(0.125)


@pytest.mark.parametrize("rule", ["count", "exclude"])
def test_count_and_exclude_rules(cohort: Path, tmp_path: Path, rule: str) -> None:
    code, output = _cli(cohort, tmp_path / "out", "--empty-cases", rule)
    assert code == 0, output
    every = [*WITH_LESIONS, "E"]
    main = every if rule == "count" else WITH_LESIONS
    for model in ("A", "B"):
        row = _row(tmp_path / "out", model)
        assert row["DSC mean"] == fmt_mean_sd([DSC[model][c] for c in main])
        assert row["F1"] == fmt_mean_sd([F1[model][c] for c in main])
        tp, _ = _rates(model, WITH_LESIONS)  # a rate has no lesion to divide by in E: left out
        assert row["TP"] == fmt_mean_sd(tp)
        assert row["FP"] == fmt_mean_sd([COUNTS[model][c][1] for c in main])
    expected = {"count": ("0.77 ± 0.44", "0.40 ± 0.55"), "exclude": ("0.97 ± 0.06", "0.25 ± 0.50")}[rule]
    assert (_row(tmp_path / "out", "A")["DSC mean"], _row(tmp_path / "out", "A")["FP"]) == expected
    readme = (tmp_path / "out" / "README.md").read_text()
    n_main = len(main)
    assert f"Cases per column: DSC, F1, TP, FN, P value {n_main}; FP {n_main}" in readme
    assert f"lesion-free cases: `{rule}`" in readme
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text())["empty_cases"] == rule


def test_readme_and_table1_state_the_rules_and_counts(evaluated: Path) -> None:
    readme = (evaluated / "README.md").read_text()
    table1_md = (evaluated / "results" / "table1.md").read_text()
    lines = [
        "Lesion-free cases (rule autopet): 1 of 5 case(s); they count in FP (and FPV) only, not in DSC, F1, "
        "TP, FN or the P values.",
        "Cases per column: DSC, F1, TP, FN, P value 4; FP 5 (5 case(s) from 4 patient(s); the SD, CI and P "
        "values treat cases as independent).",
        "Only 4 paired case(s) (< 5): the SD, the bootstrap CI and the Wilcoxon P value say little (the "
        "smallest one-tailed P with 4 pair(s) is 0.062).",
        "TP: lesions whose SUVmax voxel a prediction covers; FP: components overlapping no lesion; FN: lesions "
        "whose SUVmax voxel no prediction covers (criterion suvmax). TP and FN are rates per case (TP + FN = "
        "1), FP a count per case; mean ± SD.",
        "Lesions and predicted components are 18-connected (autoPET's official rule).",
    ]
    for line in lines:
        assert line in readme, line
        assert line in table1_md, line
    assert "lesion-free cases: `autopet` (`--empty-cases`); connectivity: 18" in readme
    line = "Dmax groups G0-G3 (Figure 6, multiple-lesion cases): edges 0, 9, 11, 14, 60 cm (paper (quartiles tie))."
    assert line in readme and line in table1_md
    config = json.loads((evaluated / "evaluation.json").read_text())
    assert (config["empty_cases"], config["connectivity"], config["lesion_dice"]) == ("autopet", 18, "union")
    # one multiple-lesion case: its quartiles tie, the paper's edges are used and recorded
    assert config["dmax_edges"] == {
        "source": "paper (quartiles tie)",
        "edges_mm": [0.0, 90.0, 110.0, 140.0, 600.0],
    }


# ----------------------------------------------------------------------------- 3, 4. patients, model names


def test_patients_are_recorded_and_group_the_mixed_model(evaluated: Path) -> None:
    manifest = pd.read_csv(evaluated / "manifest.csv")
    assert dict(zip(manifest["case_id"], manifest["patient_id"], strict=True)) == {
        "C1": "P1", "C2": "P1", "C3": "P3", "C4": "P4", "E": "P5",
    }  # fmt: skip
    lesions = pd.read_csv(evaluated / "results" / "lesions.csv")
    assert lesions.groupby("case_id")["patient_id"].first().to_dict() == {
        "C1": "P1",
        "C2": "P1",
        "C3": "P3",
        "C4": "P4",
    }
    # the model names A and B pass the reference check (it said "reference loss 'dice' not in [...]");
    # A scores 1 on every lesion, so the patient variance is 0 and the fit is singular
    mixed = pd.read_csv(evaluated / "results" / "mixed_model.csv")
    assert mixed["note"].tolist() == ["mixed model not estimable: Singular matrix"]


def test_patients_csv_missing_a_case_is_refused(cohort: Path, tmp_path: Path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("case_id,patient_id\nC1,P1\n")
    code, output = _cli(cohort, tmp_path / "out", "--patients", str(bad))
    assert code == 1
    assert output.strip() == f"error: {bad}: no patient_id for 4 case(s), e.g. ['C2', 'C3', 'C4', 'E']"
    assert not (tmp_path / "out").exists()


def test_mixed_model_works_for_any_model_names_relative_to_the_reference() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for p in range(8):
        patient = float(rng.normal(0, 0.05))
        for lesion in range(3):
            vol, suv = float(rng.uniform(0.5, 5)), float(rng.uniform(3, 20))
            for model, shift in (("nnU-Net v2 (fold 0)", 0.0), ("my model", 0.1), ("x/y", -0.05)):
                rows.append(
                    {"patient_id": f"p{p}", "case_id": f"c{p}_{lesion % 2}", "model": model, "volume_ml": vol, "suvmax": suv,
                     "dice": 0.5 + patient + shift + 0.02 * lesion + float(rng.normal(0, 0.01))}
                )  # fmt: skip
    lesions = pd.DataFrame(rows)
    out = stats.lesion_mixed_model(lesions, arm="model", reference="my model").set_index("term")
    assert list(out.index[:3]) == ["Intercept", "model[nnU-Net v2 (fold 0)]", "model[x/y]"]
    assert out.loc["model[nnU-Net v2 (fold 0)]", "estimate"] == pytest.approx(-0.1, abs=0.01)
    assert out.loc["model[x/y]", "estimate"] == pytest.approx(-0.15, abs=0.01)
    assert out["n_groups"].iloc[0] == 8  # patients, not the 16 studies (two per patient)
    assert lesions["case_id"].nunique() == 16
    with pytest.raises(
        ValueError, match=r"reference model 'nope' not in \['nnU-Net v2 \(fold 0\)', 'my model', 'x/y'\]"
    ):
        stats.lesion_mixed_model(lesions, arm="model", reference="nope")


# ----------------------------------------------------------------------------- 5. criterion names


def test_overlap_criterion_names_its_counts(cohort: Path, tmp_path: Path) -> None:
    code, output = _cli(cohort, tmp_path / "out", "--criterion", "overlap")
    assert code == 0, output
    t = pd.read_csv(tmp_path / "out" / "results" / "table1.csv", keep_default_na=False)
    assert list(t.columns[4:7]) == ["TP (components)", "FP (components)", "FN (lesions)"]
    row = t.set_index("Loss").loc["A"]
    # overlap: TP counts components (C2's two lesions give two), counts per case, not rates
    assert row["TP (components)"] == fmt_mean_sd([1, 2, 1, 1])
    readme = (tmp_path / "out" / "README.md").read_text()
    assert (
        "TP: components overlapping a lesion; FP: components overlapping no lesion; FN: lesions no component "
        "overlaps (criterion overlap). all three are counts per case; mean ± SD."
    ) in readme
    assert "TP and FN are per-patient rates" not in readme


# ----------------------------------------------------------------------------- 6. connectivity, PQ


def test_connectivity_26_joins_corner_neighbours() -> None:
    """Three voxel pairs touching at a corner, an edge and a face: 6 -> 5, 18 -> 4, 26 -> 3 components (hand count)."""
    g = np.zeros((6, 6, 6), np.uint8)
    g[1, 1, 1] = g[2, 2, 2] = 1  # corner neighbours: joined under 26 only
    g[4, 4, 1] = g[4, 5, 2] = 1  # edge neighbours: joined under 18 and 26
    g[1, 4, 4] = g[1, 4, 5] = 1  # face neighbours: joined under all three
    counts = {c: components(g, g, connectivity=c).n_gt for c in (6, 18, 26)}
    assert counts == {6: 5, 18: 4, 26: 3}
    r = evaluate_case(g, np.zeros_like(g), None, connectivity=26, criterion="overlap")
    assert (r["n_gt_lesions"], r["fn"]) == (3, 3)
    with pytest.raises(ValueError, match=r"connectivity: expected one of \[6, 18, 26\], found 8"):
        components(g, g, connectivity=8)


def test_connectivity_option_is_recorded(cohort: Path, tmp_path: Path) -> None:
    code, output = _cli(cohort, tmp_path / "out", "--connectivity", "26", "--panoptic")
    assert code == 0, output
    config = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert (config["connectivity"], config["panoptic"]) == (26, True)
    assert (
        "Lesions and predicted components are 26-connected (autoPET's official rule is 18)."
        in (tmp_path / "out" / "README.md").read_text()
    )
    cases = pd.read_csv(tmp_path / "out" / "results" / "cases.csv").set_index(["model", "case_id"])
    # A on C3: one exact match (IoU 1) and one FP: RQ = 1 / (1 + 0.5), SQ = 1
    assert cases.loc[("A", "C3"), ["rq", "sq", "pq"]].tolist() == pytest.approx([2 / 3, 1.0, 2 / 3])
    # B on C1: IoU 18/27 > 0.5 -> matched; B on C4: nothing predicted -> RQ = PQ = 0, SQ NaN
    assert cases.loc[("B", "C1"), ["rq", "sq", "pq"]].tolist() == pytest.approx([1.0, 18 / 27, 18 / 27])
    assert cases.loc[("B", "C4"), ["rq", "pq"]].tolist() == [0.0, 0.0] and np.isnan(
        cases.loc[("B", "C4"), "sq"]
    )
    assert cases.loc[("B", "E"), ["rq", "sq", "pq"]].isna().all()  # nothing to recognise


def test_bad_rule_values_are_refused_before_reading(cohort: Path, tmp_path: Path) -> None:
    for flag, value, message in (
        (
            "--empty-cases",
            "skip",
            "error: empty cases: expected one of ['autopet', 'count', 'exclude'], found 'skip'",
        ),
        ("--connectivity", "8", "error: connectivity: expected one of [6, 18, 26], found 8"),
        (
            "--lesion-dice",
            "mean",
            "error: lesion dice reading: expected one of ['union', 'pair'], found 'mean'",
        ),
    ):
        code, output = _cli(cohort, tmp_path / "out", flag, value)
        assert (code, output.strip()) == (1, message)
        assert not (tmp_path / "out").exists()


def test_panoptic_quality_against_a_hand_computation() -> None:
    """Two lesions (8 and 27 voxels), three components: one at IoU 6/10, one at IoU 4/29 (too low), one FP.

    TP 1 (IoU 0.6 > 0.5), FP 2, FN 1: RQ = 1 / (1 + 1.5) = 0.4, SQ = 0.6, PQ = 0.24 (panoptica:
    pq = sq * rq with rq = tp / (tp + (fp + fn) / 2)).
    """
    g = np.zeros((12, 12, 12), np.uint8)
    g[0:2, 0:2, 0:2] = 1  # 8 voxels
    g[5:8, 5:8, 5:8] = 1  # 27 voxels
    p = np.zeros_like(g)
    p[0:2, 0:2, 0:2] = 1
    p[0, 0, 0] = p[0, 0, 1] = 0  # 6 of the 8 -> IoU 6/8; add 2 outside to make it 6/10
    p[0:2, 0:2, 2] = 1
    p[0:2, 0, 2] = 0  # 6 + 2 = 8 voxels predicted, union 10 -> IoU 0.6
    p[5:7, 5:7, 5] = 1  # 4 voxels of the 27: IoU 4/27 -> not matched
    p[11, 11, 11] = 1  # FP
    q = panoptic_quality(components(g, p))
    assert (q.tp, q.fp, q.fn) == (1, 2, 1)
    assert (q.rq, q.sq, q.pq) == pytest.approx((0.4, 0.6, 0.24))


# panoptica 2.1.7 on the real autoPET sample (SemanticPair, cc3d components at its 26-connectivity,
# NaiveThresholdMatching(matching_threshold=0.5, strict_threshold=True), i.e. IoU > 0.5), measured in
# a separate environment (panoptica is not a pcatools dependency): tp, fp, fn, rq, sq, pq
PANOPTICA_26 = {
    "pred_nnunet": (44, 43, 67, 0.4444444444444444, 0.6991190012552351, 0.31071955611343777),
    "pred_dc": (29, 65, 82, 0.28292682926829266, 0.6058185176099908, 0.17140231229941202),
}


def test_panoptic_quality_equals_panoptica_on_the_real_sample(shared_data: Path) -> None:
    """panoptica's default matching is IoU >= 0.5: there 2 (nnU-Net) and 1 (DC) more pairs match, each at
    IoU exactly 0.5 (docs/metrics.md); with its strict threshold (> 0.5, ours) every number agrees."""
    root = shared_data / "autopet-psma-sample"
    img = nib.load(str(root / "orig_label.nii.gz"))
    g = (np.asanyarray(img.dataobj) > 0).astype(np.uint8)
    for name, (tp, fp, fn, rq, sq, pq) in PANOPTICA_26.items():
        p = (np.asanyarray(nib.load(str(root / f"{name}.nii.gz")).dataobj) > 0).astype(np.uint8)
        comp = components(g, p, img.header.get_zooms()[:3], connectivity=26)
        q = panoptic_quality(comp)
        assert (q.tp, q.fp, q.fn) == (tp, fp, fn)
        assert (q.rq, q.sq, q.pq) == pytest.approx((rq, sq, pq), rel=1e-12)
        union = comp.gt_sizes[comp.pairs[:, 0]] + comp.pred_sizes[comp.pairs[:, 1]] - comp.pair_overlap
        at_half = int(np.sum(2 * comp.pair_overlap == union))
        assert at_half == {"pred_nnunet": 2, "pred_dc": 1}[name]


# ----------------------------------------------------------------------------- 7. eq. 16 per pair


def test_lesion_dice_per_matched_pair_on_a_split_and_a_merged_lesion() -> None:
    """Lesion 1 (a line of 8 voxels) split into components of 4 and 2 voxels; lesions 2 and 3 (8 voxels
    each) merged by one 20-voxel component that bridges them.

    Union reading: lesion 1 scores 2*6/(8+6) = 6/7. Per pair (eq. 16 literally): 2*4/(8+4) = 2/3 and
    2*2/(8+2) = 0.4, the lesion reports its best pair, 2/3. The merged pair: both readings give
    2*8/(8+20) = 16/28 for each of lesions 2 and 3 (one component, one pair each).
    """
    g = np.zeros((12, 12, 12), np.uint8)
    g[0:8, 0, 0] = 1
    g[5:7, 5:7, 0:2] = 1
    g[5:7, 5:7, 3:5] = 1
    p = np.zeros_like(g)
    p[0:4, 0, 0] = 1
    p[5:7, 0, 0] = 1
    p[5:7, 5:7, 0:5] = 1
    comp = components(g, p)
    assert (comp.n_gt, comp.n_pred) == (3, 3)
    assert lesion_dice(comp).tolist() == pytest.approx([6 / 7, 16 / 28, 16 / 28])
    assert lesion_dice(comp, "pair").tolist() == pytest.approx([2 / 3, 16 / 28, 16 / 28])
    table = lesion_table(g, p, None, (1.0, 1.0, 1.0), "overlap", lesion_dice_reading="pair")
    assert table["dice"].tolist() == pytest.approx([2 / 3, 16 / 28, 16 / 28])
    assert table["pred_components"].tolist() == ["1;2", "3", "3"]


def test_lesion_dice_option_reaches_lesions_csv(cohort: Path, tmp_path: Path) -> None:
    code, output = _cli(cohort, tmp_path / "out", "--lesion-dice", "pair")
    assert code == 0, output
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text())["lesion_dice"] == "pair"
    assert "(--lesion-dice pair)" in (tmp_path / "out" / "README.md").read_text()


# ----------------------------------------------------------------------------- 7. Dmax edges, Figure 6 N


def test_dmax_tie_fallback_warns_and_is_recorded() -> None:
    from pcatools.analysis import dmax_grouped

    cases = pd.DataFrame({"case_id": ["a", "b"], "scenario": "M", "dmax_mm": [100.0, 100.0]})
    with pytest.warns(UserWarning, match="the paper's edges 0-9, 9-11, 11-14, 14-60 cm are used instead"):
        grouped = dmax_grouped(cases)
    assert grouped["dmax_edges"].tolist() == ["paper (quartiles tie)"] * 2
    assert grouped[["dmax_group", "dmax_low_mm", "dmax_high_mm"]].values.tolist() == [["G1", 90.0, 110.0]] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(dmax_grouped(cases, paper_edges=True)["dmax_edges"]) == {"paper"}


def test_figure6_labels_print_the_cut_points_and_hover_n_counts_cases() -> None:
    from pcatools import figures
    from pcatools.analysis import dmax_grouped

    rows = [
        {"case_id": c, "scenario": "M", "dmax_mm": d, "network": net, "loss": "dice", "dice": 0.5, "tla": 1.0}
        for c, d in (("a", 50.0), ("b", 80.0), ("c", 100.0), ("d", 130.0), ("e", 200.0))
        for net in ("segresnet", "attention_unet")
    ]
    fig = figures.figure6(dmax_grouped(pd.DataFrame(rows), paper_edges=True))
    assert list(fig.layout.xaxis.ticktext) == [
        "G0 (0-9 cm, N = 2)", "G1 (9-11 cm, N = 1)", "G2 (11-14 cm, N = 1)", "G3 (14-60 cm, N = 1)",
    ]  # fmt: skip
    bars = [tr for tr in fig.data if tr.type == "bar"]
    assert list(bars[0].customdata) == [2, 1, 1, 1]  # cases, not cases x 2 networks


def test_the_rules_agree_where_every_case_has_a_lesion() -> None:
    """The study's Table 1 does not move: on cases that all have lesions the three rules give one table,
    equal to today's (``count``, the former behaviour)."""
    rng = np.random.default_rng(1)
    rows = [
        {"case_id": f"c{i}", "network": net, "loss": loss, "n_gt_lesions": int(rng.integers(1, 4)),
         "dice": float(rng.uniform()), "tp": int(rng.integers(0, 3)), "fp": int(rng.integers(0, 3)),
         "fn": int(rng.integers(0, 2)), "f1": float(rng.uniform())}
        for i in range(8) for net in ("segresnet", "attention_unet") for loss in ("dice", "dfl", "l1dfl")
    ]  # fmt: skip
    cases = pd.DataFrame(rows)
    cases["tp"] = np.maximum(cases["tp"], cases["n_gt_lesions"] - cases["fn"])  # tp + fn > 0 with lesions
    tables = {rule: stats.table1(cases, empty_cases=rule, n_resamples=200) for rule in stats.EMPTY_CASE_RULES}
    pd.testing.assert_frame_equal(tables["autopet"], tables["count"])
    pd.testing.assert_frame_equal(tables["exclude"], tables["count"])
    assert list(tables["autopet"].columns[4:7]) == ["TP", "FP", "FN"]  # the paper's names under suvmax
