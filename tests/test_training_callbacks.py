"""Training callbacks (:mod:`pcatools.training.callbacks`): a metric and a schedule added without editing the loop.

One tiny 4-epoch run (the cohort and settings of tests/test_training.py, validation at epochs 2
and 4) carries three callbacks: one adds the mean foreground probability of the validation cases
as a column of ``history.csv``, one sets the learning rate at epoch 2, and one keeps each epoch's
weights so that the metric can be computed again independently, with MONAI's sliding window.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from pcatools.training import TrainCallback, TrainConfig, TrainEvent, TrainState, lr_factor, train
from tests.test_training import RUN, TINY, tiny_cohort

SET_LR_AT, NEW_LR = 2, 1e-4


class MeanForeground(TrainCallback):
    """The validation cases' mean foreground (lesion) probability, as history column ``val_fg_prob``."""

    def __init__(self) -> None:
        self.means: list[float] = []

    def on_validation_case(self, state: TrainState, logits: torch.Tensor, label: torch.Tensor) -> None:
        self.means.append(float(torch.softmax(logits, dim=1)[:, 1:].sum(dim=1).mean()))

    def on_validation(self, state: TrainState, metrics: dict[str, Any]) -> None:
        metrics["val_fg_prob"] = sum(self.means) / len(self.means)
        self.means.clear()


class SetLearningRate(TrainCallback):
    """A schedule change: the learning rate becomes ``NEW_LR`` at the start of epoch ``SET_LR_AT``."""

    def on_epoch_start(self, state: TrainState) -> None:
        if state.epoch == SET_LR_AT:
            for group in state.optimizer.param_groups:
                group["lr"] = NEW_LR


class KeepWeights(TrainCallback):
    """Each epoch's weights, by epoch (for the independent computation of the metric)."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch_end(self, state: TrainState) -> None:
        self.weights[state.epoch] = copy.deepcopy(state.model.state_dict())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cohort = tiny_cohort(tmp_path_factory.mktemp("cohort"))
    kept, events = KeepWeights(), []
    result = train(
        cohort,
        tmp_path_factory.mktemp("run") / "run",
        TrainConfig(**TINY),
        callbacks=[MeanForeground(), SetLearningRate(), kept, events.append],
        **RUN,
    )
    return {"result": result, "cohort": cohort, "weights": kept.weights, "events": events}


def _mean_foreground(weights: dict[str, torch.Tensor], case: pd.Series) -> float:
    """The metric computed apart from the loop: the case through the evaluation transforms and
    MONAI's own sliding window (not pcatools'), with the run's window (the 32^3 patch, 0.25, Gaussian)."""
    from monai.inferers import sliding_window_inference

    from pcatools.data.transforms import eval_transforms
    from pcatools.models import build_model

    model = build_model("segresnet", in_channels=2, out_channels=2, init_filters=4)
    model.load_state_dict(weights)
    model.eval()
    image = eval_transforms(spacing=TINY["spacing"])({"ct": case["ct"], "pet": case["pet"]})["image"]
    with torch.no_grad():
        logits = sliding_window_inference(
            image.as_tensor()[None], TINY["patch_size"], 4, model, overlap=0.25, mode="gaussian"
        )
    return float(torch.softmax(logits.float(), dim=1)[:, 1:].sum(dim=1).mean())


def test_a_callback_adds_a_metric_to_the_history(run: dict[str, Any]) -> None:
    result = run["result"]
    history = pd.read_csv(result.run_dir / "history.csv")
    assert list(history.columns)[-1] == "val_fg_prob"  # after the columns of every run
    assert history["val_fg_prob"].isna().tolist() == [True, False, True, False]  # validated at 2 and 4
    val_case = run["cohort"][run["cohort"]["split"] == "val"].iloc[0]
    for epoch in (2, 4):
        expected = _mean_foreground(run["weights"][epoch], val_case)
        found = float(history.loc[history["epoch"] == epoch, "val_fg_prob"].iloc[0])
        np.testing.assert_allclose(found, expected, rtol=1e-5)
    # the same column in the result, in last.pt's history and in the "epoch" events of function callbacks
    pd.testing.assert_series_equal(result.history["val_fg_prob"], history["val_fg_prob"])
    last = torch.load(result.last_checkpoint, weights_only=False)
    assert last["history"][-1]["val_fg_prob"] == history["val_fg_prob"].iloc[-1]
    epoch_events = [e for e in run["events"] if isinstance(e, TrainEvent) and e.kind == "epoch"]
    assert [e.epoch for e in epoch_events] == [1, 2, 3, 4]
    assert epoch_events[3].record["val_fg_prob"] == history["val_fg_prob"].iloc[3]


def test_a_schedule_callback_changes_the_learning_rate(run: dict[str, Any]) -> None:
    # epoch 1 trains at the configured lr; epoch 2 at the one the callback set; the cosine
    # annealing then continues from it (CosineAnnealingLR scales the rate it finds, epoch by epoch)
    lrs = pd.read_csv(run["result"].run_dir / "history.csv")["lr"].tolist()
    epochs = TINY["epochs"]
    expected = [TINY["lr"]] + [
        NEW_LR * lr_factor(e - 1, epochs) / lr_factor(SET_LR_AT - 1, epochs) for e in range(2, epochs + 1)
    ]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert math.isclose(lrs[SET_LR_AT - 1], NEW_LR)


def test_output_prior_is_the_untrained_networks_bias(tmp_path: Any) -> None:
    """``output_prior`` sets the output bias before the first step (seen by ``on_train_start``),
    is recorded in config.yaml, and a value outside (0, 1) is refused before anything trains."""
    import yaml

    from pcatools.models import output_convolution

    seen: list[torch.Tensor] = []

    class Bias(TrainCallback):
        def on_train_start(self, state: TrainState) -> None:
            seen.append(output_convolution(state.model).bias.detach().clone())

    cohort = tiny_cohort(tmp_path / "cohort")
    cfg = TrainConfig(**{**TINY, "epochs": 1, "max_steps_per_epoch": 1, "val_every": 1}, output_prior=0.2)
    train(cohort, tmp_path / "run", cfg, callbacks=[Bias()], **RUN)
    assert seen[0].tolist() == pytest.approx([0.0, math.log(0.2 / 0.8)])
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["output_prior"] == 0.2
    with pytest.raises(ValueError, match=r"output_prior must lie in \(0, 1\), found 1.0"):
        TrainConfig(output_prior=1.0)
