"""`pcatools evaluate` / `evaluate_folders`: hand-computed answers on a built cohort, the official autoPET
definitions on the real sample, every bad input with its message, and an interrupted run that mixes nothing.

The built cohort (2 mm voxels, 0.008 ml) has four cases in nnU-Net's test layout (``labelsTs/``,
``imagesTs/<id>_0001`` as SUV) and three models whose masks differ from the truth in known ways:

=====  ==========================  ===================================================================
case   ground truth (voxels)       missed / extra / merged
=====  ==========================  ===================================================================
P001   one 27-voxel cube           = / + 8-voxel FP cube / =
P002   27 + 8 voxels               drops the 8-voxel lesion / + FP / =
P003   two 8-voxel cubes 2 apart   = / + FP / an 8-voxel bridge joins them into one component
P004   three 8-voxel cubes         drops the third / + FP / =
=====  ==========================  ===================================================================
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from typer.testing import CliRunner

from pcatools.cli import app
from pcatools.evaluation import evaluate_folders, parse_model
from tests.conftest import REPO
from tests.test_metrics_autopet import _official

SHAPE = (12, 12, 12)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
VOX_ML = 0.008

LESIONS = {
    "P001": [(slice(2, 5), slice(2, 5), slice(2, 5))],
    "P002": [(slice(2, 5), slice(2, 5), slice(2, 5)), (slice(8, 10), slice(8, 10), slice(8, 10))],
    "P003": [(slice(2, 4), slice(2, 4), slice(2, 4)), (slice(2, 4), slice(2, 4), slice(6, 8))],
    "P004": [
        (slice(1, 3), slice(1, 3), slice(1, 3)),
        (slice(6, 8), slice(6, 8), slice(6, 8)),
        (slice(9, 11), slice(1, 3), slice(9, 11)),
    ],
}
FP_CUBE = (slice(9, 11), slice(9, 11), slice(0, 2))
BRIDGE = (slice(2, 4), slice(2, 4), slice(4, 6))

# hand-computed DSC = 2 |G n P| / (|G| + |P|)
DSC = {
    "missed": {"P001": 1.0, "P002": 54 / 62, "P003": 1.0, "P004": 32 / 40},
    "extra": {"P001": 54 / 62, "P002": 70 / 78, "P003": 32 / 40, "P004": 48 / 56},
    "merged": {"P001": 1.0, "P002": 1.0, "P003": 32 / 40, "P004": 1.0},
}
TP_FP_FN = {
    "missed": {"P001": (1, 0, 0), "P002": (1, 0, 1), "P003": (2, 0, 0), "P004": (2, 0, 1)},
    "extra": {"P001": (1, 1, 0), "P002": (2, 1, 0), "P003": (2, 1, 0), "P004": (3, 1, 0)},
    "merged": {"P001": (1, 0, 0), "P002": (2, 0, 0), "P003": (2, 0, 0), "P004": (3, 0, 0)},
}


def _save(arr: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, AFFINE), str(path))
    return path


def _gt(case: str) -> np.ndarray:
    g = np.zeros(SHAPE, np.uint8)
    for box in LESIONS[case]:
        g[box] = 1
    return g


def _suv(case: str) -> np.ndarray:
    """Background 1, lesions 5, one peak of 10 + lesion number at each lesion's first corner voxel."""
    s = np.ones(SHAPE, np.float32)
    for i, box in enumerate(LESIONS[case]):
        s[box] = 5.0
        s[box[0].start + 1, box[1].start + 1, box[2].start + 1] = 10.0 + i
    return s


def _pred(model: str, case: str) -> np.ndarray:
    p = _gt(case)
    if model == "missed" and case in ("P002", "P004"):
        p[LESIONS[case][-1]] = 0
    if model == "extra":
        p[FP_CUBE] = 1
    if model == "merged" and case == "P003":
        p[BRIDGE] = 1
    return p


def make_cohort(root: Path) -> Path:
    """The built cohort under ``root``: ``dataset/`` in nnU-Net's test layout (CT ``_0000``, SUV
    ``_0001``) and ``preds/<model>/`` as nnU-Net and MONAI write them (``_seg`` postfix, plans.json)."""
    for case in LESIONS:
        _save(_gt(case), root / "dataset" / "labelsTs" / f"{case}.nii.gz")
        _save(_suv(case), root / "dataset" / "imagesTs" / f"{case}_0001.nii.gz")
        _save(np.zeros(SHAPE, np.float32), root / "dataset" / "imagesTs" / f"{case}_0000.nii.gz")
        for model in DSC:
            suffix = "_seg" if model == "merged" else ""  # MONAI's postfix is read too
            _save(_pred(model, case), root / "preds" / model / f"{case}{suffix}.nii.gz")
    (root / "preds" / "missed" / "plans.json").write_text("{}")  # nnU-Net writes these beside the masks
    return root


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("byo"))


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output + (str(res.exception) if res.exception and res.exit_code != 1 else "")


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "evaluate", str(out), "--gt", str(root / "dataset" / "labelsTs"), "--suv", str(root / "dataset" / "imagesTs"),
        *[f"--pred={m}={root / 'preds' / m}" for m in DSC], "--workers", "0", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def evaluated(cohort: Path) -> Path:
    out = cohort / "out"
    code, text = _cli(*_args(cohort, out))
    assert code == 0, text
    assert "| Network | Loss |" in text  # Table 1 printed as Markdown
    return out


def test_cases_match_hand_computed_values(evaluated: Path) -> None:
    cases = pd.read_csv(evaluated / "results" / "cases.csv", dtype={"case_id": str})
    assert len(cases) == 12
    for row in cases.itertuples():
        assert row.dice == pytest.approx(DSC[row.model][row.case_id], abs=1e-12), (row.model, row.case_id)
        assert (row.tp, row.fp, row.fn) == TP_FP_FN[row.model][row.case_id], (row.model, row.case_id)
    extra = cases[cases["model"] == "extra"].set_index("case_id")
    assert extra["fpv_ml"].tolist() == pytest.approx([8 * VOX_ML] * 4)
    missed = cases[cases["model"] == "missed"].set_index("case_id")
    assert missed.loc["P002", "fnv_ml"] == pytest.approx(8 * VOX_ML)
    assert missed.loc["P002", "pred_tmtv_ml"] == pytest.approx(27 * VOX_ML)
    # prediction-side SUV: P002's kept lesion: 26 voxels of 5 + one of 10
    assert missed.loc["P002", "pred_tla"] == pytest.approx((26 * 5 + 10) * VOX_ML)
    assert missed.loc["P002", "pred_suvmax"] == 10.0
    # the extra FP cube sits at x 9-10, y 9-10, z 0-1 and the lesion at 2-4 on each axis: Dmax of the
    # prediction in P001 runs from the lesion corner (2, 2, 4) to (10, 10, 0), 2 mm x sqrt(8^2 + 8^2 + 4^2)
    assert extra.loc["P001", "pred_dmax_mm"] == pytest.approx(2.0 * 12.0)
    merged = cases[cases["model"] == "merged"].set_index("case_id")
    assert merged.loc["P003", "n_pred_lesions"] == 1 and merged.loc["P003", "n_gt_lesions"] == 2
    assert set(cases["criterion"]) == {"suvmax"}


def test_lesions_and_components_name_the_matches(evaluated: Path) -> None:
    les = pd.read_csv(evaluated / "results" / "lesions.csv", dtype={"case_id": str, "pred_components": str})
    merged = les[(les["model"] == "merged") & (les["case_id"] == "P003")]
    # both lesions match the one bridged component of 24 voxels: DSC 2 * 8 / (8 + 24)
    assert merged["pred_components"].tolist() == ["1", "1"]
    assert merged["dice"].tolist() == pytest.approx([0.5, 0.5])
    assert merged["pred_volume_ml"].tolist() == pytest.approx([24 * VOX_ML] * 2)
    missed = les[(les["model"] == "missed") & (les["case_id"] == "P002")].sort_values("lesion_id")
    assert missed["detected"].tolist() == [True, False]
    assert missed["pred_components"].fillna("").tolist() == ["1", ""]
    assert np.isnan(missed["pred_suvmax"].iloc[1]) and missed["pred_suvmax"].iloc[0] == 10.0
    comps = pd.read_csv(evaluated / "results" / "components.csv", dtype={"case_id": str, "lesions": str})
    extra = comps[(comps["model"] == "extra") & (comps["case_id"] == "P001")].sort_values("component_id")
    assert extra["false_positive"].tolist() == [False, True]
    assert extra["lesions"].fillna("").tolist() == ["1", ""]
    assert extra["volume_ml"].tolist() == pytest.approx([27 * VOX_ML, 8 * VOX_ML])
    assert extra["dice"].tolist() == pytest.approx([1.0, 0.0])
    assert extra["suvmax"].tolist() == pytest.approx([10.0, 1.0])


def test_wilcoxon_and_table1_compare_the_reference_with_each_model(evaluated: Path) -> None:
    wil = pd.read_csv(evaluated / "results" / "wilcoxon.csv")
    assert wil["reference"].unique().tolist() == ["missed"]
    assert wil["model"].tolist() == ["extra", "merged"]
    ids = sorted(LESIONS)
    for other in ("extra", "merged"):
        expected = sps.wilcoxon(
            [DSC["missed"][c] for c in ids], [DSC[other][c] for c in ids], alternative="greater"
        )
        got = wil[wil["model"] == other].iloc[0]
        assert got["n"] == 4
        assert got["p_value"] == pytest.approx(expected.pvalue)
        assert got["statistic"] == pytest.approx(expected.statistic)
    table = pd.read_csv(evaluated / "results" / "table1.csv", keep_default_na=False)
    assert table["Loss"].tolist() == ["missed", "extra", "merged"]  # the --pred order
    assert table["P value"].iloc[0] == ""  # the reference row
    md = (evaluated / "results" / "table1.md").read_text()
    assert "| missed |" in md.replace("|  | missed", "| missed")


def test_out_holds_a_study_layout_and_says_what_was_compared(evaluated: Path) -> None:
    for name in ("cases", "lesions", "components", "table1", "wilcoxon", "thresholds_patient",
                 "thresholds_lesion", "dmax_groups", "mixed_model", "predictions"):  # fmt: skip
        assert (evaluated / "results" / f"{name}.csv").is_file(), name
    for ext in ("md", "tex"):
        assert (evaluated / "results" / f"table1.{ext}").is_file()
    for fig in ("figure2", "figure3", "figure4", "figure5", "figure6"):
        assert (evaluated / "figures" / f"{fig}.png").stat().st_size > 10_000, fig
        assert (evaluated / "figures" / f"{fig}.html").is_file()
    readme = (evaluated / "README.md").read_text()
    assert "`missed`" in readme and "detection criterion: `suvmax`" in readme and "cases: 4" in readme
    config = json.loads((evaluated / "evaluation.json").read_text())
    assert [m["name"] for m in config["models"]] == ["missed", "extra", "merged"]
    assert config["reference"] == "missed" and config["left_out"] == []
    assert not list(evaluated.parent.glob(".out.*"))  # no staging folder left


def test_results_read_back_like_a_study(evaluated: Path) -> None:
    from pcatools.analysis import load_study

    study = load_study(evaluated)
    assert sorted(study.manifest["case_id"]) == sorted(LESIONS)
    assert study.cases["network"].tolist() == [""] * 12
    assert study.table("wilcoxon")["p_value"].notna().all()
    # the CT beside the SUV (nnU-Net channel 0) is recorded for the viewer, which opens every model at once
    assert all(
        p.endswith(f"{c}_0000.nii.gz")
        for c, p in zip(study.manifest["case_id"], study.manifest["ct"], strict=True)
    )
    from pcatools.viewer import study_case

    paths, preds = study_case(evaluated, "P003")
    assert set(paths) == {"ct", "pet", "label"} and list(preds) == ["missed", "extra", "merged"]


def test_network_loss_names_fill_both_columns_and_compare_losses(cohort: Path, tmp_path: Path) -> None:
    res = evaluate_folders(
        tmp_path / "out",
        cohort / "dataset",  # a dataset root: labelsTs found through the nnU-Net layout
        pred={"segresnet/l1dfl": cohort / "preds" / "missed", "segresnet/dice": cohort / "preds" / "extra"},
        suv=cohort / "dataset",
        workers=0,
        progress=False,
    )
    assert res.table1["Network"].tolist() == ["SegResNet", "SegResNet"]
    assert res.table1["Loss"].tolist() == ["DL", "L1DFL"]  # the paper's order
    assert set(res.cases["loss"]) == {"l1dfl", "dice"}


def test_parse_model() -> None:
    assert parse_model("a/b=x").network == "a" and parse_model("a/b=x").loss == "b"
    with pytest.raises(ValueError, match="network/loss"):
        parse_model("a/=x")


# --------------------------------------------------------------------------- the real autoPET sample


def test_real_autopet_sample_matches_the_official_definitions(shared_data: Path, tmp_path: Path) -> None:
    sample = shared_data / "autopet-psma-sample"
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "psma_0001.nii.gz").symlink_to(sample / "orig_label.nii.gz")
    for name in ("nnunet", "dc"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "psma_0001.nii.gz").symlink_to(sample / f"pred_{name}.nii.gz")
    out = tmp_path / "out"
    code, text = _cli(
        "evaluate", str(out), "--gt", str(tmp_path / "gt"), "--pred", f"nnunet={tmp_path / 'nnunet'}",
        "--pred", f"dc={tmp_path / 'dc'}", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert code == 0, text
    assert "overlap" in text  # no SUV: the fallback is said
    cases = pd.read_csv(out / "results" / "cases.csv").set_index("model")
    img = nib.load(str(sample / "orig_label.nii.gz"))
    gt = img.get_fdata()
    voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000.0
    for name in ("nnunet", "dc"):
        ref = _official(gt, nib.load(str(sample / f"pred_{name}.nii.gz")).get_fdata(), voxel_ml)
        assert cases.loc[name, "dice"] == pytest.approx(ref["dice"], rel=1e-12)
        # voxel volume from float32 zooms: products in another order differ in the 8th digit
        assert cases.loc[name, "fpv_ml"] == pytest.approx(ref["fpv_ml"], rel=1e-6)
        assert cases.loc[name, "fnv_ml"] == pytest.approx(ref["fnv_ml"], rel=1e-6)
        assert cases.loc[name, "n_gt_lesions"] == ref["n_gt"] == 112


# --------------------------------------------------------------------------- bad input


def _copy_cohort(cohort: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(cohort / "dataset", dest / "dataset")
    shutil.copytree(cohort / "preds", dest / "preds")
    return dest


def test_a_missing_case_is_listed_and_allow_missing_evaluates_the_rest(cohort: Path, tmp_path: Path) -> None:
    root = _copy_cohort(cohort, tmp_path)
    (root / "preds" / "extra" / "P003.nii.gz").unlink()
    code, text = _cli(*_args(root, tmp_path / "out"))
    assert code == 1
    assert "prediction 'extra'" in text and "lacks 1 case(s): P003" in text and "--allow-missing" in text
    assert "Traceback" not in text and not (tmp_path / "out").exists()
    code, text = _cli(*_args(root, tmp_path / "out", "--allow-missing"))
    assert code == 0, text
    assert "1 case(s) left out" in text
    config = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert config["left_out"] == ["P003"] and config["n_cases"] == 3
    assert "`P003`" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("grid", r"case 'P002', model 'extra': prediction .*P002.nii.gz is not on the grid of ground truth"),
        ("shifted", r"case 'P002', model 'extra': prediction .* is not on the grid .*origin \(4.0, 0.0, 0.0\)"),
        ("values", r"case 'P002', model 'extra': prediction .*P002.nii.gz: expected values 0 and 1 only, found other values \[2\]"),
        ("nan", r"case 'P002': PET .*P002_0001.nii.gz: expected finite SUV values, found 1 NaN"),
        ("truncated", r"case 'P002', model 'extra': prediction .*P002.nii.gz: cannot read the NIfTI file, it is truncated"),
        ("duplicate", r"two prediction files for case 'P002': P002.nii.gz and P002_pred.nii.gz"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_the_case_and_file(
    cohort: Path, tmp_path: Path, damage: str, message: str
) -> None:
    root = _copy_cohort(cohort, tmp_path)
    pred = root / "preds" / "extra" / "P002.nii.gz"
    if damage == "grid":
        _save(np.zeros((12, 12, 11), np.uint8), pred)
    elif damage == "shifted":
        nib.save(nib.Nifti1Image(_pred("extra", "P002"), AFFINE @ np.array(
            [[1, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)), str(pred))  # fmt: skip
    elif damage == "values":
        _save(_pred("extra", "P002") * 2, pred)
    elif damage == "nan":
        suv = _suv("P002")
        suv[0, 0, 0] = np.nan
        _save(suv, root / "dataset" / "imagesTs" / "P002_0001.nii.gz")
    elif damage == "truncated":
        data = pred.read_bytes()
        pred.write_bytes(data[: len(data) // 2])
    elif damage == "duplicate":
        _save(_pred("extra", "P002"), root / "preds" / "extra" / "P002_pred.nii.gz")
    code, text = _cli(*_args(root, tmp_path / "out"))
    assert code == 1, text
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
    import re

    assert re.search(message, text), text
    assert not (tmp_path / "out").exists()


def test_label_value_picks_a_class_of_integer_label_maps(cohort: Path, tmp_path: Path) -> None:
    root = _copy_cohort(cohort, tmp_path)
    for folder in (root / "dataset" / "labelsTs", *(root / "preds").iterdir()):
        for f in folder.glob("*.nii.gz"):
            img = nib.load(str(f))
            _save((np.asarray(img.dataobj) * 2).astype(np.uint8), f)  # lesion class 2
    code, text = _cli(*_args(root, tmp_path / "out", "--label", "2"))
    assert code == 0, text
    cases = pd.read_csv(tmp_path / "out" / "results" / "cases.csv", dtype={"case_id": str})
    assert cases.set_index(["model", "case_id"]).loc[("extra", "P004"), "dice"] == pytest.approx(48 / 56)


def test_out_that_is_a_file_or_a_foreign_folder_is_refused(cohort: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, text = _cli(*_args(cohort, tmp_path / "file"))
    assert code == 1 and "expected a folder" in text
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    code, text = _cli(*_args(cohort, tmp_path / "mine"))
    assert code == 1 and "is not a pcatools evaluation folder" in text
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "x"


def test_rerun_replaces_the_folder_whole(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _cli(*_args(cohort, out))[0] == 0
    (out / "results" / "cases.csv").write_text("old")  # a file evaluate wrote: replaced with the folder
    code, text = _cli(*_args(cohort, out, "--reference", "merged"))
    assert code == 0, text
    assert (out / "results" / "cases.csv").read_text() != "old"
    assert json.loads((out / "evaluation.json").read_text())["reference"] == "merged"


def test_sigint_leaves_no_mixed_out(cohort: Path, tmp_path: Path) -> None:
    """A first evaluation, then a second one interrupted mid-way: OUT is still the first, whole."""
    out = tmp_path / "out"
    assert _cli(*_args(cohort, out))[0] == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    marker = tmp_path / "drawing"
    # a pytest-xdist worker ignores SIGINT and its children inherit that; a user's terminal does not
    code = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import pcatools.analysis as st\n"
        "real = st.draw_figures\n"
        "def slow(*a, **k):\n"
        f"    pathlib.Path({str(marker)!r}).touch(); time.sleep(600); return real(*a, **k)\n"
        "st.draw_figures = slow\n"
        "from pcatools.cli import app\n"
        "sys.argv = ['pcatools'] + sys.argv[1:]\n"
        "app()\n"
    )
    log = (tmp_path / "child.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *_args(cohort, out, "--reference", "merged")],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.time() + 600  # generous: the suite may share 2 cores with other work
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert marker.exists(), (tmp_path / "child.log").read_text()[-2000:]
        # the tables of the second run are in the staging folder now, the figures are not
        assert list(tmp_path.glob(".out.partial-*/results/cases.csv"))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode != 0
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not list(tmp_path.glob(".out.*"))


def test_the_readme_command_runs_on_the_layout_it_names(cohort: Path, tmp_path: Path) -> None:
    """The README's `pcatools evaluate` example, run as printed (the console script) in a folder laid out as it says."""
    import re
    import shutil

    readme = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(pcatools evaluate runs/my_eval .*?)```", readme, re.S)
    assert block, "README: the 'Evaluate your own models' command block is missing"
    command = block.group(1).replace("\\\n", " ").split()
    paths = {
        "nnUNet_raw/Dataset501_PSMA/labelsTs": cohort / "dataset" / "labelsTs",
        "nnUNet_raw/Dataset501_PSMA/imagesTs": cohort / "dataset" / "imagesTs",
    }
    for arg in command:
        if "=" in arg and not arg.startswith("--"):
            paths[arg.split("=", 1)[1]] = cohort / "preds" / ("missed", "extra", "merged")[len(paths) - 2]
    for rel, src in paths.items():
        shutil.copytree(src, tmp_path / rel)
    exe = Path(sys.executable).parent / "pcatools"
    proc = subprocess.run(
        [str(exe), *command[1:], "--no-progress"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "4 cases x 3 models" in proc.stdout
    table = pd.read_csv(tmp_path / "runs" / "my_eval" / "results" / "table1.csv", keep_default_na=False)
    assert table["Network"].tolist() == ["SegResNet", "SegResNet", ""]  # the paper's networks first
    assert table["Loss"].tolist() == ["DL", "L1DFL", "nnunet"]
