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
# # 10 Your loss: the paper's comparison of L1DFL (Table 1) for your own loss
#
# The paper compares its L1DFL with the Dice loss (DL) and Dice-Focal loss (DFL) by training each
# network with each loss and reading **Table 1** (DSC, detection, one-tailed paired Wilcoxon).
# pcatools runs the same comparison for a loss of your own: this notebook writes a Tversky loss in
# a cell, registers it with `pcatools.losses.register_loss`, trains it beside Dice and L1DFL on
# the same split from two training seeds, and reads Table 1 with the spread across seeds beside
# each value (a difference smaller than that spread is noise of training, not of the loss).
#
# A loss follows one protocol (docs/losses.md, "Your own loss"):
# `loss(logits (B, 2, *spatial), labels (B, 1, *spatial) in {0, 1}) -> scalar tensor`, finite and
# differentiable in the logits; it is checked on a small random batch before anything trains.
# From the shell, with the loss in a file `my_losses.py`, the same comparison is (README, "Your own loss")
#
# ```bash
# pcatools study runs/mine --profile ci --seeds 0,1 --network segresnet \
#     --loss dice --loss l1dfl --loss tversky=my_losses.py:TverskyLoss --loss-option tversky.alpha=0.4
# ```
#
# The defaults (the `ci` profile cut to 8 cases and one epoch, one network, two seeds) take about
# two minutes on a laptop and say nothing about the losses: they show the steps. `profile = "demo"`,
# `settings = {}` and `seeds = [0, 1, 2]` give numbers worth reading (an hour or more on a CPU).

# %% tags=["parameters"]
run_dir = "../runs/your_loss"  # the study's run folder (re-running continues where it stopped)
profile = "ci"  # "ci" (tiny, minutes), "demo" (2-core CPU) or "paper" (GPUs)
settings = {"n_cases": 8, "epochs": 1}  # study or training settings over the profile's; {}: the profile's own
networks = ["segresnet"]  # the networks of the grid
seeds = [0, 1]  # training seeds: each (network, loss) is trained once per seed on the same split
alpha = 0.4  # Tversky weight of false positives (beta = 1 - alpha weighs false negatives)

# %%
import torch
from IPython.display import Markdown, display

from pcatools import figures, stats
from pcatools.losses import check_loss, register_loss
from pcatools.study import run_study

# %% [markdown]
# ## Your loss, in a cell
# A `torch.nn.Module` (or any class or factory) whose keyword arguments are its options.


# %%
class TverskyLoss(torch.nn.Module):
    """Tversky loss on the softmax foreground: alpha weighs false positives, beta false negatives."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, eps: float = 1e-5):
        super().__init__()
        self.alpha, self.beta, self.eps = alpha, beta, eps

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)[:, 1]
        g = labels[:, 0].float()
        tp, fp, fn = (p * g).sum(), (p * (1 - g)).sum(), ((1 - p) * g).sum()
        return 1 - (tp + self.eps) / (tp + self.alpha * fp + self.beta * fn + self.eps)


# %% [markdown]
# ## Registered once, then named like pcatools' own
# `register_loss` gives it a name, Table 1's label and a colour for the figures; `options` are the
# keyword arguments it is built with. `replace_existing=True` lets this cell run again after the
# class above changed (a name is otherwise refused when it is taken by another factory).
# `check_loss` runs the check the study runs before training: it builds the loss and asks for a
# finite scalar with a gradient on a small random batch.

# %%
register_loss(
    "tversky",
    TverskyLoss,
    label="TL",
    colour="#D55E00",
    options={"alpha": alpha, "beta": 1 - alpha},
    replace_existing=True,
)
print(check_loss("tversky").shown, "passes the check")

# %% [markdown]
# ## The paper's way: Dice, L1DFL and yours, each trained once
# One training seed, as the paper (and most loss comparisons) report it.

# %%
grid = dict(profile=profile, networks=tuple(networks), losses=("dice", "l1dfl", "tversky"), **settings)
one_seed = run_study(run_dir, seeds=tuple(seeds[:1]), progress=False, **grid)
display(Markdown(stats.table1_markdown(one_seed.table1)))

# %% [markdown]
# ## Once per training seed
# The grid grows by the other seeds: the models of the first are reused, the cohort and the split
# stay fixed (the study's `seed`), only the training seed changes.

# %%
study = run_study(run_dir, seeds=tuple(seeds), progress=False, **grid)
cases = study.cases
print(f"{cases['case_id'].nunique()} test cases, seeds {sorted(cases['seed'].unique().tolist())}, losses "
      f"{sorted(cases['loss'].unique().tolist())}, in {study.run_dir}")  # fmt: skip

# %% [markdown]
# ## Table 1 with the spread across seeds
# Each model's per-case values are averaged over the seeds; beside the mean DSC, its spread across
# seeds (`DSC mean SD (seeds)`: the SD of each seed's mean DSC). A difference between two losses
# smaller than that spread is what another training seed could give. P values: L1DFL against each
# other loss of the same network, one-tailed paired Wilcoxon on the seed-averaged cases.

# %%
display(Markdown(stats.table1_markdown(study.table1)))
study.table1[["Network", "Loss", "DSC mean", stats.SEED_SPREAD, "DSC median [IQR]", "F1", "P value"]]

# %% [markdown]
# ## Each seed's own Table 1, and the DSC of each seed per model
# The table a one-seed study with that training seed gives (`results/table1_by_seed.csv`), and each
# seed's mean DSC per model beside their mean (`figures/seeds.png`).

# %%
display(study.table("table1_by_seed"))
figures.seeds_figure(study.table("seed_means"))
