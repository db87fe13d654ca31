"""What ``pcatools convert`` refuses (docs/refusals.md): each damaged study, its exit code and message.

Every damaged study is built from one undamaged study (DRO_0_0's PET, a ramp CT on the PET's frame
of reference and an RTSTRUCT; :func:`tests.test_dicom.make_study`) by editing headers with pydicom,
truncating or emptying files, or adding series. Each must be refused with exit code 1, one
``error:`` line naming the attribute and what was found, no traceback and nothing written; where an
option overrides the refusal, the study converts with a ``warning:`` line. The corpus test runs
every damaged study without options and checks that none converts to a volume other than the
undamaged one.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from typer.testing import CliRunner, Result

from pcatools.cli import app
from pcatools.data.case import save_niftis
from pcatools.data.case_ids import CaseIdError, case_id_from_name, colliding_case_ids, validate_case_id
from pcatools.data.dicom import (
    OutputPathError,
    OverriddenCheckWarning,
    UnreadableDicomError,
    check_output_dir,
    find_series,
    read_dicom_series,
    unreadable_reason,
)
from tests.test_dicom import make_study, uid, write_series

runner = CliRunner()


# ---------------------------------------------------------------------------------------------- helpers


def edit_files(files: list[Path], edit: Callable[[Dataset], None]) -> None:
    """Apply ``edit`` to each DICOM file in place."""
    for f in files:
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(f)


def pet_files(study: Path) -> list[Path]:
    return sorted((study / "PET").glob("*.dcm"))


def ct_files(study: Path) -> list[Path]:
    return sorted((study / "CT").glob("*.dcm"))


def rp(ds: Dataset) -> Dataset:
    return ds.RadiopharmaceuticalInformationSequence[0]


def convert(study: Path, out: Path, *options: str) -> Result:
    return runner.invoke(app, ["convert", str(study), str(out), "--case-id", "c1", *options])


def assert_refused(result: Result, message: str, out: Path | None = None) -> str:
    """Exit code 1, no traceback, one ``error:`` line matching ``message``, nothing written under ``out``."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert re.search(message, errors[0]), errors[0]
    if out is not None and out.exists():
        assert [p for p in out.rglob("*") if p.is_file()] == []
    return errors[0]


def assert_converted_with_warning(result: Result, option: str) -> None:
    assert result.exit_code == 0, result.output
    warnings_shown = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings_shown and all(f"{option}=True" in w for w in warnings_shown), result.output


def volumes(out: Path) -> dict[str, np.ndarray]:
    return {
        p.name.replace("c1", ""): np.asarray(nib.load(str(p)).dataobj)
        for p in sorted(out.rglob("c1*.nii.gz"))
    }


@pytest.fixture(scope="module")
def pristine(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The undamaged study; tests copy it."""
    study = tmp_path_factory.mktemp("pristine") / "study"
    make_study(shared_data, study)
    return study


@pytest.fixture(scope="module")
def reference(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The undamaged study's conversion: CT, PET and label arrays."""
    out = tmp_path_factory.mktemp("reference")
    result = convert(pristine, out)
    assert result.exit_code == 0, result.output
    return volumes(out)


# ---------------------------------------------------------------------------------------------- damages


@dataclass(frozen=True)
class Damage:
    """How to damage a copy of the study, the refusal it must give and the option that overrides it."""

    damage: Callable[[Path], None]
    message: str
    override: str | None = None


def _one_slice(keyword_edit: Callable[[Dataset], None]) -> Callable[[Path], None]:
    """Damage only the last PET slice (by file name)."""
    return lambda study: edit_files(pet_files(study)[-1:], keyword_edit)


def _all_slices(keyword_edit: Callable[[Dataset], None]) -> Callable[[Path], None]:
    return lambda study: edit_files(pet_files(study), keyword_edit)


def _set(**values: object) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for key, value in values.items():
            setattr(ds, key, value)

    return edit


def _set_rp(**values: object) -> Callable[[Dataset], None]:
    def edit(ds: Dataset) -> None:
        for key, value in values.items():
            if value is None:
                delattr(rp(ds), key)
            else:
                setattr(rp(ds), key, value)

    return edit


def _scale_slope(factor: float) -> Callable[[Dataset], None]:
    return lambda ds: setattr(ds, "RescaleSlope", f"{float(ds.RescaleSlope) * factor:g}")


def _truncate(which: int, keep: int | None = None, cut: int | None = None) -> Callable[[Path], None]:
    def damage(study: Path) -> None:
        f = pet_files(study)[which]
        data = f.read_bytes()
        f.write_bytes(data[:keep] if keep is not None else data[: len(data) - (cut or 0)])

    return damage


def _new_frame_of_reference(study: Path) -> None:
    edit_files(ct_files(study), _set(FrameOfReferenceUID=uid("another frame")))


def _ct_far_away(study: Path) -> None:
    def shift(ds: Dataset) -> None:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [f"{x:g}", f"{y:g}", f"{z + 5000:g}"]

    edit_files(ct_files(study), shift)


def _second_series(folder: str, name: str) -> Callable[[Path], None]:
    """Copy a series as a second one (new SeriesInstanceUID and SOPInstanceUIDs) in the same study."""

    def damage(study: Path) -> None:
        shutil.copytree(study / folder, study / name)
        series = uid("second series", name)

        def renumber(ds: Dataset) -> None:
            ds.SeriesInstanceUID = series
            ds.SOPInstanceUID = uid(series, ds.SOPInstanceUID)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID

        edit_files(sorted((study / name).glob("*.dcm")), renumber)

    return damage


def _halve_last_slice(delete_slope: bool) -> Callable[[Path], None]:
    """The last PET slice stored at half its values with RescaleSlope 2: per-slice slopes, the same SUVs.

    With ``delete_slope`` the slope of that slice is then removed, which used to read as 1 and made
    the slice half as bright (the DRO's stored values are even, so halving is exact).
    """

    def edit(ds: Dataset) -> None:
        stored = ds.pixel_array
        assert not (stored % 2).any()
        ds.PixelData = (stored // 2).astype(stored.dtype).tobytes()
        ds.RescaleSlope = "2"
        if delete_slope:
            del ds.RescaleSlope

    return lambda study: edit_files(pet_files(study)[-1:], edit)


def _del_slope(ds: Dataset) -> None:
    del ds.RescaleSlope


def _every_slice_its_own_dose(study: Path) -> None:
    for k, f in enumerate(pet_files(study)):
        edit_files([f], _set_rp(RadionuclideTotalDose=f"{368080000 + k}"))


def _rows_columns(rows: int, columns: int) -> Callable[[Dataset], None]:
    return _set(Rows=rows, Columns=columns)


def _big_non_dicom_file(study: Path) -> None:
    """64 MiB of zeros named like a slice (sparse): forced parsing took a minute per 100 MB."""
    with open(study / "PET" / "zeros.dcm", "wb") as fh:
        fh.truncate(64 << 20)


def _raw_data_object(study: Path, blob_bytes: int) -> None:
    """A Raw Data Storage object (list mode) in the PET's series, with a private blob of ``blob_bytes``."""
    pet = pydicom.dcmread(pet_files(study)[0], stop_before_pixels=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66"  # Raw Data Storage
    meta.MediaStorageSOPInstanceUID = uid("raw data", study)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "PT", pet.SeriesInstanceUID, pet.StudyInstanceUID
    ds.add_new((0x0029, 0x0010), "LO", "SIEMENS MI RAW")
    ds.add_new((0x0029, 0x1010), "OB", bytes(blob_bytes))
    ds.save_as(study / "PET" / "listmode.dcm", enforce_file_format=True)


def _series_folder_behind_links(study: Path) -> None:
    """The PET folder moved beside the study and linked back; a link loop inside the CT folder."""
    (study / "PET").rename(study.parent / "PET-elsewhere")
    (study / "PET").symlink_to(study.parent / "PET-elsewhere", target_is_directory=True)
    (study / "CT" / "loop").symlink_to(study, target_is_directory=True)


def _harmless_files(study: Path) -> None:
    """Not DICOM and not named like it: skipped silently, as before."""
    (study / "notes.txt").write_text("reader notes")
    (study / "empty.json").write_bytes(b"")
    (study / "PET" / ".gitkeep").write_bytes(b"")


DAMAGES: dict[str, Damage] = {
    # 1. per-slice header consistency (not overridable)
    "weight differs": Damage(
        _one_slice(_set(PatientWeight="80")),
        r"PatientWeight \(0010,1030\) differs between the 20 slices .*: '70\.0' in 19 file\(s\), e\.g\. .*slice_000\.dcm; "
        r"'80' in 1 file\(s\), e\.g\. .*slice_019\.dcm",
    ),
    "units differ": Damage(_one_slice(_set(Units="GML")), r"Units \(0054,1001\) differs .*'GML' in 1 file"),
    "dose differs": Damage(
        _one_slice(_set_rp(RadionuclideTotalDose="300000000")), r"RadionuclideTotalDose \(0018,1074\) differs"
    ),
    "injection time differs": Damage(
        _one_slice(_set_rp(RadiopharmaceuticalStartTime="100500.000000")),
        r"RadiopharmaceuticalStartTime \(0018,1072\) differs",
    ),
    "injection datetime differs": Damage(
        _one_slice(_set_rp(RadiopharmaceuticalStartDateTime="20250101100500.000000")),
        r"RadiopharmaceuticalStartDateTime \(0018,1078\) differs",
    ),
    "half-life differs": Damage(
        _one_slice(_set_rp(RadionuclideHalfLife="4057.7")), r"RadionuclideHalfLife \(0018,1075\) differs"
    ),
    "decay correction differs": Damage(
        _one_slice(_set(DecayCorrection="ADMIN")), r"DecayCorrection \(0054,1102\) differs"
    ),
    "series time differs": Damage(
        _one_slice(_set(SeriesTime="103000.000000")), r"SeriesTime \(0008,0031\) differs"
    ),
    "series date differs": Damage(
        _one_slice(_set(SeriesDate="20250102")), r"SeriesDate \(0008,0021\) differs"
    ),
    "corrected image differs": Damage(
        _one_slice(_set(CorrectedImage=["NORM", "ATTN", "DECY"])), r"CorrectedImage \(0028,0051\) differs"
    ),
    "dose differs in every slice": Damage(
        _every_slice_its_own_dose,
        r"RadionuclideTotalDose \(0018,1074\) differs between the 20 slices .*: '368080000' in 1 file\(s\), e\.g\. "
        r".*slice_000\.dcm; '368080001' in 1 file\(s\), e\.g\. .*slice_001\.dcm; and 18 more distinct value\(s\) in "
        r"18 file\(s\); one series",
    ),
    # 1b. rescale slopes (no override)
    "negative slope in one slice": Damage(
        _one_slice(_set(RescaleSlope="-1")),
        r"slice_019\.dcm: RescaleSlope \(0028,1053\) is -1; expected a number above 0 \(a negative slope",
    ),
    "zero slope in one slice": Damage(
        _one_slice(_set(RescaleSlope="0")),
        r"slice_019\.dcm: RescaleSlope \(0028,1053\) is 0; expected a number above 0 .* 0 blanks it\)$",
    ),
    "NaN slope in one slice": Damage(
        _one_slice(_set(RescaleSlope="NaN")),
        r"slice_019\.dcm: RescaleSlope \(0028,1053\) is NaN; expected a finite number above 0$",
    ),
    "slope missing in one slice of per-slice slopes": Damage(
        _halve_last_slice(delete_slope=True),
        r"slice_019\.dcm: RescaleSlope \(0028,1053\) is missing in 1 of the 20 slices of the PT series in .*PET, "
        r"the others give it \(e\.g\. 1\.0 in pet_dro_0_0_slice_000\.dcm\); read as 1, such a slice would be off",
    ),
    "slope missing in every slice": Damage(
        _all_slices(_del_slope),
        r"slice_000\.dcm: RescaleSlope \(0028,1053\) is missing in all 20 slices of the PT series in .*; the CT and "
        r"PET Image modules require it \(DICOM PS3\.3 C\.8\.2\.1, C\.8\.9\.4\)",
    ),
    # 1c. NaN reported as NaN, once
    "NaN dose": Damage(
        _all_slices(_set_rp(RadionuclideTotalDose="NaN")),
        r"^error: \S+: \S+slice_000\.dcm: RadionuclideTotalDose \(0018,1074\) is NaN in "
        r"RadiopharmaceuticalInformationSequence \(0054,0016\); expected the administered dose in Bq or MBq$",
    ),
    # 2. plausibility (--allow-implausible)
    "dose in kBq": Damage(
        _all_slices(_set_rp(RadionuclideTotalDose="368080")),
        r"RadionuclideTotalDose \(0018,1074\) is 368080, read as Bq = 0\.36808 MBq; plausible 1-5000 MBq",
        "--allow-implausible",
    ),
    "weight 700 kg": Damage(
        _all_slices(_set(PatientWeight="700")),
        r"PatientWeight \(0010,1030\) is 700, read as 700 kg; plausible 1-500 kg",
        "--allow-implausible",
    ),
    "weight 0.5 kg": Damage(
        _all_slices(_set(PatientWeight="0.5")),
        r"PatientWeight .* read as 0\.5 kg; plausible 1-500 kg",
        "--allow-implausible",
    ),
    "time-only injection after the scan": Damage(
        _all_slices(
            _set_rp(RadiopharmaceuticalStartDateTime=None, RadiopharmaceuticalStartTime="120000.000000")
        ),
        r"uptake time .* is 23\.00 h \(12\.6 half-lives .* taken from the day before; plausible -10 min to 18\.3 h",
        "--allow-implausible",
    ),
    "injection after the scan": Damage(
        _all_slices(_set_rp(RadiopharmaceuticalStartDateTime="20250101113000.000000")),
        r"uptake time from injection 2025-01-01T11:30:00 .* is -0\.50 h",
        "--allow-implausible",
    ),
    "injection a day early": Damage(
        _all_slices(_set_rp(RadiopharmaceuticalStartDateTime="20241231100000.000000")),
        r"uptake time .* is 25\.00 h \(13\.7 half-lives",
        "--allow-implausible",
    ),
    "Ga-68 half-life with the F-18 code": Damage(
        _all_slices(_set_rp(RadionuclideHalfLife="4062.6")),
        r"slice_000\.dcm: RadionuclideHalfLife \(0018,1075\) is 4062\.6 s \(67\.71 min\), but RadionuclideCodeSequence "
        r"\(0054,0300\) names \^18\^Fluorine \(C-111A1\), whose half-life is 6586\.2 s \(109\.77 min\): 38\.3 % apart, "
        r"tolerance 1 %; pass allow_implausible=True",
        "--allow-implausible",
    ),
    "SUV above the ceiling": Damage(
        lambda study: edit_files(pet_files(study)[9:10], _scale_slope(500.0)),
        r"the maximum SUVbw is 2000, above the ceiling of 1000",
        "--allow-implausible",
    ),
    "SUV a thousand times too low": Damage(
        _all_slices(_scale_slope(1e-3)),
        r"the median SUVbw of the body \(voxels above the volume mean\) is 0\.001; plausible 0\.05-20",
        "--allow-implausible",
    ),
    # 3. unreadable files (--skip-unreadable)
    "empty first slice": Damage(
        _truncate(0, keep=0),
        r"1 unreadable DICOM file\(s\) .*slice_000\.dcm \(empty file \(0 bytes\)\)",
        "--skip-unreadable",
    ),
    "truncated last slice": Damage(
        _truncate(-1, cut=1000),
        r"slice_019\.dcm \(truncated: PixelData \(7FE0,0010\) declares 131072 bytes, the file holds 130072\)",
        "--skip-unreadable",
    ),
    "last slice cut in its header": Damage(
        _truncate(-1, keep=1000), r"slice_019\.dcm \(truncated: .* declares", "--skip-unreadable"
    ),
    "first slice cut after the preamble": Damage(
        _truncate(0, keep=300),
        r"slice_000\.dcm \(no data set after the file meta information",
        "--skip-unreadable",
    ),
    "Rows and Columns 65535 in the last slice": Damage(
        _one_slice(_rows_columns(65535, 65535)),
        r"1 unreadable DICOM file\(s\) .*: \S+slice_019\.dcm \(Rows \(0028,0010\) 65535 x Columns \(0028,0011\) 65535 x "
        r"BitsAllocated \(0028,0100\) 16 bits = 8589672450 bytes of pixel data, but PixelData \(7FE0,0010\) holds "
        r"131072 bytes\); pass skip_unreadable=True",
        "--skip-unreadable",
    ),
    "Rows and Columns 65535 in every slice": Damage(
        _all_slices(_rows_columns(65535, 65535)),
        r"20 unreadable DICOM file\(s\) .*slice_000\.dcm \(Rows .*\); \S+slice_001\.dcm \(Rows .*\); and 18 more; pass",
    ),
    "Rows halved in one CT slice": Damage(
        lambda study: edit_files(ct_files(study)[:1], _rows_columns(50, 100)),
        r"CT/slice_000\.dcm \(Rows \(0028,0010\) 50 x Columns \(0028,0011\) 100 x BitsAllocated \(0028,0100\) 16 bits "
        r"= 10000 bytes of pixel data, but PixelData \(7FE0,0010\) holds 20000 bytes\)",
        "--skip-unreadable",
    ),
    "a large non-DICOM file named .dcm": Damage(
        _big_non_dicom_file, r"PET/zeros\.dcm \(not a DICOM data set\)", "--skip-unreadable"
    ),
    # 4. a CT that is not the PET's (--allow-ct-mismatch)
    "CT of another frame of reference": Damage(
        _new_frame_of_reference,
        r"has FrameOfReferenceUID \(0020,0052\) .* the PET .* has",
        "--allow-ct-mismatch",
    ),
    "CT beside the PET": Damage(
        _ct_far_away,
        r"CT .* does not overlap the PET .*: the CT spans .* z 4999\.1 to 5077\.1 mm, the PET .* z -2\.0 to 78\.0 mm",
        "--allow-ct-mismatch",
    ),
    # 8. several series of one kind
    "two PET series": Damage(
        _second_series("PET", "PET2"),
        r"holds 2 PT series; pass pet_series_uid=\.\.\. \(--pet-series-uid on the command line\)",
    ),
    "two CT series": Damage(
        _second_series("CT", "CT2"),
        r"holds 2 CT series; pass ct_series_uid=\.\.\. \(--ct-series-uid on the command line\)",
    ),
}

#: Damage that must not change the conversion (the corpus checks them too).
HARMLESS: dict[str, Callable[[Path], None]] = {
    "PatientSize differs where BQML does not use it": _one_slice(_set(PatientSize="1.80")),
    "non-DICOM files beside the series": _harmless_files,
    "AcquisitionTime differs by bed position": _one_slice(_set(AcquisitionTime="110230.000000")),
    "per-slice slopes (last slice stored at half, slope 2)": _halve_last_slice(delete_slope=False),
    "raw data object with a private blob in the PET series": lambda study: _raw_data_object(study, 4 << 20),
    "series folder behind a link, a link loop": _series_folder_behind_links,
}


def damaged(pristine: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    study = tmp_path / "study"
    shutil.copytree(pristine, study)
    damage(study)
    return study


@pytest.mark.parametrize("name", list(DAMAGES))
def test_damaged_study_is_refused(pristine: Path, tmp_path: Path, name: str) -> None:
    case = DAMAGES[name]
    study = damaged(pristine, tmp_path, case.damage)
    out = tmp_path / "out"
    assert_refused(convert(study, out), case.message, out)


@pytest.mark.parametrize("name", [n for n, d in DAMAGES.items() if d.override])
def test_override_converts_with_a_warning(pristine: Path, tmp_path: Path, name: str) -> None:
    case = DAMAGES[name]
    assert case.override is not None
    study = damaged(pristine, tmp_path, case.damage)
    result = convert(study, tmp_path / "out", case.override)
    assert_converted_with_warning(result, case.override.lstrip("-").replace("-", "_"))
    assert len(volumes(tmp_path / "out")) == 3


def test_time_only_injection_after_the_scan_overridden_gives_suv_16672(
    pristine: Path, tmp_path: Path
) -> None:
    """The case that used to convert silently: injection 12:00 without a date, scan 11:00, taken from the day before."""
    study = damaged(pristine, tmp_path, DAMAGES["time-only injection after the scan"].damage)
    result = convert(study, tmp_path / "out", "--allow-implausible")
    assert_converted_with_warning(result, "allow_implausible")
    # 4 * 2^((23 h - 1 h) / T_half): the DRO's SUV 4 decay-corrected over 22 extra hours
    assert "the maximum SUVbw is 16672.1," in result.output
    assert float(volumes(tmp_path / "out")["_0001.nii.gz"].max()) == pytest.approx(
        4 * 2 ** (22 * 3600 / 6586.2), rel=1e-5
    )


def test_skip_unreadable_names_the_file_and_drops_the_slice(pristine: Path, tmp_path: Path) -> None:
    study = damaged(pristine, tmp_path, DAMAGES["empty first slice"].damage)
    result = convert(study, tmp_path / "out", "--skip-unreadable")
    assert_converted_with_warning(result, "skip_unreadable")
    assert "slice_000.dcm (empty file (0 bytes))" in result.output
    assert volumes(tmp_path / "out")["_0001.nii.gz"].shape == (256, 256, 19)


def test_choosing_the_series_converts_as_the_undamaged_study(
    pristine: Path, tmp_path: Path, reference: dict[str, np.ndarray]
) -> None:
    study = damaged(pristine, tmp_path, DAMAGES["two PET series"].damage)
    DAMAGES["two CT series"].damage(study)
    pet_uid = str(pydicom.dcmread(pet_files(study)[0], stop_before_pixels=True).SeriesInstanceUID)
    ct_uid = str(pydicom.dcmread(ct_files(study)[0], stop_before_pixels=True).SeriesInstanceUID)
    result = convert(study, tmp_path / "out", "--pet-series-uid", pet_uid, "--ct-series-uid", ct_uid)
    assert result.exit_code == 0, result.output
    got = volumes(tmp_path / "out")
    assert got.keys() == reference.keys()
    for key in got:
        np.testing.assert_array_equal(got[key], reference[key])
    missing = convert(study, tmp_path / "out2", "--pet-series-uid", "1.2.3")
    assert_refused(missing, r"no PT image series with SeriesInstanceUID 1\.2\.3")


def test_corpus_no_damaged_study_converts_to_another_volume(
    pristine: Path, tmp_path: Path, reference: dict[str, np.ndarray]
) -> None:
    """Every damaged study, converted without options: refused, or exactly the undamaged volumes."""
    converted = []
    for name, damage in [*((n, d.damage) for n, d in DAMAGES.items()), *HARMLESS.items()]:
        folder = tmp_path / re.sub(r"\W+", "_", name)
        study = damaged(pristine, folder, damage)
        result = convert(study, folder / "out")
        assert "Traceback" not in result.output, name
        if result.exit_code == 0:
            got = volumes(folder / "out")
            assert got.keys() == reference.keys(), name
            for key in got:
                assert np.array_equal(got[key], reference[key]), (
                    f"{name}: {key} differs from the undamaged conversion"
                )
            converted.append(name)
        else:
            assert result.exit_code == 1 and name in DAMAGES, f"{name}: {result.output}"
            assert not (folder / "out").exists() or not any(p.is_file() for p in (folder / "out").rglob("*"))
    assert sorted(converted) == sorted(HARMLESS)


# ---------------------------------------------------------------------------------------------- 5 and 6: case ids


def test_batch_refuses_colliding_case_ids_before_converting(tmp_path: Path) -> None:
    for name in ("case 1", "case-1", "case_1", "lone"):
        (tmp_path / "studies" / name).mkdir(parents=True)
    result = runner.invoke(app, ["convert", str(tmp_path / "studies"), str(tmp_path / "out"), "--batch"])
    line = assert_refused(
        result, r"study folders map to the same case id .*'case-1' from .*case 1, .*case-1, .*case_1"
    )
    assert "lone" not in line and "no DICOM files" not in result.output
    assert not (tmp_path / "out").exists()


def test_batch_refuses_one_study_options(tmp_path: Path) -> None:
    (tmp_path / "studies" / "a").mkdir(parents=True)
    result = runner.invoke(
        app,
        ["convert", str(tmp_path / "studies"), str(tmp_path / "out"), "--batch", "--pet-series-uid", "1.2"],
    )
    assert result.exit_code == 2 and "--pet-series-uid" in result.output


@pytest.mark.parametrize(
    ("case_id", "problem"),
    [
        ("../evil", r"contains a path separator \('/'\)"),
        ("a\\b", r"contains a path separator \('\\\\'\)"),
        ("..", "contains '..'"),
        (".hidden", "starts with a dot"),
        ("", "is empty"),
    ],
)
def test_unsafe_case_ids_are_refused(tmp_path: Path, case_id: str, problem: str) -> None:
    (tmp_path / "study").mkdir()
    result = runner.invoke(
        app, ["convert", str(tmp_path / "study"), str(tmp_path / "out" / "ds"), "--case-id", case_id]
    )
    assert_refused(result, rf"case id {re.escape(repr(case_id))} \(from --case-id\): {problem}")
    assert not (tmp_path / "out").exists()
    with pytest.raises(CaseIdError, match=problem):
        validate_case_id(case_id)


def test_case_ids_from_folder_names_are_valid_and_collisions_ignore_case() -> None:
    for name in ("Study 01", "..", ".hidden", "a..b", "x/y", "  ", "ü"):
        assert validate_case_id(case_id_from_name(name)) == case_id_from_name(name)
    assert case_id_from_name("a..b") == "a.b"
    assert colliding_case_ids([Path("s/Case1"), Path("s/case1"), Path("s/case2")]) == {
        "Case1": [Path("s/Case1"), Path("s/case1")]
    }


# ---------------------------------------------------------------------------------------------- 7: output


def test_output_path_that_is_a_file_is_refused_first(tmp_path: Path) -> None:
    (tmp_path / "study").mkdir()  # empty: the output check must come before reading the study
    (tmp_path / "out").write_text("a file")
    result = runner.invoke(app, ["convert", str(tmp_path / "study"), str(tmp_path / "out")])
    assert_refused(
        result, rf"output folder {re.escape(str(tmp_path / 'out'))} is an existing file, not a folder"
    )
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "labelsTr").write_text("a file")
    with pytest.raises(OutputPathError, match=r"labelsTr is an existing file"):
        check_output_dir(tmp_path / "ds")


def test_unwritable_output_folder_is_refused_first(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes through permissions; /sys refuses new files even to root
        if not Path("/sys").is_dir():
            pytest.skip("running as root without /sys: no folder that root cannot write")
        out = Path("/sys/pcatools-test-out")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        out = locked / "out"
    (tmp_path / "study").mkdir()
    try:
        result = runner.invoke(app, ["convert", str(tmp_path / "study"), str(out)])
    finally:
        if os.geteuid() != 0:
            (tmp_path / "locked").chmod(0o700)
    assert_refused(result, rf"output folder {re.escape(str(out.parent))} cannot be written \(")


def test_a_failed_write_leaves_none_of_the_case_files(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = nib.save

    def fail_on_label(img: nib.Nifti1Image, path: str) -> None:
        if "labelsTr" in path:
            raise OSError(28, "No space left on device")
        real_save(img, path)

    monkeypatch.setattr(nib, "save", fail_on_label)
    result = convert(pristine, tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "No space left on device" in result.output
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_save_niftis_undoes_renames_when_one_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = nib.Nifti1Image(np.zeros((2, 2, 2), dtype=np.float32), np.eye(4))
    paths = {k: tmp_path / k / f"c_{k}.nii.gz" for k in ("ct", "pet", "label")}
    real_replace = os.replace
    finals: list[str] = []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if not Path(dst).name.startswith("."):  # a staged file going to its final name
            finals.append(str(dst))
            if len(finals) == 2:
                raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="Input/output error"):
        save_niftis({k: img for k in paths}, paths)
    assert len(finals) == 2
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------------------------------------- 3 without ../shared


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: b"", r"empty file \(0 bytes\)"),
        (lambda data: data[:-7], r"truncated: PixelData \(7FE0,0010\) declares 32 bytes, the file holds 25"),
        (lambda data: data[:400], r"truncated: \w+ \(\w{4},\w{4}\) declares \d+ bytes, the file holds \d+"),
        (lambda data: data[:140], r"no data set after the file meta information|truncated"),
    ],
)
def test_unreadable_synthetic_slice_is_named(
    tmp_path: Path, damage: Callable[[bytes], bytes], reason: str
) -> None:
    """The same checks on a synthetic series written here (runs without ../shared)."""
    write_series(tmp_path / "s", np.zeros((4, 4, 5), dtype=np.int16))
    last = tmp_path / "s" / "slice_004.dcm"
    assert unreadable_reason(last) is None
    last.write_bytes(damage(last.read_bytes()))
    with pytest.raises(UnreadableDicomError, match=rf"slice_004\.dcm \({reason}.*pass skip_unreadable=True"):
        read_dicom_series(tmp_path / "s")
    with pytest.warns(
        OverriddenCheckWarning, match=r"slice_004\.dcm .*converted anyway: skip_unreadable=True"
    ):
        assert read_dicom_series(tmp_path / "s", skip_unreadable=True).shape == (4, 4, 4)


def test_non_dicom_files_are_still_skipped_silently(tmp_path: Path) -> None:
    write_series(tmp_path / "s", np.zeros((4, 4, 3), dtype=np.int16))
    (tmp_path / "s" / "README").write_text("not DICOM")
    (tmp_path / "s" / "mask.nii.gz").write_bytes(b"\x1f\x8b")
    (tmp_path / "s" / ".gitkeep").write_bytes(b"")
    assert [len(s.files) for s in find_series(tmp_path / "s")] == [3]
    for name in ("IM0004", "CT.1.2.840.113619.2.55.3.4"):  # empty files named like exported slices
        (tmp_path / "s" / name).write_bytes(b"")
        with pytest.raises(UnreadableDicomError, match=rf"{re.escape(name)} \(empty file"):
            find_series(tmp_path / "s")
        (tmp_path / "s" / name).unlink()
