"""`pcatools convert` through typer's CliRunner on ``pcatools.cli.app``."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from pcatools.cli import app
from tests.test_dicom import CT_SHAPE, make_study

runner = CliRunner()


def test_convert_help_describes_the_command() -> None:
    result = runner.invoke(app, ["convert", "--help"])
    assert result.exit_code == 0
    assert "nnU-Net layout" in result.output and "--ct-grid" in result.output
    for option in (
        "--pet-series-uid",
        "--ct-series-uid",
        "--mask-series-uid",
        "--skip-unreadable",
        "--allow-implausible",
        "--allow-ct-mismatch",
    ):
        assert option in result.output, option


def test_convert_a_study(shared_data: Path, tmp_path: Path) -> None:
    make_study(shared_data, tmp_path / "study")
    result = runner.invoke(
        app, ["convert", str(tmp_path / "study"), str(tmp_path / "out"), "--case-id", "psma_001"]
    )
    assert result.exit_code == 0, result.output
    ct = tmp_path / "out" / "imagesTr" / "psma_001_0000.nii.gz"
    pet = tmp_path / "out" / "imagesTr" / "psma_001_0001.nii.gz"
    label = tmp_path / "out" / "labelsTr" / "psma_001.nii.gz"
    assert result.output.split() == ["ct", str(ct), "pet", str(pet), "label", str(label)]
    grids = [(img.shape, img.affine) for img in (nib.load(str(p)) for p in (ct, pet, label))]
    assert all(shape == (256, 256, 20) and np.allclose(affine, grids[0][1]) for shape, affine in grids)
    assert int(np.asarray(nib.load(str(label)).dataobj).sum()) == 20 * 10  # the 20 x 10 voxel contour


def test_convert_batch_keeps_the_ct_grid_and_reports_bad_studies(shared_data: Path, tmp_path: Path) -> None:
    make_study(shared_data, tmp_path / "studies" / "good", mask_on=None)
    (tmp_path / "studies" / "empty").mkdir(parents=True)
    result = runner.invoke(
        app, ["convert", str(tmp_path / "studies"), str(tmp_path / "out"), "--batch", "--ct-grid", "own"]
    )
    assert result.exit_code == 1
    assert "no DICOM files found" in result.output and "empty" in result.output
    assert nib.load(str(tmp_path / "out" / "imagesTr" / "good_0000.nii.gz")).shape == CT_SHAPE
    assert not (tmp_path / "out" / "labelsTr").exists()


def test_convert_refuses_a_ct_as_pet_study(shared_data: Path, tmp_path: Path) -> None:
    shutil.copytree(shared_data / "real-ct" / "dicom", tmp_path / "ct_only")
    result = runner.invoke(app, ["convert", str(tmp_path / "ct_only"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no PT image series" in result.output
    assert not (tmp_path / "out").exists()
    bad = runner.invoke(
        app, ["convert", str(tmp_path / "ct_only"), str(tmp_path / "out"), "--ct-grid", "mri"]
    )
    assert bad.exit_code == 2 and "expected 'pet' or 'own'" in bad.output
