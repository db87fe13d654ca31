"""pcatools.viewer: napari layers in physical mm, L1 layers with known weights, lesion dock, slider.

The GUI tests run napari (PyQt6) on a private Xvfb display started here (``Xvfb -displayfd``
picks a free display); they skip, saying why, where Xvfb is not installed
(``scripts/install_system_deps.sh`` installs it). The docs' napari picture is written by the
gallery's :func:`pcatools.figures.screenshots.save_viewer_screenshot`, which the screenshot test
calls too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pcatools.data.case import Case, write_case
from pcatools.figures.screenshots import save_viewer_screenshot
from pcatools.viewer import (
    L1_LAYER_NAMES,
    NO_DISPLAY_HINT,
    NoDisplayError,
    build_layers,
    display_problem,
    l1_layers,
    lesion_slice,
    lesion_table,
    name_predictions,
    require_display,
    resolve_case_paths,
    static_layers_figure,
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


SUVMAX_A = (11, 15, 21)  # inside lesion A


def two_predictions(case: Case) -> dict[str, np.ndarray]:
    """Lesion A gets a single SUVmax voxel; prediction A covers it (and nothing of lesion B),
    prediction B covers all of lesion A but that voxel, and all of lesion B."""
    case.pet[SUVMAX_A] = 20.0
    a = np.zeros(SHAPE, np.uint8)
    a[SUVMAX_A] = 1
    b = case.label.copy()
    b[SUVMAX_A] = 0
    return {"A": a, "B": b}


def write_inputs(case: Case, probs: np.ndarray, preds: dict[str, np.ndarray], root: Path) -> dict[str, Path]:
    """The case in the nnU-Net layout under ``root/data``, each prediction as
    ``root/pred/<name>/<case_id>.nii.gz`` (as ``pcatools predict`` names them) and the
    probability map as ``root/probs.nii.gz``."""
    import nibabel as nib

    write_case(case, root / "data", layout="nnunet")
    out = {}
    for name, mask in preds.items():
        (root / "pred" / name).mkdir(parents=True, exist_ok=True)
        out[name] = root / "pred" / name / f"{case.case_id}.nii.gz"
        nib.save(nib.Nifti1Image(mask, case.affine), out[name])
    nib.save(nib.Nifti1Image(probs, case.affine), root / "probs.nii.gz")
    return out


def _no_display_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}


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


def test_docstring_examples() -> None:
    """tests/test_docs_examples.py leaves this module out (napari); its examples run here."""
    import doctest
    import importlib
    import pkgutil

    import pcatools.viewer

    results = [
        doctest.testmod(importlib.import_module(m.name), optionflags=doctest.NORMALIZE_WHITESPACE)
        for m in pkgutil.iter_modules(pcatools.viewer.__path__, "pcatools.viewer.")
    ]
    result = doctest.TestResults(sum(r.failed for r in results), sum(r.attempted for r in results))
    assert result.attempted > 0 and result.failed == 0


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

    result = CliRunner().invoke(app, ["view", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in ("napari", "--data-dir", "--pred", "--probs", "--bin-width", "--study", "--screenshot"):
        assert text in result.output
    assert "pip install 'pcatools[viewer]'" in result.output  # rich markup must not eat [viewer]


# --------------------------------------------------------------------------- no display


def test_display_problem_says_why() -> None:
    assert display_problem({}) == "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    # no X server listens on display 4093 (its socket would be /tmp/.X11-unix/X4093)
    assert not Path("/tmp/.X11-unix/X4093").exists()
    assert (
        display_problem({"DISPLAY": ":4093"})
        == "no usable display (the X server DISPLAY=:4093 is not reachable)"
    )
    assert "no Wayland socket 'nope'" in str(
        display_problem({"WAYLAND_DISPLAY": "nope", "XDG_RUNTIME_DIR": "/"})
    )
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None  # a headless Qt platform needs none
    with pytest.raises(NoDisplayError, match="xvfb-run -a pcatools view .*--screenshot"):
        require_display({})


def test_view_without_display_exits_2_with_a_one_line_message(tmp_path: Path) -> None:
    """Run as a process: without the check, Qt's xcb plugin aborts it (exit 134) on loading napari."""
    case, probs = make_case()
    write_inputs(case, probs, {}, tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "pcatools.cli", "view", case.case_id, "--data-dir", str(tmp_path / "data")],
        env=_no_display_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines == [
        f"pcatools view: no display (DISPLAY and WAYLAND_DISPLAY are unset); {NO_DISPLAY_HINT}"
    ], run.stderr
    # inputs are checked before the display: a missing case still says so (exit 1)
    missing = subprocess.run(
        [sys.executable, "-m", "pcatools.cli", "view", "nope", "--data-dir", str(tmp_path / "data")],
        env=_no_display_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "No case found for 'nope'" in missing.stderr


def test_static_layers_figure_draws_the_napari_layers() -> None:
    import io

    from PIL import Image as PILImage

    case, probs = make_case()
    assert lesion_slice(case) == 14  # y = 14 holds 16 voxels of lesion A and 12 of lesion B
    fig = static_layers_figure(case, probs=probs, bin_width=0.1)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["PET (SUV)", "ground truth", *L1_LAYER_NAMES]
    assert "coronal slice 14 (y = -4.0 mm)" in fig.get_suptitle()
    by_title = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    # the slices are the layers' data at y = 14, drawn x to the right and z up, in mm
    weights = by_title["L1 weights"].images[0]
    np.testing.assert_allclose(weights.get_array().T, l1_layers(case.label, probs)["weights"][:, 14, :])
    assert weights.get_extent() == [-102.0, 90.0, 18.5, 210.5]
    assert by_title["Delta |g - p|"].images[0].get_cmap().name == "magma"
    n_colourbars = sum(ax.get_label() == "<colorbar>" for ax in fig.axes)
    assert n_colourbars == 4  # PET, Delta, bins, weights
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    png = np.asarray(PILImage.open(buf).convert("RGB")).astype(int)
    assert png.std() > 20, "the figure is (nearly) blank"
    # predictions are drawn too, one panel each
    fig2 = static_layers_figure(case, pred=two_predictions(case), index=3)
    assert [ax.get_title() for ax in fig2.axes if ax.get_title()] == ["PET (SUV)", "ground truth", "A", "B"]
    with pytest.raises(ValueError, match=r"slice: expected an index in \[0, 31\]"):
        static_layers_figure(case, index=40)


@pytest.fixture(scope="module")
def fake_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study run folder with what ``load_study`` reads (no training: an untrained checkpoint)
    and two models' predictions of one test case, in seconds instead of a ``ci`` study's minutes."""
    import nibabel as nib
    import pandas as pd
    import torch

    from pcatools.models import build_model
    from pcatools.training import save_checkpoint
    from tests.test_training import tiny_cohort

    run = tmp_path_factory.mktemp("fake_study") / "run"
    manifest = tiny_cohort(run / "data", n=3, n_val=1)
    manifest.loc[2, "split"] = "test"
    manifest.to_csv(run / "split.csv", index=False)
    torch.manual_seed(0)
    config = {
        "model": "segresnet",
        "model_overrides": {"init_filters": 4},
        "in_channels": 2,
        "out_channels": 2,
        "spacing": (4.0, 4.0, 4.0),
        "patch_size": (16, 16, 16),
        "batch_size": 2,
        "transform_overrides": {},
    }
    net = build_model("segresnet", init_filters=4)
    save_checkpoint(
        {"kind": "best", "config": config, "model": net.state_dict(), "epoch": 1},
        run / "models" / "segresnet__l1dfl" / "best.pt",
    )
    test = manifest.iloc[2]
    label = np.asarray(nib.load(test["label"]).dataobj)
    affine = nib.load(test["pet"]).affine
    rows = []
    # the third is how `pcatools evaluate` lists a model named without network/loss
    for network, loss, mask in (
        ("segresnet", "dice", label),
        ("segresnet", "l1dfl", np.zeros_like(label)),
        ("", "mine", label),
    ):
        path = run / "predictions" / f"{network}__{loss}" / f"{test['case_id']}.nii.gz"
        path.parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), path)
        rows.append({**test.to_dict(), "pred": str(path), "network": network, "loss": loss})
    (run / "results").mkdir()
    pd.DataFrame(rows).to_csv(run / "results" / "predictions.csv", index=False)
    for name in ("cases", "lesions", "table1"):
        pd.DataFrame({"case_id": [test["case_id"]]}).to_csv(run / "results" / f"{name}.csv", index=False)
    return run


def test_study_case_gives_every_model_of_a_case(fake_study: Path) -> None:
    from pcatools.viewer import study_case

    paths, preds = study_case(fake_study, "c02")
    assert paths == {
        "ct": fake_study / "data" / "imagesTr" / "c02_0000.nii.gz",
        "pet": fake_study / "data" / "imagesTr" / "c02_0001.nii.gz",
        "label": fake_study / "data" / "labelsTr" / "c02.nii.gz",
    }
    assert preds == {
        "segresnet__dice": fake_study / "predictions" / "segresnet__dice" / "c02.nii.gz",
        "segresnet__l1dfl": fake_study / "predictions" / "segresnet__l1dfl" / "c02.nii.gz",
        "mine": fake_study / "predictions" / "__mine" / "c02.nii.gz",
    }
    with pytest.raises(ValueError, match=r"predictions.csv: expected a case id among \['c02'\], found 'c00'"):
        study_case(fake_study, "c00")


def test_study_case_names_each_seed_as_its_cell_folder(fake_study: Path, tmp_path: Path) -> None:
    """With several training seeds each seed's mask is a layer, named as its cell's folder."""
    import shutil

    import pandas as pd

    from pcatools.viewer import study_case

    run = tmp_path / "run"
    shutil.copytree(fake_study, run)
    table = pd.read_csv(run / "results" / "predictions.csv")
    dice = table[table["loss"] == "dice"]
    seeded = pd.concat([dice.assign(seed=3), dice.assign(seed=5)], ignore_index=True)
    seeded.to_csv(run / "results" / "predictions.csv", index=False)
    _, preds = study_case(run, "c02")
    assert list(preds) == ["segresnet__dice", "segresnet__dice__seed5"]


@pytest.mark.slow
def test_notebook_02_without_display_draws_static_layers(
    fake_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel has no DISPLAY: napari would abort it; the notebook draws the layers with matplotlib."""
    import nbformat
    import papermill as pm

    from tests.conftest import REPO

    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)  # the kernel inherits this environment
    out = tmp_path / "02.out.ipynb"
    pm.execute_notebook(
        str(REPO / "notebooks" / "02_l1_weights.ipynb"),
        str(out),
        parameters={"run_dir": str(fake_study), "show_napari": True},
        cwd=str(tmp_path),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=120,
    )
    outputs = nbformat.read(out, as_version=4).cells[-1].outputs
    text = "".join(o.get("text", "") for o in outputs)
    assert "No napari window (no display (DISPLAY and WAYLAND_DISPLAY are unset))" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "no static figure shown"


# --------------------------------------------------------------------------- several predictions


def test_name_predictions(tmp_path: Path) -> None:
    case, probs = make_case()
    paths = write_inputs(case, probs, two_predictions(case), tmp_path)
    named = name_predictions([f"first={paths['A']}", str(paths["B"])])
    assert named == {"first": paths["A"], "B": paths["B"]}  # a bare path: named after its folder
    with pytest.raises(
        ValueError, match=r"two predictions named 'A' \(.*A=.* and .*\): name them with NAME=PATH"
    ):
        name_predictions([f"A={paths['B']}", str(paths["A"])])
    with pytest.raises(ValueError, match="the name 'CT' is taken by a fixed layer"):
        name_predictions([f"CT={paths['A']}"])
    with pytest.raises(FileNotFoundError, match="expected a NIfTI mask, found no file .*nope.nii.gz"):
        name_predictions([f"A={tmp_path / 'nope.nii.gz'}"])


def test_build_layers_gives_each_prediction_its_name_and_colour() -> None:
    case, _ = make_case()
    preds = two_predictions(case)
    layers = {kw["name"]: (data, kw) for data, kw, _ in build_layers(case, pred=preds)}
    colours = [layers[name][1]["colormap"][1] for name in ("A", "B")]
    assert len(set(colours)) == 2 and "#00c000" not in colours  # distinct, and not the ground truth's green
    np.testing.assert_array_equal(layers["B"][0], preds["B"])


def test_lesion_table_says_which_prediction_detects_each_lesion() -> None:
    case, _ = make_case()
    table = lesion_table(case, two_predictions(case))
    # A covers lesion 1's SUVmax voxel only; B overlaps lesion 1 but misses that voxel, covers lesion 2
    assert table["detected: A"].tolist() == [True, False]
    assert table["detected: B"].tolist() == [False, True]
    np.testing.assert_allclose(table["suvmax"], [20.0, 8.0])


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
def test_screenshot_is_not_blank_and_pet_is_bright(opened: dict[str, Any], tmp_path: Path) -> None:
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
    # the gallery's viewer.png of this viewer: thumbnailed to 1000 px, layers as they were
    visible = {layer.name: layer.visible for layer in viewer.layers}
    save_viewer_screenshot(viewer, tmp_path / "viewer.png")
    assert [p.name for p in tmp_path.iterdir()] == ["viewer.png"]
    from PIL import Image as PILImage

    assert max(PILImage.open(tmp_path / "viewer.png").size) == 1000
    assert {layer.name: layer.visible for layer in viewer.layers} == visible
    assert viewer.layers["ground truth"].contour == 0


def _run_view(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, Any]]:
    """``pcatools view ARGS`` in this process; returns the CLI result and what its viewer held
    (layer names, label colours, the lesion dock's table) before the command closed it."""
    from typer.testing import CliRunner

    import pcatools.viewer as pv
    from pcatools.cli import app

    seen: dict[str, Any] = {}
    real = pv.view_case

    def spy(*args: Any, **kwargs: Any) -> Any:
        viewer = real(*args, **kwargs)
        seen["names"] = [layer.name for layer in viewer.layers]
        seen["colours"] = {
            layer.name: tuple(np.round(layer.colormap.map(1)[:3], 3))
            for layer in viewer.layers
            if layer.name not in ("ground truth", "L1 bin index") and hasattr(layer, "get_color")
        }
        dock = next(w for name, w in viewer.window.dock_widgets.items() if name.startswith("Lesions"))
        seen["headers"] = [dock.horizontalHeaderItem(c).text() for c in range(dock.columnCount())]
        seen["cells"] = [
            [dock.item(r, c).text() for c in range(dock.columnCount())] for r in range(dock.rowCount())
        ]
        return viewer

    monkeypatch.setattr(pv, "view_case", spy)
    return CliRunner().invoke(app, ["view", *args]), seen


@pytest.mark.gui
@pytest.mark.xdist_group("napari")
def test_view_two_predictions_and_a_screenshot(
    xvfb: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image as PILImage

    from pcatools.viewer import SCREENSHOT_SIZE

    case, probs = make_case()
    paths = write_inputs(case, probs, two_predictions(case), tmp_path)
    shot = tmp_path / "shots" / "view.png"
    result, seen = _run_view(
        [
            case.case_id,
            "--data-dir",
            str(tmp_path / "data"),
            "--pred",
            f"A={paths['A']}",
            "--pred",
            f"B={paths['B']}",
            "--probs",
            str(tmp_path / "probs.nii.gz"),
            "--screenshot",
            str(shot),
        ],
        monkeypatch,
    )
    assert result.exit_code == 0, result.output
    assert seen["names"] == ["CT", "PET (SUV)", "ground truth", "A", "B", *L1_LAYER_NAMES]
    assert seen["colours"]["A"] != seen["colours"]["B"]
    assert seen["colours"]["A"] == (1.0, 0.125, 0.125)  # #ff2020
    assert seen["headers"][-2:] == ["detected by\nA", "detected by\nB"]
    assert [row[-2:] for row in seen["cells"]] == [["yes", "no"], ["no", "yes"]]
    img = np.asarray(PILImage.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == SCREENSHOT_SIZE[::-1]
    assert img.std() > 20, "screenshot is (nearly) uniform"
    # the canvas shows the body: the PET's hot colormap (red) added to the grey CT
    assert (img[..., 0] - img[..., 1] > 40).sum() > 50_000
    if os.environ.get("PCATOOLS_KEEP_SCREENSHOT"):
        PILImage.open(shot).save(os.environ["PCATOOLS_KEEP_SCREENSHOT"])


@pytest.mark.gui
@pytest.mark.xdist_group("napari")
def test_view_study_opens_every_model(
    xvfb: str, fake_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, seen = _run_view(
        ["--study", str(fake_study), "c02", "--screenshot", str(tmp_path / "study.png")], monkeypatch
    )
    assert result.exit_code == 0, result.output
    models = ["segresnet__dice", "segresnet__l1dfl", "mine"]
    assert seen["names"] == ["CT", "PET (SUV)", "ground truth", *models]
    assert len(set(seen["colours"][m] for m in models)) == 3
    # the dice model's and "mine"'s masks are the ground truth, the l1dfl model's is empty
    assert seen["headers"][-3:] == [f"detected by\n{m}" for m in models]
    assert [row[-3:] for row in seen["cells"]] == [["yes", "no", "yes"]]
    bad, _ = _run_view(["--study", str(fake_study), "c00"], monkeypatch)
    assert bad.exit_code == 1 and "expected a case id among ['c02'], found 'c00'" in bad.output


@pytest.mark.gui
@pytest.mark.xdist_group("napari")
def test_weights_view_screenshot_has_the_colour_bar_and_the_gamma_dock(xvfb: str, tmp_path: Path) -> None:
    """``view_case(weights=True, screenshot=...)`` (notebook 02's README picture): the weights layer
    shown with its colour bar, PET hidden, and the window's PNG holds the Gamma dock."""
    from napari.utils.colormaps import ensure_colormap
    from PIL import Image as PILImage

    from pcatools.viewer import SCREENSHOT_SIZE, view_case

    case, probs = make_case()
    with pytest.raises(ValueError, match="weights=True needs probs"):
        view_case(case, weights=True, show=False, block=False)
    out = tmp_path / "weights.png"
    viewer = view_case(case, probs=probs, weights=True, block=False, screenshot=out)
    try:
        weights = viewer.layers["L1 weights"]
        assert weights.visible and weights.colorbar.visible
        assert not viewer.layers["PET (SUV)"].visible and viewer.layers["CT"].visible
        assert "L1 bin width" in viewer.window.dock_widgets
        img = np.asarray(PILImage.open(out).convert("RGB")).astype(int)
        assert img.shape[:2] == SCREENSHOT_SIZE[::-1]
        # the colour bar's top is viridis' yellow end (253, 231, 37): present in the picture
        top = (np.asarray(ensure_colormap("viridis").map(np.array([1.0])))[0, :3] * 255).astype(int)
        assert (np.abs(img - top).max(axis=-1) <= 12).sum() > 20

        def yellow(shot: np.ndarray) -> int:
            return int((np.abs(shot[..., :3].astype(int) - top).max(axis=-1) <= 12).sum())

        with_bar = yellow(viewer.screenshot(canvas_only=True, flash=False))
        weights.colorbar.visible = False
        assert with_bar > yellow(viewer.screenshot(canvas_only=True, flash=False)) + 20  # the bar is drawn
    finally:
        viewer.close()


# --------------------------------------------------------------------------- any loss's weight layers


class TwoOnLesions:
    """A toy loss declaring voxel weights: 2.0 on every label voxel, 0.0 elsewhere (known values)."""

    def __call__(self, logits: Any, labels: Any) -> Any:
        return logits.sum() * 0.0

    def element_weights(self, logits: Any, labels: Any) -> Any:
        return 2.0 * (labels > 0).to(logits.dtype)  # (B, 1, *spatial)


@pytest.fixture
def toy_weighted_loss() -> Iterator[str]:
    from pcatools.loss_registry import register_loss, unregister_loss

    register_loss("two_on_lesions", TwoOnLesions, label="TWO", weights=True)
    yield "two_on_lesions"
    unregister_loss("two_on_lesions")


def test_weight_layer_of_any_registered_loss_declaring_weights(toy_weighted_loss: str) -> None:
    from pcatools.viewer import loss_weights, weighted_losses

    case, probs = make_case()
    assert weighted_losses() == ("l1dfl", toy_weighted_loss)  # asked of the registry
    layers = build_layers(case, probs=probs, weights_of=[toy_weighted_loss, "L1DFL"])
    names = [kw["name"] for _, kw, _ in layers]
    assert names == ["CT", "PET (SUV)", "ground truth", *L1_LAYER_NAMES, "TWO weights", "L1DFL weights"]
    by_name = {kw["name"]: (data, kw, kind) for data, kw, kind in layers}
    data, kw, kind = by_name["TWO weights"]
    assert kind == "image" and data.dtype == np.float32 and not kw["visible"]
    np.testing.assert_array_equal(data, 2.0 * (case.label > 0))
    assert kw["contrast_limits"] == (0.0, 2.0) and kw["metadata"]["loss"] == toy_weighted_loss
    # L1DFL's own element_weights (its two-channel histogram) equal the one-channel L1 layer
    np.testing.assert_allclose(
        by_name["L1DFL weights"][0], l1_layers(case.label, probs)["weights"], rtol=1e-5
    )
    np.testing.assert_allclose(
        loss_weights(case.label, probs, "l1dfl", bin_width=0.25),
        l1_layers(case.label, probs, 0.25)["weights"],
        rtol=1e-5,
    )
    fig = static_layers_figure(case, probs=probs, weights_of=[toy_weighted_loss])
    assert "TWO weights" in [ax.get_title() for ax in fig.axes]


def test_weight_layers_are_refused_for_a_loss_without_weights() -> None:
    case, probs = make_case()
    with pytest.raises(
        ValueError, match=r"loss 'dice' declares no voxel weights; losses with weights: \['l1dfl'\]"
    ):
        build_layers(case, probs=probs, weights_of=["DL"])
    with pytest.raises(ValueError, match="needs probs"):
        build_layers(case, weights_of=["l1dfl"])


def test_view_command_refuses_weights_of_a_loss_without_weights(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pcatools.cli import app

    case, probs = make_case()
    write_inputs(case, probs, {}, tmp_path)
    args = [
        "view",
        case.case_id,
        "--data-dir",
        str(tmp_path / "data"),
        "--probs",
        str(tmp_path / "probs.nii.gz"),
    ]
    result = CliRunner().invoke(app, [*args, "--weights-of", "focal"])
    assert result.exit_code == 1
    assert (
        "pcatools view: loss 'focal' declares no voxel weights; losses with weights: ['l1dfl']"
        in result.output
    )
    result = CliRunner().invoke(app, [*args[:4], "--weights-of", "l1dfl"])
    assert result.exit_code == 1 and "--weights-of l1dfl needs --probs" in result.output


@pytest.mark.gui
@pytest.mark.xdist_group("napari")
def test_loss_weight_layer_in_napari_follows_the_bin_width_slider(xvfb: str) -> None:
    from pcatools.viewer import view_case

    case, probs = make_case()
    viewer = view_case(case, probs=probs, weights_of=["l1dfl"], show=False, block=False)
    try:
        layer = viewer.layers["L1DFL weights"]
        np.testing.assert_allclose(layer.data, l1_layers(case.label, probs, 0.1)["weights"], rtol=1e-5)
        viewer.window.dock_widgets["L1 bin width"](bin_width=0.25)
        np.testing.assert_allclose(layer.data, l1_layers(case.label, probs, 0.25)["weights"], rtol=1e-5)
        assert layer.metadata["bin_width"] == 0.25
    finally:
        viewer.close()
