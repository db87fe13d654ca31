"""A study's cells as jobs of an existing scheduler, through submitit (the ``cluster`` extra).

pcatools does not schedule. Each (network, loss, seed) cell of a study grid becomes one job that
`submitit <https://github.com/facebookincubator/submitit>`_ hands to SLURM (``sbatch``, the cells
of one launch as one job array) or to its local executor (processes on this machine); the job
runs :func:`pcatools.study.train_cell`, which trains the cell in its model folder from the
study's recorded settings. A job needs nothing but the run folder on a shared file system.

A job's files (submission script, pickles, ``<id>_0_log.out`` and ``<id>_0_log.err``) go to
``RUN_DIR/jobs/``, and ``jobs/<cell key>.json`` records which job was given the cell
(:func:`pcatools.cell_status.job_record`), so that ``pcatools study --status`` can show a failed
cell's log. A failed or killed job fails its cell only: the others run on, and launching again
resumes the cell from its ``last.pt``. Cells already done are not submitted; a cell whose
``train.lock`` another launch holds is not either, and a job that finds the lock taken ends at
once: the launch then waits for the lock to be let go instead of training the cell a second time.
A job stopped at its time limit is requeued by submitit (up to 3 times) and resumes from
``last.pt``.

The options (:data:`LAUNCHER_OPTIONS`) are declared once here; ``pcatools study --launcher-option``
and ``run_study(launcher_options=...)`` take them (:func:`parse_launcher_options` reads texts or a
mapping), and docs/cluster.md's table is this declaration (a test compares them).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pcatools._atomic import write_text_atomic
from pcatools.cell_status import (
    JOBS_DIR,
    cell_state,
    job_result,
    last_line,
    last_log_line,
    lock_holder,
    model_dir,
    study_seed,
    training_progress,
)
from pcatools.training.run_files import RunBusyError

if TYPE_CHECKING:
    from pcatools.cells import Cell

TrainCell = Callable[..., Path]
"""The study's function that trains one cell, ``train(run_dir, cell, progress=False) -> best
checkpoint`` (:func:`pcatools.study.train_cell`), handed to the launcher by the study."""

__all__ = [
    "LAUNCHERS",
    "LAUNCHER_OPTIONS",
    "BUSY",
    "CellJob",
    "Launch",
    "LauncherOption",
    "TrainCell",
    "TrainCellJob",
    "launch_cells",
    "launcher_options_help",
    "launcher_options_markdown",
    "parse_launcher_options",
    "submit_cells",
]

LAUNCHERS = ("local", "slurm")
"""The submitit executors a study can hand its cells to."""


@dataclass(frozen=True)
class LauncherOption:
    """One option of the launchers: its name, type and help, and the submitit executor parameter
    it becomes for each launcher (None: it does not apply to that launcher)."""

    name: str
    kind: type
    help: str
    #: the :class:`submitit.SlurmExecutor` parameter (an ``#SBATCH`` line)
    slurm: str | None
    #: the :class:`submitit.LocalExecutor` parameter; ``max_parallel`` is pcatools' own there
    local: str | None
    #: the value when the option is not given, per launcher (absent: submitit's own default)
    default: Mapping[str, Any] = field(default_factory=dict)


LAUNCHER_OPTIONS: tuple[LauncherOption, ...] = (
    LauncherOption(
        "partition", str, "SLURM partition the jobs go to (sbatch --partition).", "partition", None
    ),
    LauncherOption(
        "gpus_per_job",
        int,
        "GPUs each job gets (SLURM --gpus-per-node; local: CUDA_VISIBLE_DEVICES set to the job's own "
        "GPUs; default local: 1 where torch sees a GPU, else 0).",
        "gpus_per_node",
        "gpus_per_node",
    ),
    LauncherOption(
        "cpus",
        int,
        "CPU cores of each job (SLURM --cpus-per-task): data-loading workers + 1.",
        "cpus_per_task",
        None,
    ),
    LauncherOption("mem_gb", float, "Memory of each job in GB (SLURM --mem).", "mem", None),
    LauncherOption(
        "time_min",
        int,
        "Wall-clock limit of one job in minutes (SLURM --time; local: the job is stopped); a job at its "
        "limit is requeued (3 times at most) and its cell resumes from last.pt. Default 1440.",
        "time",
        "timeout_min",
        {"local": 1440, "slurm": 1440},
    ),
    LauncherOption(
        "account", str, "SLURM account the jobs are charged to (sbatch --account).", "account", None
    ),
    LauncherOption(
        "setup",
        str,
        "A shell line each job runs first, e.g. 'module load cuda/12.4' (SLURM: in the sbatch script; "
        "local: before the job's process).",
        "setup",
        "setup",
    ),
    LauncherOption(
        "max_parallel",
        int,
        "Jobs running at once (SLURM: the job array's %N; local: pcatools starts the next job when one "
        "ends). Default local: one per gpus_per_job GPUs seen, or 1; SLURM: the queue decides.",
        "array_parallelism",
        None,
    ),
)
"""The launcher options: ``--launcher-option KEY=VALUE`` and the keys of ``launcher_options``."""

BUSY = "busy"
"""What a job returns (``{"busy": message}``) when another process holds its cell's ``train.lock``."""

_OPTIONS = {o.name: o for o in LAUNCHER_OPTIONS}


def launcher_options_help() -> str:
    """The options as one help text (``pcatools study --launcher-option``)."""
    return " ".join(f"{o.name}: {o.help}" for o in LAUNCHER_OPTIONS)


def launcher_options_markdown() -> str:
    """The options as the Markdown table of docs/cluster.md (the page's table is checked against it)."""
    rows = [
        "| option | SLURM (`#SBATCH`) | local executor | what it sets |",
        "| --- | --- | --- | --- |",
    ]
    for o in LAUNCHER_OPTIONS:
        slurm, local = (f"`{p}`" if p else "-" for p in (o.slurm, o.local))
        rows.append(f"| `{o.name}` | {slurm} | {local} | {o.help} |")
    return "\n".join(rows)


def parse_launcher_options(
    items: Sequence[str] | Mapping[str, Any], where: str = "--launcher-option"
) -> dict[str, Any]:
    """Launcher options from ``KEY=VALUE`` texts or a mapping (e.g. read from a YAML file), typed.

    Raises
    ------
    ValueError
        An unknown key, an item without ``=``, or a value not of the option's type; one line
        naming ``where``, the item and what was expected.

    Examples
    --------
    >>> parse_launcher_options(["partition=gpu", "time_min=180", "mem_gb=32.5"])
    {'partition': 'gpu', 'time_min': 180, 'mem_gb': 32.5}
    """
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    else:
        for item in items:
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"{where}: expected KEY=VALUE, found {item!r}")
            pairs.append((key.strip(), value.strip()))
    out: dict[str, Any] = {}
    for key, value in pairs:
        option = _OPTIONS.get(key)
        if option is None:
            raise ValueError(f"{where}: unknown option {key!r}; expected one of {list(_OPTIONS)}")
        try:
            if option.kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
                raise ValueError
            out[key] = option.kind(int(float(value))) if option.kind is int else option.kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {key}={value!r} is not a{'n' if option.kind is int else ''} "
                             f"{option.kind.__name__}") from None  # fmt: skip
        if option.kind is not str and out[key] < 0:
            raise ValueError(f"{where}: {key}={value!r} is negative")
    return out


def visible_gpus() -> list[int]:
    """The GPUs this process may use, by the numbers CUDA_VISIBLE_DEVICES gives them (the local
    launcher gives each job its own of these)."""
    named = os.environ.get("CUDA_VISIBLE_DEVICES")
    if named is not None:
        try:
            return [int(g) for g in named.split(",") if g.strip()]
        except ValueError:
            raise ValueError(
                f"launcher local: CUDA_VISIBLE_DEVICES={named!r}; expected GPU numbers (0,1,...), not UUIDs"
            ) from None
    import torch  # deferred: start-up (see tests/test_imports.py)

    return list(range(torch.cuda.device_count()))


def executor_parameters(launcher: str, options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The submitit parameters of ``options`` for ``launcher`` (with the defaults of
    :data:`LAUNCHER_OPTIONS`), and the names of the given options that do not apply to it."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}: expected one of {list(LAUNCHERS)}")
    params: dict[str, Any] = {}
    ignored = []
    for option in LAUNCHER_OPTIONS:
        target = getattr(option, launcher)
        value = options.get(option.name, option.default.get(launcher))
        if option.name in options and target is None and option.name != "max_parallel":
            ignored.append(option.name)
        if target is None or value is None:
            continue
        if target == "mem":  # sbatch's --mem takes whole units
            value = f"{int(value)}GB" if float(value).is_integer() else f"{round(value * 1024)}MB"
        params[target] = [value] if target == "setup" else value
    if launcher == "slurm":
        params["job_name"] = "pcatools"
    return params, ignored


class TrainCellJob:
    """What a job runs: ``train(run_dir, cell, progress=False)`` (the study's
    :func:`pcatools.study.train_cell`) on one cell, requeued at its time limit.

    The study hands its training function in, so that the launcher does not import the study
    that imports it (no import circle). Returns ``{"best": path}``, or ``{"busy": message}`` where
    another process holds the cell's ``train.lock`` (it is training the cell; the launch waits for
    it instead).
    """

    def __init__(self, train: TrainCell) -> None:
        self.train = train

    def __call__(self, run_dir: Path, cell: Cell) -> dict[str, str]:
        """Train ``cell`` of the study in ``run_dir`` (resuming from its ``last.pt``)."""
        try:
            return {"best": str(self.train(run_dir, cell, progress=False))}
        except RunBusyError as err:
            return {BUSY: str(err)}

    def checkpoint(self, run_dir: Path, cell: Cell) -> Any:
        """submitit calls this at the time limit: the same call again, which resumes from ``last.pt``."""
        from submitit.helpers import DelayedSubmission  # deferred: start-up (see tests/test_imports.py)

        return DelayedSubmission(self, run_dir, cell)


@dataclass
class CellJob:
    """One cell of a launch and the job given it (None while the launch holds it back, or where no
    job was needed: the cell was done, or another launch is training it)."""

    cell: Cell
    key: str
    job: Any = None
    #: ``queued``, ``running``, ``done``, ``failed`` or ``busy`` (another launch holds the lock)
    state: str = "queued"
    #: the failed job's last error line, a busy cell's lock holder, the done cell's DSC
    message: str = ""

    @property
    def log(self) -> Path | None:
        """The job's error log (tracebacks and warnings), once there is a job."""
        return None if self.job is None else Path(self.job.paths.stderr)


class Launch:
    """The cells of one launch: submitted through submitit, watched until each is done or failed.

    Parameters
    ----------
    run_dir
        The study run folder (its ``config.yaml`` gives the study seed, hence the model folders).
    launcher
        ``local`` or ``slurm`` (:data:`LAUNCHERS`).
    options
        Launcher options (:func:`parse_launcher_options`).
    train
        What each job runs on its cell: :func:`pcatools.study.train_cell` (:class:`TrainCellJob`).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        launcher: str,
        options: Mapping[str, Any] | None = None,
        *,
        train: TrainCell,
    ):
        import submitit  # deferred: start-up (see tests/test_imports.py)

        self.train = train
        self.run_dir = Path(run_dir).resolve()
        self.launcher = launcher
        self.seed = study_seed(self.run_dir)
        options = dict(options or {})
        self.params, self.ignored = executor_parameters(launcher, options)
        folder = self.run_dir / JOBS_DIR
        self.gpus: list[int] = []
        if launcher == "local":
            self.executor: Any = submitit.LocalExecutor(folder=folder)
            gpus_seen = visible_gpus()
            per_job = int(options.get("gpus_per_job", 1 if gpus_seen else 0))
            self.params["gpus_per_node"] = per_job
            default_parallel = max(1, len(gpus_seen) // per_job) if per_job else 1
            self.max_parallel = int(options.get("max_parallel", default_parallel)) or 1
            if per_job * self.max_parallel > len(gpus_seen):
                raise ValueError(
                    f"launcher local: max_parallel {self.max_parallel} x gpus_per_job {per_job} needs "
                    f"{per_job * self.max_parallel} GPUs; this machine shows {len(gpus_seen)}"
                )
            self.gpus = gpus_seen
            self.per_job = per_job
        else:
            self.executor = submitit.SlurmExecutor(folder=folder)
            self.max_parallel = int(options.get("max_parallel", 0)) or 0
            self.executor.update_parameters(**self.params)
        self.jobs: list[CellJob] = []

    # ---- submitting -----------------------------------------------------------------------------
    def submit(self, cells: Sequence[Cell]) -> list[CellJob]:
        """Submit every cell that is neither done nor being trained by another process; return the
        cells with their jobs (local: at most ``max_parallel`` started now, the others later by
        :meth:`wait`)."""
        to_submit = []
        for cell in cells:
            folder = model_dir(self.run_dir, cell, self.seed)
            cj = CellJob(cell, folder.name)
            state = cell_state(self.run_dir, cell, self.seed)
            if state.state == "done":
                cj.state, cj.message = "done", state.detail
            elif (holder := lock_holder(folder)) is not None:
                cj.state, cj.message = BUSY, f"trained by another process ({holder})"
            else:
                to_submit.append(cj)
            self.jobs.append(cj)
        if self.launcher == "slurm" and to_submit:
            job_fn = TrainCellJob(self.train)
            with self.executor.batch():
                for cj in to_submit:
                    cj.job = self.executor.submit(job_fn, self.run_dir, cj.cell)
            for cj in to_submit:
                self._record(cj)
        else:
            self._start_local()
        return self.jobs

    def _start_local(self) -> None:
        """Start held-back local cells while fewer than ``max_parallel`` jobs run, each on its own GPUs."""
        running = [cj for cj in self.jobs if cj.job is not None and cj.state in ("queued", "running")]
        busy_slots = {getattr(cj, "slot", -1) for cj in running}
        for cj in self.jobs:
            if len(running) >= self.max_parallel:
                break
            if cj.job is not None or cj.state != "queued":
                continue
            slot = min(set(range(self.max_parallel)) - busy_slots)
            gpus = self.gpus[slot * self.per_job : (slot + 1) * self.per_job]
            self.executor.update_parameters(**self.params, visible_gpus=tuple(gpus))
            cj.job = self.executor.submit(TrainCellJob(self.train), self.run_dir, cj.cell)
            cj.slot = slot  # type: ignore[attr-defined]
            busy_slots.add(slot)
            running.append(cj)
            self._record(cj)

    def _record(self, cj: CellJob) -> None:
        """``jobs/<cell key>.json``: the job given the cell, its log and result files (relative)."""
        paths = cj.job.paths
        record = {
            "cell": cj.cell.name,
            "launcher": self.launcher,
            "job_id": str(cj.job.job_id),
            "pid": int(cj.job.job_id) if self.launcher == "local" else None,
            "host": socket.gethostname(),
            "submitted": datetime.datetime.now().isoformat(timespec="seconds"),
            "log": os.path.relpath(paths.stderr, self.run_dir),
            "stdout": os.path.relpath(paths.stdout, self.run_dir),
            "result": os.path.relpath(paths.result_pickle, self.run_dir),
        }
        write_text_atomic(self.run_dir / JOBS_DIR / f"{cj.key}.json", json.dumps(record, indent=2) + "\n")

    # ---- watching -------------------------------------------------------------------------------
    def _update(self, cj: CellJob) -> None:
        """The state of one submitted cell from its job (and its result once the job has ended)."""
        if cj.job is None or cj.state in ("done", "failed"):
            return
        result = Path(cj.job.paths.result_pickle)
        if not result.is_file():
            if self.launcher == "local":
                ended = cj.job.state != "RUNNING"
                if not ended:
                    cj.state = "running"
                    return
                time.sleep(0.5)  # the result is written just before the process ends
                if not result.is_file():
                    cj.state = "failed"
                    cj.message = last_log_line(cj.log) or f"job {cj.job.job_id} ended without a result"
                    return
            else:
                state = str(cj.job.state).upper()
                if state in ("PENDING", "REQUEUED", "CONFIGURING", "UNKNOWN", "READY"):
                    cj.state = "queued"
                    return
                if state in ("RUNNING", "COMPLETING", "SUSPENDED") or not cj.job.done():
                    cj.state = "running"
                    return
                cj.state = "failed"
                cj.message = last_log_line(cj.log) or f"SLURM job {cj.job.job_id} ended {state}"
                return
        read = job_result(result)
        if read is None:  # being written: next time
            return
        outcome, value = read
        if outcome == "error":
            cj.state, cj.message = "failed", last_line(str(value)) or "error"
        elif isinstance(value, dict) and BUSY in value:
            cj.state, cj.message = BUSY, str(value[BUSY])
        else:
            cj.state, cj.message = "done", cell_state(self.run_dir, cj.cell, self.seed).detail

    def _settle_busy(self, cj: CellJob) -> bool:
        """A busy cell once its lock is let go: done, or failed (the other process stopped). True
        while it is still busy."""
        state = cell_state(self.run_dir, cj.cell, self.seed)
        if state.state == "training":
            cj.message = f"trained by another process ({state.detail})"
            return True
        if state.state == "done":
            cj.state, cj.message = "done", state.detail
        else:
            cj.state = "failed"
            cj.message = f"the other process training it stopped ({state.state}: {state.detail})"
        return False

    def wait(self, stream: IO[str] | None = None, poll_s: float = 2.0) -> list[CellJob]:
        """Wait until every cell is done or failed, showing each job's state and log on ``stream``
        (a table redrawn in place on a terminal, a line per change otherwise); returns the cells."""
        stream = sys.stderr if stream is None else stream
        display = _Display(stream, self.run_dir, self.seed)
        while True:
            for cj in self.jobs:
                self._update(cj)
            if self.launcher == "local":
                self._start_local()
            pending = [cj for cj in self.jobs if cj.state in ("queued", "running")]
            busy = [cj for cj in self.jobs if cj.state == BUSY and not pending and self._settle_busy(cj)]
            display.show(self.jobs, self.ignored)
            if not pending and not busy:
                break
            time.sleep(poll_s)
        display.close(self.jobs)
        return self.jobs


class _Display:
    """The jobs' states: a table redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: IO[str], run_dir: Path, seed: int) -> None:
        self.stream = stream
        self.run_dir = run_dir
        self.seed = seed
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.drawn = 0
        self.seen: dict[str, str] = {}
        self.noted = False

    def _row(self, cj: CellJob) -> str:
        job = "-" if cj.job is None else str(cj.job.job_id)
        log = "" if cj.log is None else os.path.relpath(cj.log, self.run_dir)
        state = cj.state
        if cj.state == "running":  # the epoch from history.csv (the lock is not tried: the job holds it)
            epoch, epochs, _ = training_progress(model_dir(self.run_dir, cj.cell, self.seed))
            state = f"running (epoch {epoch} of {epochs})" if epochs else "running"
        text = f"{cj.cell.name:<32} job {job:<10} {state:<28} {log}".rstrip()
        if cj.message and cj.state in ("failed", BUSY):
            text += f"\n    {cj.message}"
        return text

    def show(self, jobs: Sequence[CellJob], ignored: Sequence[str]) -> None:
        if ignored and not self.noted:
            self.stream.write(f"launcher: options {', '.join(ignored)} do not apply here and are ignored\n")
            self.noted = True
        if self.tty:
            rows = [self._row(cj) for cj in jobs]
            text = "\n".join(rows)
            if self.drawn:
                self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.stream.write(text + "\n")
            self.drawn = text.count("\n") + 1
        else:
            for cj in jobs:
                key = f"{cj.state}|{cj.message}|{cj.job.job_id if cj.job is not None else ''}"
                if self.seen.get(cj.key) != key:
                    self.seen[cj.key] = key
                    self.stream.write(self._row(cj) + "\n")
        self.stream.flush()

    def close(self, jobs: Sequence[CellJob]) -> None:
        counts: dict[str, int] = {}
        for cj in jobs:
            counts[cj.state] = counts.get(cj.state, 0) + 1
        self.stream.write(f"{len(jobs)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "\n")
        self.stream.flush()


def submit_cells(
    run_dir: str | os.PathLike[str],
    cells: Sequence[Cell],
    launcher: str,
    options: Mapping[str, Any] | None = None,
    *,
    train: TrainCell,
) -> Launch:
    """Submit ``cells`` of the study in ``run_dir`` as jobs of ``launcher``, each running ``train``
    on its cell (:class:`TrainCellJob`); :meth:`Launch.wait` waits."""
    launch = Launch(run_dir, launcher, options, train=train)
    launch.submit(cells)
    return launch


def launch_cells(
    run_dir: str | os.PathLike[str],
    cells: Sequence[Cell],
    launcher: str,
    options: Mapping[str, Any] | None = None,
    stream: IO[str] | None = None,
    poll_s: float = 2.0,
    *,
    train: TrainCell,
) -> list[CellJob]:
    """Submit ``cells`` and wait for them (:func:`submit_cells`, :meth:`Launch.wait`)."""
    return submit_cells(run_dir, cells, launcher, options, train=train).wait(stream, poll_s)
