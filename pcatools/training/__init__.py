"""Training (paper section 2.5): the loop, checkpoints with exact resume, and DDP helpers.

- :func:`train` / :class:`TrainResult` / :class:`TrainEvent`, :class:`RunSettingsError`
  (:mod:`pcatools.training.loop`)
- checkpoints: :func:`save_checkpoint`, :func:`load_checkpoint`, :class:`CheckpointError`,
  :class:`CheckpointWriteError` (:mod:`pcatools.training.checkpoint`)
- ``torchrun``: :func:`setup_distributed`, :class:`DistContext`, :func:`all_reduce_sum`
  (:mod:`pcatools.training.distributed`)
- run-folder files: :func:`write_run_files`, :func:`versions`, the folder's lock :func:`run_lock` and
  :class:`RunBusyError` (:mod:`pcatools.training.run_files`)

The errors are exported here so that a caller catches what :func:`train` refuses without knowing
which module raises it.
"""

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
from pcatools.training.distributed import (
    DistContext,
    all_reduce_sum,
    cleanup_distributed,
    dist_env,
    setup_distributed,
)
from pcatools.training.loop import (
    IDENTITY_KEYS,
    EpochSampler,
    EpochSeededDataset,
    RunSettingsError,
    TrainEvent,
    TrainResult,
    default_workers,
    lr_factor,
    read_manifest,
    sample_seed,
    train,
    train_loader,
)
from pcatools.training.run_files import (
    HISTORY_COLUMNS,
    RunBusyError,
    history_frame,
    read_config,
    run_lock,
    versions,
    write_run_files,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "HISTORY_COLUMNS",
    "IDENTITY_KEYS",
    "CheckpointError",
    "CheckpointWriteError",
    "DistContext",
    "RunBusyError",
    "RunSettingsError",
    "TrainEvent",
    "TrainResult",
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
    "setup_distributed",
    "train",
    "versions",
    "write_run_files",
]
