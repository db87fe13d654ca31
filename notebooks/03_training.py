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
# does exactly that. Here it runs the recipe that learns on a 2-core CPU: the `demo` profile of
# `pcatools.study` (`get_profile("demo").train_config(network, loss)`, a `TrainConfig`: SegResNet, AdamW lr 3e-3,
# Dice summed over the batch, half of the patches centred on a lesion, 32^3 patches at 4 mm and
# 32^3 validation windows, 40 epochs of 10 steps), on the demo study's synthetic cohort and split
# (40 cases, 26 training / 4 validation). These are the settings of the demo study's
# SegResNet / L1DFL model, so the run here trains that model again.
#
# **How long:** about 3 minutes on a 2-core laptop with nothing else running (an estimate: making
# the 40 cases, 40 epochs of 10 steps, the quietest of which took 2.3 s here, and one validation
# of the 4 cases). Measured once with these defaults (2026-11-29, on this project's 2-core CPU, shared with
# other jobs): 35 min, because torch's two threads slow down sharply when other processes compete
# for the cores (epochs took 2 to 108 s), ending with **best validation DSC 0.065** (mean over the 4
# validation cases; the demo study's test DSC of this model is 0.09). A DSC of 0.000 is possible
# and not a bug: a short run (e.g. the tests' 2 epochs of 2 steps) predicts no voxel with
# p > 0.5, and the DSC of an empty mask is 0.
#
# The run folder holds the config, package versions, split, `history.csv`, TensorBoard events and
# `best.pt` / `last.pt`; re-running the cell continues from `last.pt` (a finished run returns at
# once). On GPUs `profile = "paper"` gives the paper's settings (hours); several GPUs:
# `torchrun --nproc_per_node=2 -m pcatools.cli train --config configs/paper_segresnet_l1dfl.yaml`.

# %% tags=["parameters"]
network = "segresnet"  # or "attention_unet"
loss = "l1dfl"  # "dice", "dice_focal" or "l1dfl"
profile = "demo"  # pcatools.study profile the settings come from ("demo", "paper", "ci")
# None: the profile's value; a number overrides it
epochs = None  # the paper: 1000
patch = None  # patch (and validation window) edge in voxels; the paper: 128
spacing = None  # mm; the paper: 2.0
n_cases = None  # synthetic cases (the paper: 380 real scans)
steps_per_epoch = None  # cap on optimiser steps per epoch
run_dir = "runs/notebook03"
seed = 0  # the demo study's seed: same cohort, split and training

# %%
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

from pcatools.data.phantom import make_cohort
from pcatools.data.splits import make_splits
from pcatools.study import get_profile
from pcatools.training import train

recipe = get_profile(
    profile,
    n_cases=n_cases,
    spacing=None if spacing is None else (spacing,) * 3,
    epochs=epochs,
    patch_size=None if patch is None else (patch,) * 3,
    roi_size=None if patch is None else (patch,) * 3,  # the window is the patch
    max_steps_per_epoch=steps_per_epoch,
)
config = recipe.train_config(network, loss, seed=seed)
pd.Series({k: str(v) for k, v in config.to_dict().items()}, name=f"{profile} profile").to_frame()

# %% [markdown]
# The cohort and split of the study (`pcatools study` makes the same with this seed).

# %%
started = time.perf_counter()
data = Path("data") / f"phantom_{recipe.n_cases}_{recipe.spacing[0]:g}mm"
manifest = make_cohort(
    recipe.n_cases, data, seed=seed, spacing=recipe.spacing, fwhm_mm=recipe.phantom_fwhm_mm
)
split = make_splits(manifest, fractions=recipe.fractions, seed=seed)
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


result = train(split, Path(run_dir) / f"{network}__{loss}", config, callbacks=[live_curve])
minutes = (time.perf_counter() - started) / 60
print(
    f"best validation DSC {result.best_metric:.3f} at epoch {result.best_epoch} "
    f"({minutes:.1f} min with the cohort); checkpoint {result.best_checkpoint}"
)

# %% [markdown]
# The validation DSC is the mean over the validation cases of the foreground Dice of the argmax
# mask, with sliding windows of the patch size (section 2.5). It is measured once, after the last
# epoch (the demo profile validates only then: each validation costs about 15 s on a CPU).
# `history` has one row per epoch; `val_dice` is empty where the epoch was not validated.

# %%
result.history
