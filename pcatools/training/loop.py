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
   (:func:`pcatools.inference.sliding_window_logits`, the function prediction uses, with
   ``config.sliding_window``: window ``roi_size``, default the training patch) on each validation
   case at the training spacing, argmax, and the mean DSC over cases of the foreground class (MONAI
   :class:`~monai.metrics.DiceMetric`, ``include_background=False``; cases with an empty ground
   truth give NaN there and are left out of the mean, as in the public code).
5. Files (rank 0 only) in ``run_dir``: ``config.yaml`` (every setting, :class:`TrainConfig`), ``versions.json``,
   ``split.csv`` (the manifest used), ``history.csv``, TensorBoard events in ``tensorboard/``,
   ``last.pt`` / ``last.prev.pt`` after every epoch and ``best.pt`` at each new best DSC, all
   written atomically (see :mod:`pcatools.training.checkpoint`).

The loop
--------
``train`` runs in named phases, each a function of this module or of one beside it: settings
(``_resolve``), the folder's lock and the checkpoint to continue from (``_lock_and_resume``,
:mod:`~pcatools.training.resume`), model and optimiser (``_build``, :mod:`~pcatools.training.schedule`),
data (``_data``, :mod:`~pcatools.training.sampling`), then per epoch one training pass and validation
(:mod:`~pcatools.training.epoch`), the best model and the checkpoints (``_keep_best``, ``_checkpoint``,
:func:`~pcatools.training.checkpoint.save_run`). Around them the hooks of
:mod:`~pcatools.training.callbacks` let a callback add a metric, a schedule or a log without editing
the loop (``train(..., callbacks=[...])``); the TensorBoard events and the epoch bar are such callbacks.

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
import inspect
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from pcatools.data.manifest import read_manifest
from pcatools.loss_registry import loss_source, loss_source_change
from pcatools.models import build_model, set_output_prior
from pcatools.network_registry import network_source, network_source_change
from pcatools.reproducibility import check_cpu_isa, cpu_threads
from pcatools.training.callbacks import (
    EpochBar,
    TensorBoardLog,
    TrainCallback,
    TrainEvent,
    TrainState,
    as_callbacks,
    fire,
)
from pcatools.training.checkpoint import restore_run, save_run
from pcatools.training.config import IDENTITY_KEYS, TrainConfig
from pcatools.training.distributed import DistContext, cleanup_distributed, setup_distributed
from pcatools.training.epoch import train_epoch, validate
from pcatools.training.resume import resume_state, set_aside_stale_best, start_over_hint
from pcatools.training.run_files import (
    SPLIT_FILE,
    describe_differences,
    earlier_run,
    history_frame,
    run_lock,
    set_aside,
    setting_differences,
    write_history,
    write_run_files,
)
from pcatools.training.sampling import default_workers, train_loader
from pcatools.training.schedule import build_optimisation

__all__ = ["RunSettingsError", "TrainResult", "read_manifest", "train"]

log = logging.getLogger("pcatools.training")

IDENTITY_DEFAULTS: dict[str, Any] = {"warmup_epochs": 0}
"""Values of run-defining settings added later, for run folders written before they existed."""


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


def train(
    manifest: pd.DataFrame | str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    resume: bool | str | os.PathLike[str] = True,
    progress: bool = True,
    callbacks: Sequence[TrainCallback | Callable[[TrainEvent], Any]] = (),
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
        :class:`~pcatools.training.callbacks.TrainCallback` objects, whose hooks the loop calls
        (:mod:`pcatools.training.callbacks` lists them), or functions called with a
        :class:`~pcatools.training.callbacks.TrainEvent` after each step and each epoch (on every
        rank). An exception raised there stops training; the last checkpoint stays valid.

    Returns
    -------
    TrainResult
        Paths of ``best.pt`` and ``last.pt``, the history DataFrame (one row per epoch, columns
        :data:`~pcatools.training.run_files.HISTORY_COLUMNS` and those callbacks add), best DSC and its
        epoch. With no ``val`` rows, ``best_checkpoint`` is ``last.pt`` and ``best_metric`` NaN.

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
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config or {}, where="train")
    cfg.check_components()
    if max_epochs_this_call is not None and max_epochs_this_call < 0:
        raise ValueError(f"train: max_epochs_this_call must be >= 0, found {max_epochs_this_call}")
    ctx = setup_distributed(device)
    with contextlib.ExitStack() as held:  # released in reverse when train returns or fails
        held.callback(cleanup_distributed, ctx)
        plan = _resolve(cfg, manifest, Path(run_dir), ctx, progress)
        ckpt_path, saved, epochs = _lock_and_resume(plan, resume, max_epochs_this_call, held)
        state, trained_model, loss_fn = _build(plan, ckpt_path, saved, bool(epochs), held)
        loader, sampler, val_ds = _data(plan, has_work=bool(epochs))
        hooks = [*_own_callbacks(plan, state), *as_callbacks(callbacks)]
        held.callback(fire, hooks, "on_train_end", state)
        fire(hooks, "on_train_start", state)
        for epoch in epochs:
            state.epoch = epoch
            fire(hooks, "on_epoch_start", state)
            state.record = train_epoch(
                state, trained_model, loss_fn, loader, sampler, ctx, plan.use_amp, hooks, plan.show
            )
            state.record["lr"] = state.lr
            state.scheduler.step()
            validated = _validation_due(plan, epoch)
            metrics = {"val_dice": math.nan, "val_cases": 0}
            if validated:
                metrics = validate(state, val_ds, ctx, cfg.sliding_window, plan.use_amp, hooks)
                fire(hooks, "on_validation", state, metrics)
            state.record.update(metrics)
            fire(hooks, "on_epoch_end", state)
            state.history.append(state.record)
            _checkpoint(plan, state, improved=_keep_best(state, validated))
            fire(hooks, "on_checkpoint", state)
        return _result(plan, state)


# ------------------------------------------------------------------------------------------------
# the phases, in the order train() runs them
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A call's settings as resolved on this rank, what the run records, and the manifest's rows."""

    config: TrainConfig
    run_dir: Path
    ctx: DistContext
    use_amp: bool
    workers: int
    deterministic: bool
    recorded: dict[str, Any]
    table: pd.DataFrame
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    show: bool

    @property
    def has_val(self) -> bool:
        """Whether the manifest has ``val`` rows to validate on."""
        return not self.val_rows.empty


def _resolve(
    cfg: TrainConfig,
    manifest: pd.DataFrame | str | os.PathLike[str],
    run: Path,
    ctx: DistContext,
    progress: bool,
) -> _Plan:
    """Device-dependent settings resolved, the record of ``config.yaml`` and the manifest's rows."""
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
    if (source := loss_source(cfg.loss)) is not None:  # a user's loss: its file's SHA-256 or package version
        recorded["loss_source"] = source
    if (source := network_source(cfg.model)) is not None:  # a user's (or MONAI's) network: the same
        recorded["network_source"] = source

    table = read_manifest(manifest)
    if "split" not in table:
        raise ValueError(
            "train: the manifest has no 'split' column; make one with pcatools.data.splits.make_splits"
        )
    train_rows = table[table["split"] == "train"]
    if train_rows.empty:
        raise ValueError(
            f"train: no rows with split == 'train' (splits found: {sorted(table['split'].astype(str).unique())})"
        )
    return _Plan(
        cfg, run, ctx, use_amp, n_workers, det, recorded, table, train_rows, table[table["split"] == "val"],
        progress and ctx.is_main,
    )  # fmt: skip


def _check_data(plan: _Plan) -> None:
    """The checks :func:`~pcatools.data.discovery.discover_cases` runs, on the rows training reads."""
    from pcatools.data.discovery import check_cases  # deferred: start-up (see tests/test_imports.py)

    check_cases(
        pd.concat([plan.train_rows, plan.val_rows]),
        progress=plan.show,
        require_labels=True,
        resample_ct=bool(plan.config.transform_overrides.get("resample_ct", False)),
        workers=max(1, plan.workers),
    )


def _lock_and_resume(
    plan: _Plan, resume: bool | str | os.PathLike[str], max_epochs: int | None, held: contextlib.ExitStack
) -> tuple[Path | None, dict[str, Any] | None, range]:
    """Lock the run folder (rank 0) and read the checkpoint to continue from, refusing other settings;
    ``(checkpoint, its state, the epochs this call trains)``, ``(None, None, ...)`` for a new run.

    A new run's data are checked before its folder is made; an existing folder is locked first
    (another run may be writing it) and its data checked when an epoch is left to run.
    """
    run = plan.run_dir
    checked = not run.exists()
    if checked:
        _check_data(plan)
    if plan.ctx.is_main:
        held.enter_context(run_lock(run))
    ckpt_path, saved = resume_state(run, resume)  # read under the lock, before anything is written
    if saved is not None:
        _check_same_run(saved["config"], plan.recorded, run, ckpt_path)
    # the epochs after the checkpoint's, at most max_epochs of them
    start, end = int(saved["epoch"]) if saved else 0, plan.config.epochs
    epochs = range(start + 1, (end if max_epochs is None else min(end, start + max_epochs)) + 1)
    if epochs and not checked:
        _check_data(plan)
    return ckpt_path, saved, epochs


def _check_same_run(
    old: Mapping[str, Any], new: Mapping[str, Any], run: Path, ckpt_path: Path | None
) -> None:
    """Refuse to continue a run whose run-defining settings, or user loss/network code, changed."""
    diffs = setting_differences(old, new, IDENTITY_KEYS, IDENTITY_DEFAULTS)
    if diffs:
        raise RunSettingsError(
            f"train: {ckpt_path} belongs to a run with other settings ({describe_differences(diffs)}); use "
            f"another run folder, or {start_over_hint(run)}",
            run,
            diffs,
        )
    for key, change in (("loss_source", loss_source_change), ("network_source", network_source_change)):
        changed = change(old.get(key), new.get(key))
        if changed:
            raise RunSettingsError(
                f"train: {ckpt_path} was trained with {changed}; {start_over_hint(run)}",
                run,
                {key: (old.get(key), new.get(key))},
            )


def _build(
    plan: _Plan,
    ckpt_path: Path | None,
    saved: dict[str, Any] | None,
    has_work: bool,
    held: contextlib.ExitStack,
) -> tuple[TrainState, nn.Module, nn.Module]:
    """Seeds and threads, then the network, loss, optimiser, schedule and scaler, restored from
    ``saved`` when the run continues; the run folder's files written (rank 0).

    Returns the state, the network as trained (its DDP wrapper under torchrun) and the loss.
    """
    from monai.utils import set_determinism  # deferred: start-up (see tests/test_imports.py)

    from pcatools.losses import build_loss  # deferred: start-up (see tests/test_imports.py)

    cfg, ctx, dev, run = plan.config, plan.ctx, plan.ctx.device, plan.run_dir
    start_epoch = int(saved["epoch"]) if saved else 0
    held.enter_context(cpu_threads(cfg.threads))
    if plan.deterministic and dev.type == "cpu" and ctx.is_main and has_work and (isa := check_cpu_isa()):
        warnings.warn(f"train {run}: {isa}", UserWarning, stacklevel=3)
    set_determinism(seed=cfg.seed)
    torch.backends.cudnn.deterministic = plan.deterministic
    torch.backends.cudnn.benchmark = not plan.deterministic and dev.type == "cuda"
    net = build_model(
        cfg.model, in_channels=cfg.in_channels, out_channels=cfg.out_channels, **cfg.model_overrides
    )
    if cfg.output_prior is not None:
        set_output_prior(net, cfg.output_prior, cfg.out_channels)
    net = net.to(dev)
    loss_fn = build_loss(cfg.loss, **cfg.loss_overrides)
    optimizer, scheduler, scaler = build_optimisation(net, cfg, dev, plan.use_amp)
    state = TrainState(cfg, plan.recorded, run, ctx.rank, net, optimizer, scheduler, scaler, start_epoch)
    if saved is not None:
        restore_run(state, saved)
        if ctx.is_main:
            log.info("resumed %s from %s after epoch %d", run, ckpt_path, start_epoch)
    trained: nn.Module = net
    if ctx.distributed:
        trained = nn.parallel.DistributedDataParallel(
            net, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    if ctx.is_main:
        if ckpt_path is None:  # a new run
            moved = set_aside(run) if earlier_run(run) else None
            if moved is not None:
                log.warning("starting over in %s: the earlier run's files were moved to %s", run, moved)
        elif set_aside_stale_best(run, start_epoch):
            state.best_metric, state.best_epoch = math.nan, 0  # the next validation writes best.pt
        write_run_files(run, plan.recorded, plan.table)
    return state, trained, loss_fn


def _files(rows: pd.DataFrame, with_label: bool = True) -> list[dict[str, str]]:
    """MONAI data dicts of the rows: the image paths, and ``case_id`` so that errors can name the case."""
    keys = ("ct", "pet", "label") if with_label else ("ct", "pet")
    return [
        {"case_id": str(getattr(r, "case_id", i)), **{k: str(getattr(r, k)) for k in keys}}
        for i, r in enumerate(rows.itertuples(index=False))
    ]


def _data(plan: _Plan, has_work: bool) -> tuple[Any, Any, Any]:
    """``(loader, sampler, val_dataset)``: the cached training set behind :func:`train_loader` and this
    rank's share of the validation cases (``None``: none). Cached only when an epoch is left to run,
    so that a finished run returns at once."""
    from monai.data import CacheDataset  # deferred: start-up (see tests/test_imports.py)

    from pcatools.data.transforms import (  # deferred: start-up (see tests/test_imports.py)
        eval_transforms,
        train_transforms,
    )

    cfg, ctx, workers = plan.config, plan.ctx, max(1, plan.workers)
    tf_kw = cfg.transform_overrides
    eval_params = set(inspect.signature(eval_transforms).parameters)
    train_tf = train_transforms(
        spacing=cfg.spacing, patch_size=cfg.patch_size, num_samples=cfg.num_samples, **tf_kw
    )
    val_tf = eval_transforms(spacing=cfg.spacing, **{k: v for k, v in tf_kw.items() if k in eval_params})
    # the random transforms only crop and resample (never write into the cache): no copy
    train_ds = CacheDataset(
        _files(plan.train_rows) if has_work else [],
        transform=train_tf,
        cache_rate=cfg.cache_rate,
        num_workers=workers,
        progress=plan.show,
        copy_cache=False,
    )
    my_val = _files(plan.val_rows)[ctx.rank :: ctx.world_size] if has_work else []
    val_ds = (
        CacheDataset(
            my_val, transform=val_tf, cache_rate=cfg.cache_rate, num_workers=workers, progress=plan.show
        )
        if my_val
        else None
    )
    loader, sampler = train_loader(
        train_ds,
        cfg.seed,
        cfg.batch_size,
        plan.workers,
        ctx.rank,
        ctx.world_size,
        pin_memory=ctx.device.type == "cuda",
    )
    return loader, sampler, val_ds


def _own_callbacks(plan: _Plan, state: TrainState) -> list[TrainCallback]:
    """pcatools' own callbacks: TensorBoard events and the epoch bar (rank 0, where asked for)."""
    own: list[TrainCallback] = []
    if plan.config.tensorboard and plan.ctx.is_main:
        own.append(TensorBoardLog(plan.run_dir, purge_step=state.start_epoch + 1))
    if plan.show:
        own.append(EpochBar(f"train {plan.config.model}/{plan.config.loss}"))
    return own


def _validation_due(plan: _Plan, epoch: int) -> bool:
    """Validate every ``val_every`` epochs and after the last (all ranks alike), where there are ``val`` rows."""
    return plan.has_val and (epoch % plan.config.val_every == 0 or epoch == plan.config.epochs)


def _keep_best(state: TrainState, validated: bool) -> bool:
    """Whether this epoch's validation is the best so far (and note it): the first validation always
    is, later ones only with a higher DSC (NaN never wins)."""
    value, best = float(state.record["val_dice"]), state.best_metric
    improved = validated and (
        state.best_epoch == 0 or (not math.isnan(value) and (math.isnan(best) or value > best))
    )
    if improved:
        state.best_metric, state.best_epoch = value, state.epoch
    return improved


def _checkpoint(plan: _Plan, state: TrainState, improved: bool) -> None:
    """``best.pt`` on a new best, ``last.pt`` and ``history.csv`` (rank 0)."""
    if plan.ctx.is_main:
        save_run(state, improved)
        write_history(plan.run_dir, state.history)


def _result(plan: _Plan, state: TrainState) -> TrainResult:
    final_epoch = state.history[-1]["epoch"] if state.history else 0
    last = plan.run_dir / "last.pt"
    return TrainResult(
        run_dir=plan.run_dir,
        best_checkpoint=plan.run_dir / "best.pt" if plan.has_val else last,
        last_checkpoint=last,
        history=history_frame(state.history),
        best_metric=state.best_metric,
        best_epoch=state.best_epoch,
        completed=final_epoch >= plan.config.epochs,
        config=state.recorded,
    )
