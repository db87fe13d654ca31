"""DICOM PET -> SUVbw against the SUV digital reference objects (DROs), real headers and hand-computed values.

Every DRO of ``../shared/data/suv-dro/DRO_list.csv`` must give SUVbw min / median / max of
0.20 / 1.00 / 4.00 inside its NIfTI mask (two decimals). The mask overlays the converted image
only if the affine and slice order are right, so this also checks orientation. Twelve DROs are
shipped; the other five are rebuilt here from shipped ones by editing tags as the manual describes.
"""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from pcatools.data.dicom.suv import (
    SUVConversionError,
    average_count_rate_time,
    body_surface_area,
    decay_reference_time,
    decayed_dose,
    dicom_pet_to_suv,
    frame_decay_factor,
    ideal_body_weight,
    injection_datetime,
    lean_body_mass,
    suvbw_factor,
)

SHIPPED = [
    "DRO_0_0", "DRO_1_0", "DRO_2_0", "DRO_2_1", "DRO_2_4", "DRO_3_0",
    "DRO_3_1", "DRO_3_2", "DRO_3_3", "DRO_4_0", "DRO_4_2", "DRO_5_0",
]  # fmt: skip
BUILT = ["DRO_2_2", "DRO_2_3", "DRO_2_5", "DRO_3_4", "DRO_4_1"]
EXPECTED = (0.20, 1.00, 4.00)

LAMBDA_F18 = math.log(2) / 6586.2  # 1/s
# DRO_0_0 (and those built from it): 70 kg, 368.08 MBq F-18 at 10:00:00, images decay corrected to 11:00:00.
# factor = 70000 g / (368.08e6 Bq * exp(-ln2 * 3600 s / 6586.2 s)) = 70000 / 251.999685e6 = 2.777781e-4 (3600 Bq/ml = SUV 1)
BQML_FACTOR_DRO_0_0 = 70000.0 / (368.08e6 * math.exp(-LAMBDA_F18 * 3600.0))


@pytest.fixture(scope="module")
def dro_root(shared_data: Path) -> Path:
    return shared_data / "suv-dro"


def _mask_stats(img: nib.Nifti1Image, mask_path: Path) -> tuple[float, float, float]:
    mask_img = nib.load(str(mask_path))
    np.testing.assert_allclose(img.affine, mask_img.affine, atol=1e-4)  # same grid in world space
    suv = np.asarray(img.dataobj)[np.asarray(mask_img.dataobj) > 0]
    return round(float(suv.min()), 2), round(float(np.median(suv)), 2), round(float(suv.max()), 2)


def _copy_edited(
    src: Path, dst: Path, edit: Callable[[Dataset, int], None], names: Callable[[int], str] | None = None
) -> Path:
    """Copy the PT series of a DRO into ``dst``, calling ``edit(ds, slice_index)`` on each instance."""
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted((src / "PT").glob("*.dcm"))
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        edit(ds, i)
        ds.save_as(dst / (names(i) if names else f.name))
    return dst


def test_dro_list_names_the_shipped_and_built_objects(dro_root: Path) -> None:
    with open(dro_root / "DRO_list.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["ID"] for r in rows) == sorted(SHIPPED + BUILT)
    assert {(r["SUVmin_expected"], r["SUVmed_expected"], r["SUVmax_expected"]) for r in rows} == {
        ("0.20", "1.00", "4.00")
    }
    shipped = sorted(p.name for p in dro_root.glob("DRO_*") if p.is_dir())
    assert shipped == sorted(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_dro(dro_root: Path, name: str) -> None:
    img = dicom_pet_to_suv(dro_root / name)  # the folder also holds the RTSTRUCT and the NIfTI mask
    assert img.get_data_dtype() == np.float32
    assert _mask_stats(img, dro_root / name / "mask" / "DRO_mask.nii.gz") == EXPECTED


def _edit_2_2(ds: Dataset, i: int) -> None:
    # GML, SUVType IBW, PatientSex O: stored values are SUVibw = SUVbw * IBW / W.
    # IBW(O, 175 cm) = mean(48.0 + 1.06 * 23, 45.5 + 0.91 * 23) = mean(72.38, 66.43) = 69.405 kg
    ds.SUVType, ds.PatientSex = "IBW", "O"
    ds.RescaleSlope = f"{0.1 * 69.405 / 70.0:.10g}"


def _edit_2_3(ds: Dataset, i: int) -> None:
    # CM2ML (SUVbsa): stored = SUVbw * BSA[cm2] / W[g]; BSA = 0.007184 * 175^0.725 * 70^0.425 = 1.848143 m2
    ds.Units, ds.SUVType = "CM2ML", "BSA"
    ds.RescaleSlope = f"{0.1 * 18481.43018 / 70000.0:.10g}"


def _edit_2_5(ds: Dataset, i: int) -> None:
    # CNTS with only the Philips activity concentration scale factor: Bq/ml = counts * f_ac.
    # DRO_2_4 has SUV = counts * 0.0005, so f_ac = 0.0005 / BQML factor = 0.0005 * 251.999685e6 / 70000 = 1.80000
    del ds[0x7053, 0x1000]
    ds.add_new((0x7053, 0x1009), "DS", f"{0.0005 / BQML_FACTOR_DRO_0_0:.10g}")


def _edit_3_4(ds: Dataset, i: int) -> None:
    # DecayCorrection NONE: undo DRO_3_2's correction to 11:00:00. Its two bed positions start at 11:02:30 and
    # 11:05:00 and last T = 603 s; a frame's mean uncorrected activity is A_ref * exp(-lam (t_acq - t_ref))
    # * (1 - exp(-lam T)) / (lam T).
    t_acq = datetime.strptime(str(ds.AcquisitionTime), "%H%M%S.%f")
    delay = (t_acq - datetime(1900, 1, 1, 11, 0, 0)).total_seconds()
    assert delay in (150.0, 300.0)
    lam_t = LAMBDA_F18 * 603.0
    ds.RescaleSlope = (
        f"{float(ds.RescaleSlope) * math.exp(-LAMBDA_F18 * delay) * -math.expm1(-lam_t) / lam_t:.12g}"
    )
    ds.DecayCorrection = "NONE"
    ds.CorrectedImage = [v for v in ds.CorrectedImage if v != "DECY"]


def _edit_4_1(ds: Dataset, i: int) -> None:
    del ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime


BUILDERS: dict[str, tuple[str, Callable[[Dataset, int], None]]] = {
    "DRO_2_2": ("DRO_2_0", _edit_2_2),
    "DRO_2_3": ("DRO_2_0", _edit_2_3),
    "DRO_2_5": ("DRO_2_4", _edit_2_5),
    "DRO_3_4": ("DRO_3_2", _edit_3_4),
    "DRO_4_1": ("DRO_0_0", _edit_4_1),
}


@pytest.mark.parametrize("name", BUILT)
def test_built_dro(dro_root: Path, tmp_path: Path, name: str) -> None:
    source, edit = BUILDERS[name]
    folder = _copy_edited(dro_root / source, tmp_path / name, edit)
    img = dicom_pet_to_suv(folder)
    assert _mask_stats(img, dro_root / source / "mask" / "DRO_mask.nii.gz") == EXPECTED


def test_built_dros_differ_from_their_source(dro_root: Path, tmp_path: Path) -> None:
    """The edits matter: read with the source's rules, the rebuilt DROs would be off."""
    src = pydicom.dcmread(sorted((dro_root / "DRO_2_0" / "PT").glob("*.dcm"))[0])
    ds = pydicom.dcmread(sorted((dro_root / "DRO_2_0" / "PT").glob("*.dcm"))[0])
    _edit_2_2(ds, 0)
    # GML IBW: factor W / IBW = 70 / 69.405
    assert suvbw_factor(ds) == pytest.approx(70.0 / 69.405, rel=1e-12)
    _edit_2_3(src, 0)
    assert suvbw_factor(src) == pytest.approx(70000.0 / 18481.43018, rel=1e-8)


def test_sorted_by_position_not_file_name_with_per_slice_slopes(dro_root: Path, tmp_path: Path) -> None:
    """DRO_1_0 (slopes 4 and 3 by slice) copied with reversed file names and scrambled InstanceNumbers."""
    reference = dicom_pet_to_suv(dro_root / "DRO_1_0")

    def scramble(ds: Dataset, i: int) -> None:
        ds.InstanceNumber = (7 * i) % 20 + 1

    folder = _copy_edited(
        dro_root / "DRO_1_0", tmp_path / "shuffled", scramble, names=lambda i: f"img_{19 - i:02d}.dcm"
    )
    img = dicom_pet_to_suv(folder)
    np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(reference.dataobj))
    np.testing.assert_allclose(img.affine, reference.affine)
    assert _mask_stats(img, dro_root / "DRO_1_0" / "mask" / "DRO_mask.nii.gz") == EXPECTED


def test_ge_private_datetime_wins_over_a_modified_series_time(dro_root: Path, tmp_path: Path) -> None:
    # DRO_3_3: acquisition 11:30, GE scan_datetime 11:00 (the true reference). With SeriesTime moved after the
    # acquisition and no GE tag, the back-computed reference would be 11:30 and SUV 1.0 would read 0.83.
    def series_later(ds: Dataset, i: int) -> None:
        ds.SeriesTime = "120000.000000"

    folder = _copy_edited(dro_root / "DRO_3_3", tmp_path / "ge", series_later)
    assert (
        _mask_stats(dicom_pet_to_suv(folder), dro_root / "DRO_3_3" / "mask" / "DRO_mask.nii.gz") == EXPECTED
    )
    ds = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0])
    assert decay_reference_time([ds]) == datetime(2025, 1, 1, 11, 0, 0)
    del ds[0x0009, 0x100D]
    # back-computed: 11:30:00 + T_ave(300 s) - FrameReferenceTime 150 s = 11:30:00 - 0.39 s
    assert abs((decay_reference_time([ds]) - datetime(2025, 1, 1, 11, 30, 0)).total_seconds()) < 0.5


def test_reference_time_of_dro_3_2_is_back_computed(dro_root: Path) -> None:
    # Earliest acquisition 11:02:30, FrameReferenceTime 450 s, frame 603 s: t_ref = 11:02:30 + T_ave - 450 s,
    # T_ave = ln(lam T / (1 - exp(-lam T))) / lam = 299.906 s  ->  10:59:59.906
    headers = [
        pydicom.dcmread(f, stop_before_pixels=True)
        for f in sorted((dro_root / "DRO_3_2" / "PT").glob("*.dcm"))
    ]
    ref = decay_reference_time(headers)
    assert abs((ref - datetime(2025, 1, 1, 10, 59, 59, 906000)).total_seconds()) < 0.01


def test_weight_in_grams_and_injection_before_midnight(dro_root: Path) -> None:
    ds = pydicom.dcmread(sorted((dro_root / "DRO_0_0" / "PT").glob("*.dcm"))[0], stop_before_pixels=True)
    assert suvbw_factor(ds) == pytest.approx(BQML_FACTOR_DRO_0_0, rel=1e-9)
    ds.PatientWeight = "70000"  # entered in grams
    assert suvbw_factor(ds) == pytest.approx(BQML_FACTOR_DRO_0_0, rel=1e-9)
    midnight = pydicom.dcmread(
        sorted((dro_root / "DRO_4_2" / "PT").glob("*.dcm"))[0], stop_before_pixels=True
    )
    scan = datetime(2025, 1, 2, 0, 30)
    assert injection_datetime(midnight, scan) == datetime(2025, 1, 1, 23, 30)


def test_formulas_against_hand_values() -> None:
    # F-18, one hour: 368.08 MBq * exp(-0.693147 * 3600 / 6586.2) = 368.08 * 0.684631 = 251.9997 MBq
    assert decayed_dose(368.08e6, 6586.2, 3600.0) == pytest.approx(251.999685e6, rel=1e-8)
    assert decayed_dose(1.0, 4057.7, 4057.7) == pytest.approx(0.5)  # one Ga-68 half-life
    assert average_count_rate_time(0.0, 6586.2) == 0.0
    assert average_count_rate_time(1.0, 6586.2) == pytest.approx(0.5, rel=1e-4)  # short frame: middle
    assert average_count_rate_time(6586.2, 6586.2) == pytest.approx(
        6586.2 * math.log(2 * math.log(2)) / math.log(2)
    )
    # frame_decay_factor: lam T / (1 - e^{-lam T}) * e^{lam t}; T = one half-life -> 2 ln2; t = one half-life -> 2
    assert frame_decay_factor(6586.2, 6586.2, 6586.2) == pytest.approx(2 * math.log(2) * 2)
    assert lean_body_mass(70, 175, "M") == pytest.approx(77.0 - 128 * 0.16)  # James: 56.52
    assert lean_body_mass(70, 175, "F") == pytest.approx(74.9 - 148 * 0.16)  # 51.22
    assert lean_body_mass(70, 175, "O") == pytest.approx((56.52 + 51.22) / 2)
    assert lean_body_mass(70, 175, "M", "LBM") == pytest.approx(77.0 - 120 * 0.16)
    # Janmahasatian, BMI = 70 / 1.75^2 = 22.857: 9270 * 70 / (6680 + 216 * 22.857) = 55.857
    assert lean_body_mass(70, 175, "M", "LBMJANMA") == pytest.approx(648900 / (6680 + 216 * 70 / 1.75**2))
    assert ideal_body_weight(175, "M") == pytest.approx(72.38)
    assert ideal_body_weight(175, "F") == pytest.approx(66.43)
    assert body_surface_area(70, 175) == pytest.approx(1.848143, rel=1e-6)


def test_real_pet_slices_factors_by_hand(shared_data: Path) -> None:
    lam = math.log(2) / 6586.2  # F-18 half-life 6586.2 s in both headers; lam = 1.0524235e-4 /s
    # 1.dcm (static, Siemens 1094): BQML, DecayCorrection START, SeriesTime 15:23:16.921 == AcquisitionTime,
    # so the reference is the series time. Injection (time only) 14:17:00 -> elapsed 3976.921 s.
    # D(t_ref) = 178340011.59668 Bq * exp(-1.0524235e-4 * 3976.921) = 178340011.6 * 0.65800647 = 117348880.8 Bq
    # factor = 69.7344 kg * 1000 / 117348880.8 Bq = 5.9424853e-4 (g/Bq)
    ds1 = pydicom.dcmread(shared_data / "real-pet-dicom" / "1.dcm")
    by_hand_1 = 69734.4 / (178340011.59668 * math.exp(-lam * 3976.921))
    assert by_hand_1 == pytest.approx(5.9424853e-4, rel=1e-7)
    assert suvbw_factor(ds1) == pytest.approx(by_hand_1, rel=1e-9)
    # 2.dcm (frame of a dynamic series): SeriesTime 11:19:59.109 is before this frame's AcquisitionTime 11:35:59.109
    # and is the decay reference (DecayFactor 1.11682 ~ exp(lam * FrameReferenceTime 1048.858 s) = 1.11671 confirms
    # it to about one second).
    # Injection 11:19:59.000 -> elapsed 0.109 s; D = 173529998.7793 * exp(-lam * 0.109) = 173528008.2 Bq
    # factor = 82174 g / 173528008.2 Bq = 4.7354892e-4
    ds2 = pydicom.dcmread(shared_data / "real-pet-dicom" / "2.dcm")
    by_hand_2 = 82174.0 / (173529998.7793 * math.exp(-lam * 0.109))
    assert by_hand_2 == pytest.approx(4.7354892e-4, rel=1e-7)
    assert suvbw_factor(ds2) == pytest.approx(by_hand_2, rel=1e-9)
    assert math.exp(lam * float(ds2.FrameReferenceTime) / 1000) == pytest.approx(
        float(ds2.DecayFactor), rel=2e-4
    )


def test_real_pet_slice_converts_as_a_one_slice_volume(shared_data: Path, tmp_path: Path) -> None:
    shutil.copy(shared_data / "real-pet-dicom" / "1.dcm", tmp_path / "1.dcm")
    img = dicom_pet_to_suv(tmp_path)
    ds = pydicom.dcmread(tmp_path / "1.dcm")
    assert img.shape == (168, 168, 1)
    expected = ds.pixel_array.T.astype(np.float64) * 9.12329 * suvbw_factor(ds)
    np.testing.assert_allclose(np.asarray(img.dataobj)[:, :, 0], expected, rtol=1e-6)
    # RAS affine: x, y flipped from LPS; origin = ImagePositionPatient (-342.11, -528.75, -278.5) LPS
    np.testing.assert_allclose(img.affine[:3, 3], [342.11083849009, 528.74934994385, -278.5])
    np.testing.assert_allclose(np.diag(img.affine)[:3], [-4.07283, -4.07283, 5.0])
    assert 0 < float(np.asarray(img.dataobj).max()) < 50  # FLT breast study: SUVs of a few units


# ---------------------------------------------------------------------------------------------- bad input


def _two_slices(dro_root: Path, tmp_path: Path, edit: Callable[[Dataset], None]) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    for f in sorted((dro_root / "DRO_0_0" / "PT").glob("*.dcm"))[9:11]:
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(folder / f.name)
    return folder


def _del_weight(ds: Dataset) -> None:
    del ds.PatientWeight


def _del_dose(ds: Dataset) -> None:
    del ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose


def _units_propcps(ds: Dataset) -> None:
    ds.Units = "PROPCPS"


def _no_injection_time(ds: Dataset) -> None:
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    del rp.RadiopharmaceuticalStartDateTime
    del rp.RadiopharmaceuticalStartTime


def _counts_without_factor(ds: Dataset) -> None:
    ds.Units = "CNTS"


def _intercept(ds: Dataset) -> None:
    ds.RescaleIntercept = "5"


def _not_attenuation_corrected(ds: Dataset) -> None:
    ds.CorrectedImage = ["NORM", "DECY"]


def _lbm_without_height(ds: Dataset) -> None:
    ds.Units, ds.SUVType = "GML", "LBMJAMES128"
    del ds.PatientSize


def _no_half_life(ds: Dataset) -> None:
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    del rp.RadionuclideHalfLife
    del rp.RadionuclideCodeSequence


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_del_weight, r"PatientWeight \(0010,1030\) is missing"),
        (_del_dose, r"RadionuclideTotalDose \(0018,1074\) is missing"),
        (_units_propcps, r"Units \(0054,1001\) is 'PROPCPS'"),
        (
            _no_injection_time,
            r"RadiopharmaceuticalStartDateTime \(0018,1078\) and RadiopharmaceuticalStartTime",
        ),
        (_counts_without_factor, r"'CNTS' but neither the Philips SUV Scale Factor \(7053,1000\)"),
        (_intercept, r"RescaleIntercept \(0028,1052\) is 5.0"),
        (_not_attenuation_corrected, r"CorrectedImage \(0028,0051\) .* lacks ATTN"),
        (_lbm_without_height, r"PatientSize \(0010,1020\) is missing .* SUVType LBMJAMES128"),
        (_no_half_life, r"RadionuclideHalfLife \(0018,1075\) is missing"),
    ],
)
def test_bad_pet_headers(
    dro_root: Path, tmp_path: Path, edit: Callable[[Dataset], None], message: str
) -> None:
    folder = _two_slices(dro_root, tmp_path, edit)
    with pytest.raises(SUVConversionError, match=message):
        dicom_pet_to_suv(folder)


def test_half_life_from_the_radionuclide_code_when_the_tag_is_missing(dro_root: Path) -> None:
    ds = pydicom.dcmread(sorted((dro_root / "DRO_5_0" / "PT").glob("*.dcm"))[0], stop_before_pixels=True)
    factor = suvbw_factor(ds)
    # code C-131A1 is Ga-66's SNOMED-RT code, but its meaning '^68^Gallium' names Ga-68: 4057.7 s
    del ds.RadiopharmaceuticalInformationSequence[0].RadionuclideHalfLife
    assert suvbw_factor(ds) == pytest.approx(factor, rel=1e-12)


def test_radionuclide_codes_are_those_of_dicom_cid_4020() -> None:
    """Each nuclide's SNOMED-RT and SNOMED CT codes as pydicom's copy of DICOM PS3.16 maps them to each other."""
    from pydicom.sr._concepts_dict import concepts
    from pydicom.sr._snomed_dict import mapping

    from pcatools.data.dicom.decay import RADIONUCLIDES

    meanings = {code: meaning for entry in concepts["SCT"].values() for code, (meaning, _) in entry.items()}
    for (element, mass), (_, srt, sct) in RADIONUCLIDES.items():
        assert mapping["SRT"][srt] == sct, element
        assert meanings[sct] == f"^{mass}^{element.capitalize()}"


def _nuclide(value: str, meaning: str, half_life: str | None) -> Dataset:
    code, rp, ds = Dataset(), Dataset(), Dataset()
    code.CodeValue, code.CodeMeaning = value, meaning
    rp.RadionuclideCodeSequence = [code]
    if half_life is not None:
        rp.RadionuclideHalfLife = half_life
    ds.RadiopharmaceuticalInformationSequence = [rp]
    return ds


def test_half_life_must_agree_with_the_radionuclide_code() -> None:
    from pcatools.data.dicom import OverriddenCheckWarning
    from pcatools.data.dicom.suv import ImplausibleValueError, check_half_life, radionuclide_half_life

    for ds in (
        _nuclide("C-111A1", "^18^Fluorine", "6588"),  # the other common F-18 value (manual, Table 10)
        _nuclide("77004003", "^18^Fluorine", "6586.2"),  # SNOMED CT code
        _nuclide("C-131A3", "^68^Gallium", "4062.6"),
        _nuclide("C-131A1", "^68^Gallium", "4057.7"),  # DRO 5_0
        _nuclide("C-999", "^68^Germanium", "23400000"),  # a nuclide not in the table: not compared
    ):
        check_half_life(ds)
    wrong = _nuclide("C-111A1", "^18^Fluorine", "4062.6")
    message = (
        r"RadionuclideHalfLife \(0018,1075\) is 4062\.6 s \(67\.71 min\), but RadionuclideCodeSequence \(0054,0300\) "
        r"names \^18\^Fluorine \(C-111A1\), whose half-life is 6586\.2 s \(109\.77 min\): 38\.3 % apart, tolerance 1 %"
    )
    with pytest.raises(ImplausibleValueError, match=message):
        check_half_life(wrong)
    with pytest.warns(OverriddenCheckWarning, match=message + r" \(converted anyway"):
        check_half_life(wrong, allow_implausible=True)
    # 1.1 % off Zr-89 (78.4 h) is refused, 0.9 % is not
    with pytest.raises(ImplausibleValueError, match=r"1\.1 % apart"):
        check_half_life(_nuclide("63360001", "^89^Zirconium", f"{282240 * 1.011:g}"))
    check_half_life(_nuclide("63360001", "^89^Zirconium", f"{282240 * 0.991:g}"))
    ambiguous = _nuclide("C-111A1", "^18^Fluorine", None)
    second = Dataset()
    second.CodeValue, second.CodeMeaning = "35337001", "^68^Gallium"
    ambiguous.RadiopharmaceuticalInformationSequence[0].RadionuclideCodeSequence.append(second)
    with pytest.raises(
        SUVConversionError,
        match=r"names nuclides of different half-lives \(\^18\^Fluorine \(C-111A1\): 6586\.2 s, \^68\^Gallium "
        r"\(35337001\): 4057\.7 s\)",
    ):
        radionuclide_half_life(ambiguous)


def test_a_missing_slope_in_a_series_of_per_slice_slopes_is_refused(dro_root: Path, tmp_path: Path) -> None:
    """DRO 1_0 has slopes 4 and 3; slice 9 without its slope was read as 1, a third of its SUVs."""

    def drop_slope(ds: Dataset, i: int) -> None:
        if i == 9:
            del ds.RescaleSlope

    folder = _copy_edited(dro_root / "DRO_1_0", tmp_path / "slope", drop_slope)
    with pytest.raises(
        SUVConversionError,
        match=r"slice_009\.dcm: RescaleSlope \(0028,1053\) is missing in 1 of the 20 slices of the PT series in "
        r".*slope, the others give it \(e\.g\. 4\.0 in pet_dro_1_0_slice_000\.dcm\)",
    ):
        dicom_pet_to_suv(folder)


def test_ct_series_given_as_pet(shared_data: Path) -> None:
    with pytest.raises(
        SUVConversionError, match=r"no PT image series \(Modality \(0008,0060\) 'PT'\) .* found: CT series"
    ):
        dicom_pet_to_suv(shared_data / "real-ct" / "dicom")
    ct = pydicom.dcmread(sorted((shared_data / "real-ct" / "dicom").iterdir())[0], stop_before_pixels=True)
    with pytest.raises(SUVConversionError, match=r"Modality \(0008,0060\) is 'CT', expected 'PT'"):
        suvbw_factor(ct)


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(SUVConversionError, match=r"no DICOM files found in .*"):
        dicom_pet_to_suv(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dicom_pet_to_suv(tmp_path / "missing")


def test_dynamic_series_with_several_frames_per_position(dro_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dyn"
    folder.mkdir()
    f = sorted((dro_root / "DRO_0_0" / "PT").glob("*.dcm"))[5]
    for frame in range(2):
        ds = pydicom.dcmread(f)
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{frame}"
        ds.save_as(folder / f"frame{frame}.dcm")
    with pytest.raises(SUVConversionError, match="2 instances at only 1 slice positions"):
        dicom_pet_to_suv(folder)


def _frame_timing_header(frame_reference_ms: str | None, duration_ms: str | None) -> Dataset:
    """A BQML / START header re-saved at 12:00 (series time after the 11:00:00 acquisition).

    70 kg, 400 MBq F-18 injected at 10:00:00.
    """
    rp = Dataset()
    rp.RadionuclideHalfLife = "6586.2"
    rp.RadionuclideTotalDose = "400000000"
    rp.RadiopharmaceuticalStartTime = "100000"
    ds = Dataset()
    ds.Modality = "PT"
    ds.Units = "BQML"
    ds.DecayCorrection = "START"
    ds.PatientWeight = "70"
    ds.RadiopharmaceuticalInformationSequence = [rp]
    ds.SeriesDate, ds.SeriesTime = "20250101", "120000"
    ds.AcquisitionDate, ds.AcquisitionTime = "20250101", "110000"
    if frame_reference_ms is not None:
        ds.FrameReferenceTime = frame_reference_ms
    if duration_ms is not None:
        ds.ActualFrameDuration = duration_ms
    return ds


@pytest.mark.parametrize(
    ("frame_reference_ms", "duration_ms"),
    [("0", "180000"), (None, "180000"), ("90000", "0"), ("90000", None), ("-5000", "180000")],
)
def test_frame_reference_time_zero_or_absent_means_the_acquisition_start(
    frame_reference_ms: str | None, duration_ms: str | None
) -> None:
    # QIBA back-computes only when FrameReferenceTime > 0 and ActualFrameDuration > 0; otherwise the reference
    # is the earliest acquisition time, 11:00:00 exactly.
    ds = _frame_timing_header(frame_reference_ms, duration_ms)
    assert decay_reference_time([ds]) == datetime(2025, 1, 1, 11, 0, 0)


def test_frame_reference_time_positive_is_back_computed_and_zero_costs_one_percent() -> None:
    lam = math.log(2) / 6586.2  # 1.0524235e-4 /s
    # T = 180 s: T_ave = ln(lam T / (1 - exp(-lam T))) / lam = T/2 - lam T^2 / 24 + ... = 90 - 0.14208 = 89.8579 s
    t_ave = 89.8579
    assert average_count_rate_time(180.0, 6586.2) == pytest.approx(t_ave, abs=1e-4)
    # FrameReferenceTime 90 s: t_ref = 11:00:00 + 89.8579 s - 90 s = 10:59:59.8579
    back = decay_reference_time([_frame_timing_header("90000", "180000")])
    assert abs((back - datetime(2025, 1, 1, 10, 59, 59, 857900)).total_seconds()) < 1e-3
    # The old rule back-computed with FrameReferenceTime 0: t_ref = 11:01:29.8579, a decayed dose smaller by
    # exp(-lam 89.8579 s), so every SUV 0.950 % too high. Now: t_ref = 11:00:00, one hour after injection,
    # factor = 70000 g / (400e6 Bq * exp(-lam 3600 s)) = 70000 / 273.8524e6 = 2.556114e-4 g/Bq.
    zero = _frame_timing_header("0", "180000")
    by_hand = 70000.0 / (400e6 * math.exp(-lam * 3600.0))
    assert by_hand == pytest.approx(2.556114e-4, rel=1e-6)
    assert suvbw_factor(zero) == pytest.approx(by_hand, rel=1e-12)
    old = suvbw_factor(zero, reference_time=datetime(2025, 1, 1, 11, 1, 29, 857900))
    assert old / suvbw_factor(zero) == pytest.approx(1.00950, abs=1e-5)


def test_public_code_reference_time_is_the_series_time() -> None:
    # The paper's public code (data_conversion/dicom_to_nifti.py) always decays the dose to SeriesDate/SeriesTime:
    # factor = W / (D 2^(-(t_series - t_inj) / T_half)). pcatools gives that factor when told the series time;
    # by default it follows QIBA, and for this series re-saved at 12:00 (acquired 11:00) the two differ by
    # exp(lam 3600 s) = 1.4606: the public code's SUVs would be 46 % too high.
    ds = _frame_timing_header("0", "180000")
    public = 70000.0 / (400e6 * 2 ** (-7200.0 / 6586.2))
    assert suvbw_factor(ds, reference_time=datetime(2025, 1, 1, 12, 0, 0)) == pytest.approx(public, rel=1e-12)
    assert public / suvbw_factor(ds) == pytest.approx(math.exp(math.log(2) / 6586.2 * 3600.0), rel=1e-12)
    assert public / suvbw_factor(ds) == pytest.approx(1.4606, abs=1e-4)


# ---------------------------------------------------------------------------------------------- plausibility (issue 15)


def _header(dro_root: Path, name: str = "DRO_0_0") -> Dataset:
    return pydicom.dcmread(sorted((dro_root / name / "PT").glob("*.dcm"))[0], stop_before_pixels=True)


def test_every_dro_passes_the_plausibility_checks_without_a_warning(dro_root: Path, tmp_path: Path) -> None:
    """The thresholds are wrong, not the DROs, if one of them trips a check (DRO 4_2 crosses midnight on purpose)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no check may even warn on a reference object
        for name in SHIPPED:
            dicom_pet_to_suv(dro_root / name)
        for name in BUILT:
            source, edit = BUILDERS[name]
            dicom_pet_to_suv(_copy_edited(dro_root / source, tmp_path / name, edit))


def test_dose_range_after_reading_the_unit(dro_root: Path) -> None:
    from pcatools.data.dicom import OverriddenCheckWarning
    from pcatools.data.dicom.suv import ImplausibleValueError, administered_dose_bq

    ds = _header(dro_root)
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    for written, bq in (("368.08", 368.08e6), ("368080000", 368.08e6), ("1", 1e6), ("5000", 5e9)):
        rp.RadionuclideTotalDose = written
        assert administered_dose_bq(ds) == pytest.approx(bq)
    rp.RadionuclideTotalDose = "368080"  # kBq, read as Bq: 0.37 MBq
    with pytest.raises(
        ImplausibleValueError, match=r"is 368080, read as Bq = 0\.36808 MBq; plausible 1-5000 MBq"
    ):
        administered_dose_bq(ds)
    with pytest.warns(OverriddenCheckWarning, match="converted anyway: allow_implausible=True"):
        assert administered_dose_bq(ds, allow_implausible=True) == 368080.0
    rp.RadionuclideTotalDose = "6000"  # read as MBq: 6 GBq
    with pytest.raises(
        ImplausibleValueError, match=r"is 6000, read as MBq = 6000 MBq; plausible 1-5000 MBq \(values"
    ):
        administered_dose_bq(ds)


def test_weight_and_height_ranges(dro_root: Path) -> None:
    from pcatools.data.dicom.suv import ImplausibleValueError, patient_weight_kg

    ds = _header(dro_root, "DRO_2_1")  # GML, SUVType LBMJAMES128, male: uses weight and height
    for written, kg in (("70000", 70.0), ("1", 1.0), ("500", 500.0)):
        ds.PatientWeight = written
        assert patient_weight_kg(ds) == kg
    ds.PatientWeight = "600000"  # grams: 600 kg
    with pytest.raises(ImplausibleValueError, match=r"PatientWeight \(0010,1030\) is 600000, read as 600 kg"):
        suvbw_factor(ds)
    ds.PatientWeight = "70"
    factor = suvbw_factor(ds)
    ds.PatientSize = "175"  # centimetres where metres are due: still read right
    assert suvbw_factor(ds) == pytest.approx(factor)
    ds.PatientSize = "3.5"  # neither: 3.5 cm
    with pytest.raises(
        ImplausibleValueError,
        match=r"PatientSize \(0010,1020\) is 3\.5, read as 3\.5 cm; plausible 30-250 cm",
    ):
        suvbw_factor(ds)
    ds = _header(dro_root)  # BQML does not use the height: not checked
    ds.PatientSize = "3.5"
    assert suvbw_factor(ds) == pytest.approx(BQML_FACTOR_DRO_0_0, rel=1e-9)


def test_uptake_window_and_the_midnight_rollover(dro_root: Path) -> None:
    from datetime import timedelta

    from pcatools.data.dicom.suv import ImplausibleValueError, uptake_seconds

    midnight = _header(dro_root, "DRO_4_2")  # injection 23:30 (time only), scan 00:30 the next day
    assert uptake_seconds(midnight, datetime(2025, 1, 2, 0, 30)) == 3600.0
    ds = _header(dro_root)  # injection 2025-01-01 10:00 (date and time)
    assert uptake_seconds(ds, datetime(2025, 1, 1, 9, 50)) == -600.0  # a dynamic scan started 10 min early
    with pytest.raises(ImplausibleValueError, match=r"is -0\.17 h \(-0\.1 half-lives"):
        uptake_seconds(ds, datetime(2025, 1, 1, 9, 49, 59))
    ten = 10 * 6586.2
    assert uptake_seconds(ds, datetime(2025, 1, 1, 10) + timedelta(seconds=ten)) == pytest.approx(ten)
    with pytest.raises(
        ImplausibleValueError, match=r"10\.0 half-lives of 6586\.2 s\); plausible -10 min to 18\.3 h"
    ):
        uptake_seconds(ds, datetime(2025, 1, 1, 10) + timedelta(seconds=ten + 1))
    zr = _header(dro_root)  # Zr-89 (78 h): a scan 3 days after injection is normal
    zr.RadiopharmaceuticalInformationSequence[0].RadionuclideHalfLife = "282240"
    assert uptake_seconds(zr, datetime(2025, 1, 4, 10)) == 3 * 86400.0


def test_size_and_sex_must_agree_where_the_units_use_them(dro_root: Path, tmp_path: Path) -> None:
    def female_last(ds: Dataset, i: int) -> None:
        if i == 19:
            ds.PatientSex = "F"

    folder = _copy_edited(dro_root / "DRO_2_1", tmp_path / "sex", female_last)
    with pytest.raises(
        SUVConversionError, match=r"PatientSex \(0010,0040\) differs .*'M' in 19 file\(s\).*'F' in 1 file"
    ):
        dicom_pet_to_suv(folder)

    def taller_last(ds: Dataset, i: int) -> None:
        if i == 19:
            ds.PatientSize = "1.80"

    folder = _copy_edited(dro_root / "DRO_2_1", tmp_path / "size", taller_last)
    with pytest.raises(SUVConversionError, match=r"PatientSize \(0010,1020\) differs"):
        dicom_pet_to_suv(folder)
    folder = _copy_edited(dro_root / "DRO_0_0", tmp_path / "bqml", taller_last)  # BQML: height unused
    assert (
        _mask_stats(dicom_pet_to_suv(folder), dro_root / "DRO_0_0" / "mask" / "DRO_mask.nii.gz") == EXPECTED
    )


def test_bed_positions_may_differ_in_acquisition_time_and_slope(dro_root: Path) -> None:
    """DRO 3_2 (two bed positions, two AcquisitionTime and FrameReferenceTime values) and 1_0 (two slopes) convert."""
    from pcatools.data.dicom.suv import check_series_consistency

    for name in ("DRO_3_2", "DRO_1_0"):
        files = sorted((dro_root / name / "PT").glob("*.dcm"))
        check_series_consistency(files, [pydicom.dcmread(f, stop_before_pixels=True) for f in files])


def test_implausible_warnings_are_given_once_per_series(dro_root: Path, tmp_path: Path) -> None:
    from pcatools.data.dicom import OverriddenCheckWarning

    def heavy(ds: Dataset, i: int) -> None:
        ds.PatientWeight = "600"

    folder = _copy_edited(dro_root / "DRO_0_0", tmp_path / "heavy", heavy)
    with pytest.warns(OverriddenCheckWarning) as record:
        img = dicom_pet_to_suv(folder, allow_implausible=True)
    messages = [str(w.message) for w in record if issubclass(w.category, OverriddenCheckWarning)]
    assert len(messages) == 1 and "slice_000.dcm and 19 more slice(s): PatientWeight" in messages[0]
    # SUV scales with the weight: 600 / 70 times the DRO's 0.2 / 1.0 / 4.0
    assert _mask_stats(img, dro_root / "DRO_0_0" / "mask" / "DRO_mask.nii.gz") == (1.71, 8.57, 34.29)
