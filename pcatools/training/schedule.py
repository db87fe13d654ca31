"""The optimisation of a run (paper section 2.5): AdamW, and the learning rate's cosine annealing to 0.

Mixed precision's ``GradScaler`` is built here too: the three objects a checkpoint stores and a
resumed run restores together.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from pcatools.training.config import TrainConfig

__all__ = ["build_optimisation", "lr_factor"]


def lr_factor(epoch: int, epochs: int, warmup_epochs: int = 0) -> float:
    """Learning-rate multiplier of epoch ``epoch`` (0-based): linear warm-up, then cosine to 0.

    .. math::

        f(e) = \\begin{cases} (e + 1) / (w + 1) & e < w \\\\
        \\tfrac12 \\left(1 + \\cos \\pi \\, \\frac{e - w}{E - w}\\right) & e \\ge w \\end{cases}

    with ``E = epochs`` and ``w = warmup_epochs``. With ``w = 0`` this is the paper's cosine
    annealing to 0 over the run (``CosineAnnealingLR(T_max=epochs, eta_min=0)``), which
    :func:`pcatools.training.train` uses as such; the warm-up is not in the paper (it is there for
    short runs at large learning rates, such as CPU demos).

    Examples
    --------
    >>> [round(lr_factor(e, 6, warmup_epochs=2), 3) for e in range(6)]
    [0.333, 0.667, 1.0, 0.854, 0.5, 0.146]
    >>> lr_factor(0, 10) == 1.0
    True
    """
    if not 0 <= warmup_epochs < max(epochs, 1):
        raise ValueError(f"warmup_epochs must be in [0, epochs={epochs}), found {warmup_epochs}")
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs)))


def build_optimisation(
    model: nn.Module, config: TrainConfig, device: torch.device, use_amp: bool
) -> tuple[torch.optim.Optimizer, Any, torch.amp.GradScaler]:
    """``(optimizer, scheduler, scaler)`` of a run: AdamW (``lr``, ``weight_decay``), the learning rate's
    schedule stepped once per epoch, and the AMP scaler (a no-op unless ``use_amp``).

    Without warm-up the schedule is ``CosineAnnealingLR(T_max=epochs, eta_min=0)``, as in runs written
    before warm-up existed (their checkpoints restore into it); with warm-up a ``LambdaLR`` of
    :func:`lr_factor`.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.warmup_epochs:
        scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, functools.partial(lr_factor, epochs=config.epochs, warmup_epochs=config.warmup_epochs)
        )
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=0.0)
    return optimizer, scheduler, torch.amp.GradScaler(device.type, enabled=use_amp)
