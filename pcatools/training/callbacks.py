"""The training loop's hooks: what a callback of :func:`pcatools.training.train` sees and when.

A metric, a schedule or a log is added to training by a :class:`TrainCallback` passed as
``train(..., callbacks=[...])``, so that nobody edits the loop for it. The loop calls the hooks
in this order, on every rank, with the one :class:`TrainState` it trains with::

    on_train_start(state)                        # after the model, optimiser and data are built
    for each epoch left:
        on_epoch_start(state)                    # state.epoch set; e.g. change the learning rate
        on_step_end(state, step, loss)           # after each optimiser step
        on_validation_case(state, logits, label) # each validation case of this rank, if validated
        on_validation(state, metrics)            # metrics (val_dice, val_cases) may gain entries
        on_epoch_end(state)                      # state.record may gain columns: history.csv has them
        on_checkpoint(state)                     # last.pt and history.csv are written (rank 0)
    on_train_end(state)                          # also when training fails: close what you opened

A plain function is a callback too: it gets a :class:`TrainEvent` after each step and after each
epoch's checkpoint (:class:`EventCallback`). An exception raised by a callback stops training;
the last checkpoint stays valid. pcatools' own TensorBoard events (:class:`TensorBoardLog`) and
epoch bar (:class:`EpochBar`) are callbacks of the same kind.

Examples
--------
>>> class Momentum(TrainCallback):
...     '''Record AdamW's beta1 as a column of history.csv.'''
...     def on_epoch_end(self, state):
...         state.record["beta1"] = state.optimizer.param_groups[0]["betas"][0]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from pcatools.training.config import TrainConfig

__all__ = [
    "EpochBar",
    "EventCallback",
    "TensorBoardLog",
    "TrainCallback",
    "TrainEvent",
    "TrainState",
    "as_callbacks",
    "fire",
]


@dataclass
class TrainState:
    """What the loop trains with, as the hooks see it (one object for the whole call).

    ``record`` is the history row of the epoch under way (``epoch``, ``train_loss``, ``lr``,
    ``val_dice``, ... :data:`~pcatools.training.run_files.HISTORY_COLUMNS`); ``history`` the rows of
    the epochs completed, earlier calls' included; ``best_metric`` / ``best_epoch`` the best
    validation DSC so far. ``model`` is the network itself (not its DDP wrapper).
    """

    config: TrainConfig
    recorded: dict[str, Any]
    run_dir: Path
    rank: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    start_epoch: int = 0
    epoch: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float = math.nan
    best_epoch: int = 0

    @property
    def lr(self) -> float:
        """The learning rate of the optimiser's first parameter group, as it stands now."""
        return float(self.optimizer.param_groups[0]["lr"])


class TrainCallback:
    """A training callback: override the hooks you need (the module docstring lists them in order)."""

    def on_train_start(self, state: TrainState) -> None:
        """Before the first epoch of this call."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Before the epoch's first step (``state.epoch`` is set)."""

    def on_step_end(self, state: TrainState, step: int, loss: float) -> None:
        """After optimiser step ``step`` (1-based in the epoch) with this rank's batch loss."""

    def on_validation_case(self, state: TrainState, logits: torch.Tensor, label: torch.Tensor) -> None:
        """Each validation case of this rank: float32 logits ``(1, C, X, Y, Z)`` of the sliding
        window on the training grid, and its label ``(1, 1, X, Y, Z)``."""

    def on_validation(self, state: TrainState, metrics: dict[str, Any]) -> None:
        """After validation; entries added to ``metrics`` become columns of the epoch's record."""

    def on_epoch_end(self, state: TrainState) -> None:
        """The epoch's record is complete and about to be kept; columns added to ``state.record``
        reach ``history.csv``, the checkpoint's history and the ``"epoch"`` event."""

    def on_checkpoint(self, state: TrainState) -> None:
        """After the epoch's ``last.pt`` (and ``best.pt``) and ``history.csv`` are written."""

    def on_train_end(self, state: TrainState) -> None:
        """When ``train`` returns or fails."""


@dataclass(frozen=True)
class TrainEvent:
    """Passed to function callbacks: ``kind`` is ``"step"`` (after each optimiser step) or ``"epoch"``
    (after the epoch's checkpoint is written). ``record`` is the history row on epoch events."""

    kind: Literal["step", "epoch"]
    epoch: int
    step: int = 0
    loss: float = math.nan
    record: Mapping[str, Any] | None = None
    rank: int = 0


class EventCallback(TrainCallback):
    """A function of a :class:`TrainEvent` as a callback: called after each step and each checkpoint."""

    def __init__(self, function: Callable[[TrainEvent], Any]) -> None:
        self.function = function

    def on_step_end(self, state: TrainState, step: int, loss: float) -> None:
        self.function(TrainEvent("step", state.epoch, step=step, loss=loss, rank=state.rank))

    def on_checkpoint(self, state: TrainState) -> None:
        self.function(TrainEvent("epoch", state.epoch, record=dict(state.record), rank=state.rank))


def as_callbacks(callbacks: Iterable[TrainCallback | Callable[[TrainEvent], Any]]) -> list[TrainCallback]:
    """Callbacks as given, functions wrapped in :class:`EventCallback`; anything else is refused."""
    out: list[TrainCallback] = []
    for cb in callbacks:
        if isinstance(cb, TrainCallback):
            out.append(cb)
        elif callable(cb):
            out.append(EventCallback(cb))
        else:
            raise TypeError(
                f"train: callbacks must be TrainCallback objects or functions of a TrainEvent, found "
                f"{type(cb).__name__}"
            )
    return out


def fire(callbacks: Iterable[TrainCallback], hook: str, *args: Any) -> None:
    """Call ``hook`` of every callback, in order, with ``args``."""
    for cb in callbacks:
        getattr(cb, hook)(*args)


class TensorBoardLog(TrainCallback):
    """TensorBoard events in ``run_dir/tensorboard``: loss, learning rate, epoch time, the fraction of
    it spent waiting for data, and the validation DSC where validated (one point per epoch)."""

    def __init__(self, run_dir: Path, purge_step: int) -> None:
        self.run_dir, self.purge_step = Path(run_dir), int(purge_step)
        self.writer: Any = None

    def on_train_start(self, state: TrainState) -> None:
        try:
            from torch.utils.tensorboard import (
                SummaryWriter,  # deferred: start-up (see tests/test_imports.py)
            )
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            warnings.warn(
                "tensorboard is not installed: no TensorBoard logs (pip install tensorboard)", stacklevel=3
            )
            return
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=self.purge_step)

    def on_checkpoint(self, state: TrainState) -> None:
        if self.writer is None:
            return
        record, epoch = state.record, state.epoch
        self.writer.add_scalar("train/loss", record["train_loss"], epoch)
        self.writer.add_scalar("train/lr", record["lr"], epoch)
        self.writer.add_scalar("time/epoch_s", record["time_s"], epoch)
        self.writer.add_scalar(
            "time/data_wait_fraction", record["data_time_s"] / max(record["time_s"], 1e-12), epoch
        )
        if not math.isnan(record["val_dice"]):
            self.writer.add_scalar("val/dice", record["val_dice"], epoch)
        self.writer.flush()

    def on_train_end(self, state: TrainState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class EpochBar(TrainCallback):
    """A tqdm bar over the run's epochs showing the loss, the DSC and the best DSC."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar: Any = None

    def on_train_start(self, state: TrainState) -> None:
        self.bar = tqdm(
            desc=self.description, initial=state.start_epoch, total=state.config.epochs, unit="epoch"
        )

    def on_checkpoint(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{state.record['train_loss']:.4f}",
                dsc=f"{state.record['val_dice']:.3f}",
                best=f"{state.best_metric:.3f}",
            )

    def on_train_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
