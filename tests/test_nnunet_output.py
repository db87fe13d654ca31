"""`pcatools nnunet plan|train|predict` keep nnU-Net's own output in ``nnunet_output.log`` in the run folder.

Run as a user runs them (the console script, in a subprocess): stdout is the one line the command
prints, stderr the progress bars over epochs, validation cases and predicted cases, and the log
holds what nnU-Net printed (its plan dictionaries, "GPU prediction completed" on a CPU). With
``--verbose`` (``verbose=True``) nothing is redirected and no log is written. Also the README's
``pcatools nnunet train`` lines set a small ``--epochs`` and say the real default.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_nnunet import _need_nnunet

EXE = Path(sys.executable).parent / "pcatools"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(EXE), "nnunet", *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_readme_nnunet_train_lines_set_small_epochs_and_say_the_default() -> None:
    readme = (REPO / "README.md").read_text()
    lines = [line for line in readme.splitlines() if line.startswith("pcatools nnunet train ")]
    assert len(lines) == 2, lines
    for line in lines:
        assert re.search(r"--epochs \d+\b", line) and re.search(r"--iterations \d+\b", line), line
    assert "1000 epochs x 250 iterations" in readme
    # the same in the nnU-Net page and notebook 09's shell block (a copied line never starts the default)
    for page in ("docs/nnunet.md", "notebooks/09_nnunet.py"):
        text = (REPO / page).read_text()
        lines = [line.lstrip("# ") for line in text.splitlines() if "pcatools nnunet train 501" in line]
        assert lines and all(re.search(r"--epochs \d+ --iterations \d+", line) for line in lines), (
            page,
            lines,
        )
        assert "1000 x 250" in text or "1000 epochs x 250" in text, page


@pytest.mark.slow
def test_nnunet_output_goes_to_the_run_folder_log(tmp_path: Path) -> None:
    _need_nnunet()
    env = {
        **os.environ,
        "nnUNet_raw": str(tmp_path / "raw"),
        "nnUNet_preprocessed": str(tmp_path / "pre"),
        "nnUNet_results": str(tmp_path / "res"),
        "nnUNet_n_proc_DA": "0",
        "nnUNet_def_n_proc": "1",
    }
    _run(env, "export-dataset", str(tmp_path / "raw"), "--n-cases", "8", "--spacing", "8",
         "--test-fraction", "0.25", "--workers", "1", "--no-progress")  # fmt: skip

    plan = _run(env, "plan", "501", "--workers", "1")
    pre = tmp_path / "pre" / "Dataset501_PSMA"
    assert plan.stdout == f"planned and preprocessed: {pre} (nnU-Net's output: {pre / 'nnunet_output.log'})\n"
    assert "'patch_size'" in (pre / "nnunet_output.log").read_text()  # nnU-Net's plan dictionaries

    train = _run(env, "train", "501", "3d_fullres", "0", "--loss", "l1dfl", "--device", "cpu", "--epochs", "1",
                 "--iterations", "1", "--val-iterations", "1", "--workers", "0")  # fmt: skip
    fold = tmp_path / "res" / "Dataset501_PSMA" / "nnUNetTrainerL1DFL__nnUNetPlans__3d_fullres" / "fold_0"
    assert train.stdout == f"trained: {fold} (nnU-Net's output: {fold / 'nnunet_output.log'})\n"
    assert "train: 100%" in train.stderr and "validation: 100%" in train.stderr  # the progress bars
    log = (fold / "nnunet_output.log").read_text()
    assert "Configuration name: 3d_fullres" in log and "Epoch 0" in log  # nnU-Net's own lines
    assert "Configuration name" not in train.stderr and "Epoch 0" not in train.stderr
    n_val = len(list((fold / "validation").glob("*.nii.gz")))
    assert n_val >= 1 and "validation: 100%|" in train.stderr and f"{n_val}/{n_val}" in train.stderr

    images = tmp_path / "raw" / "Dataset501_PSMA" / "imagesTs"
    model = fold.parent
    predict = _run(env, "predict", str(model), str(images), str(tmp_path / "preds"), "--fold", "0",
                   "--device", "cpu", "--no-tta", "--workers", "1")  # fmt: skip
    preds = tmp_path / "preds"
    n = len(list(preds.glob("*.nii.gz")))
    assert n == len(list(images.glob("*_0000.nii.gz"))) == 2
    assert predict.stdout.splitlines() == [
        f"{n} prediction(s) in {preds} (nnU-Net's output: {preds / 'nnunet_output.log'}); evaluate: "
        f"pcatools evaluate EVAL --gt LABELS --pred NAME={preds}"
    ]
    assert "predict: 100%" in predict.stderr and f"{n}/{n}" in predict.stderr
    assert "GPU prediction completed" in (preds / "nnunet_output.log").read_text()
    assert "GPU prediction completed" not in predict.stderr + predict.stdout


def _child_prints() -> None:  # run in a spawned worker, as nnU-Net's are
    print("from a spawned worker", flush=True)


def test_output_to_sends_print_fds_and_spawned_workers_to_the_log(tmp_path: Path) -> None:
    import multiprocessing

    from pcatools.nnunet.run import _output_to

    log = tmp_path / "run" / "nnunet_output.log"
    with _output_to(log) as terminal:
        print("from print")
        os.write(1, b"from fd 1\n")
        os.write(2, b"from fd 2\n")
        worker = multiprocessing.get_context("spawn").Process(target=_child_prints)
        worker.start()
        worker.join()
        assert terminal is not sys.stderr
    assert log.read_text().splitlines() == ["from print", "from fd 1", "from fd 2", "from a spawned worker"]
    with _output_to(None) as terminal:  # verbose: nothing redirected
        assert terminal is sys.stderr
    print("after")  # the streams are back
    assert log.read_text().count("\n") == 4
