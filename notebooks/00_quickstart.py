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
# # 00 Quickstart: pcatools in five cells
#
# pcatools reproduces *L1-weighted Dice Focal Loss* (L1DFL) for PSMA PET/CT lesion segmentation:
# data in (DICOM -> SUV, NIfTI layouts, a synthetic PSMA cohort), the losses (eq. 1-12), the
# paper's networks, training, inference, the clinically minded metrics and the statistics.
#
# This notebook makes one synthetic case, evaluates the three losses on it, and then reads (or
# runs) a study: the paper's grid of 2 networks x 3 losses. The later notebooks go section by
# section: `01_data`, `02_l1_weights`, `03_training`, then the results `04`-`07`.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # study run folder, relative to notebooks/ (`bash scripts/study.sh` makes it)
profile = "demo"  # "demo": ~20 min on 2 CPU cores; "paper": the paper's settings (GPUs); "ci": a smoke test

# %%
import numpy as np
import torch
from IPython.display import Markdown

from pcatools import figures, stats
from pcatools.data.phantom import make_case
from pcatools.losses import build_loss
from pcatools.study import ensure_study

case = make_case(seed=7, spacing=(4.0, 4.0, 4.0))
print(case.case_id, "shape", case.pet.shape, "spacing (mm)", case.spacing)
print(f"SUVmax {case.pet.max():.1f}, lesion voxels {int(case.label.sum())}")

# %% [markdown]
# ## The three losses on one case
# A toy "prediction" that finds the lesions with probability 0.7 and leaves a 0.1 haze everywhere
# else: the Dice loss (DL), Dice Focal (DFL) and L1DFL with the paper's settings.

# %%
label = torch.from_numpy(case.label.astype(np.int64))[None, None]
fg = torch.where(label.bool(), 0.7, 0.1).float()
logits = torch.log(torch.cat([1 - fg, fg], dim=1))  # softmax(logits) = (1 - fg, fg)
for name in ("dice", "dice_focal", "l1dfl"):
    print(f"{name:>10}: {float(build_loss(name)(logits, label)):.4f}")

# %% [markdown]
# Why the values differ in scale: DL (0.53) is the mean of a foreground Dice loss near 1, because
# the 0.1 haze summed over 2.6 million voxels swamps the 9 lesion voxels, and a background one of
# 0.05; DFL adds a focal term of only 0.0005 (`(1 - p_t)^2 = 0.01` on every haze voxel); and L1DFL
# (0.06) is ten times smaller because its L1 weights (eq. 4-10) give each lesion voxel, whose error
# of 0.3 is rare, about 300,000 times the weight of a haze voxel, whose error of 0.1 is common, so
# its weighted Dice (eq. 11) counts the lesions found and hardly the haze (`pcatools.losses`,
# `docs/losses.md`).

# %% [markdown]
# ## The study: Table 1 and Figure 4
# `ensure_study` reads `run_dir` when it holds a finished study, else runs the profile there
# (the command-line equivalent is `pcatools study runs/demo --profile demo`).

# %%
study = ensure_study(run_dir, profile=profile)
Markdown(stats.table1_markdown(study.table1))

# %%
figures.figure4(study.cases[study.cases["scenario"].isin(["S", "M"])])
