"""Per-step training losses of every cell of the ``ci`` profile, for the guard in tests/test_recipe_guard.py.

Trains each (network, loss) cell of the ``ci`` profile for its 4 optimiser steps on the training
cases of a ``ci`` study's ``split.csv`` (no validation: it does not change the steps) and returns
``{"network/loss": [loss of step 1, ..., step 4]}``. Re-record after an intended change of the
recipe, with torch held to AVX2 as the ``pcatools`` command and the tests hold it::

    OMP_NUM_THREADS=1 pcatools study /tmp/ci --profile ci --no-progress
    OMP_NUM_THREADS=1 python tests/ci_step_losses.py /tmp/ci --write
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).with_name("data") / "ci_step_losses.json"


def step_losses(
    study: Path, work: Path, cells: list[str] | None = None, changes: Mapping[str, Any] | None = None
) -> dict[str, list[float]]:
    """Train ``cells`` (default: all) of the ``ci`` profile in ``work``; each step's loss per cell.

    ``changes`` are training settings replaced in every cell (to show the guard sees them).
    """
    from pcatools.cells import Cell
    from pcatools.data.manifest import read_manifest
    from pcatools.study import get_profile
    from pcatools.training import train

    profile = get_profile("ci")
    split = read_manifest(Path(study) / "split.csv")
    split = split[split["split"] == "train"]
    out: dict[str, list[float]] = {}
    for network in profile.networks:
        for loss in profile.losses:
            if cells is not None and f"{network}/{loss}" not in cells:
                continue
            steps: list[float] = []

            def record(event: Any, steps: list[float] = steps) -> None:
                if event.kind == "step":
                    steps.append(float(event.loss))

            # one thread, as recorded: two threads moved Attention U-Net/L1DFL's step 3 by 6.5e-5
            config = profile.train_config(network, loss, seed=0).replace(
                tensorboard=False, threads=1, **(changes or {})
            )
            run = Path(work) / Cell(network, loss, 0).key(0)
            train(split, run, config, progress=False, resume=False, callbacks=[record])
            out[f"{network}/{loss}"] = steps
    return out


if __name__ == "__main__":
    from pcatools.reproducibility import hold_cpu_isa

    hold_cpu_isa()  # before torch loads, as the pcatools command and tests/conftest.py do
    import tempfile

    losses = step_losses(Path(sys.argv[1]), Path(tempfile.mkdtemp()))
    text = json.dumps(losses, indent=1)
    if "--write" in sys.argv[2:]:
        RECORDED.parent.mkdir(exist_ok=True)
        RECORDED.write_text(text + "\n")
    print(text)
