"""``pcatools.training``: the loop lowers the loss, exact resume, checkpoints, run folder, CLI.

All runs use a tiny cohort (32^3 voxels at 4 mm, a bright cube lesion), 32^3 patches, a
4-filter SegResNet, ``workers=0`` and the CPU, so that a training epoch takes about a second.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pcatools.data.case import Case, write_case
from pcatools.data.errors import DataError
from pcatools.training import (
    CheckpointError,
    TrainConfig,
    TrainEvent,
    capture_rng_state,
    load_checkpoint,
    lr_factor,
    previous_path,
    restore_rng_state,
    save_checkpoint,
    train,
)

TINY = {
    "patch_size": (32, 32, 32),
    "spacing": (4.0, 4.0, 4.0),
    "batch_size": 2,
    "epochs": 4,
    "val_every": 2,
    "lr": 3e-3,
    "workers": 0,
    "max_steps_per_epoch": 2,
    "model_overrides": {"init_filters": 4},
}
RUN = {"progress": False, "device": "cpu"}  # train()'s run arguments; TINY holds the settings


def tiny_cohort(
    root: Path, n: int = 4, n_val: int = 1, size: int = 32, spacing: float = 4.0, seed: int = 0
) -> pd.DataFrame:
    """``n`` cases (``size``^3 voxels at ``spacing`` mm, RAS) with one bright 6^3 cube lesion each;
    the last ``n_val`` are ``val``, the others ``train``. Returns the split manifest."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        affine = np.diag([spacing, spacing, spacing, 1.0])
        affine[:3, 3] = -spacing * size / 2
        ct = rng.normal(0.0, 30.0, (size,) * 3).astype(np.float32)
        pet = rng.gamma(2.0, 0.5, (size,) * 3).astype(np.float32)
        label = np.zeros((size,) * 3, np.uint8)
        c = rng.integers(8, size - 8, 3)
        label[c[0] - 3 : c[0] + 3, c[1] - 3 : c[1] + 3, c[2] - 3 : c[2] + 3] = 1
        pet[label > 0] += 15.0
        ct[label > 0] += 40.0
        case = Case(f"c{i:02d}", pet, ct, label, affine, patient_id=f"p{i:02d}")
        paths = write_case(case, root)
        rows.append(
            {"case_id": case.case_id, "patient_id": case.patient_id, **{k: str(v) for k, v in paths.items()}}
        )
    table = pd.DataFrame(rows)
    table["split"] = ["train"] * (n - n_val) + ["val"] * n_val
    return table


def states_equal(a: Any, b: Any) -> bool:
    """Recursive exact equality of nested dicts/lists of tensors and numbers (NaN == NaN)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


_DETERMINISTIC = ["epoch", "lr", "train_loss", "val_dice", "val_cases", "steps", "samples"]


class Stop(Exception):
    """Raised by a callback to simulate a kill."""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return tiny_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def reference(cohort: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[TrainEvent]]:
    """An uninterrupted 4-epoch run, with every callback event recorded."""
    events: list[TrainEvent] = []
    result = train(
        cohort, tmp_path_factory.mktemp("ref") / "run", TrainConfig(**TINY), callbacks=[events.append], **RUN
    )
    return result, events


@pytest.fixture(scope="module")
def interrupted(cohort: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run killed by an exception at the first step of epoch 3 (checkpoint of epoch 2 on disk)."""
    run = tmp_path_factory.mktemp("killed") / "run"

    def kill(event: TrainEvent) -> None:
        if event.kind == "step" and event.epoch == 3 and event.step == 1:
            raise Stop

    with pytest.raises(Stop):
        train(cohort, run, TrainConfig(**TINY), callbacks=[kill], **RUN)
    return run


def test_a_few_steps_lower_the_loss(reference: tuple[Any, list[TrainEvent]], cohort: pd.DataFrame) -> None:
    from monai.utils import set_determinism

    from pcatools.data.transforms import eval_transforms
    from pcatools.losses import build_loss
    from pcatools.models import build_model

    result, _ = reference
    history = result.history["train_loss"].to_numpy()
    assert len(history) == 4 and np.all(np.isfinite(history)) and history[-1] < history[0]
    assert result.history["steps"].tolist() == [2, 2, 2, 2]  # 3 train cases, batch 2 -> 2 steps
    # the same loss on fixed inputs (the three whole training volumes, 32^3 = one patch each):
    # initial weights (train seeds them with set_determinism(seed) before build_model) vs trained
    set_determinism(seed=0)
    initial = build_model("segresnet", init_filters=4)
    trained = build_model("segresnet", init_filters=4)
    trained.load_state_dict(load_checkpoint(result.last_checkpoint)["model"])
    transform = eval_transforms(spacing=TINY["spacing"])
    items = [
        transform({k: r[k] for k in ("ct", "pet", "label")})
        for r in cohort[cohort["split"] == "train"].to_dict("records")
    ]
    image = torch.stack([i["image"].as_tensor() for i in items])
    label = torch.stack([i["label"].as_tensor() for i in items])
    loss = build_loss("l1dfl")
    with torch.no_grad():
        before, after = float(loss(initial(image), label)), float(loss(trained(image), label))
    assert after < before - 0.05, (before, after)  # 0.672 -> 0.548 with this seed


def test_epoch_loss_is_the_mean_of_the_batch_losses(reference: tuple[Any, list[TrainEvent]]) -> None:
    result, events = reference
    for epoch in range(1, 5):
        steps = [e.loss for e in events if e.kind == "step" and e.epoch == epoch]
        assert len(steps) == 2
        assert result.history.loc[epoch - 1, "train_loss"] == pytest.approx(np.mean(steps), rel=1e-12)
    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2, 3, 4]


def test_cosine_annealing_to_zero(reference: tuple[Any, list[TrainEvent]]) -> None:
    result, _ = reference
    epochs, lr = TINY["epochs"], TINY["lr"]
    # lr used in epoch e (1-based): lr * (1 + cos(pi * (e - 1) / E)) / 2  (CosineAnnealingLR, eta_min 0)
    expected = [lr * (1 + math.cos(math.pi * (e - 1) / epochs)) / 2 for e in range(1, epochs + 1)]
    np.testing.assert_allclose(result.history["lr"].to_numpy(), expected, rtol=1e-12)
    last = load_checkpoint(result.last_checkpoint)
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-15)
    assert last["optimizer"]["param_groups"][0]["weight_decay"] == 1e-5


def test_lr_factor_warm_up_then_cosine() -> None:
    # hand values, E = 5 epochs, w = 2: 1/3, 2/3, then (1 + cos(pi * k / 3)) / 2 for k = 0, 1, 2
    expected = [1 / 3, 2 / 3, 1.0, 0.75, 0.25]
    np.testing.assert_allclose([lr_factor(e, 5, warmup_epochs=2) for e in range(5)], expected, rtol=1e-12)
    # w = 0 is CosineAnnealingLR(T_max=E, eta_min=0), the paper's schedule
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7)
    cosine = []
    for _ in range(7):
        cosine.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose([lr_factor(e, 7) for e in range(7)], cosine, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match=r"warmup_epochs must be in \[0, epochs=5\), found 5"):
        lr_factor(0, 5, warmup_epochs=5)


def test_warm_up_schedule_and_exact_resume(cohort: pd.DataFrame, tmp_path: Path) -> None:
    settings = {**TINY, "val_every": 4, "warmup_epochs": 2}
    whole = train(cohort, tmp_path / "whole", TrainConfig(**settings), **RUN)
    expected = [TINY["lr"] * lr_factor(e, TINY["epochs"], 2) for e in range(TINY["epochs"])]
    np.testing.assert_allclose(whole.history["lr"].to_numpy(), expected, rtol=1e-12)
    assert whole.history["lr"].tolist()[:3] == pytest.approx([1e-3, 2e-3, 3e-3])  # 3e-3 x 1/3, 2/3, 1
    # stopped after epoch 2 (inside the warm-up's end), then resumed: the same weights and schedule
    part = train(cohort, tmp_path / "part", TrainConfig(**settings), max_epochs_this_call=2, **RUN)
    assert not part.completed
    with pytest.raises(ValueError, match=r"other settings \(warmup_epochs: 2 -> 0\)"):
        train(cohort, tmp_path / "part", TrainConfig(**{**settings, "warmup_epochs": 0}), **RUN)
    done = train(cohort, tmp_path / "part", TrainConfig(**settings), **RUN)
    a, b = load_checkpoint(whole.last_checkpoint), load_checkpoint(done.last_checkpoint)
    assert states_equal(a["model"], b["model"]) and states_equal(a["scheduler"], b["scheduler"])
    pd.testing.assert_frame_equal(done.history[_DETERMINISTIC], whole.history[_DETERMINISTIC])


def test_runs_from_before_warm_up_still_resume(
    interrupted: Path, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    state = load_checkpoint(run / "last.pt")
    del state["config"]["warmup_epochs"]  # a checkpoint written before the key existed
    save_checkpoint(state, run / "last.pt")
    resumed = train(cohort, run, TrainConfig(**TINY), **RUN)
    assert resumed.completed and resumed.history["epoch"].tolist() == [1, 2, 3, 4]


def test_validation_schedule_and_best_checkpoint(reference: tuple[Any, list[TrainEvent]]) -> None:
    result, _ = reference
    dice = result.history["val_dice"].to_numpy()
    assert np.isnan(dice[[0, 2]]).all() and np.isfinite(dice[[1, 3]]).all()  # every 2 epochs
    assert (0.0 <= dice[[1, 3]]).all() and (dice[[1, 3]] <= 1.0).all()
    assert result.history["val_cases"].tolist() == [0, 1, 0, 1]
    best = load_checkpoint(result.best_checkpoint, kind="best")
    assert best["kind"] == "best"
    assert best["epoch"] == result.best_epoch == int(result.history["epoch"][np.nanargmax(dice)])
    assert best["best_metric"] == pytest.approx(np.nanmax(dice)) == pytest.approx(result.best_metric)
    if result.best_epoch == 4:  # then best and last weights are the same tensors
        last = load_checkpoint(result.last_checkpoint)
        assert states_equal(best["model"], last["model"])


def test_run_folder(reference: tuple[Any, list[TrainEvent]], cohort: pd.DataFrame) -> None:
    result, _ = reference
    run = result.run_dir
    config = yaml.safe_load((run / "config.yaml").read_text())
    arguments = set(TrainConfig.__dataclass_fields__) | {"device"}  # every setting, and where it ran
    assert arguments <= set(config), sorted(arguments - set(config))
    assert (
        config["model"] == "segresnet" and config["loss"] == "l1dfl" and config["patch_size"] == [32, 32, 32]
    )
    # paths relative to the run folder: it names itself "." and the manifest it read by its own copy
    assert config["run_dir"] == "." and config["manifest"] == "split.csv" and "manifest_source" not in config
    assert not any(str(v).startswith(str(run)) for v in config.values())
    versions = json.loads((run / "versions.json").read_text())
    assert {"python", "torch", "monai", "numpy", "pcatools", "cuda"} <= set(versions)
    # what the CPU numbers rest on: the kernels held to AVX2 by tests/conftest.py, the CPU, the threads
    assert versions["cpu_capability_used"] == "AVX2" and versions["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert versions["torch_threads"] == str(torch.get_num_threads()) and versions["cpu"]
    assert versions["torch"] == str(torch.__version__)
    split = pd.read_csv(run / "split.csv", dtype={"case_id": str})
    assert split["case_id"].tolist() == cohort["case_id"].tolist()
    assert split["split"].tolist() == cohort["split"].tolist()
    history = pd.read_csv(run / "history.csv")
    pd.testing.assert_frame_equal(history[_DETERMINISTIC], result.history[_DETERMINISTIC], check_dtype=False)
    assert {p.name for p in run.iterdir()} >= {"last.pt", "last.prev.pt", "best.pt", "tensorboard"}
    assert load_checkpoint(previous_path(result.last_checkpoint))["epoch"] == 3
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = [(s.step, s.value) for s in events.Scalars("train/loss")]
    assert [step for step, _ in logged] == [1, 2, 3, 4]
    np.testing.assert_allclose([v for _, v in logged], result.history["train_loss"], rtol=1e-6)
    assert [s.step for s in events.Scalars("val/dice")] == [2, 4]


def test_killed_run_resumes_to_the_same_weights(
    reference: tuple[Any, list[TrainEvent]], interrupted: Path, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    result, _ = reference
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    resumed = train(cohort, run, TrainConfig(**TINY), **RUN)
    assert resumed.completed
    a, b = load_checkpoint(result.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    assert states_equal(a["model"], b["model"])  # every weight tensor bit-for-bit
    assert states_equal(a["optimizer"], b["optimizer"])
    assert states_equal(a["scheduler"], b["scheduler"])
    pd.testing.assert_frame_equal(resumed.history[_DETERMINISTIC], result.history[_DETERMINISTIC])
    assert resumed.best_epoch == result.best_epoch and resumed.best_metric == result.best_metric


def test_corrupt_checkpoint_clear_error_and_previous_kept(
    reference: tuple[Any, list[TrainEvent]], interrupted: Path, cohort: pd.DataFrame, tmp_path: Path
) -> None:
    result, _ = reference
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    last = run / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a half-written file
    with pytest.raises(CheckpointError, match=r"last\.pt is corrupt.*last\.prev\.pt.*resume='prev'"):
        train(cohort, run, TrainConfig(**TINY), **RUN)
    prev = load_checkpoint(previous_path(last))  # the previous good one is kept and loads
    assert prev["epoch"] == 1
    # continue from it when asked: one epoch now (max_epochs_this_call), the rest later
    part = train(cohort, run, TrainConfig(**TINY), resume="prev", max_epochs_this_call=1, **RUN)
    assert not part.completed and part.history["epoch"].tolist() == [1, 2]
    done = train(cohort, run, TrainConfig(**TINY), **RUN)
    assert done.completed
    assert states_equal(
        load_checkpoint(done.last_checkpoint)["model"], load_checkpoint(result.last_checkpoint)["model"]
    )


def test_finished_run_is_not_trained_again(
    reference: tuple[Any, list[TrainEvent]], cohort: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, _ = reference
    before = result.last_checkpoint.stat().st_mtime_ns

    def no_loading(rows: Any) -> Any:
        raise AssertionError("a finished run must not load (cache) its volumes again")

    monkeypatch.setattr("pcatools.training.loop._files", no_loading)
    again = train(cohort, result.run_dir, TrainConfig(**TINY), **RUN)
    assert again.completed and result.last_checkpoint.stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(again.history[_DETERMINISTIC], result.history[_DETERMINISTIC])


def test_resume_with_other_settings_is_refused(
    reference: tuple[Any, list[TrainEvent]], cohort: pd.DataFrame
) -> None:
    result, _ = reference
    with pytest.raises(ValueError, match=r"other settings \(lr: 0\.003 -> 0\.001\)"):
        train(cohort, result.run_dir, TrainConfig(**{**TINY, "lr": 1e-3}), **RUN)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint({"kind": "best", "model": {"w": torch.ones(3)}, "epoch": 1, "config": {}}, path)

    def broken_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        Path(f).write_bytes(b"PK\x03\x04 truncated")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"kind": "best", "model": {"w": torch.zeros(3)}, "epoch": 2, "config": {}}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and not previous_path(path).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left behind
    # a payload that would not load back (not weights_only-safe) never replaces the good file
    with pytest.raises(CheckpointError, match="does not read back"):
        save_checkpoint({"kind": "best", "model": {}, "epoch": 3, "config": {"bad": Stop()}}, path)
    assert load_checkpoint(path)["epoch"] == 1


def test_load_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match=r"junk\.pt is corrupt or unreadable"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not a pcatools checkpoint"):
        load_checkpoint(other)


def test_rng_state_round_trip(tmp_path: Path) -> None:
    import random

    # the state goes through a checkpoint file (weights_only load) as it does on resume
    save_checkpoint(
        {"kind": "best", "model": {}, "epoch": 0, "config": {}, "rng": capture_rng_state()}, tmp_path / "s.pt"
    )
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())  # noqa: NPY002
    restore_rng_state(load_checkpoint(tmp_path / "s.pt")["rng"])
    second = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())  # noqa: NPY002
    assert first == second


def test_bad_arguments(cohort: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no 'split' column"):
        train(cohort.drop(columns="split"), tmp_path / "a", TrainConfig(**TINY), **RUN)
    with pytest.raises(ValueError, match="no rows with split == 'train'"):
        train(cohort.assign(split="test"), tmp_path / "b", TrainConfig(**TINY), **RUN)
    with pytest.raises(
        DataError, match=r"manifest: \d+ pet file\(s\) not found, first: case '\w+': .*missing.nii.gz"
    ):
        train(cohort.assign(pet=str(tmp_path / "missing.nii.gz")), tmp_path / "c", TrainConfig(**TINY), **RUN)
    with pytest.raises(ValueError, match="amp=True needs a CUDA device"):
        train(cohort, tmp_path / "d", TrainConfig(**{**TINY, "amp": True}), **RUN)
    with pytest.raises(ValueError, match="multiple of 8"):
        train(cohort, tmp_path / "e", TrainConfig(**{**TINY, "patch_size": (36, 36, 36)}), **RUN)
    assert not (tmp_path / "a").exists()  # nothing written before the inputs are checked


def test_cli_train_with_config(cohort: pd.DataFrame, tmp_path: Path, repo_root: Path) -> None:
    from typer.testing import CliRunner

    from pcatools.cli import app
    from pcatools.commands.train import load_config

    for shipped in sorted((repo_root / "configs").glob("*.yaml")):  # every example config is valid
        assert load_config(shipped)["loss"] in ("dice", "dice_focal", "l1dfl"), shipped
    manifest = tmp_path / "split.csv"
    cohort.to_csv(manifest, index=False)
    run = tmp_path / "cli-run"
    args = [
        "train",
        "--config",
        str(repo_root / "configs" / "ci_tiny.yaml"),
        "--manifest",
        str(manifest),
        "--run-dir",
        str(run),
        "--spacing",
        "4",
        "--epochs",
        "1",
        "--no-progress",
    ]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "finished: 1 epochs" in out.output
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["spacing"] == [4.0, 4.0, 4.0] and config["epochs"] == 1  # the options win over the file
    assert config["model_overrides"] == {"init_filters": 4} and config["patch_size"] == [32, 32, 32]
    bad = CliRunner().invoke(app, [*args[:-3], "--lr", "0.5", "--epochs", "1", "--no-progress"])
    assert bad.exit_code == 1 and "other settings" in bad.output


def test_worker_processes_do_not_change_the_result(cohort: pd.DataFrame, tmp_path: Path) -> None:
    """Each sample seeds its own augmentation from (seed, epoch, case), so 0 or 2 persistent
    worker processes train exactly the same weights."""
    kw = {**TINY, "epochs": 2, "val_every": 2}
    inline = train(cohort, tmp_path / "w0", TrainConfig(**kw), **RUN)
    workers = train(cohort, tmp_path / "w2", TrainConfig(**{**kw, "workers": 2}), **RUN)
    assert states_equal(
        load_checkpoint(inline.last_checkpoint)["model"], load_checkpoint(workers.last_checkpoint)["model"]
    )
    pd.testing.assert_frame_equal(inline.history[_DETERMINISTIC], workers.history[_DETERMINISTIC])
