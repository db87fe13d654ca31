"""The study grid's cells as submitit jobs (issue 24): pcatools.launcher and pcatools.cell_status.

The SLURM executor is tested without a queue: a fake ``sbatch`` on PATH keeps the script submitit
writes, and the script's ``#SBATCH`` lines are checked against the options given. Cell states are
read from hand-made model folders whose answers are known (a lock held by this process, a history
of two epochs out of four, a job's error result).
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import sys
from pathlib import Path

import pytest

from pcatools.cell_status import cell_state, format_status, study_status
from pcatools.cells import Cell
from pcatools.launcher import (
    LAUNCHER_OPTIONS,
    Launch,
    launcher_options_help,
    launcher_options_markdown,
    parse_launcher_options,
)
from pcatools.training.run_files import run_lock

GRID = [Cell("segresnet", loss, seed) for loss in ("dice", "l1dfl") for seed in (0, 1)]


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
    launch = Launch(run, "slurm", options)
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
