"""The study grid's cells as submitit jobs (issue 24): pcatools.launcher, pcatools.cell_status and
``pcatools study --launcher / --cells / --status / --allow-missing``.

The SLURM executor is tested without a queue: a fake ``sbatch`` on PATH keeps the script submitit
writes, and the script's ``#SBATCH`` lines are checked against the options given. Cell states are
read from hand-made model folders whose answers are known (a lock held by this process, a history
of two epochs out of four, a job's error result). The local executor runs the ``ci`` profile's
grid of one network x 2 losses x 2 seeds for real: its results must equal those of the same study
trained one cell after another in one process, also after a job was killed and launched again.
Figures are not drawn in these studies (the launcher changes nothing they show; 20 s each).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pcatools.cell_status import cell_state, format_status, lock_holder, study_status
from pcatools.cells import Cell
from pcatools.cli import app
from pcatools.launcher import (
    LAUNCHER_OPTIONS,
    Launch,
    TrainCellJob,
    launcher_options_help,
    launcher_options_markdown,
    parse_launcher_options,
)
from pcatools.study import run_study, train_cell
from pcatools.training.run_files import run_lock

GRID = [Cell("segresnet", loss, seed) for loss in ("dice", "l1dfl") for seed in (0, 1)]
# the study of the real runs: 3 epochs, so that a job can be killed between its first and its last
SETTINGS: dict[str, Any] = dict(
    profile="ci",
    seed=0,
    seeds=(0, 1),
    progress=False,
    networks=("segresnet",),
    losses=("dice", "l1dfl"),
    epochs=3,
)
CLI_SETTINGS = [
    "--profile", "ci", "--seed", "0", "--seeds", "0,1", "--network", "segresnet", "--loss", "dice",
    "--loss", "l1dfl", "--epochs", "3", "--no-progress",
]  # fmt: skip
RESULTS = ("cases.csv", "lesions.csv", "table1.csv")


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study trained one cell after another in this process (no launcher): the reference."""
    run = tmp_path_factory.mktemp("sequential") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pcatools.study.draw_figures", lambda *args, **kwargs: {})
        run_study(run, **SETTINGS)
    return run


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("pcatools.study.draw_figures", lambda *args, **kwargs: {})
    yield


def _prepared(sequential: Path, run: Path, models: list[Cell]) -> Path:
    """A copy of the reference study's folder with its data and split, and of its models only ``models``."""
    skip = shutil.ignore_patterns("models", "predictions", "results", "figures", "jobs")
    shutil.copytree(sequential, run, ignore=skip)
    for cell in models:
        shutil.copytree(sequential / "models" / cell.key(0), run / "models" / cell.key(0))
    return run


def _same_results(a: Path, b: Path) -> None:
    for name in RESULTS:
        assert (a / "results" / name).read_bytes() == (b / "results" / name).read_bytes(), name


def _losses(folder: Path) -> list[list[str]]:
    """Each epoch's number, learning rate, training loss and validation DSC from ``history.csv``."""
    return [line.split(",")[:4] for line in (folder / "history.csv").read_text().splitlines()]


def _kill_after_first_epoch(folder: Path, deadline_s: float = 900) -> int:
    """SIGKILL the process training in ``folder`` (the pid its train.lock names) once epoch 1 is written."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        history = folder / "history.csv"
        if history.is_file() and len(history.read_text().splitlines()) >= 2 and lock_holder(folder):
            pid = int((folder / "train.lock").read_text().split()[1])
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.02)
    raise AssertionError(f"{folder}: no epoch finished within {deadline_s} s")


def _study_folder(path: Path, seed: int = 0) -> Path:
    """A run folder holding what the launcher and the states read of a study: ``config.yaml``'s seed."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(f"profile: {{name: ci}}\ndata_dir: null\nseed: {seed}\n")
    return path


def _model(run: Path, key: str, epochs: int, dice: list[float | None]) -> Path:
    """A model folder trained ``len(dice)`` of ``epochs`` epochs (``None``: not validated)."""
    folder = run / "models" / key
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"model: segresnet\nepochs: {epochs}\n")
    rows = ["epoch,lr,train_loss,val_dice,val_cases,steps,samples,time_s,data_time_s,compute_time_s"]
    for k, d in enumerate(dice, start=1):
        rows.append(f"{k},0.001,0.5,{'' if d is None else d},2,2,4,1.0,0.1,0.9")
    (folder / "history.csv").write_text("\n".join(rows) + "\n")
    (folder / "last.pt").write_bytes(b"")
    return folder


def _fake_slurm(bin_dir: Path, keep: Path) -> None:
    """``sbatch`` that copies the script it is given to ``keep`` and answers as SLURM does; ``srun``
    only so that submitit believes it is on a cluster."""
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f'#!/bin/sh\ncp "$1" "{keep}"\necho "Submitted batch job 4242"\n')
    srun = bin_dir / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    for f in (sbatch, srun):
        f.chmod(f.stat().st_mode | stat.S_IXUSR)


def test_slurm_script_carries_the_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _study_folder(tmp_path / "run", seed=0)
    script = tmp_path / "submitted.sh"
    _fake_slurm(tmp_path / "bin", script)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    options = parse_launcher_options(
        [
            "partition=gpu",
            "gpus_per_job=1",
            "time_min=180",
            "cpus=8",
            "mem_gb=32",
            "account=lab42",
            "max_parallel=2",
            "setup=module load cuda/12.4",
        ]
    )
    launch = Launch(run, "slurm", options, train=train_cell)
    jobs = launch.submit(GRID)

    lines = script.read_text().splitlines()
    sbatch = sorted(line for line in lines if line.startswith("#SBATCH"))
    jobs_dir = run / "jobs"
    assert sbatch == sorted(
        [
            "#SBATCH --account=lab42",
            "#SBATCH --array=0-3%2",  # the four cells as one array, two at a time (max_parallel)
            "#SBATCH --cpus-per-task=8",
            f"#SBATCH --error={jobs_dir}/%A_%a_0_log.err",
            "#SBATCH --gpus-per-node=1",
            "#SBATCH --job-name=pcatools",
            "#SBATCH --mem=32GB",
            "#SBATCH --nodes=1",
            "#SBATCH --open-mode=append",
            f"#SBATCH --output={jobs_dir}/%A_%a_0_log.out",
            "#SBATCH --partition=gpu",
            "#SBATCH --signal=USR2@90",
            "#SBATCH --time=180",
            "#SBATCH --wckey=submitit",
        ]
    )
    assert "module load cuda/12.4" in lines
    # the job runs this environment's python on the run folder's jobs/ (a shared file system is all it needs)
    assert lines[-1].startswith("srun --unbuffered")
    assert lines[-1].endswith(f"{sys.executable} -u -m submitit.core._submit {jobs_dir}")
    # each cell's job is one task of array 4242, recorded beside the job files
    assert [j.job.job_id for j in jobs] == ["4242_0", "4242_1", "4242_2", "4242_3"]
    record = json.loads((jobs_dir / "segresnet__l1dfl__seed1.json").read_text())
    assert (record["cell"], record["launcher"], record["job_id"]) == ("segresnet/l1dfl/1", "slurm", "4242_3")
    assert record["log"] == "jobs/4242_3_0_log.err"
    # submitted, nothing trained yet, no result: queued
    assert cell_state(run, GRID[3]).line() == (
        f"{'segresnet/l1dfl/1':<36} {'queued':<12} slurm job 4242_3  (log {run / 'jobs/4242_3_0_log.err'})"
    )


def test_launcher_options_are_declared_once_and_checked() -> None:
    assert [o.name for o in LAUNCHER_OPTIONS] == [
        "partition", "gpus_per_job", "cpus", "mem_gb", "time_min", "account", "setup", "max_parallel",
    ]  # fmt: skip
    assert parse_launcher_options({"time_min": 90, "partition": "a100"}) == {
        "time_min": 90,
        "partition": "a100",
    }
    for bad, message in (
        (["queue=gpu"], "--launcher-option: unknown option 'queue'; expected one of"),
        (["time_min=1.5"], "--launcher-option: time_min='1.5' is not an int"),
        (["cpus"], "--launcher-option: expected KEY=VALUE, found 'cpus'"),
        (["max_parallel=-1"], "--launcher-option: max_parallel='-1' is negative"),
    ):
        with pytest.raises(ValueError) as err:
            parse_launcher_options(bad)
        assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_states_of_done_running_failed_and_missing_cells(tmp_path: Path) -> None:
    run = _study_folder(tmp_path / "run", seed=0)
    done, running, failed, missing = GRID  # dice/0, dice/1, l1dfl/0, l1dfl/1
    _model(run, "segresnet__dice", 2, [0.25, 0.5])
    training = _model(run, "segresnet__dice__seed1", 4, [None, 0.125])
    _model(run, "segresnet__l1dfl", 4, [0.1])
    # the failed cell's job: its error as submitit pickles it, the record the launcher writes
    (run / "jobs").mkdir()
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: CUDA out of memory\n'
    (run / "jobs" / "77_0_result.pkl").write_bytes(pickle.dumps(("error", trace)))
    (run / "jobs" / "segresnet__l1dfl.json").write_text(
        json.dumps(
            {
                "cell": failed.name,
                "launcher": "slurm",
                "job_id": "77",
                "log": "jobs/77_0_log.err",
                "result": "jobs/77_0_result.pkl",
            }
        )  # fmt: skip
    )
    with run_lock(training):  # another process training it, as the launcher sees it
        states = study_status(run, GRID)
    assert [(s.state, s.detail) for s in states] == [
        ("done", "best validation DSC 0.500"),
        ("training", "epoch 2 of 4"),
        ("failed", "RuntimeError: CUDA out of memory"),
        ("not started", ""),
    ]
    assert format_status(states).splitlines()[-1] == "4 cells: 1 not started, 1 training, 1 done, 1 failed"
    # once the lock is let go, a cell stopped half-way without a job is failed, saying where it stopped
    assert cell_state(run, running).detail == "stopped after epoch 2 of 4; no process holds its train.lock"
    assert cell_state(run, missing).state == "not started"
    assert done.key(0) == "segresnet__dice"


def test_docs_table_is_the_declaration() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "cluster.md").read_text()
    table = page.split("<!-- launcher-options -->\n")[1].split("\n<!-- /launcher-options -->")[0]
    assert table == launcher_options_markdown()
    assert launcher_options_help().startswith(
        "partition: SLURM partition the jobs go to (sbatch --partition). gpus_per_job: "
    )


def test_status_and_bad_cells_through_the_command(tmp_path: Path) -> None:
    run = _study_folder(tmp_path / "run", seed=0)
    _model(run, "segresnet__dice", 2, [0.25, 0.5])
    training = _model(run, "segresnet__dice__seed1", 4, [None])
    grid = [
        "--profile",
        "ci",
        "--network",
        "segresnet",
        "--loss",
        "dice",
        "--loss",
        "l1dfl",
        "--seeds",
        "0,1",
    ]
    with run_lock(training):
        result = CliRunner().invoke(app, ["study", str(run), *grid, "--status"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{'segresnet/dice/0':<36} {'done':<12} best validation DSC 0.500",
        f"{'segresnet/dice/1':<36} {'training':<12} epoch 1 of 4",
        f"{'segresnet/l1dfl/0':<36} not started",
        f"{'segresnet/l1dfl/1':<36} not started",
        "4 cells: 2 not started, 1 training, 1 done",
    ]
    for bad, message in (
        ("segresnet/tversky/0", "error: cell 'segresnet/tversky/0': loss 'tversky' is not in the grid; "
                                "expected one of ['dice', 'l1dfl']"),
        ("segresnet/dice/7", "error: cell 'segresnet/dice/7': seed '7' is not in the grid; expected one of [0, 1]"),
        ("segresnet-dice-0", "error: cell 'segresnet-dice-0': expected network/loss/seed, e.g. segresnet/l1dfl/0"),
    ):  # fmt: skip
        result = CliRunner().invoke(app, ["study", str(run), *grid, "--cells", bad])
        assert (result.exit_code, result.output.strip()) == (2, message)
    assert not (run / "split.csv").exists()  # refused before anything was written


def test_a_missing_cell_stops_the_analysis_and_cells_trains_only_what_it_names(
    sequential: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_figures: None
) -> None:
    run = _prepared(sequential, tmp_path / "run", [GRID[0], GRID[2]])  # segresnet/*/1 missing
    stamps = {p: p.stat().st_mtime_ns for p in (run / "models").rglob("*.pt")}
    # a launch whose jobs leave cells undone (here: none runs): the analysis refuses, naming them
    with monkeypatch.context() as patch:
        patch.setattr("pcatools.study.launch_cells", lambda *args, **kwargs: [])
        result = CliRunner().invoke(app, ["study", str(run), *CLI_SETTINGS, "--launcher", "local"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: study {run}: 2 of 4 cells are not done: segresnet/dice/1 not started, segresnet/l1dfl/1 "
        "not started; run it again to train them (each resumes from its last.pt), or pass --allow-missing "
        "to analyse the 2 that are"
    )
    # --cells trains the cell it names and no other; the grid's results wait for the one still missing
    result = CliRunner().invoke(app, ["study", str(run), *CLI_SETTINGS, "--cells", "segresnet/dice/1"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"study {run}: trained segresnet/dice/1; the results wait for the grid's other cells: 1 of 4 cells "
        "are not done: segresnet/l1dfl/1 not started"
    )
    assert [s.state for s in study_status(run, GRID)] == ["done", "done", "done", "not started"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the done ones were not trained again
    # the model it trained is the sequential run's: the same losses and validation DSCs, epoch by epoch
    assert _losses(run / "models" / GRID[1].key(0)) == _losses(sequential / "models" / GRID[1].key(0))
    assert not (run / "results").exists()


def test_local_jobs_equal_the_sequential_run_also_after_a_killed_job(
    sequential: Path, tmp_path: Path, no_figures: None
) -> None:
    run = _prepared(sequential, tmp_path / "run", [])
    killed = GRID[1]  # segresnet/dice/1: with max_parallel 2 it starts with the first
    folder = run / "models" / killed.key(0)
    outcome: dict[str, Any] = {}

    def first_launch() -> None:
        try:
            outcome["study"] = run_study(
                run, **SETTINGS, launcher="local", launcher_options={"max_parallel": 2}, allow_missing=True
            )
        except BaseException as err:  # noqa: BLE001 (reported by the assertion below)
            outcome["error"] = err

    thread = threading.Thread(target=first_launch)
    thread.start()
    _kill_after_first_epoch(folder)
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    # the killed job failed its cell only, stopped after epoch 1 of 3; the three others are done
    states = study_status(run, GRID)
    assert [s.state for s in states] == ["done", "failed", "done", "done"]
    assert (states[1].epoch, states[1].epochs) == (1, 3)
    assert json.loads((run / "jobs" / f"{killed.key(0)}.json").read_text())["cell"] == killed.name
    # --allow-missing analysed the three and says so
    notes = (run / "results" / "table1.md").read_text()
    assert "Not done and left out (--allow-missing): segresnet/dice/1; 3 of 4 models analysed." in notes
    stamps = {p: p.stat().st_mtime_ns for p in (run / "models").rglob("best.pt") if p.parent != folder}

    # launching again resumes the killed cell from its last.pt and trains nothing else; the results
    # equal those of the study trained without jobs and without interruption
    run_study(run, **SETTINGS, launcher="local")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert [s.state for s in study_status(run, GRID)] == ["done"] * 4
    assert _losses(folder) == _losses(sequential / "models" / killed.key(0))  # exact resume
    _same_results(run, sequential)
    assert "left out" not in (run / "results" / "table1.md").read_text()
    # the relaunch gave no options: it took (and kept) those config.yaml's launcher: block recorded
    block = yaml.safe_load((run / "config.yaml").read_text())["launcher"]
    assert block == {"name": "local", "options": {"max_parallel": 2}}


def test_two_launches_never_train_a_cell_twice(sequential: Path, tmp_path: Path) -> None:
    cell = GRID[3]
    run = _prepared(sequential, tmp_path / "run", GRID[:3])  # one cell left to train
    folder = run / "models" / cell.key(0)
    first = Launch(run, "local", train=train_cell)
    assert [cj.job is not None for cj in first.submit(GRID)] == [False, False, False, True]  # done: no job
    end = time.monotonic() + 900
    while lock_holder(folder) is None and time.monotonic() < end:  # its job has begun training
        time.sleep(0.05)
    second = Launch(run, "local", train=train_cell)
    jobs = second.submit(GRID)
    # the second launch gives the cell no job: another process holds its train.lock
    assert (jobs[3].job, jobs[3].state) == (None, "busy")
    waiting = threading.Thread(target=first.wait, kwargs={"stream": io.StringIO(), "poll_s": 0.5})
    waiting.start()
    shown = io.StringIO()
    second.wait(shown, poll_s=0.5)
    waiting.join()
    assert [cj.state for cj in first.jobs] == [cj.state for cj in second.jobs] == ["done"] * 4
    assert "segresnet/l1dfl/1                job -          busy" in shown.getvalue()
    history = (folder / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3"]
    assert not (folder / "replaced").exists()  # nothing started over
    # the cell's job also predicted its test set: the masks of the study trained in one process
    made = sorted((run / "predictions" / cell.key(0)).glob("*.nii.gz"))
    assert [p.name for p in made] == sorted(
        p.name for p in (sequential / "predictions" / cell.key(0)).glob("*.nii.gz")
    )
    for mask in made:
        same = sequential / "predictions" / cell.key(0) / mask.name
        assert np.array_equal(np.asarray(nib.load(mask).dataobj), np.asarray(nib.load(same).dataobj))
    # a job that finds its cell's lock taken (two launches submitting at once) ends at once
    with run_lock(folder):
        answer = TrainCellJob(train_cell)(run, cell)
    assert list(answer) == ["busy"] and "is in use by another training" in answer["busy"]


def test_config_yaml_launcher_block_gives_the_options_of_a_relaunch(tmp_path: Path) -> None:
    """Issue 24 item 1: options come from --launcher-option or from config.yaml's launcher: block."""
    from pcatools.study import launcher_block

    config = tmp_path / "config.yaml"
    config.write_text(
        "seed: 0\nlauncher:\n  name: slurm\n  options: {partition: gpu, time_min: 60, mem_gb: 16.5}\n"
    )
    recorded = {"name": "slurm", "options": {"partition": "gpu", "time_min": 60, "mem_gb": 16.5}}
    assert launcher_block(config, "slurm", None) == recorded  # a relaunch: the block's options
    assert launcher_block(config, "slurm", {"partition": "long"}) == {
        "name": "slurm",
        "options": {"partition": "long"},
    }  # given now: they win (and are recorded)
    assert launcher_block(config, "local", None) == {"name": "local", "options": {}}  # another launcher
    assert launcher_block(config, None, None) == recorded  # no launch now: the record is kept
    assert launcher_block(None, None, None) is None  # a restart forgets it
    config.write_text("launcher:\n  name: slurm\n  options: {partitoin: gpu}\n")
    with pytest.raises(ValueError) as err:
        launcher_block(config, "slurm", None)
    assert str(err.value) == (
        f"{config}: launcher.options: unknown option 'partitoin'; expected one of "
        f"{[o.name for o in LAUNCHER_OPTIONS]}"
    )
