"""pcatools.viewer: napari layers in physical mm, L1 layers with known weights, lesion dock, slider.

The GUI tests run napari (PyQt6) on a private Xvfb display started here (``Xvfb -displayfd``
picks a free display); they skip, saying why, where Xvfb is not installed
(``scripts/install_system_deps.sh`` installs it). Set ``PCATOOLS_SAVE_SCREENSHOT=1`` to write
the screenshot to ``docs/figures/viewer.png``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pcatools.data.case import Case, write_case
from pcatools.viewer import (
    L1_LAYER_NAMES,
    build_layers,
    l1_layers,
    lesion_table,
    resolve_case_paths,
)

SHAPE = (48, 32, 64)
SPACING = (4.0, 4.0, 3.0)
ORIGIN = (-100.0, -60.0, 20.0)
LESION_A = (slice(10, 14), slice(14, 18), slice(20, 24))  # 64 voxels, SUV 12
LESION_B = (slice(30, 33), slice(12, 15), slice(40, 44))  # 36 voxels, SUV 8
FP_BLOB = (slice(20, 23), slice(14, 17), slice(10, 13))  # 27 voxels, p = 0.6 outside the lesions


def make_case() -> tuple[Case, np.ndarray]:
    """A small PET/CT case with two lesions, and a made-up foreground probability map."""
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = ORIGIN
    i, j, k = np.indices(SHAPE)
    body = ((i - 24) / 20) ** 2 + ((j - 16) / 12) ** 2 + ((k - 32) / 30) ** 2 < 1
    ct = np.where(body, 40.0, -1000.0).astype(np.float32)
    pet = np.where(body, 1.0, 0.05).astype(np.float32)
    label = np.zeros(SHAPE, np.uint8)
    label[LESION_A] = 1
    label[LESION_B] = 1
    pet[LESION_A] = 12.0
    pet[LESION_B] = 8.0
    probs = np.full(SHAPE, 0.02, np.float32)  # Delta 0.02 -> bin 0
    probs[label > 0] = 0.8  # Delta 0.2 -> bin 2
    probs[FP_BLOB] = 0.6  # Delta 0.6 -> bin 6
    return Case("synthetic_001", pet, ct, label, affine), probs


# --------------------------------------------------------------------------- without a display


def test_build_layers_names_types_and_physical_geometry() -> None:
    case, probs = make_case()
    pred = case.label.copy()
    pred[FP_BLOB] = 1
    layers = build_layers(case, pred={"segresnet l1dfl": pred}, probs=probs, suv_window=(0, 8))
    names = [kw["name"] for _, kw, _ in layers]
    kinds = [kind for _, _, kind in layers]
    assert names == ["CT", "PET (SUV)", "ground truth", "segresnet l1dfl", *L1_LAYER_NAMES]
    assert kinds == ["image", "image", "labels", "labels", "image", "labels", "image"]
    for data, kw, kind in layers:
        assert data.shape == SHAPE
        assert kw["scale"] == SPACING
        assert kw["translate"] == ORIGIN
        if kind == "labels":
            assert data.dtype == np.uint8
    by_name = {kw["name"]: (data, kw) for data, kw, _ in layers}
    np.testing.assert_array_equal(by_name["ground truth"][0], case.label)
    np.testing.assert_array_equal(by_name["segresnet l1dfl"][0], pred)
    np.testing.assert_array_equal(by_name["PET (SUV)"][0], case.pet)
    assert by_name["PET (SUV)"][1]["contrast_limits"] == (0.0, 8.0)
    assert by_name["CT"][1]["contrast_limits"] == (-160.0, 240.0)
    assert [kw["name"] for _, kw, _ in build_layers(case)] == ["CT", "PET (SUV)", "ground truth"]


def test_l1_layers_have_hand_computed_weights() -> None:
    case, probs = make_case()
    n = probs.size
    n_les = int(case.label.sum())
    n_fp = 27
    n_bg = n - n_les - n_fp
    assert n_les == 64 + 36
    l1 = l1_layers(case.label, probs, bin_width=0.1)
    lesion, fp, bg = case.label > 0, np.zeros(SHAPE, bool), np.ones(SHAPE, bool)
    fp[FP_BLOB] = True
    bg &= ~lesion & ~fp
    np.testing.assert_allclose(l1["delta"][lesion], 0.2, atol=1e-6)
    np.testing.assert_allclose(l1["delta"][fp], 0.6, atol=1e-6)
    assert set(np.unique(l1["bins"][bg])) == {0}
    assert set(np.unique(l1["bins"][lesion])) == {2}
    assert set(np.unique(l1["bins"][fp])) == {6}
    # eq. 8-10: bin 0 has effective width 0.05, the others 0.1; w = N / (count / width)
    np.testing.assert_allclose(l1["weights"][bg], n / (n_bg / 0.05), rtol=1e-5)
    np.testing.assert_allclose(l1["weights"][lesion], n / (n_les / 0.1), rtol=1e-5)
    np.testing.assert_allclose(l1["weights"][fp], n / (n_fp / 0.1), rtol=1e-5)
    # Gamma = 0.25: centres 0, .25, .5, .75, 1; 0.2 -> bin 1, 0.6 -> bin 2 (nearest centre)
    l1b = l1_layers(case.label, probs, bin_width=0.25)
    assert set(np.unique(l1b["bins"][lesion])) == {1}
    assert set(np.unique(l1b["bins"][fp])) == {2}
    np.testing.assert_allclose(l1b["weights"][bg], n / (n_bg / 0.125), rtol=1e-5)


def test_lesion_table_known_lesions() -> None:
    case, _ = make_case()
    table = lesion_table(case)
    assert table["lesion_id"].tolist() == [1, 2]
    np.testing.assert_allclose(table["volume_ml"], [64 * 0.048, 36 * 0.048])
    np.testing.assert_allclose(table["suvmax"], [12.0, 8.0])
    # centroids: cube centres (11.5, 15.5, 21.5) and (31, 13, 41.5) -> origin + index * spacing
    np.testing.assert_allclose(
        table[["centroid_i", "centroid_j", "centroid_k"]], [[11.5, 15.5, 21.5], [31, 13, 41.5]]
    )
    np.testing.assert_allclose(table[["x_mm", "y_mm", "z_mm"]], [[-54.0, 2.0, 84.5], [24.0, -8.0, 144.5]])
    empty = Case("e", case.pet, case.ct, np.zeros(SHAPE, np.uint8), case.affine)
    assert lesion_table(empty).empty


def test_build_layers_rejects_bad_input() -> None:
    case, probs = make_case()
    with pytest.raises(ValueError, match=r"probs: expected the case shape \(48, 32, 64\)"):
        build_layers(case, probs=probs[:, :, :10])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        build_layers(case, probs=probs * 2)
    with pytest.raises(ValueError, match="binary"):
        build_layers(case, pred=case.label * 3)
    with pytest.raises(ValueError, match="no ground truth"):
        build_layers(Case("n", case.pet, case.ct, None, case.affine), probs=probs)
    with pytest.raises(TypeError, match="Case"):
        build_layers(case.pet)  # type: ignore[arg-type]


def test_resolve_case_paths_in_every_layout(tmp_path: Path) -> None:
    case, _ = make_case()
    for layout in ("nnunet", "flat", "autopet"):
        root = tmp_path / layout
        written = write_case(case, root, layout=layout)
        found = resolve_case_paths(case.case_id, data_dir=root)
        assert found == written
    assert resolve_case_paths(tmp_path / "autopet" / case.case_id / case.case_id) == write_case(
        case, tmp_path / "autopet", layout="autopet"
    )
    assert resolve_case_paths(tmp_path / "flat")["pet"] == tmp_path / "flat" / f"{case.case_id}_pet.nii.gz"
    with pytest.raises(FileNotFoundError, match="No case found for 'nope'"):
        resolve_case_paths("nope", data_dir=tmp_path / "nnunet")


def test_load_target_reads_a_case_id_from_disk(tmp_path: Path) -> None:
    pytest.importorskip("pcatools.data.io", reason="pcatools.data.io (load_case) is not in this checkout yet")
    from pcatools.viewer import load_target

    case, _ = make_case()
    write_case(case, tmp_path, layout="nnunet")
    loaded = load_target(case.case_id, data_dir=tmp_path)
    assert loaded.case_id == case.case_id
    np.testing.assert_allclose(loaded.spacing, SPACING)
    np.testing.assert_array_equal(loaded.label, case.label)
    np.testing.assert_allclose(loaded.pet, case.pet)
    assert load_target(loaded) is loaded


def test_view_command_reports_a_missing_case(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pcatools.cli import app

    result = CliRunner().invoke(app, ["view", "nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "No case found for 'nope'" in result.output


def test_view_command_help() -> None:
    from typer.testing import CliRunner

    from pcatools.cli import app

    result = CliRunner().invoke(app, ["view", "--help"])
    assert result.exit_code == 0, result.output
    for text in ("napari", "--data-dir", "--pred", "--probs", "--bin-width"):
        assert text in result.output


# --------------------------------------------------------------------------- napari under Xvfb


@pytest.fixture(scope="module")
def xvfb(xvfb_display: str | None) -> str:
    """The session's Xvfb display (``tests/conftest.py``); skips where there is none."""
    pytest.importorskip("napari", reason="napari is not installed (pip install 'pcatools[viewer]')")
    if xvfb_display is None:
        pytest.skip(
            "Xvfb or PyQt6 is not installed (run scripts/install_system_deps.sh); napari needs an X server"
        )
    return xvfb_display


@pytest.fixture(scope="module")
def opened(xvfb: str) -> Iterator[dict[str, Any]]:
    """One napari viewer opened by ``view_case`` (show=False), shared by the GUI tests."""
    from pcatools.viewer import view_case

    case, probs = make_case()
    pred = case.label.copy()
    pred[FP_BLOB] = 1
    viewer = view_case(case, pred={"prediction": pred}, probs=probs, show=False, block=False)
    viewer.window.resize(1100, 700)
    yield {"viewer": viewer, "case": case, "probs": probs}
    viewer.close()


@pytest.mark.gui
@pytest.mark.xdist_group("napari")
def test_view_case_layers_in_napari(opened: dict[str, Any]) -> None:
    from napari.layers import Image, Labels

    viewer = opened["viewer"]
    names = [layer.name for layer in viewer.layers]
    assert names == ["CT", "PET (SUV)", "ground truth", "prediction", *L1_LAYER_NAMES]
    types = {layer.name: type(layer) for layer in viewer.layers}
    assert types["CT"] is Image and types["PET (SUV)"] is Image and types["L1 weights"] is Image
    assert (
        types["ground truth"] is Labels and types["prediction"] is Labels and types["L1 bin index"] is Labels
    )
    for layer in viewer.layers:
        np.testing.assert_allclose(layer.scale, SPACING)
        np.testing.assert_allclose(layer.translate, ORIGIN)
        if isinstance(layer, Labels):
            assert layer.data.dtype == np.uint8
    # world extent in mm: origin to origin + shape * spacing
    np.testing.assert_allclose(
        viewer.layers["PET (SUV)"].extent.world[1], np.add(ORIGIN, np.multiply(SHAPE, SPACING)) - SPACING
    )
    assert set(viewer.window.dock_widgets) >= {"Lesions (2)", "L1 bin width"}


@pytest.mark.gui
@pytest.mark.xdist_group("napari")
def test_lesion_dock_click_jumps_to_the_lesion(opened: dict[str, Any]) -> None:
    viewer = opened["viewer"]
    table = viewer.window.dock_widgets["Lesions (2)"]
    assert table.rowCount() == 2 and table.item(1, 2).text() == "8.00"
    table.cellClicked.emit(1, 0)  # the click handler, as Qt calls it
    expected = (24.0, -8.0, 144.5)  # centroid of lesion 2 in mm
    slider_axis = viewer.dims.not_displayed[0]
    assert slider_axis == 1  # coronal: slices along y
    assert abs(viewer.dims.point[1] - expected[1]) <= SPACING[1] / 2
    center = viewer.scene.camera.center if hasattr(viewer, "scene") else viewer.camera.center
    np.testing.assert_allclose(center[-2:], [expected[d] for d in viewer.dims.displayed])
    table.cellClicked.emit(0, 0)
    assert abs(viewer.dims.point[1] - 2.0) <= SPACING[1] / 2


@pytest.mark.gui
@pytest.mark.xdist_group("napari")
def test_bin_width_slider_recomputes_the_l1_layers(opened: dict[str, Any]) -> None:
    viewer, case, probs = opened["viewer"], opened["case"], opened["probs"]
    widget = viewer.window.dock_widgets["L1 bin width"]  # the magicgui FunctionGui
    before = viewer.layers["L1 weights"].data.copy()
    widget(bin_width=0.25)
    expected = l1_layers(case.label, probs, 0.25)
    np.testing.assert_array_equal(viewer.layers["L1 bin index"].data, expected["bins"])
    np.testing.assert_allclose(viewer.layers["L1 weights"].data, expected["weights"])
    assert not np.allclose(before, viewer.layers["L1 weights"].data)
    assert viewer.layers["L1 weights"].metadata["bin_width"] == 0.25
    widget(bin_width=0.1)
    np.testing.assert_allclose(viewer.layers["L1 weights"].data, before)


@pytest.mark.gui
@pytest.mark.xdist_group("napari")
def test_screenshot_is_not_blank_and_pet_is_bright(opened: dict[str, Any], repo_root: Path) -> None:
    from napari.utils.colormaps import ensure_colormap

    viewer = opened["viewer"]
    # A never-shown vispy canvas renders black under Xvfb/Mesa (measured: pixel std 0), so the
    # window is shown on the virtual display before the screenshots.
    viewer.window.show()
    viewer.dims.set_point(1, 2.0)  # the coronal slice through lesion 1 (SUV 12, window 0-10)
    viewer.reset_view()
    for name in ("ground truth", "prediction"):
        viewer.layers[name].visible = False
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    assert shot.std() > 20, "screenshot is (nearly) uniform"
    hot_top = (np.asarray(ensure_colormap("hot").map(np.array([1.0])))[0, :3] * 255).astype(int)
    assert hot_top.tolist() == [255, 255, 255]
    bright = (shot.min(axis=-1) >= 250).sum()  # SUV above the window: white in the hot colormap
    viewer.layers["PET (SUV)"].visible = False
    shot_ct = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    viewer.layers["PET (SUV)"].visible = True
    assert bright > 50, f"no hot PET pixels in the screenshot ({bright})"
    assert (shot_ct.min(axis=-1) >= 250).sum() == 0  # the CT alone (40 HU, window -160..240) is grey
    for name in ("ground truth", "prediction"):
        viewer.layers[name].visible = True
    if os.environ.get("PCATOOLS_SAVE_SCREENSHOT") == "1":
        _save_docs_screenshot(viewer, repo_root / "docs" / "figures" / "viewer.png")


def _save_docs_screenshot(viewer: Any, out: Path) -> None:
    """The README's picture: PET/CT, the ground truth outlined, the L1 bins of the probability map."""
    from PIL import Image as PILImage

    viewer.window.resize(1250, 720)
    viewer.layers["prediction"].visible = False
    viewer.layers["ground truth"].contour = 1
    viewer.layers["L1 bin index"].visible = True
    viewer.layers.selection.active = viewer.layers["L1 bin index"]
    viewer.window.dock_widgets["Lesions (2)"].cellClicked.emit(0, 0)
    viewer.reset_view()
    img = PILImage.fromarray(viewer.screenshot(canvas_only=False, flash=False)).convert("RGB")
    img.thumbnail((1000, 1000))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=128).save(out, optimize=True)
    viewer.layers["prediction"].visible = True
    viewer.layers["ground truth"].contour = 0
    viewer.layers["L1 bin index"].visible = False
