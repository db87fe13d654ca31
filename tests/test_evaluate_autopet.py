"""`pcatools evaluate` on the autoPET layout as it is downloaded: study- and patient-named predictions,
a ``<patient>/<study>/`` mirror, ``.mha`` inputs equal to their NIfTI, and the messages of what does not pair.

The built autoPET root holds three studies of two patients, with the masks of ``tests/test_evaluate.py``
(whose hand-computed DSC and TP/FP/FN they must give), the first study name exactly as autoPET spells
it (two spaces inside):

=========  ===================================================  ====================
patient    study folder (the case id)                           masks of
=========  ===================================================  ====================
PETCT_aa   ``02-11-2019-NA-PET-CT Ganzkoerper  primaer mit ...``  P001
PETCT_aa   ``06-29-2020-NA-PET-CT Ganzkoerper  primaer mit ...``  P002
PETCT_bb   ``03-17-2018-NA-PET-CT Ganzkoerper  primaer mit ...``  P003
=========  ===================================================  ====================
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from pcatools.cli import app
from pcatools.data.io import load_nifti
from tests.conftest import REPO
from tests.test_evaluate import DSC, SHAPE, TP_FP_FN, _gt, _pred, _suv

sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK warns of NIfTI header items a .mha does not keep

STUDIES = {
    "02-11-2019-NA-PET-CT Ganzkoerper  primaer mit KM-72572": ("PETCT_aa", "P001"),
    "06-29-2020-NA-PET-CT Ganzkoerper  primaer mit KM-10245": ("PETCT_aa", "P002"),
    "03-17-2018-NA-PET-CT Ganzkoerper  primaer mit KM-50811": ("PETCT_bb", "P003"),
}
# a flipped x axis and an origin off zero, so that the LPS -> RAS conversion of .mha files matters
AFFINE = np.array([[-2.0, 0, 0, 40.0], [0, 2.0, 0, -18.0], [0, 0, 2.0, 7.0], [0, 0, 0, 1]])
MODEL = "extra"  # one FP cube per case: DSC 54/62, 70/78, 32/40


def _save(arr: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, AFFINE), str(path))
    return path


def _to_sitk(path: Path, suffix: str) -> Path:
    """The same image written by SimpleITK in another format (it converts NIfTI's RAS to its LPS)."""
    out = path.with_name(path.name.replace(".nii.gz", suffix))
    sitk.WriteImage(sitk.ReadImage(str(path)), str(out))
    path.unlink()
    return out


def _autopet(root: Path, fmt: str = ".nii.gz") -> Path:
    for study, (patient, case) in STUDIES.items():
        d = root / patient / study
        files = [
            _save(_gt(case), d / "SEG.nii.gz"),
            _save(_suv(case), d / "SUV.nii.gz"),
            _save(np.zeros(SHAPE, np.float32), d / "CTres.nii.gz"),
        ]
        if fmt != ".nii.gz":
            for f in files:
                _to_sitk(f, fmt)
    return root


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output + (str(res.exception) if res.exception and res.exit_code != 1 else "")


def _evaluate(gt: Path, preds: Path, out: Path, *extra: str) -> tuple[int, str]:
    return _cli(
        "evaluate", str(out), "--gt", str(gt), "--suv", str(gt), "--pred", f"mine={preds}",
        "--workers", "0", "--no-progress", *extra,
    )  # fmt: skip


def _expected() -> dict[str, tuple[float, tuple[int, int, int]]]:
    return {study: (DSC[MODEL][case], TP_FP_FN[MODEL][case]) for study, (_, case) in STUDIES.items()}


def _found(out: Path) -> dict[str, tuple[float, tuple[int, int, int]]]:
    cases = pd.read_csv(out / "results" / "cases.csv")
    return {
        str(r.case_id): (float(r.dice), (int(r.tp), int(r.fp), int(r.fn)))
        for r in cases.itertuples(index=False)
    }


@pytest.fixture(scope="module")
def autopet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _autopet(tmp_path_factory.mktemp("autopet") / "autoPET")


# --------------------------------------------------------------------------- pairing, each naming


@pytest.mark.parametrize("naming", ["study", "mirror", "patient_where_one_study"])
def test_predictions_pair_with_autopet_studies_however_named(
    autopet: Path, tmp_path: Path, naming: str
) -> None:
    preds = tmp_path / "preds"
    for study, (patient, case) in STUDIES.items():
        if naming == "study":
            name = f"{study}.nii.gz"
        elif naming == "mirror":
            name = f"{patient}/{study}/PRED.nii.gz"
        else:  # PETCT_bb has one study: its file may be named after the patient; PETCT_aa's by study
            name = f"{patient}.nii.gz" if patient == "PETCT_bb" else f"{study}.nii.gz"
        _save(_pred(MODEL, case), preds / name)
    code, text = _evaluate(autopet, preds, tmp_path / "out")
    assert code == 0, text
    assert _found(tmp_path / "out") == _expected()  # the hand-computed DSC, TP/FP/FN
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert sorted(manifest["case_id"]) == sorted(STUDIES)  # the study names as they are, two spaces kept
    patients = dict(zip(manifest["case_id"], manifest["patient_id"], strict=True))
    assert patients == {study: patient for study, (patient, _) in STUDIES.items()}  # the patient folders


def test_a_patient_named_prediction_of_a_patient_with_two_studies_is_refused(
    autopet: Path, tmp_path: Path
) -> None:
    preds = tmp_path / "preds"
    for patient, case in (("PETCT_aa", "P001"), ("PETCT_bb", "P003")):
        _save(_pred(MODEL, case), preds / f"{patient}.nii.gz")
    code, text = _evaluate(autopet, preds, tmp_path / "out")
    assert code == 1
    studies = sorted(s for s, (p, _) in STUDIES.items() if p == "PETCT_aa")
    assert text.strip() == (
        f"error: prediction {preds / 'PETCT_aa.nii.gz'}: named after patient 'PETCT_aa', who has 2 studies in the "
        f"ground truth ({studies[0]!r}, {studies[1]!r}): ambiguous; expected one file per study, named after its "
        f"study folder (e.g. {preds / (studies[0] + '.nii.gz')}) or in PETCT_aa/<study>/"
    )
    assert not (tmp_path / "out").exists()


def test_an_unpaired_folder_names_the_expected_files_and_what_it_holds(autopet: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds"
    for i, (_, case) in enumerate(STUDIES.values()):
        _save(_pred(MODEL, case), preds / f"case_{i}.nii.gz")
    code, text = _evaluate(autopet, preds, tmp_path / "out")
    assert code == 1
    first, second, third = sorted(STUDIES)
    assert text.strip() == (
        f"error: no case is in every folder: ground truth {autopet} lacks 3 case(s): case_0, case_1, case_2; "
        f"SUV {autopet} lacks 3 case(s): case_0, case_1, case_2; "
        f"prediction 'mine' ({preds}) lacks 3 case(s): {first}, {second}, "
        f"{third}; expected {preds / (first + '.nii.gz')}, {preds / (second + '.nii.gz')} ...; it holds "
        "3 entries: case_0.nii.gz, case_1.nii.gz, case_2.nii.gz (are the ids alike?)"
    )
    assert "--allow-missing" not in text  # there is nothing in common to evaluate


def test_a_missing_study_names_its_expected_file_and_suggests_allow_missing(
    autopet: Path, tmp_path: Path
) -> None:
    preds = tmp_path / "preds"
    studies = sorted(STUDIES)
    for study in studies[1:]:
        _save(_pred(MODEL, STUDIES[study][1]), preds / f"{study}.nii.gz")
    code, text = _evaluate(autopet, preds, tmp_path / "out")
    assert code == 1
    assert text.strip() == (
        f"error: cases missing: prediction 'mine' ({preds}) lacks 1 case(s): {studies[0]}; expected "
        f"{preds / (studies[0] + '.nii.gz')}; it holds 2 entries: {studies[1]}.nii.gz, {studies[2]}.nii.gz "
        "(pass --allow-missing to evaluate the 2 case(s) that every folder has)"
    )


def test_two_files_for_one_study_are_refused_naming_both(autopet: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds"
    study = next(s for s, (p, _) in STUDIES.items() if p == "PETCT_bb")
    for name in (f"{study}.nii.gz", "PETCT_bb.nii.gz"):
        _save(_pred(MODEL, "P003"), preds / name)
    code, text = _evaluate(autopet, preds, tmp_path / "out")
    assert code == 1
    assert text.strip() == (
        f"error: {preds}: two prediction files for case {study!r}: {preds / (study + '.nii.gz')} ({study!r}) and "
        f"{preds / 'PETCT_bb.nii.gz'} ('PETCT_bb'); expected one file per case"
    )


def test_a_mirrored_study_folder_with_two_files_is_refused(autopet: Path, tmp_path: Path) -> None:
    study = next(s for s, (p, _) in STUDIES.items() if p == "PETCT_bb")
    folder = tmp_path / "preds" / "PETCT_bb" / study
    for name in ("PRED.nii.gz", "SEG.nii.gz"):
        _save(_pred(MODEL, "P003"), folder / name)
    code, text = _evaluate(autopet, tmp_path / "preds", tmp_path / "out")
    assert code == 1
    assert text.strip() == (
        f"error: {folder}: 2 prediction files in one study folder (PRED.nii.gz, SEG.nii.gz): expected one file "
        "per <patient>/<study>/"
    )


# --------------------------------------------------------------------------- .mha / .nrrd


def test_an_mha_file_reads_as_its_nifti_with_the_affine_from_lps(tmp_path: Path) -> None:
    """An oblique .mha written by SimpleITK: the RAS affine is diag(-1, -1, 1) @ [D diag(s) | o] exactly."""
    data = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)  # (x, y, z)
    img = sitk.GetImageFromArray(data.transpose(2, 1, 0))  # SimpleITK arrays are (z, y, x)
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    img.SetDirection(direction.ravel().tolist())
    img.SetSpacing((1.5, 2.0, 3.0))
    img.SetOrigin((10.0, -20.0, 30.0))
    sitk.WriteImage(img, str(tmp_path / "x.mha"))
    loaded = load_nifti(tmp_path / "x.mha", "pet")
    expected = np.eye(4)
    expected[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ direction @ np.diag([1.5, 2.0, 3.0])
    expected[:3, 3] = [-10.0, 20.0, 30.0]
    np.testing.assert_array_equal(np.asarray(loaded.dataobj), data)
    np.testing.assert_allclose(loaded.affine, expected, rtol=0, atol=1e-12)
    assert loaded.header.get_zooms()[:3] == pytest.approx((1.5, 2.0, 3.0))
    # and the NIfTI SimpleITK writes of it gives the same grid and voxels through nibabel
    sitk.WriteImage(img, str(tmp_path / "x.nii.gz"))
    nifti = load_nifti(tmp_path / "x.nii.gz", "pet")
    np.testing.assert_array_equal(np.asarray(nifti.dataobj), data)
    np.testing.assert_allclose(nifti.affine, expected, rtol=0, atol=1e-5)  # NIfTI stores float32


@pytest.mark.parametrize("fmt", [".mha", ".nrrd"])
def test_mha_and_nrrd_inputs_give_the_numbers_of_their_nifti(autopet: Path, tmp_path: Path, fmt: str) -> None:
    preds_nii, preds_other = tmp_path / "preds_nii", tmp_path / "preds_other"
    for study, (_, case) in STUDIES.items():
        _save(_pred(MODEL, case), preds_nii / f"{study}.nii.gz")
        _to_sitk(_save(_pred(MODEL, case), preds_other / f"{study}.nii.gz"), fmt)
    converted = _autopet(tmp_path / "autoPET", fmt)  # ground truth, SUV and CT as .mha / .nrrd
    assert not list(converted.rglob("*.nii.gz"))
    code, text = _evaluate(autopet, preds_nii, tmp_path / "nii")
    assert code == 0, text
    code, text = _evaluate(converted, preds_other, tmp_path / "other")
    assert code == 0, text
    a = pd.read_csv(tmp_path / "nii" / "results" / "cases.csv")
    b = pd.read_csv(tmp_path / "other" / "results" / "cases.csv")
    numbers = [c for c in a.columns if pd.api.types.is_numeric_dtype(a[c])]
    assert {"dice", "fpv_ml", "fnv_ml", "suvmax", "tmtv_ml", "tla", "dmax_mm", "pred_suvmax"} <= set(numbers)
    pd.testing.assert_frame_equal(a[numbers], b[numbers], check_exact=True)
    assert _found(tmp_path / "other") == _expected()
    for name in ("lesions", "components"):
        la = pd.read_csv(tmp_path / "nii" / "results" / f"{name}.csv")
        lb = pd.read_csv(tmp_path / "other" / "results" / f"{name}.csv")
        cols = [c for c in la.columns if pd.api.types.is_numeric_dtype(la[c])]
        pd.testing.assert_frame_equal(la[cols], lb[cols], check_exact=True)


def test_a_corrupt_mha_is_refused_naming_the_file(autopet: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds"
    for study, (_, case) in STUDIES.items():
        _save(_pred(MODEL, case), preds / f"{study}.nii.gz")
    bad = _to_sitk(preds / f"{sorted(STUDIES)[0]}.nii.gz", ".mha")
    bad.write_bytes(bad.read_bytes()[:-500])  # the voxels cut short
    code, text = _evaluate(autopet, preds, tmp_path / "out")
    assert code == 1
    assert re.fullmatch(
        rf"error: case '{re.escape(sorted(STUDIES)[0])}', model 'mine': prediction {re.escape(str(bad))}: cannot read "
        r"the MetaImage file, it is truncated or corrupt \(.+\)",
        text.strip(),
    ), text
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the README's command


def test_the_readme_autopet_command_runs_on_the_layout_as_downloaded(autopet: Path, tmp_path: Path) -> None:
    """The README's autoPET command, run as printed (the console script) on a built autoPET download."""
    import shutil

    readme = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(pcatools evaluate runs/autopet_eval .*?)```", readme, re.S)
    assert block, "README: the autoPET evaluate command block is missing"
    command = block.group(1).replace("\\\n", " ").split()
    gt = command[command.index("--gt") + 1]
    assert command[command.index("--suv") + 1] == gt
    shutil.copytree(autopet, tmp_path / gt)
    pred = next(a.split("=", 1)[1] for a in command if "=" in a and not a.startswith("--"))
    for study, (patient, case) in STUDIES.items():  # a prediction folder mirroring <patient>/<study>/
        _save(_pred(MODEL, case), tmp_path / pred / patient / study / "PRED.nii.gz")
    exe = Path(sys.executable).parent / "pcatools"
    proc = subprocess.run(
        [str(exe), *command[1:], "--no-progress"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 cases x 1 models" in proc.stdout
    assert _found(tmp_path / "runs" / "autopet_eval") == _expected()


def test_mha_voxels_that_are_not_one_number_are_refused(tmp_path: Path) -> None:
    from pcatools.data.errors import DataError

    rgb = sitk.GetImageFromArray(np.zeros((4, 4, 4, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.mha"))
    with pytest.raises(DataError) as err:
        load_nifti(tmp_path / "rgb.mha", "label", name="prediction")
    assert str(err.value) == (
        f"prediction {tmp_path / 'rgb.mha'}: expected an integer, boolean or float mask, found vector of 8-bit "
        "unsigned integer voxels (3 component(s) each)"
    )


def test_an_mha_header_whose_grid_the_file_cannot_hold_is_refused_before_reading(tmp_path: Path) -> None:
    from pcatools.data.errors import DataError

    path = tmp_path / "huge.mha"
    path.write_bytes(
        b"ObjectType = Image\nNDims = 3\nDimSize = 2000 2000 2000\nElementType = MET_UCHAR\n"
        b"ElementDataFile = LOCAL\n" + bytes(16)
    )
    with pytest.raises(DataError) as err:
        load_nifti(path, "label")
    size = path.stat().st_size
    assert str(err.value) == (
        f"label {path}: cannot read the MetaImage file, it is truncated or corrupt (its header's shape "
        f"(2000, 2000, 2000) of 8-bit unsigned integer needs 8000000000 bytes; the {size}-byte file holds at most "
        f"{size * 1032})"
    )
