"""DDP under ``torchrun --nproc_per_node=2`` with the gloo backend on CPU.

One epoch on a tiny cohort (3 training cases, 2 validation cases: one per rank). Both ranks must
report the same validation DSC, and that DSC must be the mean over BOTH validation cases, as
recomputed here in a single process from the checkpoint rank 0 wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_training import tiny_cohort

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import pandas as pd
    from pcatools.training import TrainConfig, train

    table = pd.read_csv(sys.argv[1], dtype={"case_id": str})
    config = TrainConfig(
        epochs=1, batch_size=1, patch_size=(32, 32, 32), spacing=(4.0, 4.0, 4.0), val_every=1, workers=0,
        lr=3e-3, model_overrides={"init_filters": 4}, tensorboard=False,
    )
    result = train(table, sys.argv[2], config, progress=False, device="cpu")
    row = result.history.iloc[-1]
    print("RESULT " + json.dumps({
        "rank": int(os.environ["RANK"]), "world": int(os.environ["WORLD_SIZE"]),
        "val_dice": float(row["val_dice"]), "val_cases": int(row["val_cases"]),
        "train_loss": float(row["train_loss"]), "steps": int(row["steps"]),
    }), flush=True)
    """
)


@pytest.mark.slow
def test_torchrun_two_ranks_agree_on_validation_dsc(tmp_path: Path, repo_root: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not found")
    table = tiny_cohort(tmp_path / "data", n=5, n_val=2)
    manifest = tmp_path / "split.csv"
    table.to_csv(manifest, index=False)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root)}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", str(script), str(manifest), str(run)],
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = sorted(
        (json.loads(line.split("RESULT ", 1)[1]) for line in proc.stdout.splitlines() if "RESULT " in line),
        key=lambda r: r["rank"],
    )
    assert [r["rank"] for r in results] == [0, 1] and all(r["world"] == 2 for r in results)
    r0, r1 = results
    assert r0["val_dice"] == r1["val_dice"] and np.isfinite(r0["val_dice"])
    assert r0["val_cases"] == r1["val_cases"] == 2  # one case validated on each rank, summed
    assert r0["train_loss"] == r1["train_loss"]  # the epoch loss is all-reduced too
    assert r0["steps"] == r1["steps"] == 2  # DistributedSampler: ceil(3 / 2) = 2 cases per rank

    # only rank 0 wrote; its history and checkpoint agree with what the ranks printed
    history = pd.read_csv(run / "history.csv")
    assert history["val_dice"].iloc[0] == pytest.approx(r0["val_dice"], rel=1e-12)
    assert not list(run.glob("*rank1*"))

    # recompute the validation DSC of the saved weights in one process over both cases
    from monai.inferers import sliding_window_inference
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    from pcatools.data.transforms import eval_transforms
    from pcatools.inference import load_model

    model, config = load_model(run / "last.pt", device="cpu")
    assert config["world_size"] == 2
    transform = eval_transforms(spacing=(4.0, 4.0, 4.0))
    metric = DiceMetric(include_background=False, reduction="none")
    scores = []
    for row in table[table["split"] == "val"].to_dict("records"):
        item = transform({k: row[k] for k in ("ct", "pet", "label")})
        with torch.no_grad():
            logits = sliding_window_inference(
                item["image"][None].as_tensor(), (32, 32, 32), 4, model, overlap=0.25, mode="gaussian"
            )
        pred = torch.argmax(logits, dim=1, keepdim=True)
        scores.append(
            float(metric(one_hot(pred, 2), one_hot(item["label"][None].as_tensor().long(), 2))[0, 0])
        )
    assert r0["val_dice"] == pytest.approx(float(np.mean(scores)), abs=1e-6)
