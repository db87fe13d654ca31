# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 The L1 weights: Figure 1, Figure 7 and the voxel weights of a real training batch in napari (section 2.6)
#
# L1DFL (eq. 11-12) weights every voxel of the Dice term by how *rare* its prediction error is:
# Delta = |g - p| (eq. 4) is binned with width Gamma (eq. 5-8), the density of each bin is
# D = count / effective width (eq. 9) and the weight is w = N / D (eq. 10). Common errors (the
# easy background, Delta near 0) are down-weighted; rare ones (a missed small lesion) are
# up-weighted.
#
# 1. **Figure 1**: the paper's 4x4 worked example, reproduced exactly (a test checks it).
# 2. **Figure 7**: loss against the predicted probability of the true class for DL, DFL, L1DFL.
# 3. A **real training batch** (the study's training pipeline) through a trained network: the
#    histogram of Delta and the bin weights, then **napari** with PET, CT, ground truth, Delta,
#    the bin index as labels and the weights, and a magicgui slider for Gamma that recomputes them.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # study run folder, relative to notebooks/ (`bash scripts/study.sh` makes it)
profile = "demo"  # profile run into run_dir when it holds no finished study
network = "segresnet"
loss = "l1dfl"
bin_width = 0.1  # Gamma (the paper; the public code uses 0.05)
show_napari = True  # open the napari window (needs a display; the tests run it under Xvfb)
screenshot_path = None  # save the napari window here (PNG), e.g. "docs/figures/l1_weights_napari.png"

# %%
import numpy as np
import pandas as pd
import plotly.express as px
import torch
from IPython.display import display

from pcatools import figures
from pcatools import viewer as pv
from pcatools.cells import Cell
from pcatools.losses import l1_binning, loss_vs_probability
from pcatools.study import ensure_study
from pcatools.training import training_batch

# %% [markdown]
# ## Figure 1: the worked example (G, P(G), Delta, D, w)

# %%
figures.figure1(bin_width=bin_width)

# %%
f1 = figures.figure1_data(bin_width=bin_width)
print("D (eq. 9):\n", np.round(f1["D"], 2), "\n\nw (eq. 10):\n", np.round(f1["w"], 2))

# %% [markdown]
# ## Figure 7: loss against the probability of the true class
# A patch of 10 foreground and 990 background voxels; the background is predicted at 0.99 and the
# foreground probability p varies (see `pcatools.losses.curves`).

# %%
figures.figure7(loss_vs_probability(bin_width=bin_width))

# %% [markdown]
# ## A real training batch
# One batch from the study's training pipeline (foreground-biased crops, random affine), through
# the trained `network` / `loss` of the study. As in the paper's code, the histogram of Delta is
# taken over the whole batch (both classes, every voxel).

# %%
study = ensure_study(run_dir, profile=profile)
batch = training_batch(study.manifest, study.run_dir / "models" / Cell(network, loss, 0).key(0) / "best.pt")
probs, label = batch.probs, batch.label
print(
    f"batch image {tuple(batch.image.shape)}, lesion voxels per patch {label.sum(dim=(1, 2, 3, 4)).tolist()}"
)

target = torch.cat([1 - label, label], dim=1).float()  # one-hot, both classes
b = l1_binning(probs, target, bin_width=bin_width)
bins = pd.DataFrame(
    {
        "centre B_k": b.centres.numpy(),
        "count C(B_k)": b.counts.numpy(),
        "width": b.widths.numpy(),
        "density D": b.density.numpy(),
        "weight w": b.weights.numpy(),
    }
)
bins

# %%
fig = px.bar(bins, x="centre B_k", y="count C(B_k)", log_y=True, title="Histogram of Delta over the batch")
fig.add_scatter(
    x=bins["centre B_k"], y=bins["weight w"], name="weight w = N / D", mode="lines+markers", yaxis="y2"
)
fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "type": "log", "title": "weight"})
fig

# %% [markdown]
# ## napari: PET, CT, ground truth, Delta, bin index and weights
# The first patch of the batch, in mm (scale = spacing). CT is shown back in HU. The layers from
# `pcatools.viewer.build_layers` use this patch's own histogram; move the **bin width** slider to
# recompute Delta's bins and weights. `pcatools view <case> --probs <file>` opens the same view
# for a whole case. Without a display (or with `show_napari = False`) napari cannot open a window
# (Qt would end the kernel): the same layers are drawn as static coronal slices instead.

# %%
patch_case, fg_probs = batch.patch_case(0)  # CT back in HU, affine = the patch spacing
no_window = "show_napari = False" if not show_napari else pv.display_problem()

if no_window is None:
    get_ipython().run_line_magic("gui", "qt")  # type: ignore[name-defined]  # noqa: F821
    viewer = pv.view_case(
        patch_case, probs=fg_probs, bin_width=bin_width, block=False, weights=True, screenshot=screenshot_path
    )  # weights over CT with their colour bar; tick PET back on in the layer list
    slider = viewer.window.dock_widgets["L1 bin width"]
    print([(layer.name, tuple(float(s) for s in layer.scale)) for layer in viewer.layers])
    shot = viewer.screenshot(canvas_only=True, flash=False)
    print("screenshot", shot.shape, "non-blank:", bool(shot[..., :3].std() > 0))
    slider(bin_width=0.2)  # what moving the slider does
    print("largest bin index after Gamma = 0.2:", int(viewer.layers["L1 bin index"].data.max()))
    slider(bin_width=bin_width)
    display(px.imshow(shot, title="napari screenshot (L1 weights over CT, coronal)"))
else:
    print(f"No napari window ({no_window}): the same layers as static coronal slices.")
    get_ipython().run_line_magic("matplotlib", "inline")  # type: ignore[name-defined]  # noqa: F821
    display(pv.static_layers_figure(patch_case, probs=fg_probs, bin_width=bin_width))
