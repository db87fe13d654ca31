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
# # 04 Overall performance: Table 1 and Figure 3 (paper section 3.1)
#
# Reproduces **Table 1** (patient-level DSC mean and median, mean TP / FP / FN with the SUVmax
# detection rule, F1, one-tailed paired Wilcoxon of L1DFL against DL and DFL) and **Figure 3**
# (ground truth against each network and loss on one test case) from a pcatools study run folder,
# or for your own models from a `pcatools evaluate` folder (notebook 08; there the P values compare
# the reference model with every other). Beyond the paper: bootstrap confidence intervals of the
# medians and Holm-corrected p-values.
#
# With the default parameters it reads `runs/demo` (made by `bash scripts/study.sh`), or runs the
# study there first.

# %% tags=["parameters"]
run_dir = "../runs/demo"  # a study run folder (`bash scripts/study.sh`) or a `pcatools evaluate` folder
profile = "demo"  # profile run into run_dir when it holds no finished study ("ci" in the tests)

# %%
import ipywidgets as widgets
from IPython.display import Markdown, display

from pcatools import figures, stats
from pcatools.analysis import figure3_for_study, study_seeds
from pcatools.study import ensure_study

study = ensure_study(run_dir, profile=profile)
cases = study.cases
print(
    f"{cases['case_id'].nunique()} test cases, {len(cases)} (case, network, loss) rows from {study.run_dir}"
)

# %% [markdown]
# ## Table 1

# %%
display(Markdown(stats.table1_markdown(study.table1)))

# %% [markdown]
# All columns, with the bootstrap 95% CI of each median DSC and Holm-corrected p-values:

# %%
study.table1

# %% [markdown]
# ## Training seeds
# A study trained from several seeds (`pcatools study --seeds 0,1,2`) averages each model's per-case
# values over the seeds in Table 1 and adds the spread across seeds (`DSC mean SD (seeds)`). The
# figure shows each seed's mean DSC per model beside their mean: a difference between two losses
# smaller than the seeds' spread is not one the comparison can tell from noise. A one-seed study
# shows nothing here.

# %%
seeds = study_seeds(cases)
if len(seeds) > 1:
    display(study.table("table1_by_seed"))
    display(figures.seeds_figure(study.table("seed_means")))

# %% [markdown]
# ## One-tailed paired Wilcoxon signed-rank tests
# H1: the reference scores higher (L1DFL against each other loss per network in a study; the
# reference model against every other model in an evaluation folder).

# %%
study.table("wilcoxon")

# %% [markdown]
# ## Figure 3: ground truth against every network and loss
# The default case is the one where the grid disagrees most; the dropdown shows any test case.

# %%
figure3_for_study(study)

# %%
case_picker = widgets.Dropdown(options=sorted(cases["case_id"].astype(str).unique()), description="case")
figure_out = widgets.Output()


def show_case(change: dict) -> None:
    with figure_out:
        figure_out.clear_output(wait=True)
        display(figure3_for_study(study, change["new"]))


case_picker.observe(show_case, names="value")  # redraws when another case is picked
display(widgets.VBox([case_picker, figure_out]))
