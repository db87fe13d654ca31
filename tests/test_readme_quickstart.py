"""The README's Python quickstart runs as printed and prints the known answers.

The block between ``<!-- quickstart -->`` and ``<!-- /quickstart -->`` runs in a fresh interpreter
whose working folder holds the three folders it names: ``labels/`` and ``suv/`` with three phantom
cases at 8 mm, ``preds/`` with the ground truth of two cases and an empty mask for the third. Known
answers: DSC 1, 1, 0 (mean 0.67, SD 0.58), every lesion of two patients found (TP rate 0.67, FN rate
0.33), no false positive, and the predicted TMTV of the third case 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

QUICKSTART = re.compile(r"<!-- quickstart -->\n```python\n(.*?)```\n<!-- /quickstart -->", re.S)


def quickstart_code() -> str:
    """The quickstart block of README.md, as printed."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = QUICKSTART.findall(readme)
    assert len(found) == 1, "README.md: expected one ```python block between the quickstart markers"
    return found[0]


def test_the_quickstart_is_in_the_first_80_lines_and_about_15_lines_long() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    end = readme.index("<!-- /quickstart -->") + 1
    assert end <= 80
    code = [line for line in quickstart_code().splitlines() if line.strip() and not line.startswith("#")]
    assert 12 <= len(code) <= 20, len(code)
    assert len(readme) <= 200


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """``labels/``, ``suv/`` and ``preds/`` of three phantom cases; the ground truth's TMTV per case (ml)."""
    from pcatools.data.case import save_nifti
    from pcatools.data.phantom import make_case

    root = tmp_path_factory.mktemp("quickstart")
    tmtv = []
    for i in range(3):
        case_id = f"P{i:03d}"
        case = make_case((0, i), spacing=(8.0, 8.0, 8.0), case_id=case_id)
        images = case.images()
        save_nifti(images["label"], root / "labels" / f"{case_id}.nii.gz")
        save_nifti(images["pet"], root / "suv" / f"{case_id}.nii.gz")
        pred = images["label"] if i < 2 else type(images["label"])(np.zeros_like(case.label), case.affine)
        save_nifti(pred, root / "preds" / f"{case_id}.nii.gz")
        assert case.label.sum() > 0
        tmtv.append(float(case.label.sum()) * 0.512)  # 8 mm voxels: 0.512 ml each
    return root, tmtv


def test_the_quickstart_runs_as_printed_with_the_known_answers(folders: tuple[Path, list[float]]) -> None:
    root, tmtv = folders
    proc = subprocess.run(
        [sys.executable, "-c", quickstart_code()],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    # the Table 1 columns the quickstart prints: DSC 1, 1, 0; lesions of two patients all found
    assert lines[0].split() == ["Loss", "DSC", "mean", "TP", "FP", "FN"]
    assert lines[1].split() == "mine 0.67 ± 0.58 0.67 ± 0.58 0.00 ± 0.00 0.33 ± 0.58".split()
    # the per-case table read back with load_study: mean DSC 2/3, mean TMTV of the ground truth and of
    # the predictions (the third case's prediction is empty)
    row = lines[-1].split()
    assert row[0] == "mine"
    np.testing.assert_allclose(
        [float(v) for v in row[1:]], [2 / 3, np.mean(tmtv), np.mean(tmtv[:2] + [0.0])], rtol=1e-5
    )
    assert (root / "runs" / "my_eval" / "results" / "table1.csv").is_file()
