"""nnU-Net's pipeline from Python: plan and preprocess, train with a pcatools loss, predict.

Each function calls nnU-Net's own API (``nnunetv2.experiment_planning.plan_and_preprocess_api``,
the trainer classes, ``nnUNetPredictor``) the way its command-line entry points do, with the
``nnUNet_raw`` / ``nnUNet_preprocessed`` / ``nnUNet_results`` folders given as arguments (or taken
from those environment variables) instead of only from the environment.

:func:`train` instantiates the trainer class directly, as ``nnunetv2.run.run_training`` does after
its lookup by name, so it needs nothing written into nnU-Net's package; :func:`predict` resolves the
pcatools trainer names a checkpoint records the same way (nnU-Net's lookup only falls back to the
classes it finds in its package). Results land where ``nnUNetv2_train`` puts them,
``nnUNet_results/DatasetNNN_Name/<Trainer>__nnUNetPlans__<configuration>/fold_<k>``, so
``nnUNetv2_predict`` and ``nnUNetv2_find_best_configuration`` read them as nnU-Net's own.

nnU-Net prints much (plan dictionaries, per-case lines, "GPU prediction completed" on a CPU): with
``verbose=False`` its output, and that of the workers it starts, goes to :data:`NNUNET_LOG` in the
run folder instead of the terminal, and a progress bar over epochs, validation cases or predicted
cases (counted from the files nnU-Net writes) says how far it is.

nnU-Net starts worker processes with the ``spawn`` method, which re-imports the main module:
call these functions from under ``if __name__ == "__main__":`` in a script (a notebook, pytest
and the ``pcatools`` command are fine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from tqdm.auto import tqdm

from pcatools.loss_registry import LossError
from pcatools.nnunet.names import STOCK, trainer_names
from pcatools.nnunet.paths import nnunet_paths, required_folder

__all__ = ["plan_and_preprocess", "predict", "train", "trainer_class"]

NNUNET_LOG = "nnunet_output.log"
"""Where nnU-Net's own output goes with ``verbose=False``: the preprocessed dataset folder (plan), the
fold folder (train) or the prediction folder (predict); appended to, so a resumed run keeps its past."""


@contextlib.contextmanager
def _output_to(log: Path | None) -> Iterator[TextIO]:
    """Send stdout and stderr, of this process and of the workers it starts, to ``log`` for the duration.

    Both the file descriptors (for spawned workers and C code) and ``sys.stdout``/``sys.stderr``
    (for ``print`` where they are not the descriptors, e.g. under a test runner) are redirected.
    Yields the stream progress bars should use: the terminal's stderr. ``log=None``: nothing changes.
    """
    if log is None:
        yield sys.stderr
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    with open(log, "a", buffering=1) as stream:  # noqa: PTH123 - a text stream for print
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


@contextlib.contextmanager
def _watch(
    desc: str, total: int, done: Callable[[], int], stream: TextIO, enabled: bool = True
) -> Iterator[None]:
    """A tqdm bar on ``stream`` that a thread moves to ``done()`` (counted from the run's files) twice a second.

    nnU-Net's loops have no hook to call back, and their workers write the files: counting what is
    on disk follows them without patching nnU-Net.
    """
    if not enabled or total <= 0:
        yield
        return
    bar = tqdm(total=total, desc=desc, unit="case" if desc != "train" else "epoch", file=stream)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            with contextlib.suppress(Exception):
                bar.update(max(0, min(done(), total) - bar.n))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
        with contextlib.suppress(Exception):
            bar.update(max(0, min(done(), total) - bar.n))
    finally:
        stop.set()
        thread.join()
        bar.close()


def _written_since(folder: Path, ending: str, start: float) -> Callable[[], int]:
    """How many ``*<ending>`` files in ``folder`` were written since ``start`` (a count for :func:`_watch`)."""

    def count() -> int:
        if not folder.is_dir():
            return 0
        return sum(1 for p in folder.iterdir() if p.name.endswith(ending) and p.stat().st_mtime >= start)

    return count


def trainer_class(loss: str) -> type:
    """The nnU-Net trainer class that trains with ``loss``: a registered name, ``NAME=SPEC`` or ``dice_ce``."""
    if loss == STOCK:
        # the nnunet extra (and torch), imported on use: pcatools imports without it
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import (  # deferred: start-up (see tests/test_imports.py)
            nnUNetTrainer,
        )

        return nnUNetTrainer
    from pcatools.nnunet import trainers  # deferred: start-up (see tests/test_imports.py)

    try:
        return trainers.trainer_for(loss)
    except LossError as err:
        raise LossError(f"{err}; or {STOCK} (nnU-Net's own nnUNetTrainer)") from None


def _dataset_name(dataset: int | str) -> str:
    """``DatasetNNN_Name`` of an id or name, nnU-Net's lookup over the three folders (a ``ValueError`` when absent)."""
    # the nnunet extra (and torch), imported on use: pcatools imports without it
    from nnunetv2.utilities.dataset_name_id_conversion import (  # deferred: start-up (see tests/test_imports.py)
        maybe_convert_to_dataset_name,
    )

    try:
        name: str = maybe_convert_to_dataset_name(dataset)
    except RuntimeError as err:
        raise ValueError(str(err).splitlines()[0]) from None
    return name


def _device(device: str | None) -> Any:
    # for start-up time: torch only where a device is chosen
    import torch  # deferred: start-up (see tests/test_imports.py)

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: expected cpu, cuda or mps, found {device!r}")
    return torch.device(device)


def _workers(workers: int | None) -> int:
    return max(1, min(8, os.cpu_count() or 1) if workers is None else int(workers))


def plan_and_preprocess(
    dataset_id: int,
    *,
    raw: str | os.PathLike[str] | None = None,
    preprocessed: str | os.PathLike[str] | None = None,
    configurations: Sequence[str] = ("3d_fullres",),
    workers: int | None = None,
    verify: bool = True,
    verbose: bool = True,
) -> Path:
    """``nnUNetv2_plan_and_preprocess -d ID -c CONFIGS`` through nnU-Net's API; returns the preprocessed dataset folder.

    ``verbose=False``: nnU-Net's output goes to the dataset's :data:`NNUNET_LOG`.

    Fingerprint (with nnU-Net's dataset integrity check when ``verify``), ``ExperimentPlanner``
    plans (``nnUNetPlans``) and preprocessing of ``configurations``. A ``splits_final.json`` in
    the raw dataset (as :func:`pcatools.nnunet.export_dataset` writes) is copied beside the plans,
    so that training uses its patient-level folds instead of nnU-Net's random ones.
    """
    # the nnunet extra (and torch), imported on use: pcatools imports without it
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (  # deferred: start-up (see tests/test_imports.py)
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    n = _workers(workers)
    # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA), which refuses 0 (augmentation in process)
    da = None if os.environ.get("nnUNet_n_proc_DA", "").strip() != "0" else "1"
    with nnunet_paths(raw=raw, preprocessed=preprocessed, nnUNet_n_proc_DA=da):
        raw_root, pre_root = required_folder("nnUNet_raw"), required_folder("nnUNet_preprocessed")
        name = _dataset_name(int(dataset_id))
        with _output_to(None if verbose else pre_root / name / NNUNET_LOG):
            extract_fingerprints(
                [int(dataset_id)], num_processes=n, check_dataset_integrity=verify, verbose=False
            )
            plan_experiments([int(dataset_id)])
            preprocess(
                [int(dataset_id)],
                configurations=tuple(configurations),
                num_processes=[n] * len(configurations),
            )
    splits = raw_root / name / "splits_final.json"
    if splits.is_file():
        shutil.copyfile(splits, pre_root / name / "splits_final.json")
    return pre_root / name


@contextlib.contextmanager
def _data_workers(workers: int | None) -> Iterator[None]:
    """``nnUNet_n_proc_DA`` = ``workers`` for the duration (0: augmentation in the training process)."""
    with nnunet_paths(nnUNet_n_proc_DA=None if workers is None else str(int(workers))):
        yield


def train(
    dataset: int | str,
    configuration: str = "3d_fullres",
    fold: int | str = 0,
    loss: str = "l1dfl",
    *,
    device: str | None = None,
    epochs: int | None = None,
    iterations: int | None = None,
    val_iterations: int | None = None,
    validate: bool = True,
    continue_training: bool = False,
    plans_identifier: str = "nnUNetPlans",
    preprocessed: str | os.PathLike[str] | None = None,
    results: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    verbose: bool = True,
    progress: bool = True,
) -> Path:
    """Train one fold with ``loss`` as ``nnUNetv2_train DATASET CONFIG FOLD -tr <trainer>`` does; returns the model folder.

    Parameters
    ----------
    dataset : int or str
        Dataset id or ``DatasetNNN_Name``.
    configuration, fold
        nnU-Net configuration (``3d_fullres``, ``2d`` ...) and fold (0-4 or ``"all"``).
    loss : str
        A registered loss (:func:`trainer_names`), your own as ``NAME=SPEC``, or ``dice_ce``; checked
        (:func:`pcatools.losses.check_loss`) before anything is written.
    device : {"cpu", "cuda", "mps"}, optional
        Default: cuda when available, else cpu.
    epochs, iterations, val_iterations : int, optional
        The trainer's ``num_epochs``, ``num_iterations_per_epoch``, ``num_val_iterations_per_epoch``
        (nnU-Net: 1000, 250, 50).
    validate : bool
        Run nnU-Net's final validation (sliding-window prediction of the fold's validation cases) as
        ``nnUNetv2_train`` does.
    continue_training : bool
        Resume from the fold's latest checkpoint (``--c``).
    preprocessed, results : path-like, optional
        ``nnUNet_preprocessed`` / ``nnUNet_results`` (default: the environment variables).
    workers : int, optional
        Data-augmentation processes (``nnUNet_n_proc_DA``; 0: in this process).
    verbose : bool
        False: nnU-Net's output goes to ``fold_<k>/``:data:`NNUNET_LOG` (its own
        ``training_log_*.txt`` is written as always).
    progress : bool
        Progress bars over the epochs and the final validation's cases.

    Returns
    -------
    Path
        ``nnUNet_results/DatasetNNN_Name/<Trainer>__<plans>__<configuration>`` (``fold_<k>`` inside).
    """
    # the nnunet extra (and torch), imported on use: pcatools imports without it
    from batchgenerators.utilities.file_and_folder_operations import (  # deferred: start-up (see tests/test_imports.py)
        load_json,
    )
    from nnunetv2.run.run_training import (  # deferred: start-up (see tests/test_imports.py)
        maybe_load_checkpoint,
    )

    cls = trainer_class(loss)
    if loss != STOCK:
        # for start-up time: pcatools.losses imports torch
        from pcatools.losses import check_loss  # deferred: start-up (see tests/test_imports.py)

        check_loss(loss)
    dev = _device(device)
    if fold != "all":
        try:
            fold = int(fold)
        except ValueError:
            raise ValueError(f"fold: expected an integer (0-4) or 'all', found {fold!r}") from None
    for label, value in (("epochs", epochs), ("iterations", iterations), ("val_iterations", val_iterations)):
        if value is not None and (int(value) != value or value < 1):
            raise ValueError(f"{label}: expected a positive integer, found {value!r}")
    with nnunet_paths(preprocessed=preprocessed, results=results), _data_workers(workers):
        pre_root = required_folder("nnUNet_preprocessed")
        required_folder("nnUNet_results")
        name = _dataset_name(dataset)
        plans_file = pre_root / name / f"{plans_identifier}.json"
        if not plans_file.is_file():
            raise FileNotFoundError(f"{plans_file} not found: plan and preprocess dataset {name} first")
        plans = load_json(str(plans_file))
        plans["continue_training"] = continue_training
        dataset_json = load_json(str(pre_root / name / "dataset.json"))
        results_root = required_folder("nnUNet_results")
        fold_dir = (
            results_root / name / f"{cls.__name__}__{plans_identifier}__{configuration}" / f"fold_{fold}"
        )
        with _output_to(None if verbose else fold_dir / NNUNET_LOG) as terminal:
            trainer = cls(
                plans=plans, configuration=configuration, fold=fold, dataset_json=dataset_json, device=dev
            )
            for attr, value in (
                ("num_epochs", epochs),
                ("num_iterations_per_epoch", iterations),
                ("num_val_iterations_per_epoch", val_iterations),
            ):
                if value is not None:
                    setattr(trainer, attr, int(value))
            maybe_load_checkpoint(trainer, continue_training, False)
            start_epoch = trainer.current_epoch
            with _watch(
                "train", trainer.num_epochs - start_epoch, lambda: trainer.current_epoch - start_epoch,
                terminal, progress,
            ):  # fmt: skip
                trainer.run_training()
            if validate:
                n_val = len(trainer.do_split()[1])
                folder = Path(trainer.output_folder) / "validation"
                ending = str(dataset_json["file_ending"])
                with _watch(
                    "validation", n_val, _written_since(folder, ending, time.time()), terminal, progress
                ):
                    trainer.perform_actual_validation(False)
    return Path(trainer.output_folder_base)


@contextlib.contextmanager
def _pcatools_trainers_findable() -> Iterator[None]:
    """Let ``nnUNetPredictor`` resolve the pcatools trainer names a checkpoint records, without the shim installed."""
    # the nnunet extra (and torch), imported on use: pcatools imports without it
    import nnunetv2.inference.predict_from_raw_data as predictor_module  # deferred: start-up (see tests/test_imports.py)

    original = predictor_module.recursive_find_trainer_class_by_name

    def find(name: str) -> Any:
        for loss, cls_name in trainer_names().items():
            if name == cls_name and loss != STOCK:
                return trainer_class(loss)
        if name.startswith("nnUNetTrainer_"):  # a user loss not registered here: prediction needs no loss
            from pcatools.nnunet.trainers import (  # deferred: start-up (see tests/test_imports.py)
                PcatoolsLossTrainer,
            )

            return PcatoolsLossTrainer
        return original(name)

    predictor_module.recursive_find_trainer_class_by_name = find
    try:
        yield
    finally:
        predictor_module.recursive_find_trainer_class_by_name = original


def predict(
    model_dir: str | os.PathLike[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    folds: Sequence[int | str] | None = None,
    checkpoint: str = "checkpoint_final.pth",
    device: str | None = None,
    tta: bool = True,
    step_size: float = 0.5,
    workers: int | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> Path:
    """``nnUNetv2_predict`` with nnU-Net's ``nnUNetPredictor``: ``images`` (``<case>_0000/_0001.nii.gz``) -> ``out/<case>.nii.gz``.

    Parameters
    ----------
    model_dir : path-like
        A trained model folder, ``<Trainer>__<plans>__<configuration>`` (what :func:`train` returns).
    images : path-like
        Folder of nnU-Net image files (e.g. the raw dataset's ``imagesTs``).
    out : path-like
        Prediction folder (created): one label map per case on the image's grid, plus nnU-Net's
        ``dataset.json``, ``plans.json`` and ``predict_from_raw_data_args.json``.
    folds : sequence, optional
        Folds to ensemble (default: every fold with ``checkpoint``).
    checkpoint : str
        ``checkpoint_final.pth`` or ``checkpoint_best.pth``.
    device : {"cpu", "cuda", "mps"}, optional
        Default: cuda when available, else cpu.
    tta : bool
        nnU-Net's mirroring test-time augmentation (``--disable_tta`` turns it off).
    step_size : float
        Sliding-window step as a fraction of the patch (nnU-Net: 0.5).
    workers : int, optional
        Preprocessing and export processes (default: CPUs, at most 8).
    progress : bool
        A progress bar over the cases (with ``verbose``, nnU-Net's own bars over each case's windows).
    verbose : bool
        False: nnU-Net's output goes to ``out/``:data:`NNUNET_LOG`.
    """
    # the nnunet extra (and torch), imported on use: pcatools imports without it
    from nnunetv2.inference.predict_from_raw_data import (  # deferred: start-up (see tests/test_imports.py)
        nnUNetPredictor,
    )

    model = Path(model_dir)
    if not (model / "plans.json").is_file():
        raise FileNotFoundError(f"{model}: not a trained nnU-Net model folder (no plans.json)")
    n = _workers(workers)
    dev = _device(device)
    Path(out).mkdir(parents=True, exist_ok=True)
    ending = str(json.loads((model / "dataset.json").read_text()).get("file_ending", ".nii.gz"))
    n_cases = sum(1 for p in Path(images).iterdir() if p.name.endswith(f"_0000{ending}"))
    with _output_to(None if verbose else Path(out) / NNUNET_LOG) as terminal:
        predictor = nnUNetPredictor(
            tile_step_size=step_size, use_gaussian=True, use_mirroring=tta,
            perform_everything_on_device=dev.type == "cuda", device=dev, verbose=False,
            verbose_preprocessing=False, allow_tqdm=progress and verbose,
        )  # fmt: skip
        use_folds = None if folds is None else tuple(f if f == "all" else int(f) for f in folds)
        with _pcatools_trainers_findable():
            predictor.initialize_from_trained_model_folder(
                str(model), use_folds=use_folds, checkpoint_name=checkpoint
            )
        count = _written_since(Path(out), ending, time.time())
        with _watch("predict", n_cases, count, terminal, progress and not verbose):
            predictor.predict_from_files(
                str(images), str(out), save_probabilities=False, overwrite=True,
                num_processes_preprocessing=n, num_processes_segmentation_export=n,
            )  # fmt: skip
    return Path(out)
