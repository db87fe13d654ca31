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
# # 08 Your predictions: the paper's evaluation for any models (Table 1, Figures 3-6)
#
# pcatools judges any segmentations the way the paper judges its losses: give it a folder of
# ground-truth masks, optionally the PET in SUV, and one folder of predictions per model
# (`<case_id>.nii.gz`, as nnU-Net and MONAI write them). Cases are paired by id. From the shell:
#
# ```bash
# pcatools evaluate runs/my_eval --gt nnUNet_raw/Dataset501_PSMA/labelsTs \
#     --suv nnUNet_raw/Dataset501_PSMA/imagesTs \
#     --pred nnunet=preds/nnunet_3d_fullres --pred segresnet/l1dfl=preds/segresnet_l1dfl
# ```
#
# This notebook opens the folder that command writes (`out_dir`), or runs the same evaluation
# through `pcatools.evaluation.evaluate_folders` where there is none yet or when
# `reevaluate=True`, and shows one case with the ground truth and every model. With the defaults
# it evaluates the demo study's six test-set models (`bash scripts/study.sh` makes `runs/demo`).
# Notebooks 04-07 take the evaluation folder as their `run_dir` for the scenarios, volume
# thresholds and dissemination groups.

# %% tags=["parameters"]
out_dir = "../runs/demo_evaluation"  # the evaluation folder: opened as it is when it holds one
reevaluate = False  # True: evaluate again into out_dir (a previous evaluation there is replaced)
gt = ""  # ground-truth masks (folder or dataset root); "" = the demo study's cohort
suv = ""  # PET in SUV (folder or dataset root); "" = the demo study's cohort; None: no SUV
pred: dict = {}  # {"NAME": "folder"}; {} = the demo study's test predictions
allow_missing = True  # evaluate the cases every folder has (the demo's predictions cover its test cases only)
study_dir = "../runs/demo"  # where the defaults come from
case_id = ""  # the case to show; "" = the one where the models disagree most
show_napari = True  # open the case in napari (needs a display; skipped with a note otherwise)

# %%
from pathlib import Path

from IPython.display import Markdown, display

from pcatools.analysis import figure3_case, figure3_for_study
from pcatools.evaluation import MARKER, command_line, evaluate_folders, load_evaluation, study_predictions

if (Path(out_dir) / MARKER).is_file() and not reevaluate:
    result = load_evaluation(out_dir)
    print(f"opened the evaluation in {out_dir} (reevaluate=True evaluates again)")
else:
    if not pred:
        pred = {name: str(folder) for name, folder in study_predictions(study_dir).items()}
        gt = gt or str(Path(study_dir) / "data")
        suv = suv if suv is None else (suv or gt)
    print(command_line(out_dir, gt, pred=pred, suv=suv, allow_missing=allow_missing))
    result = evaluate_folders(out_dir, gt, pred=pred, suv=suv, allow_missing=allow_missing)

# %% [markdown]
# ## What was compared, and Table 1
# The folder's `README.md` records the inputs and options (with the defaults the ground truth holds
# the whole cohort and the predictions only the test cases, hence `allow_missing`).

# %%
display(Markdown((result.run_dir / "README.md").read_text()))

# %% [markdown]
# ## Per case: the ground truth's and each prediction's own burden
# TMTV, TLA, SUVmax and Dmax of the ground truth beside the same of each prediction.

# %%
cols = ["case_id", "model", "dice", "tp", "fp", "fn", "tmtv_ml", "pred_tmtv_ml", "tla", "pred_tla",
        "suvmax", "pred_suvmax", "dmax_mm", "pred_dmax_mm"]  # fmt: skip
result.cases[cols].round(2).head(12)

# %% [markdown]
# ## Per lesion: which predicted components match it
# `pred_components` names the matched components (their rows in `results/components.csv`).

# %%
result.lesions[["case_id", "model", "lesion_id", "volume_ml", "suvmax", "detected", "dice",
                "pred_components", "pred_volume_ml"]].head(12)  # fmt: skip

# %% [markdown]
# ## Predicted components and the Wilcoxon table
# One row per predicted component (volume, SUVmax, the lesions it overlaps, false positive or not),
# and the reference model (the first) against every other: one-tailed paired Wilcoxon on the cases.

# %%
display(result.components.head(8))
result.wilcoxon

# %% [markdown]
# ## One case: ground truth against every model (Figure 3's layout)

# %%
shown = case_id or figure3_case(result.cases)
figure3_for_study(result, shown)

# %% [markdown]
# ## The same case in napari: ground truth and every model as its own layer
# The lesion dock says, per ground-truth lesion, which models detect it (SUVmax rule). Without a
# display (a remote server) napari cannot open a window; the cell then says so, and
# `xvfb-run -a pcatools view --study OUT CASE --screenshot shot.png` gives a picture instead.

# %%
from pcatools import viewer as pv

no_window = "show_napari = False" if not show_napari else pv.display_problem()
if no_window is None:
    paths, masks = pv.study_case(result.run_dir, shown)
    window = pv.view_case(paths, pred=masks, block=False)
    print(f"napari: case {shown}, layers {[layer.name for layer in window.layers]}")
else:
    print(f"No napari window ({no_window}); Figure 3 above shows the same masks.")
