"""What ``pcatools train`` / ``study`` and :func:`pcatools.training.train` refuse, and how (issue 15, items 9, 11-13).

Each test builds the bad input (a damaged file of a tiny phantom cohort, a run folder without its
``last.pt``, a full disk, a broken config ...), runs the command line (or the library) and checks the
exit code and the one-line message. The cohort is 4 phantom cases at 8 mm, the network a 4-filter
SegResNet, and training runs 1-2 epochs of 1 step on the CPU.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from pcatools.cli import app
from pcatools.data.errors import DataError
from pcatools.data.manifest import read_manifest, write_manifest
from pcatools.training import TrainConfig, load_checkpoint, save_checkpoint, train
from pcatools.training.checkpoint import CheckpointError, CheckpointWriteError
from pcatools.training.run_files import RunBusyError, run_lock

TINY: dict[str, Any] = {
    "patch_size": (32, 32, 32),
    "spacing": (8.0, 8.0, 8.0),
    "batch_size": 1,
    "epochs": 3,
    "val_every": 1,
    "lr": 1e-3,
    "workers": 0,
    "max_steps_per_epoch": 1,
    "sw_batch_size": 2,
    "model_overrides": {"init_filters": 4},
}
RUN = {"progress": False, "device": "cpu"}  # train()'s run arguments; TINY holds the settings

TINY_CLI = [
    "--patch-size", "32", "--spacing", "8", "--batch-size", "1", "--val-every", "1", "--lr", "0.001",
    "--max-steps-per-epoch", "1", "--workers", "0", "--sw-batch-size", "2", "--device", "cpu",
    "--model-override", "init_filters=4", "--no-progress",
]  # fmt: skip


def invoke(*args: str | Path) -> Any:
    """``pcatools ARGS`` in this process; a traceback in the output fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def error_line(result: Any) -> str:
    """The command's output, which must be one ``error: ...`` line."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 phantom cases at 8 mm (nnU-Net layout): 3 train, 1 val."""
    from pcatools.data.phantom import make_cohort

    root = tmp_path_factory.mktemp("cohort") / "data"
    table = make_cohort(4, root, spacing=(8.0, 8.0, 8.0), workers=0, progress=False)
    table["split"] = ["train", "train", "train", "val"]
    write_manifest(table, root / "split.csv")
    return root


@pytest.fixture()
def data(cohort: Path, tmp_path: Path) -> Path:
    """A copy of the cohort this test may damage; returns its ``split.csv`` (paths relative to it)."""
    shutil.copytree(cohort, tmp_path / "data")
    return tmp_path / "data" / "split.csv"


@pytest.fixture(scope="module")
def two_epochs(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-epoch run stopped after 2: last.pt (epoch 2), last.prev.pt (epoch 1), best.pt, history.csv."""
    run = tmp_path_factory.mktemp("runs") / "run"
    train(cohort / "split.csv", run, TrainConfig(**TINY), max_epochs_this_call=2, **RUN)
    return run


@pytest.fixture()
def run_copy(two_epochs: Path, tmp_path: Path) -> Path:
    shutil.copytree(two_epochs, tmp_path / "run")
    return tmp_path / "run"


def case_file(split_csv: Path, case: int, role: str) -> Path:
    return Path(read_manifest(split_csv)[role].iloc[case])


# --------------------------------------------------------------------------------------------------
# 9. every entry point checks the cases up front and names the case and file
# --------------------------------------------------------------------------------------------------


def _shift_ct(path: Path) -> str:
    img = nib.load(path)
    affine = img.affine.copy()
    affine[0, 3] += 20.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine, img.header), path)
    return "do not share one voxel grid"


def _crop_ct(path: Path) -> str:
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :-1], img.affine, img.header), path)
    return r"do not share one voxel grid.*CT has shape \(62, 44, 119\)"


def _float_label(path: Path) -> str:
    img = nib.load(path)
    data = np.asarray(img.dataobj).astype(np.float32)
    data[data > 0] = 0.9999
    nib.save(nib.Nifti1Image(data, img.affine), path)
    return r"expected values 0 and 1 only, found other values \[0.9999\]"


def _nan_pet(path: Path) -> str:
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32).copy()
    data[10, 10, 10] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    return "expected finite SUV values, found 1 NaN and 0 inf voxels"


def _truncate(path: Path) -> str:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "cannot read the NIfTI file, it is truncated or corrupt"


DAMAGES = {
    "ct shifted 20 mm": ("ct", _shift_ct),
    "ct of another shape": ("ct", _crop_ct),
    "float label 0.9999": ("label", _float_label),
    "NaN in the PET": ("pet", _nan_pet),
    "truncated PET": ("pet", _truncate),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_train_manifest_checks_every_case(data: Path, tmp_path: Path, damage: str) -> None:
    role, damage_file = DAMAGES[damage]
    path = case_file(data, 1, role)
    found = damage_file(path)
    result = invoke("train", "--manifest", data, "--run-dir", tmp_path / "run", "--epochs", "1", *TINY_CLI)
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("error: case 'PSMA_0001': "), line
    assert str(path) in line
    assert re.search(found, line), line
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_library_train_and_data_dir_run_the_same_checks(data: Path, tmp_path: Path) -> None:
    pet = case_file(data, 3, "pet")  # the validation case
    _nan_pet(pet)
    with pytest.raises(DataError, match=rf"^case 'PSMA_0003': PET {pet}: expected finite SUV values"):
        train(data, tmp_path / "run", TrainConfig(**TINY), **RUN)
    result = invoke(
        "train", "--data-dir", data.parent, "--run-dir", tmp_path / "run2", "--epochs", "1", *TINY_CLI
    )
    assert result.exit_code == 1 and f"PET {pet}: expected finite SUV values" in error_line(result)


def test_a_run_with_epochs_left_checks_its_cases_again(data: Path, run_copy: Path) -> None:
    _truncate(case_file(data, 0, "label"))
    result = invoke("train", "--manifest", data, "--run-dir", run_copy, "--epochs", "3", *TINY_CLI)
    assert result.exit_code == 1 and "error: case 'PSMA_0000': label" in error_line(result)


def test_non_finite_loss_names_the_cases_of_the_batch(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NanLoss(torch.nn.Module):
        def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return logits.mean() * float("nan")

    monkeypatch.setattr("pcatools.losses.build_loss", lambda name, **kw: NanLoss())
    with pytest.raises(FloatingPointError, match=r"at epoch 1, step 1, on a batch of cases PSMA_000[0-2];"):
        train(data, tmp_path / "run", TrainConfig(**TINY), **RUN)


# --------------------------------------------------------------------------------------------------
# 11. a run folder without last.pt; two trainings on one folder
# --------------------------------------------------------------------------------------------------


def test_missing_last_continues_from_the_previous_checkpoint(
    cohort: Path, run_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (run_copy / "last.pt").unlink()
    best = load_checkpoint(run_copy / "best.pt")
    save_checkpoint({**best, "epoch": 2}, run_copy / "best.pt", keep_previous=False)  # best of the lost epoch
    with caplog.at_level(logging.WARNING, logger="pcatools.training"):
        result = train(cohort / "split.csv", run_copy, TrainConfig(**{**TINY, "epochs": 3}), **RUN)
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert f"{run_copy / 'last.pt'} is missing: continuing from the previous checkpoint" in messages
    assert "(epoch 1)" in messages
    assert "best.pt is from epoch 2, after the checkpoint this run continues from (epoch 1)" in messages
    assert result.history["epoch"].tolist() == [1, 2, 3]
    assert pd.read_csv(run_copy / "history.csv")["epoch"].tolist() == [1, 2, 3]
    assert load_checkpoint(result.best_checkpoint)["epoch"] == result.best_epoch  # not the stale one
    assert list((run_copy / "replaced").glob("*/best.pt"))  # kept, not deleted


def test_missing_last_and_unreadable_previous_is_refused(cohort: Path, run_copy: Path) -> None:
    (run_copy / "last.pt").unlink()
    (run_copy / "last.prev.pt").write_bytes(b"not a checkpoint")
    history = (run_copy / "history.csv").read_bytes()
    result = invoke(
        "train", "--manifest", cohort / "split.csv", "--run-dir", run_copy, "--epochs", "3", *TINY_CLI
    )
    assert result.exit_code == 1
    line = error_line(result)
    assert f"{run_copy / 'last.pt'} is missing and the previous checkpoint cannot be used" in line
    assert "is corrupt or unreadable" in line and "--resume no" in line
    assert (run_copy / "history.csv").read_bytes() == history


def test_earlier_run_without_checkpoints_is_refused_then_started_over(cohort: Path, run_copy: Path) -> None:
    (run_copy / "last.pt").unlink()
    (run_copy / "last.prev.pt").unlink()
    history = (run_copy / "history.csv").read_bytes()
    args = ["train", "--manifest", cohort / "split.csv", "--run-dir", run_copy, "--epochs", "1", *TINY_CLI]
    refused = invoke(*args)
    assert refused.exit_code == 1
    assert error_line(refused) == (
        f"error: run folder {run_copy} holds an earlier run (best.pt, history.csv) but no last.pt or "
        f"last.prev.pt to continue from; start over with resume=False (pcatools train --resume no), which "
        f"moves the earlier run's files to {run_copy / 'replaced'}/, or use another run folder"
    )
    assert (run_copy / "history.csv").read_bytes() == history
    started = invoke(*args, "--resume", "no")
    assert started.exit_code == 0, started.output
    (kept,) = (run_copy / "replaced").iterdir()
    assert (kept / "history.csv").read_bytes() == history and (kept / "best.pt").is_file()
    assert pd.read_csv(run_copy / "history.csv")["epoch"].tolist() == [1]


def test_second_training_on_one_run_folder_is_refused(cohort: Path, run_copy: Path) -> None:
    with run_lock(run_copy):
        result = invoke(
            "train", "--manifest", cohort / "split.csv", "--run-dir", run_copy, "--epochs", "3", *TINY_CLI
        )
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith(
        f"error: run folder {run_copy} is in use by another training (pid {os.getpid()} on "
    )
    assert line.endswith("wait for it to finish or use another run folder")
    with run_lock(run_copy):  # released when the block ends
        pass


def test_lock_is_released_on_error_and_when_its_process_is_killed(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), run_lock(tmp_path):
        1 / 0  # noqa: B018
    code = (
        "import os, signal, sys; from pcatools.training.run_files import run_lock; "
        "run_lock(sys.argv[1]).__enter__(); os.kill(os.getpid(), signal.SIGKILL)"
    )
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert killed.returncode == -signal.SIGKILL
    assert "pid" in (tmp_path / "train.lock").read_text()  # the dead holder's note stays ...
    with (
        run_lock(tmp_path),
        pytest.raises(RunBusyError, match="is in use by another training"),
    ):  # ... not its lock
        with run_lock(tmp_path):
            pass


# --------------------------------------------------------------------------------------------------
# 12. one line instead of a traceback
# --------------------------------------------------------------------------------------------------


def test_disk_full_while_saving_a_checkpoint(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = torch.save

    def to_full_disk(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        real_save(obj, "/dev/full", *args, **kwargs)  # what torch raises on ENOSPC

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    monkeypatch.setattr(torch, "save", to_full_disk)
    run = tmp_path / "run"
    result = invoke("train", "--manifest", cohort / "split.csv", "--run-dir", run, "--epochs", "1", *TINY_CLI)
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith(f"error: cannot write checkpoint {run / 'best.pt'}: disk full or not writable ")
    assert "(RuntimeError: [enforce fail at inline_container.cc" in line
    assert not list(run.glob("*.pt")) and not list(run.glob(".*part*"))  # no partial file left


def test_checkpoint_write_error_is_an_os_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def enospc(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", enospc)
    with pytest.raises(CheckpointWriteError) as info:
        save_checkpoint({"kind": "best", "model": {}, "epoch": 1, "config": {}}, tmp_path / "best.pt")
    assert isinstance(info.value, OSError) and isinstance(info.value, CheckpointError)
    assert str(info.value) == (
        f"cannot write checkpoint {tmp_path / 'best.pt'}: disk full or not writable (OSError: [Errno 28] No "
        f"space left on device); {tmp_path / 'best.pt'} is left as it was"
    )


def test_config_with_a_yaml_syntax_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("model: segresnet\nepochs: [1\nlr: 2e-4\n")
    result = invoke("train", "--config", config)
    assert result.exit_code == 2
    assert error_line(result) == (
        f"error: config {config}, line 3, column 3: not valid YAML (expected ',' or ']', but got ':', "
        "while parsing a flow sequence at line 2)"
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--model-override",
            r"error: train: model_overrides \['foo'\] are not arguments of 'segresnet' \(SegResNet\); "
            r"allowed: act, blocks_down, blocks_up, dropout_prob, init_filters, norm, .*use_conv_final$",
        ),
        (
            "--transform-override",
            r"error: train: transform_overrides \['foo'\] are not arguments of train_transforms; "
            r"allowed: affine_prob, ct_range, .*variant$",
        ),
        ("--loss-override", r"error: train: loss_overrides \['foo'\] do not fit loss 'l1dfl' \(.*'foo'\)$"),
    ],
)
def test_unknown_override_names_the_allowed_keys(
    cohort: Path, tmp_path: Path, option: str, message: str
) -> None:
    result = invoke(
        "train", "--manifest", cohort / "split.csv", "--run-dir", tmp_path / "run", *TINY_CLI, option, "foo=3"
    )
    assert result.exit_code == 1
    assert re.match(message, error_line(result)), error_line(result)


class Stop(Exception):
    """Ends a study right after its settings are checked and written."""


def test_study_rerun_with_other_settings_is_refused_until_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pcatools.study import run_study

    def stop(*args: Any, **kwargs: Any) -> None:
        raise Stop

    monkeypatch.setattr("pcatools.study.prepare_data", stop)
    run = tmp_path / "study"
    with pytest.raises(Stop):
        run_study(run, profile="ci", progress=False)
    (run / "models" / "segresnet__dice").mkdir(parents=True)
    (run / "models" / "segresnet__dice" / "history.csv").write_text("epoch\n1\n")

    refused = invoke("study", run, "--profile", "ci", "--epochs", "3", "--no-progress")
    assert refused.exit_code == 1
    assert error_line(refused) == (
        f"error: study {run} was run with other settings (epochs: 2 -> 3); pass restart=True (pcatools study "
        f"--restart) to move its files to {run / 'replaced'}/ and start over, or use another run folder"
    )
    same = CliRunner().invoke(app, ["study", str(run), "--profile", "ci", "--workers", "1", "--no-progress"])
    assert isinstance(same.exception, Stop)  # workers do not change a result: continues

    restarted = CliRunner().invoke(app, ["study", str(run), "--profile", "ci", "--epochs", "3", "--restart"])
    assert isinstance(restarted.exception, Stop)
    (kept,) = (run / "replaced").iterdir()
    assert (kept / "models" / "segresnet__dice" / "history.csv").is_file() and not (run / "models").exists()
    assert yaml.safe_load((kept / "config.yaml").read_text())["profile"]["epochs"] == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["profile"]["epochs"] == 3


def test_study_names_a_model_trained_with_other_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pcatools.training.loop import RunSettingsError

    run = tmp_path / "study"
    model = run / "models" / "segresnet__dice"

    def mismatch(*args: Any, **kwargs: Any) -> None:
        raise RunSettingsError("train: ...", model, {"lr": (0.001, 0.003)})

    monkeypatch.setattr("pcatools.study.prepare_data", lambda *a, **k: pd.DataFrame({"case_id": ["a"]}))
    monkeypatch.setattr("pcatools.study.split_manifest", lambda *a, **k: pd.DataFrame({"case_id": ["a"]}))
    monkeypatch.setattr("pcatools.study.train_grid", mismatch)
    result = invoke("study", run, "--profile", "ci", "--no-progress")
    assert result.exit_code == 1
    assert error_line(result).startswith(
        f"error: study {run}: model segresnet__dice was trained with other settings (lr: 0.001 -> 0.003); "
        "pass restart=True (pcatools study --restart)"
    )


# --------------------------------------------------------------------------------------------------
# 13. a relative --data-dir: split.csv reads from any working directory
# --------------------------------------------------------------------------------------------------


def test_relative_data_dir_gives_a_split_that_reads_from_elsewhere(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    shutil.copytree(cohort, work / "data", ignore=shutil.ignore_patterns("*.csv"))
    monkeypatch.chdir(work)
    result = invoke(
        "train",
        "--data-dir",
        "data",
        "--run-dir",
        "run",
        "--max-epochs-this-call",
        "0",
        "--epochs",
        "1",
        *TINY_CLI,
    )
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(tmp_path)  # another working directory
    stored = pd.read_csv(work / "run" / "split.csv", dtype=str)
    split = read_manifest(work / "run" / "split.csv")
    assert len(split) == 4 and "train" in set(split["split"])
    for col in ("ct", "pet", "label"):
        assert all(os.path.isabs(p) for p in stored[col]), col  # the data lie outside the run folder
        assert all(Path(p).is_file() for p in split[col]), col
