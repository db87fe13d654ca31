"""Training (paper section 2.5): the settings, the loop, checkpoints with exact resume, and DDP helpers.

- settings: :class:`TrainConfig`, its :class:`SlidingWindow`, :data:`IDENTITY_KEYS`,
  :func:`setting_help` (:mod:`pcatools.training.config`)
- :func:`train` / :class:`TrainResult`, :class:`RunSettingsError` (:mod:`pcatools.training.loop`), in
  phases from :mod:`~pcatools.training.resume`, :mod:`~pcatools.training.schedule` (:func:`lr_factor`),
  :mod:`~pcatools.training.sampling` (:func:`train_loader`) and :mod:`~pcatools.training.epoch`
- callbacks: :class:`TrainCallback`, :class:`TrainState`, :class:`TrainEvent`
  (:mod:`pcatools.training.callbacks`)
- checkpoints: :func:`save_checkpoint`, :func:`load_checkpoint`, :class:`CheckpointError`,
  :class:`CheckpointWriteError` (:mod:`pcatools.training.checkpoint`)
- ``torchrun``: :func:`setup_distributed`, :class:`DistContext`, :func:`all_reduce_sum`
  (:mod:`pcatools.training.distributed`)
- a training batch through a run's network, for the L1 weights: :func:`training_batch`
  (:mod:`pcatools.training.batch`)
- run-folder files: :func:`write_run_files`, :func:`versions`, the folder's lock :func:`run_lock` and
  :class:`RunBusyError` (:mod:`pcatools.training.run_files`)

The errors are exported here so that a caller catches what :func:`train` refuses without knowing
which module raises it.
"""

from typing import TYPE_CHECKING

from pcatools._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - the names, for type checkers; at run time they load on first use
    from pcatools.training.batch import TrainingBatch, training_batch
    from pcatools.training.callbacks import TrainCallback, TrainEvent, TrainState
    from pcatools.training.checkpoint import (
        CHECKPOINT_FORMAT,
        CheckpointError,
        CheckpointWriteError,
        capture_rng_state,
        load_checkpoint,
        previous_path,
        restore_rng_state,
        save_checkpoint,
    )
    from pcatools.training.config import IDENTITY_KEYS, SlidingWindow, TrainConfig, setting_help
    from pcatools.training.distributed import (
        DistContext,
        all_reduce_sum,
        cleanup_distributed,
        dist_env,
        setup_distributed,
    )
    from pcatools.training.loop import RunSettingsError, TrainResult, read_manifest, train
    from pcatools.training.run_files import (
        HISTORY_COLUMNS,
        RunBusyError,
        history_frame,
        read_config,
        run_lock,
        versions,
        write_run_files,
    )
    from pcatools.training.sampling import (
        EpochSampler,
        EpochSeededDataset,
        default_workers,
        sample_seed,
        train_loader,
    )
    from pcatools.training.schedule import lr_factor

#: name -> the module that defines it: ``pcatools.training.config`` (no torch) can be imported
#: without the loop's torch and MONAI (PEP 562)
_LAZY = {
    "TrainingBatch": "pcatools.training.batch",
    "training_batch": "pcatools.training.batch",
    "HISTORY_COLUMNS": "pcatools.training.run_files",
    "RunBusyError": "pcatools.training.run_files",
    "history_frame": "pcatools.training.run_files",
    "read_config": "pcatools.training.run_files",
    "run_lock": "pcatools.training.run_files",
    "versions": "pcatools.training.run_files",
    "write_run_files": "pcatools.training.run_files",
    "CHECKPOINT_FORMAT": "pcatools.training.checkpoint",
    "CheckpointError": "pcatools.training.checkpoint",
    "CheckpointWriteError": "pcatools.training.checkpoint",
    "capture_rng_state": "pcatools.training.checkpoint",
    "load_checkpoint": "pcatools.training.checkpoint",
    "previous_path": "pcatools.training.checkpoint",
    "restore_rng_state": "pcatools.training.checkpoint",
    "save_checkpoint": "pcatools.training.checkpoint",
    "IDENTITY_KEYS": "pcatools.training.config",
    "SlidingWindow": "pcatools.training.config",
    "TrainConfig": "pcatools.training.config",
    "setting_help": "pcatools.training.config",
    "DistContext": "pcatools.training.distributed",
    "all_reduce_sum": "pcatools.training.distributed",
    "cleanup_distributed": "pcatools.training.distributed",
    "dist_env": "pcatools.training.distributed",
    "setup_distributed": "pcatools.training.distributed",
    "TrainCallback": "pcatools.training.callbacks",
    "TrainEvent": "pcatools.training.callbacks",
    "TrainState": "pcatools.training.callbacks",
    "EpochSampler": "pcatools.training.sampling",
    "EpochSeededDataset": "pcatools.training.sampling",
    "default_workers": "pcatools.training.sampling",
    "sample_seed": "pcatools.training.sampling",
    "train_loader": "pcatools.training.sampling",
    "lr_factor": "pcatools.training.schedule",
    "RunSettingsError": "pcatools.training.loop",
    "TrainResult": "pcatools.training.loop",
    "read_manifest": "pcatools.training.loop",
    "train": "pcatools.training.loop",
}

__all__ = [
    "TrainingBatch",
    "training_batch",
    "CHECKPOINT_FORMAT",
    "HISTORY_COLUMNS",
    "IDENTITY_KEYS",
    "CheckpointError",
    "CheckpointWriteError",
    "DistContext",
    "RunBusyError",
    "RunSettingsError",
    "SlidingWindow",
    "TrainCallback",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "TrainState",
    "all_reduce_sum",
    "capture_rng_state",
    "cleanup_distributed",
    "default_workers",
    "dist_env",
    "history_frame",
    "load_checkpoint",
    "lr_factor",
    "previous_path",
    "read_config",
    "sample_seed",
    "train_loader",
    "EpochSampler",
    "EpochSeededDataset",
    "read_manifest",
    "restore_rng_state",
    "run_lock",
    "save_checkpoint",
    "setting_help",
    "setup_distributed",
    "train",
    "versions",
    "write_run_files",
]


# the names of _LAZY imported on first use (PEP 562)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
