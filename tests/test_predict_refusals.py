"""What ``pcatools predict`` and :func:`pcatools.inference.predict_manifest` refuse, and how (issue 15,
items 9, 10 and 12, the prediction side).

Each test builds the bad input (a second checkpoint into a folder of the first one's masks, other
options, a touched PET, a NaN in a PET, a truncated file, a checkpoint whose config does not fit its
weights, a full disk, a bad option), runs the command line (or the library) and checks the exit
code and the one-line message. The cohort is 2 cases of 24^3 voxels at 8 mm, the network a 4-filter
SegResNet with random weights.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from pcatools.data.transforms import eval_transforms
from pcatools.inference import (
    PROVENANCE_NAME,
    PredictionMismatchError,
    PredictionWriteError,
    file_sha256,
    load_model,
    predict_case,
    predict_manifest,
)
from pcatools.models import MODEL_NAMES, build_model, network_class
from pcatools.training import SlidingWindow, save_checkpoint
from tests.test_training import tiny_cohort
from tests.test_training_refusals import _nan_pet, _truncate, error_line, invoke

MASKS = ["c00.nii.gz", "c01.nii.gz"]


def make_checkpoint(path: Path, seed: int, **config: Any) -> Path:
    """A ``best.pt`` of a 4-filter SegResNet with weights drawn from ``seed``; ``config`` entries replace the stored ones."""
    torch.manual_seed(seed)
    net = build_model("segresnet", init_filters=4)
    stored = {
        "model": "segresnet",
        "model_overrides": {"init_filters": 4},
        "in_channels": 2,
        "out_channels": 2,
        "spacing": (8.0, 8.0, 8.0),
        "patch_size": (32, 32, 32),
        "overlap": 0.25,
        "sw_mode": "gaussian",
        "sw_batch_size": 2,
        "transform_overrides": {},
        **config,
    }
    return save_checkpoint({"kind": "best", "config": stored, "model": net.state_dict(), "epoch": 1}, path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-case manifest, checkpoints A and B (other weights), and A's masks of both cases."""
    root = tmp_path_factory.mktemp("predict")
    table = tiny_cohort(root / "data", n=2, n_val=0, size=24, spacing=8.0)
    table.to_csv(root / "cases.csv", index=False)
    a = make_checkpoint(root / "a" / "best.pt", seed=0)
    b = make_checkpoint(root / "b" / "best.pt", seed=1)
    result = invoke("predict", a, root / "cases.csv", root / "pred_a", "--device", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    return {"root": root, "csv": root / "cases.csv", "a": a, "b": b, "pred_a": root / "pred_a"}


@pytest.fixture()
def pred(setup: dict[str, Path], tmp_path: Path) -> Path:
    """A copy of A's prediction folder this test may change."""
    shutil.copytree(setup["pred_a"], tmp_path / "pred")
    return tmp_path / "pred"


def masks_of(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in MASKS}


def predict_args(checkpoint: Path, csv: Path, out: Path, *extra: str) -> list[Any]:
    return ["predict", checkpoint, csv, out, "--device", "cpu", "--no-progress", *extra]


# --------------------------------------------------------------------------------------------------
# 10. masks are reused only when the same checkpoint made them with the same options
# --------------------------------------------------------------------------------------------------


def test_second_checkpoint_into_the_first_ones_folder_is_refused_until_overwrite(
    setup: dict[str, Path], pred: Path
) -> None:
    before = masks_of(pred)
    same = invoke(*predict_args(setup["a"], setup["csv"], pred))
    assert same.exit_code == 0, same.output
    assert same.output.splitlines()[0] == "reused 2 masks made by the same checkpoint and options"
    assert masks_of(pred) == before

    refused = invoke(*predict_args(setup["b"], setup["csv"], pred))
    assert refused.exit_code == 1
    assert error_line(refused) == (
        f"error: prediction folder {pred}: 2 of the 2 masks to write exist and were not made by checkpoint "
        f"{setup['b']} with these options and input files: 2 by another checkpoint (c00, c01); pass "
        f"overwrite=True (pcatools predict --overwrite) to replace them, or predict into another folder"
    )
    assert masks_of(pred) == before  # nothing replaced

    replaced = invoke(*predict_args(setup["b"], setup["csv"], pred, "--overwrite"))
    assert replaced.exit_code == 0, replaced.output
    assert "reused" not in replaced.output
    model, _ = load_model(setup["b"], device="cpu")
    table = pd.read_csv(setup["csv"], dtype={"case_id": str})
    for row in table.to_dict("records"):  # B's masks now, not A's
        tf = eval_transforms(spacing=(8.0, 8.0, 8.0))
        expected = predict_case(model, row, tf, SlidingWindow((32, 32, 32), sw_batch_size=2), device="cpu")
        written = nib.load(pred / f"{row['case_id']}.nii.gz")
        assert isinstance(written, nib.Nifti1Image)
        np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(expected.dataobj))
    records = json.loads((pred / PROVENANCE_NAME).read_text())["masks"]
    assert {r["checkpoint_sha256"] for r in records.values()} == {file_sha256(setup["b"])}
    pet = records["c00"]["pet"]
    assert (
        pet["path"] == table["pet"][0] and (pred / pet["relative"]).resolve() == Path(pet["path"]).resolve()
    )

    # the same weights under another name are the same checkpoint
    copy = shutil.copy2(setup["b"], pred.parent / "copy_of_b.pt")
    again = invoke(*predict_args(Path(copy), setup["csv"], pred))
    assert again.exit_code == 0 and "reused 2 masks" in again.output


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--overlap", "0.5"], "with overlap 0.25"),
        (["--mode", "constant"], "with mode 'gaussian'"),
        (["--roi-size", "16"], "with roi_size [32, 32, 32]"),
        (["--save-probs"], "without probability maps (save_probs)"),
    ],
)
def test_other_options_are_refused(
    setup: dict[str, Path], pred: Path, options: list[str], reason: str
) -> None:
    result = invoke(*predict_args(setup["a"], setup["csv"], pred, *options))
    assert result.exit_code == 1
    line = error_line(result)
    assert f"input files: 2 {reason} (c00, c01); pass overwrite=True (pcatools predict --overwrite)" in line


def test_images_and_masks_copied_together_are_still_the_same(setup: dict[str, Path], tmp_path: Path) -> None:
    """A study folder holds its images and masks; a copy of it (times kept) reuses its masks."""
    shutil.copytree(setup["root"] / "data", tmp_path / "data")
    shutil.copytree(setup["pred_a"], tmp_path / "pred")
    table = pd.read_csv(setup["csv"])
    for col in ("ct", "pet", "label"):
        table[col] = [str(tmp_path / Path(p).relative_to(setup["root"])) for p in table[col]]
    table.to_csv(tmp_path / "cases.csv", index=False)
    result = invoke(*predict_args(setup["a"], tmp_path / "cases.csv", tmp_path / "pred"))
    assert result.exit_code == 0 and "reused 2 masks" in result.output


def test_another_input_file_or_no_record_is_refused(setup: dict[str, Path], pred: Path) -> None:
    pet = Path(pd.read_csv(setup["csv"])["pet"][1])
    stat = pet.stat()
    os.utime(pet, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the PET was rewritten since
    try:
        result = invoke(*predict_args(setup["a"], setup["csv"], pred))
    finally:
        os.utime(pet, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert result.exit_code == 1
    assert ": 1 from another PET file (path, size or time) (c01); pass" in error_line(result)

    (pred / PROVENANCE_NAME).unlink()  # masks of an older pcatools, or of another tool
    unknown = invoke(*predict_args(setup["a"], setup["csv"], pred))
    assert unknown.exit_code == 1
    assert ": 2 of unknown origin (no record in provenance.json) (c00, c01); pass" in error_line(unknown)


def test_masks_made_with_probability_maps_serve_a_request_without(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "pred"
    assert invoke(*predict_args(setup["a"], setup["csv"], out, "--save-probs")).exit_code == 0
    plain = invoke(*predict_args(setup["a"], setup["csv"], out))
    assert plain.exit_code == 0 and "reused 2 masks" in plain.output


def test_an_interrupted_run_continues_and_a_study_rerun_reuses(
    setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pcatools.inference as inference
    from pcatools.study import get_profile, predict_grid

    real = inference.predict_case
    calls: list[str] = []

    def crash_on_second(model: Any, row: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(row["case_id"]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(model, row, *args, **kwargs)

    monkeypatch.setattr(inference, "predict_case", crash_on_second)
    out = tmp_path / "pred"
    with pytest.raises(KeyboardInterrupt):
        predict_manifest(setup["a"], setup["csv"], out, device="cpu", progress=False)
    assert sorted(json.loads((out / PROVENANCE_NAME).read_text())["masks"]) == ["c00"]
    monkeypatch.setattr(inference, "predict_case", real)
    result = predict_manifest(setup["a"], setup["csv"], out, device="cpu", progress=False)
    assert result.attrs == {"reused": 1, "predicted": 1}

    # pcatools.study re-runs predict_grid on its own folders: the same checkpoints reuse every mask
    split = pd.read_csv(setup["csv"], dtype={"case_id": str}).assign(split="test")
    profile = get_profile("ci", roi_size=(32, 32, 32))
    predict_grid(tmp_path / "study", split, {"segresnet__dice": setup["a"]}, profile, progress=False)
    calls.clear()
    monkeypatch.setattr(inference, "predict_case", crash_on_second)
    preds = predict_grid(tmp_path / "study", split, {"segresnet__dice": setup["a"]}, profile, progress=False)
    assert calls == [] and len(preds) == 2


def test_library_error_names_each_difference(setup: dict[str, Path], pred: Path) -> None:
    with pytest.raises(PredictionMismatchError) as info:
        predict_manifest(setup["a"], setup["csv"], pred, overlap=0.5, device="cpu", progress=False)
    assert info.value.out_dir == pred and isinstance(info.value, ValueError)
    assert info.value.differences == {"c00": "with overlap 0.25", "c01": "with overlap 0.25"}


# --------------------------------------------------------------------------------------------------
# 9. the cases to predict are checked first
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "source"),
    [(_nan_pet, "manifest"), (_truncate, "manifest"), (_nan_pet, "folder")],
)
def test_a_bad_case_is_one_line_naming_it_before_anything_is_predicted(
    setup: dict[str, Path], tmp_path: Path, damage: Any, source: str
) -> None:
    shutil.copytree(setup["root"] / "data", tmp_path / "data")
    pet = tmp_path / "data" / "imagesTr" / "c01_0001.nii.gz"
    found = damage(pet)
    table = pd.read_csv(setup["csv"])
    for col in ("ct", "pet", "label"):
        table[col] = [str(tmp_path / Path(p).relative_to(setup["root"])) for p in table[col]]
    table.to_csv(tmp_path / "cases.csv", index=False)
    given = tmp_path / "cases.csv" if source == "manifest" else tmp_path / "data"
    result = invoke(*predict_args(setup["a"], given, tmp_path / "pred"))
    assert result.exit_code == 1
    line = error_line(result)
    # discover_cases names the file (which holds the case id), check_cases the case too
    assert f"{'' if source == 'folder' else 'case ' + repr('c01') + ': '}PET {pet}: " in line, line
    assert found.split(".*")[0] in line, line
    assert not list((tmp_path / "pred").glob("*.nii.gz"))  # not even the good case's mask


def test_a_missing_manifest_or_image_is_one_line(setup: dict[str, Path], tmp_path: Path) -> None:
    missing = invoke(*predict_args(setup["a"], tmp_path / "nope.csv", tmp_path / "pred"))
    assert missing.exit_code == 1
    assert error_line(missing).startswith(f"error: manifest {tmp_path / 'nope.csv'}: file not found")
    table = pd.read_csv(setup["csv"])
    table.loc[0, "ct"] = str(tmp_path / "gone.nii.gz")
    table.to_csv(tmp_path / "cases.csv", index=False)
    gone = invoke(*predict_args(setup["a"], tmp_path / "cases.csv", tmp_path / "pred"))
    assert gone.exit_code == 1
    assert error_line(gone) == (
        f"error: manifest: 1 ct file(s) not found, first: case 'c00': {tmp_path / 'gone.nii.gz'}"
    )


# --------------------------------------------------------------------------------------------------
# 12. a checkpoint whose config does not fit its weights; a full disk; bad options
# --------------------------------------------------------------------------------------------------


def test_config_that_does_not_fit_the_weights(setup: dict[str, Path], tmp_path: Path) -> None:
    wider = make_checkpoint(tmp_path / "wider.pt", seed=0, model_overrides={"init_filters": 8})
    result = invoke(*predict_args(wider, setup["csv"], tmp_path / "pred"))
    assert result.exit_code == 1
    assert error_line(result) == (
        f"error: checkpoint {wider}: its weights do not fit the network its config describes: parameter "
        f"convInit.conv.weight has shape (4, 2, 3, 3, 3) in the checkpoint and (8, 2, 3, 3, 3) in the network "
        f"(config: model 'segresnet', model_overrides {{'init_filters': 8}}, in_channels 2, out_channels 2)"
    )
    other = make_checkpoint(tmp_path / "other.pt", seed=0, model="attention_unet", model_overrides={})
    line = error_line(invoke(*predict_args(other, setup["csv"], tmp_path / "pred")))
    assert line.startswith(
        f"error: checkpoint {other}: its weights do not fit the network its config describes: "
    )
    assert (
        "of the network is not in the checkpoint (config: model 'attention_unet', model_overrides {}" in line
    )
    unknown = make_checkpoint(tmp_path / "unknown.pt", seed=0, model_overrides={"init_filter": 4})
    line = error_line(invoke(*predict_args(unknown, setup["csv"], tmp_path / "pred")))
    assert line.startswith(
        f"error: checkpoint {unknown}: its config's model settings (model 'segresnet', model_overrides "
        "{'init_filter': 4}, in_channels 2, out_channels 2) do not build a network (TypeError: "
    )
    assert not (tmp_path / "pred").exists()


def test_disk_full_while_writing_masks(
    setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = nib.save
    saved: list[str] = []

    def full_after_one(img: Any, filename: Any) -> None:
        if saved:
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        real_save(img, filename)
        saved.append(str(filename))

    monkeypatch.setattr(nib, "save", full_after_one)
    out = tmp_path / "pred"
    result = invoke(*predict_args(setup["a"], setup["csv"], out))
    assert result.exit_code == 1
    assert error_line(result) == (
        f"error: cannot write {out / 'c01.nii.gz'}: disk full or not writable (OSError: [Errno 28] No space "
        f"left on device); the masks written before it are complete and recorded in provenance.json, a re-run "
        f"continues"
    )
    assert sorted(p.name for p in out.iterdir()) == ["c00.nii.gz", PROVENANCE_NAME]  # no partial file
    monkeypatch.setattr(nib, "save", real_save)
    rerun = invoke(*predict_args(setup["a"], setup["csv"], out))
    assert rerun.exit_code == 0 and "reused 1 masks" in rerun.output
    assert issubclass(PredictionWriteError, OSError)  # what the library raises: a failed write


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--overlap", "1.5"], "error: overlap must be in [0, 1), found 1.5"),
        (["--mode", "linear"], "error: mode must be one of ('gaussian', 'constant'), found 'linear'"),
        (["--roi-size", "1,2"], "error: roi_size: expected 1 or 3 numbers, found '1,2'"),
        (["--sw-batch-size", "0"], "error: sw_batch_size must be >= 1, found 0"),
        (["--device", "gpu"], "error: device: expected cpu, cuda or cuda:N, found 'gpu'"),
    ],
)
def test_bad_options_exit_2(setup: dict[str, Path], tmp_path: Path, options: list[str], message: str) -> None:
    args = predict_args(setup["a"], setup["csv"], tmp_path / "pred")
    args.remove("--device")
    args.remove("cpu")
    result = invoke(*args, *options)
    assert result.exit_code == 2
    assert error_line(result) == message
    assert not (tmp_path / "pred").exists()


def test_split_without_rows_is_one_line(setup: dict[str, Path], tmp_path: Path) -> None:
    result = invoke(*predict_args(setup["a"], setup["csv"], tmp_path / "pred", "--split", "test"))
    assert result.exit_code == 1
    assert (
        error_line(result)
        == f"error: --split test: expected rows with split == 'test' in {setup['csv']}, found none"
    )


def test_network_class_is_the_class_build_model_makes() -> None:
    small = {"segresnet": {"init_filters": 4}}
    for name in MODEL_NAMES:
        net = build_model(name, **small.get(name, {"channels": (4, 8, 16)}))
        assert type(net) is network_class(name)
