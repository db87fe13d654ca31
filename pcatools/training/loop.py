"""The training loop of the study (paper section 2.5): ``train(manifest, run_dir, config)``.

What one call does
------------------
1. Reads the manifest (rows ``split == "train"`` and ``"val"``), builds the network
   (:func:`pcatools.models.build_model`) and the loss (:func:`pcatools.losses.build_loss`).
2. Data: MONAI :class:`~monai.data.CacheDataset` over
   :func:`pcatools.data.transforms.train_transforms` (2 mm resampling, CT clip/scale, 80 %
   foreground-centred patches, affine augmentation) and ``eval_transforms`` for validation;
   :class:`~monai.data.DataLoader` with ``workers`` processes.
3. Optimisation: AdamW (``lr`` 2e-4, weight decay 1e-5), cosine annealing of the learning rate
   from ``lr`` to 0 over ``epochs`` (``CosineAnnealingLR(T_max=epochs)``, stepped once per
   epoch; ``warmup_epochs`` > 0, not in the paper, puts a linear warm-up before it), mixed
   precision (float16 autocast + ``GradScaler``) on CUDA. The loss is computed in float32 on
   the network's logits. The epoch loss is the mean of the batch losses (paper 2.5), averaged
   over all ranks.
4. Validation every ``val_every`` epochs and after the last epoch: sliding-window inference
   (``config.sliding_window``: window ``roi_size``, default the training patch) on each validation case at the
   training spacing, argmax, and the mean DSC over cases of the foreground class (MONAI
   :class:`~monai.metrics.DiceMetric`, ``include_background=False``; cases with an empty ground
   truth give NaN there and are left out of the mean, as in the public code).
5. Files (rank 0 only) in ``run_dir``: ``config.yaml`` (every setting, :class:`TrainConfig`), ``versions.json``,
   ``split.csv`` (the manifest used), ``history.csv``, TensorBoard events in ``tensorboard/``,
   ``last.pt`` / ``last.prev.pt`` after every epoch and ``best.pt`` at each new best DSC, all
   written atomically (see :mod:`pcatools.training.checkpoint`).

Exact resume
------------
``resume=True`` continues from ``run_dir/last.pt`` when it exists. The checkpoint holds model,
optimizer, scheduler, AMP scaler, python/numpy/torch/CUDA RNG states, completed epochs, best
metric and history. The sampler's shuffle is seeded from ``(seed, epoch)`` and every sample's
augmentation (crop centre, affine) from ``(seed, epoch, case index)`` when it is drawn
(:class:`EpochSeededDataset`), in whichever worker process draws it. So an interrupted run that
resumes from its last checkpoint ends with the same weights as an uninterrupted one on the same
hardware and settings, and so does a run with another number of workers (CPU; on GPU,
``deterministic=True`` is needed as well, which disables cuDNN autotuning). This also lets the
worker processes live for the whole run (``persistent_workers``) instead of starting anew every
epoch (docs/decisions.md has the measurement).

A corrupt ``last.pt`` raises :class:`~pcatools.training.checkpoint.CheckpointError` naming the
file; nothing falls back silently. ``resume="prev"`` continues from ``last.prev.pt`` (the copy
kept by every save), ``resume=False`` starts over, a path resumes from that file. Where
``last.pt`` is gone, ``resume=True`` continues from ``last.prev.pt`` if it reads, with a warning,
and otherwise refuses a folder that holds an earlier run (history or checkpoints): a run's
history is never overwritten without a word. Starting over (``resume=False``) moves the earlier
run's files to ``run_dir/replaced/<time>/``; a ``best.pt`` from an epoch after the checkpoint a
run continues from is moved there as well.

Before the first epoch
----------------------
Every ``train`` and ``val`` case is loaded once with :func:`pcatools.data.discovery.check_cases` (the
checks :func:`~pcatools.data.discovery.discover_cases` runs: one voxel grid, finite values, 0/1 labels,
readable files), so a bad case is one error naming it and its file, whatever made the manifest.
The run folder is locked (``train.lock``, :func:`~pcatools.training.run_files.run_lock`) while a
run trains in it: a second ``train`` on the same folder is refused.

Several GPUs / processes
------------------------
Run the same call under ``torchrun --nproc_per_node=N`` (e.g. ``torchrun --nproc_per_node=2
-m pcatools.cli train --config configs/paper_segresnet_l1dfl.yaml``). Each process then trains
on its :class:`~torch.utils.data.distributed.DistributedSampler` share of the training cases
per epoch (``batch_size`` is per process), gradients are averaged by
:class:`~torch.nn.parallel.DistributedDataParallel` (``nccl`` on CUDA, ``gloo`` on CPU),
validation cases are split round-robin across ranks and the DSC sums and counts are
all-reduced, so every rank reports the same validation DSC. Only rank 0 writes. Every rank
caches the whole training set (each epoch's shuffle may give it any case).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from pcatools.data.manifest import read_manifest
from pcatools.loss_registry import loss_source, loss_source_change
from pcatools.network_registry import network_source, network_source_change
from pcatools.reproducibility import check_cpu_isa, cpu_threads
from pcatools.training.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    previous_path,
    restore_rng_state,
    save_checkpoint,
)
from pcatools.training.config import IDENTITY_KEYS, SlidingWindow, TrainConfig
from pcatools.training.distributed import DistContext, all_reduce_sum, cleanup_distributed, setup_distributed
from pcatools.training.run_files import (
    REPLACED_DIR,
    SPLIT_FILE,
    describe_differences,
    earlier_run,
    history_frame,
    run_lock,
    set_aside,
    setting_differences,
    versions,
    write_history,
    write_run_files,
)

__all__ = [
    "EpochSampler",
    "EpochSeededDataset",
    "RunSettingsError",
    "TrainEvent",
    "TrainResult",
    "default_workers",
    "read_manifest",
    "sample_seed",
    "train",
    "train_loader",
]

log = logging.getLogger("pcatools.training")


class RunSettingsError(ValueError):
    """Resuming a run with other run-defining settings (:data:`IDENTITY_KEYS`) than it was started with.

    ``run_dir`` and ``differences`` (``{key: (old, new)}``) let callers such as
    :func:`pcatools.study.run_study` name their own way of starting over.
    """

    def __init__(self, message: str, run_dir: Path, differences: Mapping[str, tuple[Any, Any]]) -> None:
        super().__init__(message)
        self.run_dir, self.differences = Path(run_dir), dict(differences)


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank)."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: pd.DataFrame
    best_metric: float = math.nan
    best_epoch: int = 0
    completed: bool = True
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainEvent:
    """Passed to callbacks: ``kind`` is ``"step"`` (after each optimiser step) or ``"epoch"``
    (after the epoch's checkpoint is written). ``record`` is the history row on epoch events."""

    kind: Literal["step", "epoch"]
    epoch: int
    step: int = 0
    loss: float = math.nan
    record: Mapping[str, Any] | None = None
    rank: int = 0


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
    from monai.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

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


def _files(rows: pd.DataFrame, with_label: bool = True) -> list[dict[str, str]]:
    """MONAI data dicts of the rows: the image paths, and ``case_id`` so that errors can name the case."""
    keys = ("ct", "pet", "label") if with_label else ("ct", "pet")
    return [
        {"case_id": str(getattr(r, "case_id", i)), **{k: str(getattr(r, k)) for k in keys}}
        for i, r in enumerate(rows.itertuples(index=False))
    ]


def _plain_tensor(x: Any) -> torch.Tensor:
    """A MetaTensor (or tensor) as a plain ``torch.Tensor`` (no metadata tracking in the hot loop)."""
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)


IDENTITY_DEFAULTS: dict[str, Any] = {"warmup_epochs": 0}


def lr_factor(epoch: int, epochs: int, warmup_epochs: int = 0) -> float:
    """Learning-rate multiplier of epoch ``epoch`` (0-based): linear warm-up, then cosine to 0.

    .. math::

        f(e) = \\begin{cases} (e + 1) / (w + 1) & e < w \\\\
        \\tfrac12 \\left(1 + \\cos \\pi \\, \\frac{e - w}{E - w}\\right) & e \\ge w \\end{cases}

    with ``E = epochs`` and ``w = warmup_epochs``. With ``w = 0`` this is the paper's cosine
    annealing to 0 over the run (``CosineAnnealingLR(T_max=epochs, eta_min=0)``), which
    :func:`train` uses as such; the warm-up is not in the paper (it is there for short runs at
    large learning rates, such as CPU demos).

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


def _config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    return setting_differences(old, new, IDENTITY_KEYS, IDENTITY_DEFAULTS)


def _start_over_hint(run_dir: Path) -> str:
    return (
        f"start over with resume=False (pcatools train --resume no), which moves the earlier run's files to "
        f"{run_dir / REPLACED_DIR}/, or use another run folder"
    )


def _resume_state(
    run_dir: Path, resume: bool | str | os.PathLike[str]
) -> tuple[Path | None, dict[str, Any] | None]:
    """The checkpoint a run continues from and its state, or ``(None, None)`` for a new run.

    ``resume=True`` takes ``last.pt``; where it is gone but ``last.prev.pt`` reads, that one, with a
    warning. A folder with an earlier run's history or checkpoints but nothing to continue from is
    refused: starting at epoch 0 there would overwrite its history without a word.
    """
    last = run_dir / "last.pt"
    prev = previous_path(last)
    if resume is False:
        return None, None
    if resume is True:
        if last.exists():
            return last, load_checkpoint(last, map_location="cpu", kind="last")
        if prev.is_file():
            try:
                state = load_checkpoint(prev, map_location="cpu", kind="last")
            except CheckpointError as err:
                raise CheckpointError(
                    f"{last} is missing and the previous checkpoint cannot be used ({str(err).rstrip('.')}); "
                    f"{_start_over_hint(run_dir)}"
                ) from None
            log.warning(
                "%s is missing: continuing from the previous checkpoint %s (epoch %d)",
                last,
                prev,
                state["epoch"],
            )
            return prev, state
        found = earlier_run(run_dir)
        if found:
            raise CheckpointError(
                f"run folder {run_dir} holds an earlier run ({', '.join(found)}) but no last.pt or "
                f"last.prev.pt to continue from; {_start_over_hint(run_dir)}"
            )
        return None, None
    if isinstance(resume, str) and resume == "prev":
        if not prev.is_file():
            raise FileNotFoundError(f"resume='prev' but {prev} does not exist")
        return prev, load_checkpoint(prev, map_location="cpu", kind="last")
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"resume={str(resume)!r}: checkpoint {path} does not exist")
    return path, load_checkpoint(path, map_location="cpu", kind="last")


def _set_aside_stale_best(run_dir: Path, start_epoch: int) -> bool:
    """Move ``best.pt`` aside when it is not from the history being continued (an epoch after the
    checkpoint, or unreadable), so that a result never points at a model of an abandoned run.

    Returns whether it did; the weights of the checkpoint's best epoch are then gone (that
    ``best.pt`` replaced them), so the caller lets the next validation write a new ``best.pt``.
    """
    best = run_dir / "best.pt"
    if not best.is_file():
        return False
    try:
        epoch: int | None = int(load_checkpoint(best, map_location="cpu", kind="best")["epoch"])
    except CheckpointError:
        epoch = None
    if epoch is not None and epoch <= start_epoch:
        return False
    target = set_aside(run_dir, ["best.pt"])
    found = "unreadable" if epoch is None else f"from epoch {epoch}"
    log.warning(
        "%s is %s, after the checkpoint this run continues from (epoch %d): moved to %s; the next "
        "validation writes a new one",
        best,
        found,
        start_epoch,
        target,
    )
    return True


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@contextlib.contextmanager
def _tensorboard(run_dir: Path, enabled: bool, purge_step: int) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is a dependency
        warnings.warn(
            "tensorboard is not installed: no TensorBoard logs (pip install tensorboard)", stacklevel=3
        )
        yield None
        return
    writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge_step)
    try:
        yield writer
    finally:
        writer.close()


def train(
    manifest: pd.DataFrame | str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    resume: bool | str | os.PathLike[str] = True,
    progress: bool = True,
    callbacks: Sequence[Callable[[TrainEvent], None]] = (),
    device: str | torch.device | None = None,
    max_epochs_this_call: int | None = None,
) -> TrainResult:
    """Train one network with one loss on the manifest's ``train`` rows (paper section 2.5).

    Parameters
    ----------
    manifest
        DataFrame or CSV with columns ``case_id, ct, pet, label, split`` (``make_splits``);
        rows ``train`` are trained on, rows ``val`` validated on.
    run_dir
        Run folder (created). Re-running with ``resume=True`` continues the run in it.
    config
        The run's settings (:class:`~pcatools.training.config.TrainConfig`; a mapping is read with
        :meth:`~pcatools.training.config.TrainConfig.from_dict`, ``None`` is the paper's settings).
        Validation slides ``config.sliding_window`` over each validation case.
    resume
        ``True``: continue from ``run_dir/last.pt`` if it exists; ``False``: start over;
        ``"prev"``: continue from ``run_dir/last.prev.pt`` (after a corrupt ``last.pt``); a path:
        continue from that checkpoint. Resuming with changed run-defining settings
        (:data:`IDENTITY_KEYS`) raises :class:`RunSettingsError`. See "Exact resume" in the
        module docstring for a ``last.pt`` that is gone and for starting over.
    progress
        tqdm bars (rank 0).
    max_epochs_this_call
        Stop after this many epochs in this call (the run stays resumable; ``completed`` is
        False in the result when epochs remain).
    device
        ``None``: CUDA if available (``cuda:LOCAL_RANK`` under torchrun), else CPU.
    callbacks
        Functions called with a :class:`TrainEvent` after each step and each epoch (on every
        rank). An exception raised there stops training; the last checkpoint stays valid.

    Returns
    -------
    TrainResult
        Paths of ``best.pt`` and ``last.pt``, the history DataFrame (one row per epoch, columns
        :data:`~pcatools.training.run_files.HISTORY_COLUMNS`), best DSC and its epoch. With
        no ``val`` rows, ``best_checkpoint`` is ``last.pt`` and ``best_metric`` NaN.

    Raises
    ------
    CheckpointError
        ``last.pt`` (or the checkpoint given) is corrupt; the message names it and the kept
        ``last.prev.pt``. Or the folder holds an earlier run with nothing to continue from.
        :class:`~pcatools.training.checkpoint.CheckpointWriteError` (also an ``OSError``): a
        checkpoint cannot be written (disk full).
    DataError
        A ``train`` or ``val`` case fails :func:`pcatools.data.discovery.check_cases` (names the case and file).
    RunSettingsError
        Resuming with changed run-defining settings (a ``ValueError``; lists them).
    ValueError
        Bad settings or overrides, a manifest without ``split`` or without ``train`` rows.
    RunBusyError
        Another process trains in ``run_dir``.
    FloatingPointError
        A non-finite training loss (names the epoch, step and the batch's cases).

    Examples
    --------
    >>> cfg = TrainConfig(epochs=20, patch_size=(64,) * 3, spacing=(4.0,) * 3)
    >>> result = train("runs/demo/split.csv", "runs/demo/segresnet__l1dfl", cfg)  # doctest: +SKIP
    >>> result.history[["epoch", "train_loss", "val_dice"]].tail()  # doctest: +SKIP
    """
    from monai.data import CacheDataset
    from monai.utils import set_determinism

    from pcatools.data.discovery import check_cases
    from pcatools.data.transforms import eval_transforms, train_transforms
    from pcatools.losses import build_loss
    from pcatools.models import build_model

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config or {}, where="train")
    cfg.check_components()
    model, loss, epochs, lr, seed = cfg.model, cfg.loss, cfg.epochs, cfg.lr, cfg.seed
    in_channels, out_channels, warmup_epochs = cfg.in_channels, cfg.out_channels, cfg.warmup_epochs
    patch, spc, window = cfg.patch_size, cfg.spacing, cfg.sliding_window
    model_kw, loss_kw, tf_kw = cfg.model_overrides, cfg.loss_overrides, cfg.transform_overrides
    if max_epochs_this_call is not None and max_epochs_this_call < 0:
        raise ValueError(f"train: max_epochs_this_call must be >= 0, found {max_epochs_this_call}")

    run = Path(run_dir)
    ctx = setup_distributed(device)
    held = contextlib.ExitStack()  # the run folder's lock (rank 0), released when train returns or fails
    try:
        dev = ctx.device
        use_amp = (dev.type == "cuda") if cfg.amp is None else bool(cfg.amp)
        if use_amp and dev.type != "cuda":
            raise ValueError(f"train: amp=True needs a CUDA device, but training runs on {dev}")
        n_workers = default_workers(ctx.world_size) if cfg.workers is None else int(cfg.workers)
        det = (dev.type == "cpu") if cfg.deterministic is None else bool(cfg.deterministic)

        # what config.yaml and the checkpoints record: the settings, as resolved here, and the run's facts
        recorded: dict[str, Any] = {
            **cfg.to_dict(),
            "amp": use_amp,
            "workers": n_workers,
            "deterministic": det,
            "device": str(dev),
            "world_size": ctx.world_size,
            # paths relative to the run folder, which travels whole: the run reads its own split.csv
            "run_dir": ".",
            "manifest": SPLIT_FILE,
        }
        if not isinstance(manifest, pd.DataFrame):
            recorded["manifest_source"] = os.path.relpath(os.path.abspath(manifest), os.path.abspath(run))
        if (source := loss_source(loss)) is not None:  # a user's loss: its file's SHA-256 or package version
            recorded["loss_source"] = source
        if (source := network_source(model)) is not None:  # a user's (or MONAI's) network: the same
            recorded["network_source"] = source

        table = read_manifest(manifest)
        if "split" not in table:
            raise ValueError(
                "train: the manifest has no 'split' column; make one with pcatools.data.splits.make_splits"
            )
        train_rows = table[table["split"] == "train"]
        val_rows = table[table["split"] == "val"]
        if train_rows.empty:
            raise ValueError(
                f"train: no rows with split == 'train' (splits found: {sorted(table['split'].astype(str).unique())})"
            )
        show = progress and ctx.is_main

        def check_data() -> None:  # the checks discover_cases runs, on the rows training reads
            check_cases(
                pd.concat([train_rows, val_rows]),
                progress=show,
                require_labels=True,
                resample_ct=bool(tf_kw.get("resample_ct", False)),
                workers=max(1, n_workers),
            )

        # A new run's data are checked before its folder is made; an existing folder is locked first
        # (another run may be writing it) and its data checked when an epoch is left to run.
        checked = not run.exists()
        if checked:
            check_data()
        if ctx.is_main:
            held.enter_context(run_lock(run))

        # ---- resume state (read under the lock, before anything is written) ----------------------
        ckpt_path, state = _resume_state(run, resume)
        if state is not None:
            diffs = _config_differences(state["config"], recorded)
            if diffs:
                listing = describe_differences(diffs)
                raise RunSettingsError(
                    f"train: {ckpt_path} belongs to a run with other settings ({listing}); use another run "
                    f"folder, or {_start_over_hint(run)}",
                    run,
                    diffs,
                )
            for key, change in (
                ("loss_source", loss_source_change),
                ("network_source", network_source_change),
            ):
                changed = change(state["config"].get(key), recorded.get(key))
                if changed:
                    raise RunSettingsError(
                        f"train: {ckpt_path} was trained with {changed}; {_start_over_hint(run)}",
                        run,
                        {key: (state["config"].get(key), recorded.get(key))},
                    )
        start_epoch = int(state["epoch"]) if state else 0
        has_work = start_epoch < epochs and (max_epochs_this_call is None or max_epochs_this_call > 0)
        if has_work and not checked:
            check_data()

        # ---- seeds, threads, model, optimiser --------------------------------------------------
        held.enter_context(cpu_threads(cfg.threads))
        if det and dev.type == "cpu" and ctx.is_main and has_work and (isa := check_cpu_isa()):
            warnings.warn(f"train {run}: {isa}", UserWarning, stacklevel=2)
        set_determinism(seed=seed)
        torch.backends.cudnn.deterministic = det
        torch.backends.cudnn.benchmark = not det and dev.type == "cuda"
        net = build_model(model, in_channels=in_channels, out_channels=out_channels, **model_kw).to(dev)
        loss_fn = build_loss(loss, **loss_kw)
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        if warmup_epochs:
            scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, functools.partial(lr_factor, epochs=epochs, warmup_epochs=warmup_epochs)
            )
        else:  # the paper's schedule, as in runs written before warm-up existed
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0.0)
        scaler = torch.amp.GradScaler(dev.type, enabled=use_amp)
        history: list[dict[str, Any]] = []
        best_metric, best_epoch = math.nan, 0
        if state is not None:
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            history = [dict(r) for r in state["history"]]
            best_metric = float(state.get("best_metric", math.nan))
            best_epoch = int(state.get("best_epoch", 0))
            restore_rng_state(state["rng"])
            if ctx.is_main:
                log.info("resumed %s from %s after epoch %d", run, ckpt_path, start_epoch)
            del state
        ddp_net: nn.Module = net
        if ctx.distributed:
            ddp_net = nn.parallel.DistributedDataParallel(
                net, device_ids=[dev.index] if dev.type == "cuda" else None
            )

        if ctx.is_main:
            if ckpt_path is None:  # a new run
                moved = set_aside(run) if earlier_run(run) else None
                if moved is not None:
                    log.warning("starting over in %s: the earlier run's files were moved to %s", run, moved)
            elif _set_aside_stale_best(run, start_epoch):
                best_metric, best_epoch = math.nan, 0  # the next validation writes best.pt
            write_run_files(run, recorded, table)

        # ---- data (cached only when there is an epoch left to run: a finished run returns at once) ---
        eval_params = set(inspect.signature(eval_transforms).parameters)
        eval_kw = {k: v for k, v in tf_kw.items() if k in eval_params}
        train_tf = train_transforms(spacing=spc, patch_size=patch, num_samples=cfg.num_samples, **tf_kw)
        val_tf = eval_transforms(spacing=spc, **eval_kw)
        # the random transforms only crop and resample (never write into the cache): no copy
        train_ds = CacheDataset(
            _files(train_rows) if has_work else [],
            transform=train_tf,
            cache_rate=cfg.cache_rate,
            num_workers=max(1, n_workers),
            progress=show,
            copy_cache=False,
        )
        my_val = _files(val_rows)[ctx.rank :: ctx.world_size] if has_work else []
        val_ds = (
            CacheDataset(
                my_val,
                transform=val_tf,
                cache_rate=cfg.cache_rate,
                num_workers=max(1, n_workers),
                progress=show,
            )
            if my_val
            else None
        )
        loader, sampler = train_loader(
            train_ds, seed, cfg.batch_size, n_workers, ctx.rank, ctx.world_size, pin_memory=dev.type == "cuda"
        )
        has_val = not val_rows.empty

        last_path, best_path = run / "last.pt", run / "best.pt"
        epochs_done_here = 0
        from tqdm.auto import tqdm

        with _tensorboard(run, cfg.tensorboard and ctx.is_main, purge_step=start_epoch + 1) as writer:
            bar = tqdm(
                range(start_epoch + 1, epochs + 1),
                desc=f"train {model}/{loss}",
                initial=start_epoch,
                total=epochs,
                disable=not show,
                unit="epoch",
            )
            for epoch in bar:
                if max_epochs_this_call is not None and epochs_done_here >= max_epochs_this_call:
                    break
                record = _train_epoch(
                    ddp_net,
                    loss_fn,
                    optimizer,
                    scaler,
                    loader,
                    sampler,
                    ctx,
                    epoch,
                    use_amp,
                    cfg.max_steps_per_epoch,
                    callbacks,
                    show,
                )
                record["lr"] = float(optimizer.param_groups[0]["lr"])
                scheduler.step()
                record["val_dice"], record["val_cases"] = math.nan, 0
                if has_val and (epoch % cfg.val_every == 0 or epoch == epochs):  # all ranks alike
                    dice, n_cases = _validate(net, val_ds, ctx, window, use_amp, out_channels)
                    record["val_dice"], record["val_cases"] = dice, n_cases
                history.append(record)
                validated = has_val and (epoch % cfg.val_every == 0 or epoch == epochs)
                value = float(record["val_dice"])
                # the first validation always gives a best.pt; later ones only on a higher DSC (NaN never wins)
                improved = validated and (
                    best_epoch == 0
                    or (not math.isnan(value) and (math.isnan(best_metric) or value > best_metric))
                )
                if improved:
                    best_metric, best_epoch = value, epoch
                if ctx.is_main:
                    if improved:
                        save_checkpoint(
                            {
                                "kind": "best",
                                "config": recorded,
                                "model": net.state_dict(),
                                "epoch": epoch,
                                "best_metric": best_metric,
                                "versions": versions(),
                            },
                            best_path,
                            keep_previous=False,
                        )
                    save_checkpoint(
                        {
                            "kind": "last",
                            "config": recorded,
                            "model": net.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "scaler": scaler.state_dict(),
                            "rng": capture_rng_state(),
                            "epoch": epoch,
                            "best_metric": best_metric,
                            "best_epoch": best_epoch,
                            "history": history,
                        },
                        last_path,
                    )
                    write_history(run, history)
                    if writer is not None:
                        writer.add_scalar("train/loss", record["train_loss"], epoch)
                        writer.add_scalar("train/lr", record["lr"], epoch)
                        writer.add_scalar("time/epoch_s", record["time_s"], epoch)
                        writer.add_scalar(
                            "time/data_wait_fraction",
                            record["data_time_s"] / max(record["time_s"], 1e-12),
                            epoch,
                        )
                        if not math.isnan(record["val_dice"]):
                            writer.add_scalar("val/dice", record["val_dice"], epoch)
                        writer.flush()
                bar.set_postfix(
                    loss=f"{record['train_loss']:.4f}",
                    dsc=f"{record['val_dice']:.3f}",
                    best=f"{best_metric:.3f}",
                )
                epochs_done_here += 1
                for cb in callbacks:
                    cb(TrainEvent("epoch", epoch, record=dict(record), rank=ctx.rank))
            bar.close()

        final_epoch = history[-1]["epoch"] if history else 0
        return TrainResult(
            run_dir=run,
            best_checkpoint=best_path if has_val else last_path,
            last_checkpoint=last_path,
            history=history_frame(history),
            best_metric=best_metric,
            best_epoch=best_epoch,
            completed=final_epoch >= epochs,
            config=recorded,
        )
    finally:
        held.close()
        cleanup_distributed(ctx)


def _train_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loader: Any,
    sampler: EpochSampler,
    ctx: DistContext,
    epoch: int,
    use_amp: bool,
    max_steps: int | None,
    callbacks: Sequence[Callable[[TrainEvent], None]],
    show: bool,
) -> dict[str, Any]:
    """One pass over this rank's share of the training set; returns the epoch's history record."""
    from tqdm.auto import tqdm

    dev = ctx.device
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
        inputs = _plain_tensor(batch["image"]).to(dev, non_blocking=True)
        labels = _plain_tensor(batch["label"]).to(dev, non_blocking=True)
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
        for cb in callbacks:
            cb(TrainEvent("step", epoch, step=steps, loss=value, rank=ctx.rank))
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


def _validate(
    model: nn.Module,
    dataset: Any,
    ctx: DistContext,
    window: SlidingWindow,
    use_amp: bool,
    out_channels: int,
) -> tuple[float, int]:
    """Mean foreground DSC over the validation cases of all ranks, and the number of cases counted."""
    from monai.data import DataLoader
    from monai.inferers import sliding_window_inference
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    dev = ctx.device
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    total, count = 0.0, 0
    model.eval()
    if dataset is not None:
        loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)
        with torch.no_grad():
            for batch in loader:
                image = _plain_tensor(batch["image"]).to(dev)
                label = _plain_tensor(batch["label"]).to(dev)
                with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
                    logits = sliding_window_inference(
                        image,
                        window.roi_size,
                        window.sw_batch_size,
                        model,
                        overlap=window.overlap,
                        mode=window.mode,
                    )
                pred = torch.argmax(_plain_tensor(logits).float(), dim=1, keepdim=True)
                scores = metric(one_hot(pred, out_channels), one_hot(label.long(), out_channels))
                vals = _plain_tensor(scores).float().flatten()
                ok = ~torch.isnan(vals)
                total += float(vals[ok].sum().item())
                count += int(ok.sum().item())
        metric.reset()
    total_all, count_all = all_reduce_sum([total, count], ctx)
    model.train()
    return (total_all / count_all if count_all else math.nan), int(count_all)
