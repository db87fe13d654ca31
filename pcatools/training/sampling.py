"""The order and augmentation of training samples: ``(epoch, index)`` keys seeded from ``(seed, epoch, index)``.

A sample's random crop and affine depend on the run's seed, the epoch and the case only, never on
which worker process draws it, how many workers there are or what was drawn before. That is what
lets an interrupted run resume to the same weights (:func:`pcatools.training.train`, "Exact resume")
and the worker processes live for the whole run (``persistent_workers``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

__all__ = ["EpochSampler", "EpochSeededDataset", "default_workers", "sample_seed", "train_loader"]


def default_workers(world_size: int = 1) -> int:
    """Data-loading processes per rank: ``min(8, cpus // world_size - 1)``, at least 0.

    Several workers prepare the random crops and affines of the next batches while the GPU
    computes; ``benchmarks/train_step.py`` measures how long a step still waits for data.

    Examples
    --------
    >>> default_workers(10**6)
    0
    """
    cpus = os.cpu_count() or 1
    return max(0, min(8, cpus // max(1, world_size) - 1))


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one training sample's augmentation: a function of ``(seed, epoch, index)`` only.

    Examples
    --------
    >>> sample_seed(0, 1, 5) == sample_seed(0, 1, 5), sample_seed(0, 1, 5) == sample_seed(0, 2, 5)
    (True, False)
    """
    state = np.random.SeedSequence([int(seed), int(epoch), int(index), 1]).generate_state(1)[0]
    return int(state & 0x7FFFFFFF)


class EpochSeededDataset(torch.utils.data.Dataset):
    """A view of a MONAI dataset whose items are ``(epoch, index)`` keys.

    ``view[(epoch, i)]`` re-seeds the dataset's random transforms with
    :func:`sample_seed` ``(seed, epoch, i)`` and returns ``dataset[i]``: a sample's augmentation
    no longer depends on which worker draws it, how many workers there are, or what was drawn
    before (the basis of exact resume with persistent workers). Use with :class:`EpochSampler`.
    """

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        self.dataset.transform.set_random_state(seed=sample_seed(self.seed, epoch, index))
        return self.dataset[index]


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` for each index of ``sampler`` (a ``DistributedSampler``)."""

    def __init__(self, sampler: Any) -> None:
        self.sampler, self.epoch = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for ``epoch`` (seeded from ``(seed, epoch)``) and key the samples with it."""
        self.epoch = int(epoch)
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def train_loader(
    dataset: Any,
    seed: int,
    batch_size: int,
    workers: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> tuple[Any, EpochSampler]:
    """The training loop's data path over a (cached) MONAI dataset: ``(loader, sampler)``.

    One MONAI ``DataLoader`` for the whole run, whose ``workers`` processes persist across epochs
    (each sample seeds itself, :class:`EpochSeededDataset`), over this rank's
    ``DistributedSampler`` share shuffled from ``(seed, epoch)``. Call ``sampler.set_epoch(e)``
    before iterating epoch ``e``.
    """
    from monai.data import DataLoader  # deferred: start-up (see tests/test_imports.py)

    sampler = EpochSampler(
        DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
    )
    loader = DataLoader(
        EpochSeededDataset(dataset, seed),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )
    return loader, sampler
