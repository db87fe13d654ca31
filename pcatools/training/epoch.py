"""One epoch of a run: the optimiser steps over this rank's share of the training set, and validation.

Validation slides :func:`pcatools.inference.sliding_window_logits` (the function prediction
uses) over each validation case, so that a model is validated exactly as it will predict.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from pcatools.inference import sliding_window_logits
from pcatools.training.callbacks import TrainCallback, TrainState, fire
from pcatools.training.config import SlidingWindow
from pcatools.training.distributed import DistContext, all_reduce_sum
from pcatools.training.sampling import EpochSampler

__all__ = ["plain_tensor", "train_epoch", "validate"]


def plain_tensor(x: Any) -> torch.Tensor:
    """A MetaTensor (or tensor) as a plain ``torch.Tensor`` (no metadata tracking in the hot loop)."""
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)


def train_epoch(
    state: TrainState,
    model: nn.Module,
    loss_fn: nn.Module,
    loader: Any,
    sampler: EpochSampler,
    ctx: DistContext,
    use_amp: bool,
    callbacks: Sequence[TrainCallback],
    show: bool,
) -> dict[str, Any]:
    """One pass over this rank's share of the training set; returns the epoch's history record.

    ``model`` is the network as trained (its DDP wrapper under torchrun). The epoch loss is the
    mean of the batch losses of all ranks (paper 2.5); the loss is computed in float32 on the
    logits, the forward pass under float16 autocast when ``use_amp``.
    """
    dev, epoch = ctx.device, state.epoch
    optimizer, scaler, max_steps = state.optimizer, state.scaler, state.config.max_steps_per_epoch
    sampler.set_epoch(epoch)
    n_batches = len(loader) if max_steps is None else min(len(loader), int(max_steps))
    model.train()
    loss_sum, steps, samples = 0.0, 0, 0
    data_time, compute_time = 0.0, 0.0
    start = time.perf_counter()
    t0 = start
    it = iter(loader)
    bar = tqdm(total=n_batches, desc=f"epoch {epoch}", leave=False, disable=not show, unit="step")
    while steps < n_batches:
        try:
            batch = next(it)
        except StopIteration:
            break
        inputs = plain_tensor(batch["image"]).to(dev, non_blocking=True)
        labels = plain_tensor(batch["label"]).to(dev, non_blocking=True)
        t1 = time.perf_counter()
        data_time += t1 - t0
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
            logits = model(inputs)
        loss = loss_fn(logits.float(), labels)
        if not torch.isfinite(loss):
            cases = ", ".join(sorted({str(c) for c in batch.get("case_id", [])})) or "unknown"
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at epoch {epoch}, step {steps + 1}, on a batch "
                f"of cases {cases}; the last checkpoint is kept"
            )
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        value = float(loss.detach().item())  # synchronises CUDA, so compute time is real time
        loss_sum += value
        steps += 1
        samples += int(inputs.shape[0])
        t0 = time.perf_counter()
        compute_time += t0 - t1
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}")
        fire(callbacks, "on_step_end", state, steps, value)
    bar.close()
    del it
    total_loss, total_steps = all_reduce_sum([loss_sum, steps], ctx)
    return {
        "epoch": epoch,
        "train_loss": total_loss / max(total_steps, 1.0),
        "steps": steps,
        "samples": samples,
        "time_s": time.perf_counter() - start,
        "data_time_s": data_time,
        "compute_time_s": compute_time,
    }


def validate(
    state: TrainState,
    dataset: Any,
    ctx: DistContext,
    window: SlidingWindow,
    use_amp: bool,
    callbacks: Sequence[TrainCallback],
) -> dict[str, Any]:
    """``{"val_dice", "val_cases"}``: the mean foreground DSC over the validation cases of all ranks
    and the number of cases counted (those with an empty ground truth give NaN and are left out).

    Each case is predicted by :func:`~pcatools.inference.sliding_window_logits` with ``window`` on
    the training grid, its argmax scored with MONAI's ``DiceMetric`` and handed to the callbacks'
    ``on_validation_case``; ``dataset`` is this rank's share (``None``: none).
    """
    from monai.data import DataLoader  # deferred: start-up (see tests/test_imports.py)
    from monai.metrics import DiceMetric  # deferred: start-up (see tests/test_imports.py)
    from monai.networks.utils import one_hot  # deferred: start-up (see tests/test_imports.py)

    model, dev, out_channels = state.model, ctx.device, state.config.out_channels
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    total, count = 0.0, 0
    if dataset is not None:
        for batch in DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0):
            image = plain_tensor(batch["image"]).to(dev)
            label = plain_tensor(batch["label"]).to(dev)
            logits = sliding_window_logits(model, image, window, device=dev, amp=use_amp)
            fire(callbacks, "on_validation_case", state, logits, label)
            pred = torch.argmax(logits, dim=1, keepdim=True)
            scores = metric(one_hot(pred, out_channels), one_hot(label.long(), out_channels))
            vals = plain_tensor(scores).float().flatten()
            ok = ~torch.isnan(vals)
            total += float(vals[ok].sum().item())
            count += int(ok.sum().item())
        metric.reset()
    total_all, count_all = all_reduce_sum([total, count], ctx)
    model.train()
    return {"val_dice": total_all / count_all if count_all else math.nan, "val_cases": int(count_all)}
