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
# # 09 L1DFL inside nnU-Net: nnU-Net's Dice+CE against nnU-Net with L1DFL, in the layout of Table 1
#
# `pcatools.nnunet` puts the paper's loss into nnU-Net (nnunetv2) without changing anything else:
# `nnUNetTrainerL1DFL` is nnU-Net's own `nnUNetTrainer` with only `_build_loss` replaced by
# `pcatools.losses.L1DiceFocalLoss` (bin width 0.1, gamma 2), inside nnU-Net's deep-supervision
# wrapper with nnU-Net's weights. Planning, preprocessing, network, augmentation, optimiser and
# inference stay nnU-Net's, so the comparison isolates the loss. This notebook walks the whole path
# on the synthetic phantom:
#
# 1. the phantom cohort as an nnU-Net raw dataset (`Dataset501_PSMA`: CT and PET in SUV, patient-level test set and folds);
# 2. nnU-Net's plan and preprocess (its own fingerprint, planner and preprocessor);
# 3. one fold trained twice: nnU-Net's default Dice+CE (`nnUNetTrainer`) and L1DFL (`nnUNetTrainerL1DFL`);
# 4. nnU-Net's predictor on the held-out test images;
# 5. pcatools' evaluation of both models: Table 1 (L1DFL first, so its P values compare L1DFL with Dice+CE).
#
# The same from the shell (`docs/nnunet.md`):
#
# ```bash
# pcatools nnunet export-dataset $nnUNet_raw --n-cases 60 --spacing 4
# pcatools nnunet plan 501
# pcatools nnunet train 501 3d_fullres 0 --loss l1dfl --epochs 1 --iterations 10    # nnU-Net's default without
# pcatools nnunet train 501 3d_fullres 0 --loss dice_ce --epochs 1 --iterations 10  # them: 1000 x 250 (days on a CPU)
# # or: pcatools nnunet install-trainers, then nnUNetv2_train 501 3d_fullres 0 -tr nnUNetTrainerL1DFL
# pcatools nnunet predict $nnUNet_results/Dataset501_PSMA/nnUNetTrainerL1DFL__nnUNetPlans__3d_fullres \
#     $nnUNet_raw/Dataset501_PSMA/imagesTs preds/l1dfl
# pcatools evaluate runs/nnunet_eval --gt $nnUNet_raw/Dataset501_PSMA/labelsTs --suv $nnUNet_raw/Dataset501_PSMA/imagesTs \
#     --pred nnunet/l1dfl=preds/l1dfl --pred nnunet/dice_ce=preds/dice_ce
# ```
#
# **The defaults only check the path** (a few minutes on a 2-core CPU): 10 cases at 8 mm, one
# epoch of 4 iterations per model, so both models segment next to nothing and Table 1 shows DSC
# near 0. nnU-Net's own schedule is 1000 epochs of 250 iterations; for a comparison that means
# something, run on a GPU with `epochs = None`, `iterations = None`, `device = "cuda"`,
# `n_cases = 380`, `spacing = 2.0` (hours per model).

# %% tags=["parameters"]
work_dir = "../runs/nnunet"  # holds nnUNet_raw, nnUNet_preprocessed, nnUNet_results, predictions, evaluation
n_cases = 10  # phantom cases (the paper: 380 scans)
spacing = 8.0  # mm (the paper: 2)
test_fraction = 0.3  # held out in imagesTs (the paper: 57/380)
dataset_id = 501
fold = 0
epochs = 1  # None: nnU-Net's 1000
iterations = 4  # per epoch; None: nnU-Net's 250
val_iterations = 1  # per epoch; None: nnU-Net's 50
validate = False  # nnU-Net's final validation of the fold after training (sliding window over its cases)
device = "cpu"  # "cuda" on a GPU
workers = 0  # nnU-Net augmentation processes (0: in the notebook's process)
tta = False  # nnU-Net's mirroring at prediction (8 passes per window on 3D)
seed = 0

# %%
import json
from pathlib import Path

from IPython.display import Image, Markdown, display

from pcatools import nnunet, stats
from pcatools.evaluation import evaluate_folders

work = Path(work_dir).resolve()
raw, preprocessed, results = work / "nnUNet_raw", work / "nnUNet_preprocessed", work / "nnUNet_results"
losses = {"l1dfl": "L1DFL (nnUNetTrainerL1DFL)", "dice_ce": "Dice+CE (nnU-Net's nnUNetTrainer)"}

# %% [markdown]
# ## 1. The phantom as an nnU-Net raw dataset
# Channel 0 is the CT (nnU-Net's "CT" normalisation), channel 1 the PET in SUV, named `noNorm` so
# nnU-Net leaves SUV as it is (as pcatools' own pipeline does; a z-score per scan would rescale each
# scan by its own lesion burden). `splits_final.json` holds patient-level, scenario-stratified folds.

# %%
dataset = nnunet.export_dataset(
    raw,
    n_cases=n_cases,
    spacing=spacing,
    dataset_id=dataset_id,
    seed=seed,
    test_fraction=test_fraction,
    progress=False,
)
info = json.loads((dataset / "dataset.json").read_text())
print(json.dumps({k: info[k] for k in ("channel_names", "labels", "numTraining", "file_ending")}, indent=1))
print(f"{info['pcatools']['test_cases']} test cases in imagesTs/labelsTs, {info['pcatools']['folds']} folds")

# %% [markdown]
# ## 2. nnU-Net's plan and preprocess

# %%
pre = nnunet.plan_and_preprocess(dataset_id, raw=raw, preprocessed=preprocessed, workers=2)
plan = json.loads((pre / "nnUNetPlans.json").read_text())["configurations"]["3d_fullres"]
arch = plan["architecture"]["arch_kwargs"]
print(
    f"3d_fullres: patch {plan['patch_size']} voxels at {plan['spacing']} mm, batch {plan['batch_size']}, "
    f"{arch['n_stages']}-stage {plan['architecture']['network_class_name'].rsplit('.', 1)[1]} "
    f"{arch['features_per_stage']}, normalisation {plan['normalization_schemes']}"
)

# %% [markdown]
# ## 3. One fold, two losses
# Each training cell is `nnUNetv2_train 501 3d_fullres 0 -tr <trainer>` (the trainer class
# instantiated directly, so nothing is written into nnU-Net's package). nnU-Net's training log
# records the loss built: `pcatools loss (nnUNetTrainerL1DFL): L1DiceFocalLoss(bin_width=0.1, ...)`.

# %%
common = dict(
    device=device, epochs=epochs, iterations=iterations, val_iterations=val_iterations, validate=validate,
    preprocessed=preprocessed, results=results, workers=workers,
)  # fmt: skip
models = {"dice_ce": nnunet.train(dataset_id, "3d_fullres", fold, "dice_ce", **common)}

# %%
models["l1dfl"] = nnunet.train(dataset_id, "3d_fullres", fold, "l1dfl", **common)
for loss, model in models.items():
    print(f"{losses[loss]}: {model / f'fold_{fold}' / 'checkpoint_final.pth'}")

# %% [markdown]
# nnU-Net's own training curves (`progress.png` of each fold folder):

# %%
for loss, model in models.items():
    display(
        Markdown(f"**{losses[loss]}**"),
        Image(filename=str(model / f"fold_{fold}" / "progress.png"), width=700),
    )

# %% [markdown]
# ## 4. nnU-Net's predictor on the test images

# %%
preds = {}
for loss, model in models.items():
    preds[loss] = nnunet.predict(
        model, dataset / "imagesTs", work / "predictions" / loss, folds=[fold], device=device, tta=tta,
        workers=1, progress=False,
    )  # fmt: skip
    print(f"{loss}: {len(list(preds[loss].glob('*.nii.gz')))} predictions in {preds[loss]}")

# %% [markdown]
# ## 5. Table 1: nnU-Net with L1DFL against nnU-Net's Dice+CE
# The paper's evaluation (patient-level DSC, TP / FP / FN with the SUVmax detection rule, F1) of
# both prediction folders against `labelsTs`, with the SUV of `imagesTs`. L1DFL comes first, so the
# one-tailed paired Wilcoxon P values test whether L1DFL scores higher than Dice+CE.

# %%
evaluation = evaluate_folders(
    work / "evaluation", dataset / "labelsTs",
    pred={"nnunet/l1dfl": preds["l1dfl"], "nnunet/dice_ce": preds["dice_ce"]},
    suv=dataset / "imagesTs", workers=0, progress=False,
)  # fmt: skip
display(Markdown(stats.table1_markdown(evaluation.table1)))
print(f"evaluation folder (notebooks 04-07 read it as their run_dir): {evaluation.run_dir}")

# %% [markdown]
# ## With nnU-Net's own commands
# `pcatools nnunet install-trainers` writes one module beside nnU-Net's `nnUNetTrainer.py`
# (`nnunetv2/training/nnUNetTrainer/pcatools_l1dfl.py`) that imports the pcatools trainers, so
# `nnUNetv2_train 501 3d_fullres 0 -tr nnUNetTrainerL1DFL`, `nnUNetv2_predict ... -tr nnUNetTrainerL1DFL`
# and `nnUNetv2_find_best_configuration` find them by name; `--uninstall` removes exactly that file.
# Bin width, gamma and convention: the environment variables `PCATOOLS_NNUNET_BIN_WIDTH`,
# `PCATOOLS_NNUNET_GAMMA`, `PCATOOLS_NNUNET_CONVENTION`, or a subclass with `loss_bin_width` ...
# (its own output folder), see `docs/nnunet.md`.
