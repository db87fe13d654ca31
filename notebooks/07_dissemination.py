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
# # 07 Performance by lesion dissemination (Dmax): Figure 6 (paper section 3.4)
#
# Reproduces **Figure 6**: patient-level DSC of each loss in four Dmax groups G0-G3 (quartiles of
# the ground truth's Dmax, eq. 15: the largest distance between two lesion voxels), box plots per
# network, with the median TLA of each group as bars. The paper uses the multiple-lesion scenario;
# `scenario` switches between M (paper) and all cases. `paper_edges` uses the paper's fixed groups
# 0-9, 9-11, 11-14 and 14-60 cm instead of this cohort's quartiles.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a study run folder (`bash scripts/study.sh`) or a `pcatools evaluate` folder
profile = "demo"  # profile run into run_dir when it holds no finished study ("ci" in the tests)

scenario = "M"  # "M" as in the paper, or "all"
paper_edges = False  # True: the paper's cm groups instead of quartiles

# %%
import ipywidgets as widgets
from IPython.display import display

from pcatools import figures
from pcatools.analysis import dmax_grouped
from pcatools.study import ensure_study

study = ensure_study(run_dir, profile=profile)
cases = dmax_grouped(study.cases, scenario, paper_edges)
if cases["dmax_group"].notna().sum() == 0:  # tiny runs may lack multiple-lesion cases
    cases = dmax_grouped(study.cases, "all", paper_edges)
cases.groupby("dmax_group")["dmax_mm"].agg(["count", "min", "max"])

# %%
figures.figure6(cases)

# %%
widgets.interact(
    lambda scenario, paper_edges: display(figures.figure6(dmax_grouped(study.cases, scenario, paper_edges))),
    scenario=widgets.Dropdown(options=["M", "all"], value=scenario),
    paper_edges=widgets.Checkbox(value=paper_edges, description="paper's cm groups"),
)
