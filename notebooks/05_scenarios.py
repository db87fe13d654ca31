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
# # 05 Single- and multiple-lesion scenarios: Figure 4 (paper section 3.2)
#
# Reproduces **Figure 4**: box plots with swarm points of patient-level DSC for each loss in the
# single-lesion scenario S (one ground-truth lesion) and the multiple-lesion scenario M (two or
# more), one panel per network. The table below gives each group's median and IQR, the numbers the
# paper quotes in section 3.2.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a study run folder (`bash scripts/study.sh`) or a `pcatools evaluate` folder
profile = "demo"  # profile run into run_dir when it holds no finished study ("ci" in the tests)

# %%
import ipywidgets as widgets
from IPython.display import display

from pcatools import figures, stats
from pcatools.study import ensure_study

study = ensure_study(run_dir, profile=profile)
cases = study.cases[study.cases["scenario"].isin(["S", "M"])]
print(cases.groupby("scenario")["case_id"].nunique().rename("cases").to_string())

# %%
figures.figure4(cases)

# %%
stats.summarize(cases, metrics=["dice", "f1"], by=["network", "scenario", "loss"])

# %% [markdown]
# Switch network and scenario to compare the losses' DSC distributions in one group.

# %%
network = widgets.Dropdown(options=sorted(cases["network"].unique()), description="network")
scenario = widgets.Dropdown(options=["S", "M"], description="scenario")


def show(network: str, scenario: str) -> None:
    sub = cases[(cases["network"] == network) & (cases["scenario"] == scenario)]
    display(stats.summarize(sub, metrics=["dice"], by=["loss"]))


widgets.interact(show, network=network, scenario=scenario)
