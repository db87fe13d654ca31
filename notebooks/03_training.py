# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 Training one network with one loss, with a live loss curve (section 2.5)
#
# The paper trains each network with AdamW (lr 2e-4, weight decay 1e-5), cosine annealing over
# 1000 epochs, 128^3 patches at 2 mm and validation by sliding window. `pcatools.training.train`
# does exactly that; here with CPU-sized settings (`parameters` cell) on a synthetic cohort. The
# run folder holds the config, package versions, split, `history.csv`, TensorBoard events and
# `best.pt` / `last.pt`; re-running the cell continues from `last.pt`.
#
# On GPUs the same call runs the paper's settings; several GPUs:
# `torchrun --nproc_per_node=2 -m pcatools.cli train --config configs/paper_segresnet_l1dfl.yaml`.

# %% tags=["parameters"]
network = "segresnet"  # or "attention_unet"
loss = "l1dfl"  # "dice", "dice_focal" or "l1dfl"
epochs = 30  # the paper: 1000
patch = 64  # patch edge in voxels; the paper: 128
spacing = 4.0  # mm; the paper: 2.0
n_cases = 24  # synthetic cases (the paper: 380 real scans)
steps_per_epoch = 8  # cap on optimiser steps per epoch (None: a full pass)
run_dir = "runs/notebook03"
seed = 0

# %%
from pathlib import Path

import plotly.graph_objects as go
from IPython.display import display

from pcatools.data.phantom import make_cohort
from pcatools.data.splits import make_splits
from pcatools.training import train

data = Path("data") / f"phantom_{n_cases}_{spacing:g}mm"
manifest = make_cohort(n_cases, data, seed=seed, spacing=(spacing,) * 3)
split = make_splits(manifest, fractions=(0.6, 0.2, 0.2), seed=seed)
split["split"].value_counts()

# %% [markdown]
# ## Train, watching the loss
# A callback receives a `TrainEvent` after every step and epoch; here it redraws the curve.

# %%
curve = go.Figure(layout={"title": f"{network} / {loss}", "xaxis_title": "step", "yaxis_title": "loss"})
curve.add_scatter(name="batch loss", mode="lines")
curve.add_scatter(name="epoch mean", mode="lines+markers")
handle = display(curve, display_id=True)
steps: list[float] = []
epoch_x: list[int] = []
epoch_y: list[float] = []


def live_curve(event) -> None:  # type: ignore[no-untyped-def]
    if event.kind == "step":
        steps.append(event.loss)
        return
    epoch_x.append(len(steps))
    epoch_y.append(float(event.record["train_loss"]))
    curve.data[0].update(x=list(range(1, len(steps) + 1)), y=steps)
    curve.data[1].update(x=epoch_x, y=epoch_y)
    if handle is not None:
        handle.update(curve)


result = train(
    split,
    Path(run_dir) / f"{network}__{loss}",
    model=network,
    loss=loss,
    epochs=epochs,
    patch_size=(patch,) * 3,
    spacing=(spacing,) * 3,
    val_every=max(1, epochs // 3),
    lr=1e-3,  # higher than the paper's 2e-4 for a short CPU run
    max_steps_per_epoch=steps_per_epoch,
    model_overrides={"init_filters": 8} if network == "segresnet" else {},
    workers=0,
    seed=seed,
    callbacks=[live_curve],
)
print(
    f"best validation DSC {result.best_metric:.3f} at epoch {result.best_epoch}; checkpoint {result.best_checkpoint}"
)

# %%
result.history
