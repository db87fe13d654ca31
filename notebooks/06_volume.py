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
# # 06 Performance by molecular tumour volume: Figure 5 (paper section 3.3)
#
# Reproduces **Figure 5**: the median DSC of each loss above ground-truth volume thresholds, at
# the patient level (TMTV, patient DSC) and the lesion level (MTV, lesion DSC), per scenario and
# network, with the median total lesion activity (TLA) above each threshold as an area plot. The
# thresholds are 0 and the 25th, 50th, 75th and 85th percentiles of the ground-truth volumes (our
# reading of "the inter-quartile range from 0 to the 85th percentile"; see `pcatools.stats.threshold_curve`).

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a study run folder (`bash scripts/study.sh`) or a `pcatools evaluate` folder
profile = "demo"  # profile run into run_dir when it holds no finished study ("ci" in the tests)

# %%
import ipywidgets as widgets
from IPython.display import display

from pcatools import figures, stats
from pcatools.study import ensure_study

study = ensure_study(run_dir, profile=profile)
patient_curve = stats.threshold_curve(study.cases, value_col="tmtv_ml")
lesion_curve = stats.threshold_curve(study.lesions, value_col="volume_ml")

# %%
figures.figure5(patient_curve, lesion_curve)

# %% [markdown]
# The numbers behind the curves; pick a level and a scenario.

# %%
level = widgets.ToggleButtons(options=["patient (TMTV)", "lesion (MTV)"], description="level")
scenario = widgets.Dropdown(
    options=sorted(patient_curve["scenario"].dropna().unique()), description="scenario"
)


def show(level: str, scenario: str) -> None:
    curve = patient_curve if level.startswith("patient") else lesion_curve
    display(curve[curve["scenario"] == scenario].round(3))


widgets.interact(show, level=level, scenario=scenario)
