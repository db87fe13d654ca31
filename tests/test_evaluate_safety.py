"""`pcatools evaluate` never deletes an input, never gives a silently wrong number, never falls over (issue 22).

Every test runs the command line (typer's CliRunner, or a subprocess of it where a process is killed
or stderr is read) on the built cohort of ``tests/test_evaluate.py`` and checks the exact outcome:
the one-line message, the exit code, the bytes left on disk, or numbers equal to the plain input's.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import psutil
import pytest

from pcatools._atomic import exclusive_lock
from tests.conftest import REPO
from tests.test_evaluate import AFFINE, LESIONS, SHAPE, _args, _cli, _gt, _pred, _save, make_cohort

CASES = sorted(LESIONS)
METRICS = [
    "dice",
    "tp",
    "fp",
    "fn",
    "fpv_ml",
    "fnv_ml",
    "pred_tmtv_ml",
    "pred_tla",
    "pred_suvmax",
    "pred_dmax_mm",
]


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _one_line_error(code: int, text: str, pattern: str) -> None:
    assert code == 1, text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert text.startswith("error: "), text
    assert re.search(pattern, text), text


def _cases(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results" / "cases.csv", dtype={"case_id": str}).set_index(["model", "case_id"])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cohort of ``tests/test_evaluate.py``: nnU-Net ``labelsTs`` / ``imagesTs`` and three models."""
    return make_cohort(tmp_path_factory.mktemp("byo"))


@pytest.fixture(scope="module")
def first(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished evaluation of the cohort, copied by the tests that replace or damage one."""
    out = tmp_path_factory.mktemp("first") / "out"
    code, text = _cli(*_args(cohort, out))
    assert code == 0, text
    return out


# --------------------------------------------------------------------------- data lost


def test_out_holding_the_inputs_is_refused_and_nothing_changes(cohort: Path, tmp_path: Path) -> None:
    """Inputs kept under my_eval/, evaluated into my_eval: refused, every input byte-identical."""
    my_eval = tmp_path / "my_eval"
    shutil.copytree(cohort / "dataset", my_eval / "dataset")
    shutil.copytree(cohort / "preds", my_eval / "preds")
    before = _tree(my_eval)
    code, text = _cli(*_args(my_eval, my_eval))
    _one_line_error(
        code,
        text,
        rf"^error: output {re.escape(str(my_eval))}: holds the input .*my_eval/dataset/labelsTs \(ground truth\), which replacing it would delete",
    )
    assert _tree(my_eval) == before and sorted(p.name for p in tmp_path.iterdir()) == ["my_eval"]
    # a prediction folder outside whose files are links into OUT: caught through the link
    preds = tmp_path / "linked"
    preds.mkdir()
    for case in CASES:
        (preds / f"{case}.nii.gz").symlink_to(my_eval / "preds" / "extra" / f"{case}.nii.gz")
    code, text = _cli("evaluate", str(my_eval), "--gt", str(cohort / "dataset" / "labelsTs"), "--pred", f"a={preds}",
                      "--workers", "0", "--no-progress")  # fmt: skip
    _one_line_error(code, text, r"holds the input .*linked/P001.nii.gz \(case 'P001', model 'a'\)")
    assert _tree(my_eval) == before


def test_a_foreign_file_in_a_previous_evaluation_is_named_and_kept(
    first: Path, cohort: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(first, out)
    (out / "results" / "my_notes.txt").write_text("mine")
    before = _tree(out)
    code, text = _cli(*_args(cohort, out))
    _one_line_error(
        code, text, r"output .*out: holds results/my_notes.txt, which pcatools evaluate did not write"
    )
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock, no staging folder left
    config = json.loads((first / "evaluation.json").read_text())
    assert "results/cases.csv" in config["files"] and "figures/figure3.png" in config["files"]


def test_a_second_evaluation_into_a_locked_out_is_refused(first: Path, cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(first, out)
    before = _tree(out)
    with exclusive_lock(tmp_path / ".out.lock"):  # what a running evaluation holds
        code, text = _cli(*_args(cohort, out))
    _one_line_error(
        code, text, r"output .*out: another pcatools evaluate is writing it \(lock .*\.out\.lock\); wait"
    )
    assert _tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


_KILLABLE = """
import os, pathlib, sys, time
import pcatools.evaluation as ev
step, marker, exchange = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3] == "1"
def pause(name):
    if name == step:
        marker.touch()
        time.sleep(600)
ev._step = pause
if not exchange:
    ev.exchange_paths = lambda a, b: False  # a system without renameat2
from pcatools.cli import app
sys.argv = ["pcatools"] + sys.argv[4:]
app()
"""


def _run_until(step: str, marker: Path, args: list[str], exchange: bool = True) -> subprocess.Popen[bytes]:
    """Start `pcatools evaluate ARGS` in a subprocess that pauses at ``step`` (marker file touched)."""
    log = (marker.parent / "child.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, step, str(marker), "1" if exchange else "0", *args],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.time() + 600  # generous: the suite may share 2 cores with other work
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), (marker.parent / "child.log").read_text()[-2000:]
    return proc


def _kill_and_wait(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a run and check that no process it started outlives it."""
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive


@pytest.mark.parametrize("step", ["locked", "staging", "staged", "swapped"])
def test_killed_at_each_step_of_replacing_out_leaves_a_complete_out(
    first: Path,
    cohort: Path,
    tmp_path: Path,
    step: str,
) -> None:
    """SIGKILL with the old OUT in place, during staging, with the new one complete, after the swap."""
    out = tmp_path / "work" / "out"
    shutil.copytree(first, out)
    old = _tree(out)
    proc = _run_until(step, tmp_path / "paused", _args(cohort, out, "--reference", "merged"))
    if step == "locked":  # meanwhile, a second run into the same OUT is refused, not crashed
        code, text = _cli(*_args(cohort, out))
        _one_line_error(code, text, r"another pcatools evaluate is writing it")
    _kill_and_wait(proc)
    now = _tree(out)
    reference = json.loads(now["evaluation.json"])["reference"]
    assert now == old if step != "swapped" else reference == "merged", step
    assert sorted(now) == sorted(["evaluation.json", *json.loads(now["evaluation.json"])["files"]])
    # the next run removes what the killed one left beside OUT (its lock and staging folder)
    code, text = _cli(*_args(cohort, out))
    assert code == 0, text
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
    assert json.loads((out / "evaluation.json").read_text())["reference"] == "missed"


def test_without_an_atomic_swap_a_kill_between_the_renames_is_recovered(
    first: Path,
    cohort: Path,
    tmp_path: Path,
) -> None:
    """Where renameat2 is missing, OUT is briefly absent: the next run puts the old folder back first."""
    from pcatools.evaluation import _tidy

    out = tmp_path / "work" / "out"
    shutil.copytree(first, out)
    old = _tree(out)
    proc = _run_until("moved_old", tmp_path / "paused", _args(cohort, out), exchange=False)
    _kill_and_wait(proc)
    assert not out.exists() and len(list(out.parent.glob(".out.old-*"))) == 1
    _tidy(out)  # what the next run does first, under the lock
    assert _tree(out) == old
    assert sorted(p.name for p in out.parent.iterdir()) == [".out.lock", "out"]  # the killed run's lock file


def test_stale_hidden_folders_are_removed_only_when_they_hold_evaluate_files(
    first: Path,
    cohort: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    ours = tmp_path / ".out.partial-0123abcd"
    shutil.copytree(first / "results", ours / "results")
    theirs = tmp_path / ".out.old-89abcdef"
    theirs.mkdir()
    (theirs / "thesis.tex.bak").write_text("mine")
    code, text = _cli(*_args(cohort, out))
    assert code == 0, text
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.old-89abcdef", "out"]
    assert (theirs / "thesis.tex.bak").read_text() == "mine"


def _busy_worker(*args: object) -> None:
    """Stands in for a worker's job (``pcatools.metrics.evaluate._evaluate_files``): says so, then works on."""
    (Path(os.environ["PCATOOLS_TEST_BUSY"]) / str(os.getpid())).touch()
    time.sleep(600)


def test_killed_evaluate_leaves_no_worker_alive(cohort: Path, tmp_path: Path) -> None:
    """`--workers 2`, SIGKILLed while both workers are busy: they die with it (PR_SET_PDEATHSIG)."""
    busy = tmp_path / "busy"
    busy.mkdir()
    code = (
        "import sys\n"
        "import pcatools.metrics.evaluate as me\n"
        "from tests.test_evaluate_safety import _busy_worker\n"
        "me._evaluate_files = _busy_worker\n"
        "from pcatools.cli import app\n"
        "sys.argv = ['pcatools'] + sys.argv[1:]\n"
        "app()\n"
    )
    args = [a if a != "0" else "2" for a in _args(cohort, tmp_path / "out")]  # --workers 2
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PCATOOLS_TEST_BUSY": str(busy)})  # fmt: skip
    try:
        deadline = time.time() + 600  # generous: the suite may share 2 cores with other work
        while len(list(busy.iterdir())) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        workers = [psutil.Process(int(p.name)) for p in busy.iterdir()]
        assert len(workers) == 2 and all(w.ppid() == proc.pid for w in workers), workers
    finally:
        if proc.poll() is None:
            _kill_and_wait(proc)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- silently wrong numbers


def _shifted(case: str) -> np.ndarray:
    """The ground truth moved one voxel along x: each 27-voxel cube keeps 18, each 8-voxel cube 4."""
    return np.roll(_gt(case), 1, axis=0)


# hand-computed DSC = 2 |G n P| / (|G| + |P|) of the one-voxel shift (no lesion touches the x border)
SHIFT_DSC = {"P001": 2 * 18 / 54, "P002": 2 * (18 + 4) / 70, "P003": 2 * 8 / 32, "P004": 2 * 12 / 48}


def test_label_255_ground_truth_with_0_1_predictions_gives_the_true_dsc(tmp_path: Path) -> None:
    for case in CASES:
        _save(_gt(case) * 255, tmp_path / "gt" / f"{case}.nii.gz")
        _save(_shifted(case), tmp_path / "binary" / f"{case}.nii.gz")  # 0/1
        _save(_shifted(case) * 255, tmp_path / "classes" / f"{case}.nii.gz")  # 0/255
    out = tmp_path / "out"
    code, text = _cli("evaluate", str(out), "--gt", str(tmp_path / "gt"), "--pred", f"binary={tmp_path / 'binary'}",
                      "--pred", f"classes={tmp_path / 'classes'}", "--label", "255", "--workers", "0", "--no-progress")  # fmt: skip
    assert code == 0, text
    cases = _cases(out)
    for model in ("binary", "classes"):
        for case in CASES:
            assert cases.loc[(model, case), "dice"] == pytest.approx(SHIFT_DSC[case], abs=1e-12), (
                model,
                case,
            )
    assert 0.5 <= min(SHIFT_DSC.values()) and max(SHIFT_DSC.values()) <= 0.7


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"P001": 2}, r"prediction .*P001.nii.gz: --label 255 asks for class 255, found values \[0, 2\] only \(a 0/2 mask, or a label map without class 255\?\); pass --label 2 if 2 marks the lesions"),
        ({"P001": 1, "P002": 255}, r"--label 255: the prediction model 'a' files are of two kinds: .*P001.nii.gz holds values \[0, 1\] \(a 0/1 mask\) and .*P002.nii.gz holds values \[0, 255\] \(a label map\)"),
    ],
)  # fmt: skip
def test_label_readings_that_could_be_wrong_are_refused(
    tmp_path: Path, files: dict[str, int], message: str
) -> None:
    for case in CASES:
        _save(_gt(case) * 255, tmp_path / "gt" / f"{case}.nii.gz")
        _save(_shifted(case) * files.get(case, 255), tmp_path / "a" / f"{case}.nii.gz")
    code, text = _cli("evaluate", str(tmp_path / "out"), "--gt", str(tmp_path / "gt"), "--pred", f"a={tmp_path / 'a'}",
                      "--label", "255", "--workers", "0", "--no-progress")  # fmt: skip
    _one_line_error(code, text, message)
    assert not (tmp_path / "out").exists()


def test_identical_models_give_p_1_and_a_clean_stderr(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    preds = cohort / "preds" / "extra"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "pcatools"), "evaluate", str(out), "--gt", str(cohort / "dataset" / "labelsTs"),
         "--suv", str(cohort / "dataset" / "imagesTs"), "--pred", f"a={preds}", "--pred", f"b={preds}",
         "--workers", "0", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    wil = pd.read_csv(out / "results" / "wilcoxon.csv")
    assert wil[["model", "n", "statistic", "p_value"]].values.tolist() == [["b", 4, 0.0, 1.0]]


# --------------------------------------------------------------------------- false refusals


def _reoriented(arr: np.ndarray, ornt: list[list[int]]) -> nib.Nifti1Image:
    """The mask stored in another axis order / direction, its affine saying so (MONAI Orientation, saved)."""
    o = np.array(ornt, float)
    data = nib.orientations.apply_orientation(arr, o)
    return nib.Nifti1Image(np.ascontiguousarray(data), AFFINE @ nib.orientations.inv_ornt_aff(o, arr.shape))


def test_reoriented_and_dvc_linked_predictions_give_the_plain_numbers(cohort: Path, tmp_path: Path) -> None:
    store = tmp_path / ".dvc" / "cache" / "files" / "md5"
    for case in CASES:
        p = _pred("extra", case)
        _save(p, tmp_path / "plain" / f"{case}.nii.gz")
        (tmp_path / "flip").mkdir(exist_ok=True)
        nib.save(_reoriented(p, [[0, -1], [1, 1], [2, -1]]), str(tmp_path / "flip" / f"{case}.nii.gz"))
        (tmp_path / "perm").mkdir(exist_ok=True)
        nib.save(_reoriented(p, [[2, 1], [0, -1], [1, 1]]), str(tmp_path / "perm" / f"{case}.nii.gz"))
        blob = store / case[-2:] / f"{abs(hash(case)):032x}"  # no .nii.gz: the content-addressed name
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "plain" / f"{case}.nii.gz", blob)
        (tmp_path / "dvc").mkdir(exist_ok=True)
        (tmp_path / "dvc" / f"{case}.nii.gz").symlink_to(blob)
    assert nib.load(str(tmp_path / "perm" / "P001.nii.gz")).shape == SHAPE  # a cube: only the affine tells
    assert "".join(nib.aff2axcodes(nib.load(str(tmp_path / "perm" / "P001.nii.gz")).affine)) != "RAS"
    out = tmp_path / "out"
    models = [f"--pred={m}={tmp_path / m}" for m in ("plain", "flip", "perm", "dvc")]
    code, text = _cli("evaluate", str(out), "--gt", str(cohort / "dataset" / "labelsTs"), "--suv",
                      str(cohort / "dataset" / "imagesTs"), *models, "--workers", "0", "--no-progress")  # fmt: skip
    assert code == 0, text
    cases = _cases(out)
    plain = cases.loc["plain", METRICS]
    for model in ("flip", "perm", "dvc"):
        pd.testing.assert_frame_equal(cases.loc[model, METRICS], plain, check_exact=True, obj=model)
    assert plain["dice"].tolist() == pytest.approx([54 / 62, 70 / 78, 32 / 40, 48 / 56])


# --------------------------------------------------------------------------- one line instead of falling over


def _bad_pred_folder(cohort: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "a"
    shutil.copytree(cohort / "preds" / "extra", folder)
    return folder


def _evaluate_a(cohort: Path, tmp_path: Path) -> tuple[int, str]:
    return _cli("evaluate", str(tmp_path / "out"), "--gt", str(cohort / "dataset" / "labelsTs"),
                "--pred", f"a={tmp_path / 'a'}", "--workers", "0", "--no-progress")  # fmt: skip


@pytest.mark.timeout(120)  # a FIFO opened would block for ever
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("broken", r"prediction .*a/P002.nii.gz: expected a NIfTI file, found a broken symbolic link \(its target .*gone.nii.gz is missing\)$"),
        ("fifo", r"prediction .*a/P002.nii.gz: expected a NIfTI file, found a named pipe \(FIFO\), which is not a regular file$"),
        ("zero", r"prediction .*a/P002.nii.gz: expected a NIfTI file, found a character device \(a link to /dev/zero\), which is not a regular file$"),
    ],
)  # fmt: skip
def test_links_pipes_and_devices_are_named_not_missing(
    cohort: Path, tmp_path: Path, kind: str, message: str
) -> None:
    pred = _bad_pred_folder(cohort, tmp_path) / "P002.nii.gz"
    pred.unlink()
    if kind == "broken":
        pred.symlink_to(tmp_path / "gone.nii.gz")
    elif kind == "fifo":
        os.mkfifo(pred)
    else:
        pred.symlink_to("/dev/zero")
    code, text = _evaluate_a(cohort, tmp_path)
    _one_line_error(code, text.strip(), message)
    assert not (tmp_path / "out").exists()


def _header_only(shape: tuple[int, ...], dtype: type) -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_sform(AFFINE, code=1)
    hdr["vox_offset"] = 352
    return hdr.binaryblock + b"\0" * 4


def test_a_header_claiming_a_huge_grid_or_a_gzip_bomb_is_refused_before_reading(
    cohort: Path,
    tmp_path: Path,
) -> None:
    import resource

    folder = _bad_pred_folder(cohort, tmp_path)
    # 20000^3 voxels (8 TB) in a file of a few hundred bytes
    (folder / "P002.nii.gz").write_bytes(
        gzip.compress(_header_only((20000, 20000, 20000), np.uint8) + b"\1" * 100)
    )
    code, text = _evaluate_a(cohort, tmp_path)
    _one_line_error(
        code,
        text,
        r"prediction .*P002.nii.gz: cannot read the NIfTI file, it is truncated or corrupt \(its header's shape \(20000, 20000, 20000\) of uint8 needs \d+ bytes; the \d+-byte file holds at most \d+ once decompressed\)$",
    )
    # a gzip bomb: 1 GB of zeros in 1 MB (1000 gzip members of 1 MB each), the header's grid 1000^3
    member = gzip.compress(b"\0" * 1_000_000)
    (folder / "P002.nii.gz").write_bytes(
        gzip.compress(_header_only((1000, 1000, 1000), np.uint8)) + member * 1000
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    code, text = _evaluate_a(cohort, tmp_path)
    _one_line_error(
        code,
        text,
        r"prediction .*P002.nii.gz is not on the grid of ground truth .*P002.nii.gz: prediction has shape \(1000, 1000, 1000\)",
    )
    assert time.perf_counter() - start < 10
    assert (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000
    )  # KiB: nothing of the 1 GB was read


def test_an_rgb24_prediction_is_one_line(cohort: Path, tmp_path: Path) -> None:
    folder = _bad_pred_folder(cohort, tmp_path)
    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, AFFINE), str(folder / "P002.nii.gz"))
    code, text = _evaluate_a(cohort, tmp_path)
    _one_line_error(
        code,
        text,
        r"case 'P002', model 'a': prediction .*P002.nii.gz: expected an integer, boolean or float mask, found RGB24 voxels$",
    )
