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
# # 01 Data: PSMA PET/CT cases, coronal projections and the paper's preprocessing (section 2.1-2.3)
#
# pcatools reads real data (autoPET `<patient>/<study>/SUV.nii.gz, CTres.nii.gz, SEG.nii.gz`, the
# nnU-Net layout, or a flat folder; DICOM through `pcatools convert`) and makes a synthetic PSMA
# PET/CT cohort whose lesion statistics follow the paper's 380 scans (section 2.1). Here we
#
# 1. make (or discover) a few cases and list them,
# 2. look at coronal PET maximum-intensity projections beside CT,
# 3. compare the cohort's lesion statistics with the paper's,
# 4. run the preprocessing of section 2.3 (RAS, resampling, CT [-1000, 3000] HU -> [0, 1], PET in
#    SUV) and the training augmentation (foreground-centred crops, random affine).

# %% tags=["parameters"]
data_dir = None  # a real dataset root (autoPET / nnU-Net / flat); None makes a synthetic cohort
n_cases = 6  # synthetic cases to make
spacing = 4.0  # mm; the paper resamples to 2.0
patch = 64  # training patch edge in voxels; the paper uses 128
seed = 0

# %%
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import plotly.express as px
from IPython.display import display

from pcatools.data import discover_cases, eval_transforms, load_case, train_transforms
from pcatools.data.phantom import make_cohort
from pcatools.data.phantom.figure import plot_cases
from pcatools.data.phantom.summary import cohort_lesions, cohort_vs_paper

if data_dir is None:
    root = Path("data") / f"phantom_{n_cases}_{spacing:g}mm"
    manifest = make_cohort(n_cases, root, seed=seed, spacing=(spacing,) * 3)
else:
    root = Path(data_dir)
    manifest = discover_cases(root)
manifest[[c for c in ("case_id", "patient_id", "shape", "spacing", "n_lesions", "tmtv_ml") if c in manifest]]

# %% [markdown]
# ## Coronal PET MIPs beside CT
# Inverted grey PET MIP (SUV 0-10) with the lesion outlines in red, and the coronal CT slice through
# the largest lesion; the title counts the lesions (18-connected components of the label, as every
# metric does). Kidneys, salivary glands and bladder are bright, as in every PSMA scan; the
# small focal spots outside the red outlines are the physiological "hard negatives" (ureters,
# ganglia, bowel) that tempt a model into false positives.

# %%
cases = [load_case(row) for _, row in manifest.head(3).iterrows()]
plot_cases(cases)

# %%
picker = widgets.Dropdown(options=list(manifest["case_id"]), description="case")


def show_mip(case_id: str) -> None:
    case = load_case(manifest[manifest["case_id"] == case_id].iloc[0])
    mip = np.flip(case.pet.max(axis=1).T, axis=0)  # coronal: z up, patient right on the left
    fig = px.imshow(
        mip, zmin=0, zmax=10, color_continuous_scale="gray_r", aspect=case.spacing[2] / case.spacing[0]
    )
    fig.update_layout(title=f"{case_id}: coronal PET MIP (SUV)", width=350, height=600)
    display(fig)


# interact shows the widget and returns show_mip; `_ =` keeps that from printing as the cell's value
_ = widgets.interact(show_mip, case_id=picker)

# %% [markdown]
# ## Lesion statistics against the paper (section 2.1)
# Lesions are the 18-connected components of the label; volume in ml, SUVmax and SUVmean from the
# PET (`pcatools.data.phantom.summary`: `cohort_lesions`, then `cohort_vs_paper` beside the
# paper's 380 scans; sample SDs, none for lesions per scan). With a few cases the means are noisy;
# `tests/test_phantom.py` checks 200+ draws.

# %%
all_cases = [load_case(r) for r in manifest.to_dict("records")]
lesions = cohort_lesions(all_cases)
cohort_vs_paper(lesions, n_scans=len(all_cases)).round(2)

# %% [markdown]
# ## Preprocessing (section 2.3)
# The evaluation pipeline: channel 0 is CT clipped to [-1000, 3000] HU and scaled to [0, 1],
# channel 1 is PET in SUV, both resampled to `spacing` mm in RAS.

# %%
row = manifest.iloc[0].to_dict()
item = eval_transforms(spacing=(spacing,) * 3)(row)
image = item["image"]
print("image", tuple(image.shape), "spacing", [round(float(s), 3) for s in image.pixdim])
print(f"CT channel in [{float(image[0].min()):.3f}, {float(image[0].max()):.3f}]")
print(f"SUVmax before {load_case(row).pet.max():.2f}, after {float(image[1].max()):.2f}")

# %% [markdown]
# The training pipeline draws `patch`^3 crops centred on a lesion voxel with probability 0.8 and
# applies a random affine (translation up to 10 voxels, rotation up to pi/15, scaling up to 1.1).
# The fraction of crops that contain foreground, over 40 draws:

# %%
t = train_transforms(spacing=(spacing,) * 3, patch_size=(patch,) * 3, seed=seed)
draws = [t(row)[0] for _ in range(40)]
print(f"{np.mean([float(d['label'].sum()) > 0 for d in draws]):.0%} of crops hold lesion voxels")
crop = draws[0]
mid = int(np.argmax(crop["label"][0].sum(axis=(0, 2)))) if crop["label"].sum() > 0 else patch // 2
fig = px.imshow(
    np.stack(
        [
            np.asarray(crop["image"][0, :, mid]).T,
            np.asarray(crop["image"][1, :, mid]).T / 10,
            np.asarray(crop["label"][0, :, mid]).T,
        ]
    ),
    facet_col=0,
    origin="lower",
    color_continuous_scale="gray",
    zmin=0,
    zmax=1,
)
for i, name in enumerate(["CT [0, 1]", "PET SUV / 10", "label"]):
    fig.layout.annotations[i].text = name
display(fig)
