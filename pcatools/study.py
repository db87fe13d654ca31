"""The paper's experiment grid end to end (sections 2.5-3).

``run_study`` takes a dataset (or makes the built-in synthetic cohort), splits it by patient,
trains every cell of the grid (network x loss x training seed, :mod:`pcatools.cells`), predicts
the test set with each best-DSC checkpoint, evaluates every prediction, and hands the tables to
:mod:`pcatools.analysis` for the statistics and the figures. Everything lands in one run folder::

    runs/<name>/
        config.yaml, versions.json      the study's settings (with its own networks' and losses'
                                        code: user_code) and package versions
        data/                           the synthetic cohort (when no data directory is given)
        manifest.csv, split.csv         cases and the patient-level split
        models/<network>__<loss>/       each training run (checkpoints, history, TensorBoard);
                                        <network>__<loss>__seed<N>/ for a training seed other than --seed
        predictions/<network>__<loss>/  test-set masks on the original grid (NIfTI), named as models/
        results/                        cases.csv, lesions.csv, table1.{csv,md,tex}, wilcoxon.csv,
                                        thresholds_{patient,lesion}.csv, dmax_groups.csv, mixed_model.csv;
                                        with several seeds also table1_by_seed.csv and seed_means.csv
        figures/                        figure1..figure7 (and seeds, with several seeds) as PNG and HTML

Each stage skips work whose outputs are complete, and training resumes from its last
checkpoint, so interrupting and re-running continues where it stopped.

Profiles
--------
``paper``
    The paper's settings: 2 mm, 128^3 patches, 1000 epochs, validation every 10 epochs,
    258/65/57 split proportions. Needs GPUs (hours per model). Each loss as the public code
    trained it, which produced the paper's numbers: DFL is MONAI's ``DiceFocalLoss(softmax=True)``,
    whose focal term applies a sigmoid to each logit (``focal="sigmoid"``, ``loss_train``).
``paper-text``
    The same with eq. 2 as the text reads it: a softmax focal term in DFL (as in L1DFL).
``demo``
    A 2-core CPU laptop setting that finishes the whole grid in minutes on a synthetic cohort at
    4 mm with small patches, narrower networks and few steps (SegResNet 300 steps of 2 x 2 crops,
    Attention U-Net 600 steps of one crop per case); it shows the pipeline and is not a
    reproduction of the paper's values. The Dice term is summed over the batch
    (``loss_overrides={"batch": True}``) so that so few steps learn to leave normal uptake alone;
    80 % of the patches are centred on a lesion, as in the paper; SegResNet starts from a lesion
    probability of 0.01 everywhere (``output_prior``: from MONAI's p = 0.5 its L1DFL models stayed
    there), Attention U-Net trains at lr 5e-3 (``network_train``). Each cell trains at one thread,
    as many cells at once as there are cores (``cpu_parallel``).
    docs/decisions.md (2026-11-27 and 2026-12-06) has the measurements.
``ci``
    The smallest setting that still runs every stage (tests and notebooks).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pcatools._atomic import write_text_atomic
from pcatools.analysis import StudyResult, analyse, draw_figures, load_study
from pcatools.cell_status import MissingCellsError, study_status
from pcatools.cells import Cell, check_seeds, study_cells
from pcatools.data.manifest import read_manifest, write_manifest
from pcatools.data.splits import make_splits
from pcatools.launcher import launch_cells, parse_launcher_options, visible_gpus
from pcatools.loss_registry import (
    BUILTIN,
    fitting_options,
    loss_names,
    loss_source,
    loss_source_change,
    register_loss,
    resolve_loss,
)
from pcatools.network_registry import (
    network_names,
    network_source,
    network_source_change,
    register_network,
    resolve_network,
)
from pcatools.training.config import TrainConfig
from pcatools.training.run_files import (
    REPLACED_DIR,
    describe_differences,
    set_aside,
    setting_differences,
    versions,
)
from pcatools.vocabulary import LOSSES, NETWORKS

TRAIN_SETTINGS = tuple(f.name for f in dataclasses.fields(TrainConfig))
"""The training settings a profile holds (:class:`~pcatools.training.config.TrainConfig` fields)."""


STUDY_SETTINGS = (
    "name",
    "n_cases",
    "networks",
    "losses",
    "fractions",
    "phantom_fwhm_mm",
    "network_train",
    "loss_train",
    "cpu_parallel",
)
"""StudyProfile fields that are the study's own (the cohort, the grid, the split); every other
setting of a profile is a :class:`~pcatools.training.config.TrainConfig` setting."""


@dataclass(frozen=True)
class StudyProfile:
    """Settings of one study run: the cohort and grid, one training configuration for every grid
    cell, and per-network changes to it. Every setting can be overridden in :func:`run_study`.

    A profile reads its training settings as its own attributes (``profile.lr`` is
    ``profile.train.lr``), and the sliding window of validation (``train.sliding_window``) is also
    the one the study predicts the test set with.
    """

    name: str
    train: TrainConfig = field(default_factory=TrainConfig)
    n_cases: int = 380
    networks: tuple[str, ...] = NETWORKS
    losses: tuple[str, ...] = LOSSES
    fractions: tuple[float, float, float] = (258 / 380, 65 / 380, 57 / 380)
    phantom_fwhm_mm: float = 6.0
    #: per network, TrainConfig settings that replace the profile's (e.g. ``{"attention_unet":
    #: {"lr": 5e-3}}``); a mapping value (``model_overrides``) replaces the whole mapping
    network_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per loss, TrainConfig settings that replace the profile's (after ``network_train``), e.g. the
    #: ``paper`` profile's ``{"dice_focal": {"loss_overrides": {"focal": "sigmoid"}}}``
    loss_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: without a launcher and without a GPU, train (and predict) the cells as local jobs, as many at
    #: a time as the cores allow at ``threads`` each (:func:`cpu_parallel_jobs`): two 1-thread
    #: processes train 1.2-1.6x faster than one 2-thread process (docs/decisions.md, 2026-12-06)
    cpu_parallel: bool = False

    def __getattr__(self, name: str) -> Any:
        """The training settings read as the profile's own (``profile.patch_size``)."""
        if name != "train" and name in TRAIN_SETTINGS:
            return getattr(self.train, name)
        raise AttributeError(f"StudyProfile has no setting {name!r}")

    def train_config(self, network: str, loss: str, seed: int | None = None) -> TrainConfig:
        """The :class:`~pcatools.training.config.TrainConfig` of one grid cell: the profile's
        settings, then ``network_train[network]``, then ``loss_train[loss]`` (and ``seed`` when given).

        Examples
        --------
        >>> p = StudyProfile(name="x", train=TrainConfig(lr=3e-3), network_train={"attention_unet": {"lr": 1e-2}})
        >>> p.train_config("attention_unet", "dice").lr, p.train_config("segresnet", "dice").lr
        (0.01, 0.003)
        """
        extra: dict[str, Any] = {}
        for where, key, table in (
            ("network_train", network, self.network_train),
            ("loss_train", loss, self.loss_train),
        ):
            cell = dict(table.get(key, {}))
            unknown = sorted(set(cell) - set(TRAIN_SETTINGS) | set(cell) & {"model", "loss"})
            if unknown:
                allowed = sorted(set(TRAIN_SETTINGS) - {"model", "loss"})
                raise ValueError(
                    f"StudyProfile {self.name!r}: {where}[{key!r}] has keys {unknown} that are "
                    f"not grid settings; allowed: {allowed}"
                )
            extra.update(cell)
        changes = {"model": network, "loss": loss, **extra}
        if "loss_overrides" not in extra:  # the profile's (batch=True) go to the losses that take them
            changes["loss_overrides"] = fitting_options(loss, self.train.loss_overrides)
        if seed is not None:
            changes["seed"] = seed
        return self.train.replace(**changes)

    def train_kwargs(self, network: str, loss: str) -> dict[str, Any]:
        """:meth:`train_config` as a mapping of settings."""
        return self.train_config(network, loss).to_dict()

    def settings(self) -> dict[str, Any]:
        """The profile as one flat mapping (the study's ``config.yaml``): its own settings, then the
        training settings."""
        own = {name: getattr(self, name) for name in STUDY_SETTINGS}
        return {**own, **self.train.to_dict()}


PROFILES: dict[str, StudyProfile] = {
    # the public code's DFL: MONAI DiceFocalLoss(softmax=True), sigmoid focal term (docs/losses.md)
    "paper": StudyProfile(
        name="paper",
        train=TrainConfig(workers=4),
        loss_train={"dice_focal": {"loss_overrides": {"focal": "sigmoid"}}},
    ),
    "paper-text": StudyProfile(name="paper-text", train=TrainConfig(workers=4)),
    "demo": StudyProfile(
        name="demo",
        n_cases=40,
        train=TrainConfig(
            spacing=(4.0, 4.0, 4.0),
            patch_size=(32, 32, 32),
            # the window is the training patch, as in the paper (docs/decisions.md)
            roi_size=(32, 32, 32),
            # 300 steps of 2 x 2 crops instead of ~130,000 (module docstring)
            epochs=30,
            batch_size=2,
            num_samples=2,
            val_every=60,  # once, at the end (each validation of 4 cases costs seconds a model)
            max_steps_per_epoch=10,
            sw_batch_size=8,
            workers=0,
            # a CPU run's numbers hold for one thread count (pcatools.reproducibility); one thread
            # per cell, with cpu_parallel below, so the numbers do not depend on the cores
            threads=1,
            lr=3e-3,
            # batch Dice, and the paper's 80 % lesion patches (module docstring)
            loss_overrides={"batch": True},
            transform_overrides={"pos_fraction": 0.8},
        ),
        # SegResNet starts at p = 0.01 (output_prior), Attention U-Net trains 600 steps of one crop
        # per case at lr 5e-3 (docs/decisions.md, 2026-12-06)
        network_train={
            "segresnet": {"model_overrides": {"init_filters": 8}, "output_prior": 0.01},
            "attention_unet": {
                "model_overrides": {"channels": (8, 16, 32, 64, 128)},
                "lr": 5e-3,
                "epochs": 60,
                "num_samples": 1,
            },
        },
        fractions=(0.65, 0.1, 0.25),
        cpu_parallel=True,
    ),
    "ci": StudyProfile(
        name="ci",
        n_cases=12,
        train=TrainConfig(
            spacing=(6.0, 6.0, 6.0),
            patch_size=(32, 32, 32),
            roi_size=(32, 32, 32),
            epochs=2,
            batch_size=2,
            num_samples=1,
            val_every=1,
            max_steps_per_epoch=2,
            sw_batch_size=2,
            workers=0,
            lr=1e-3,
            loss_overrides={"batch": True},
            transform_overrides={"pos_fraction": 0.5},
        ),
        network_train={
            "segresnet": {"model_overrides": {"init_filters": 4}},
            "attention_unet": {"model_overrides": {"channels": (4, 8, 16, 32, 64)}},
        },
        fractions=(0.5, 0.17, 0.33),
    ),
}
"""The study profiles by name: ``paper``, ``paper-text``, ``demo`` and ``ci`` (module docstring)."""


def get_profile(profile: str | StudyProfile, **overrides: Any) -> StudyProfile:
    """Return a profile by name (``paper``, ``demo``, ``ci``) with ``overrides`` applied.

    An override is a study setting (:data:`STUDY_SETTINGS`) or a training setting
    (:class:`~pcatools.training.config.TrainConfig`); ``network_train`` entries update the
    profile's per network. ``None`` values are ignored.

    Examples
    --------
    >>> get_profile("demo", epochs=3).epochs
    3
    >>> get_profile("demo", network_train={"attention_unet": {"lr": 1e-2}}).train_config("attention_unet", "dice").epochs
    60
    """
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f"Unknown study profile {profile!r}; expected one of {sorted(PROFILES)}")
        profile = PROFILES[profile]
    values: dict[str, Any] = {
        k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None
    }
    unknown = set(values) - set(STUDY_SETTINGS) - set(TRAIN_SETTINGS)
    if unknown:
        known = sorted({*STUDY_SETTINGS, *TRAIN_SETTINGS} - {"model", "loss"})
        raise ValueError(f"Unknown study settings {sorted(unknown)}; expected some of {known}")
    own: dict[str, Any] = {k: v for k, v in values.items() if k in STUDY_SETTINGS}
    if "network_train" in own:
        own["network_train"] = {
            net: {**profile.network_train.get(net, {}), **dict(change)}
            for net, change in {**profile.network_train, **own["network_train"]}.items()
        }
    train = {k: v for k, v in values.items() if k not in STUDY_SETTINGS}
    return dataclasses.replace(profile, train=profile.train.replace(**train), **own)


def _yaml_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _yaml_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_yaml_ready(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _profile_then_and_now(before: dict[str, Any]) -> dict[str, Any]:
    """A study ``config.yaml`` profile written before 2026-11-29 in today's terms: per-network
    ``model_overrides`` became ``network_train[network]["model_overrides"]``, so that an older
    study folder compares equal to the same profile today."""
    overrides = before.get("model_overrides")
    if not isinstance(overrides, dict) or not set(overrides) <= set(NETWORKS) or "train" in before:
        return before
    network_train = {k: dict(v) for k, v in (before.get("network_train") or {}).items()}
    for net, kw in overrides.items():
        if kw:
            network_train[net] = {"model_overrides": kw, **network_train.get(net, {})}
    return {**before, "model_overrides": {}, "network_train": network_train}


def prepare_data(
    run_dir: Path, profile: StudyProfile, data_dir: str | os.PathLike[str] | None, seed: int, progress: bool
) -> pd.DataFrame:
    """The study's manifest: discovered from ``data_dir`` or a synthetic cohort made in ``run_dir/data``."""
    manifest_csv = run_dir / "manifest.csv"
    if data_dir is None:
        from pcatools.data.phantom import make_cohort  # deferred: start-up (see tests/test_imports.py)

        manifest = make_cohort(
            profile.n_cases,
            run_dir / "data",
            seed=seed,
            spacing=profile.spacing,
            progress=progress,
            fwhm_mm=profile.phantom_fwhm_mm,
        )
    else:
        from pcatools.data.discovery import discover_cases  # deferred: start-up (see tests/test_imports.py)

        manifest = discover_cases(data_dir, progress=progress)
    write_manifest(manifest, manifest_csv, root=run_dir)
    return manifest


def split_manifest(run_dir: Path, manifest: pd.DataFrame, profile: StudyProfile, seed: int) -> pd.DataFrame:
    """Patient-level split saved as ``split.csv``; an existing split is reused so re-runs agree."""
    split_csv = run_dir / "split.csv"
    if split_csv.exists():
        split = read_manifest(split_csv)
        if set(split["case_id"]) == set(manifest["case_id"].astype(str)):
            return split
    split = make_splits(manifest, fractions=profile.fractions, seed=seed)
    write_manifest(split, split_csv, root=run_dir)
    return split


def profile_from_settings(settings: dict[str, Any]) -> StudyProfile:
    """The profile a study's ``config.yaml`` records (:meth:`StudyProfile.settings`), read back."""
    own = {k: settings[k] for k in STUDY_SETTINGS if k in settings}
    train = TrainConfig.from_dict({k: v for k, v in settings.items() if k not in STUDY_SETTINGS})
    for name in ("networks", "losses", "fractions"):
        if name in own:
            own[name] = tuple(own[name])
    return StudyProfile(train=train, **own)


def user_code(profile: StudyProfile) -> dict[str, dict[str, dict[str, Any]]]:
    """The study's record of its networks and losses that are not pcatools' own (``config.yaml``'s
    ``user_code``): per name the code to import (``target``), its keyword arguments (``options``),
    label, colour and where the code came from (``source``, :func:`pcatools.specs.spec_source`).

    A process that did not parse the study's command line (a cluster job running :func:`train_cell`)
    registers them again from this record. A loss or network registered in Python from an object
    that cannot be imported by name (defined in a notebook) has ``target: null``.
    """
    own_losses = {e.name for e in BUILTIN}
    out: dict[str, dict[str, dict[str, Any]]] = {"losses": {}, "networks": {}}
    for kind, names, resolve, source in (
        ("losses", profile.losses, resolve_loss, loss_source),
        ("networks", profile.networks, resolve_network, network_source),
    ):
        for name in names:
            entry = resolve(name)
            if getattr(entry, "builtin", False) or entry.name in (own_losses if kind == "losses" else ()):
                continue
            out[kind][entry.name] = {
                "target": _target(entry),
                "options": _yaml_ready(dict(entry.options)),
                "label": entry.label,
                "colour": entry.colour,
                "source": source(entry.name),
            }
    return out


def _target(entry: Any) -> str | None:
    """What to import a registered loss or network by: its spec, else its factory's module and name."""
    if entry.spec is not None:
        return str(entry.spec.target)
    if isinstance(entry.factory, str):
        return entry.factory
    module, name = getattr(entry.factory, "__module__", ""), getattr(entry.factory, "__qualname__", "")
    if not module or module == "__main__" or "<" in name or module.startswith("pcatools_user_"):
        return None
    return f"{module}:{name}"


def register_user_code(run_dir: Path, record: dict[str, Any]) -> None:
    """Register the study's own networks and losses (:func:`user_code`) in this process, checking
    that their code is still the one recorded; a name already registered here is left as it is.

    Raises
    ------
    ValueError
        A loss or network that was registered from an object without an importable name, or whose
        code changed since the study recorded it (one line naming it and the file).
    """
    for kind, known, register, source, change in (
        ("losses", loss_names, register_loss, loss_source, loss_source_change),
        ("networks", network_names, register_network, network_source, network_source_change),
    ):
        what = kind[:-2] if kind == "losses" else kind[:-1]
        for name, rec in (record.get(kind) or {}).items():
            if name not in known():
                if not rec.get("target"):
                    raise ValueError(
                        f"study {run_dir}: {what} {name} was registered in Python from an object without an "
                        f"importable name; register it in this process first, or give it as NAME=SPEC"
                    )
                # the source's repr keeps tuples tuples, so the model folders' records compare equal
                recorded = (rec.get("source") or {}).get("options")
                options = ast.literal_eval(recorded) if recorded else rec.get("options")
                register(
                    name, rec["target"], label=rec.get("label"), colour=rec.get("colour"), options=options
                )
            changed = change(rec.get("source"), source(name))
            if changed:
                raise ValueError(f"study {run_dir}: {changed}; re-run the study with --restart")


def train_cell(run_dir: Path, cell: Cell, progress: bool = False, predict: bool = True) -> Path:
    """Train one cell of a study from its recorded settings (``config.yaml``) and predict its test
    set (:func:`predict_cell`; not with ``predict=False``); its best checkpoint.

    Continues the cell's model where it stopped (``resume=True``) and returns at once when it is
    finished (its masks are then checked and reused). Prediction belongs to the cell so that a job
    predicts where it trained (a GPU node), in parallel with the other jobs. The study's own
    networks and losses are registered from the record first (:func:`register_user_code`), in the
    working directory the study ran from, so that a fresh process (a cluster job; the function
    pickles by name) trains what the study would have.
    """
    from pcatools.training import train  # deferred: start-up (see tests/test_imports.py)

    run = Path(run_dir).resolve()
    config = yaml.safe_load((run / "config.yaml").read_text())
    profile = profile_from_settings(_profile_then_and_now(config["profile"]))
    study_seed = int(config["seed"])
    cwd = config.get("cwd")
    # relative spec files resolve from the study's working directory, and the records compare equal
    with contextlib.chdir(cwd) if cwd and Path(cwd).is_dir() else contextlib.nullcontext():
        register_user_code(run, config.get("user_code") or {})
        result = train(
            run / "split.csv",
            run / "models" / cell.key(study_seed),
            profile.train_config(cell.network, cell.loss, seed=cell.seed),
            progress=progress,
            resume=True,
        )
        best = Path(result.best_checkpoint)
        if predict:
            predict_cell(run, cell, best, read_manifest(run / "split.csv"), profile, progress, study_seed)
    return best


def train_grid(
    run_dir: Path,
    profile: StudyProfile,
    seed: int,
    progress: bool,
    seeds: Sequence[int] | None = None,
    cells: Sequence[Cell] | None = None,
    launcher: str | None = None,
    launcher_options: Mapping[str, Any] | None = None,
    allow_missing: bool = False,
) -> dict[str, Path]:
    """Train the cells of the grid (:func:`pcatools.cells.study_cells` of the profile's networks and
    losses and ``seeds``, default ``(seed,)``) with :func:`train_cell`, in this process or as jobs of
    ``launcher`` (:mod:`pcatools.launcher`); the best checkpoint of each cell that is done, keyed by
    :meth:`pcatools.cells.Cell.key` (each model's ``config.yaml`` names the split by its file).

    ``cells`` trains only those cells. Where cells of the grid are then not done (a failed job,
    cells left to other jobs) :class:`~pcatools.cell_status.MissingCellsError` lists them: after
    ``cells`` always, so that the grid's results wait for all of them, and otherwise unless
    ``allow_missing`` (the analysis then takes what is done).
    """
    grid = study_cells(profile.networks, profile.losses, (seed,) if seeds is None else seeds)
    todo = grid if cells is None else list(cells)
    best: dict[str, Path] = {}
    if launcher is None:
        best = {cell.key(seed): train_cell(run_dir, cell, progress) for cell in todo}
    else:
        launch_cells(run_dir, todo, launcher, launcher_options, train=train_cell)
    states = study_status(run_dir, grid)
    missing = [s for s in states if s.state != "done"]
    if missing and (cells is not None or not allow_missing):
        raise MissingCellsError(run_dir, missing, len(grid), trained=None if cells is None else todo)
    for state in states:  # a finished cell's train_cell returns its checkpoint at once
        if state.state == "done" and state.cell.key(seed) not in best:
            # its masks are checked once, by predict_grid
            best[state.cell.key(seed)] = train_cell(run_dir, state.cell, progress, predict=False)
    return best


def predict_cell(
    run_dir: Path,
    cell: Cell,
    checkpoint: Path,
    split: pd.DataFrame,
    profile: StudyProfile,
    progress: bool,
    seed: int = 0,
) -> pd.DataFrame:
    """Predict the test cases of ``split`` with one cell's ``checkpoint`` into
    ``predictions/<cell key>/`` (with the profile's sliding window); one row per case with
    columns ``pred``, ``network`` and ``loss``. Masks made with other settings are remade, with a
    warning (the study owns its predictions folder)."""
    from pcatools.inference import (  # deferred: start-up (see tests/test_imports.py)
        PredictionMismatchError,
        predict_manifest,
    )

    key = cell.key(seed)
    test = split[split["split"] == "test"].reset_index(drop=True)
    kwargs: dict[str, Any] = dict(window=profile.train.sliding_window, progress=progress)
    out = run_dir / "predictions" / key
    try:
        preds = predict_manifest(checkpoint, test, out, **kwargs)
    except PredictionMismatchError as err:
        # masks its own models made with other settings (or before pcatools recorded provenance)
        warnings.warn(
            f"study {run_dir}: re-predicting {len(err.differences)} test masks of {key} "
            f"({next(iter(err.differences.values()), 'no record')})",
            UserWarning,
            stacklevel=2,
        )
        preds = predict_manifest(checkpoint, test, out, overwrite=True, **kwargs)
    return preds.assign(network=cell.network, loss=cell.loss)


def predict_grid(
    run_dir: Path,
    split: pd.DataFrame,
    checkpoints: dict[str, Path],
    profile: StudyProfile,
    progress: bool,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Predict the test set with every checkpoint (keyed by :meth:`pcatools.cells.Cell.key`, in the
    order of :func:`pcatools.cells.study_cells`) with :func:`predict_cell`, which reuses the masks
    each cell's training made; one row per (case, network, loss) with column ``pred``, and
    ``seed`` when the study has more than one seed."""
    seeds = (seed,) if seeds is None else tuple(seeds)
    frames = []
    for cell in study_cells(profile.networks, profile.losses, seeds):
        if (checkpoint := checkpoints.get(cell.key(seed))) is None:
            continue
        preds = predict_cell(run_dir, cell, checkpoint, split, profile, progress, seed)
        frames.append(preds.assign(seed=cell.seed) if len(seeds) > 1 else preds)
    return pd.concat(frames, ignore_index=True)


def cpu_parallel_jobs(profile: StudyProfile, n_cells: int) -> int:
    """How many of ``n_cells`` cells a ``cpu_parallel`` profile trains at once on this machine:
    the cores this process may use over each cell's ``threads`` (at least 1, at most ``n_cells``),
    or 0 where the profile does not ask for it or torch sees a GPU (cells then train in this
    process). Each cell's numbers hold for its thread count, so they do not depend on this one."""
    if not profile.cpu_parallel or visible_gpus():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(n_cells, cores // (profile.train.threads or cores)))


def launcher_block(
    config_yaml: Path | None, launcher: str | None, options: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The ``launcher:`` block of a study's ``config.yaml`` for this run: ``{"name", "options"}``.

    The options given now win; without any, a relaunch with the launcher the block names takes
    the block's options (edit them there), so that continuing a grid after a failed job needs no
    retyping and the run folder records how its jobs were launched. Without a launcher the block
    recorded before is kept; ``config_yaml=None`` (a restart) forgets it.

    Raises
    ------
    ValueError
        The block holds an unknown option or a value of the wrong type (one line naming the file).

    Examples
    --------
    >>> launcher_block(None, "slurm", {"partition": "gpu"})
    {'name': 'slurm', 'options': {'partition': 'gpu'}}
    >>> launcher_block(None, None, None) is None
    True
    """
    recorded = None
    if config_yaml is not None and config_yaml.is_file():
        try:
            recorded = (yaml.safe_load(config_yaml.read_text()) or {}).get("launcher")
        except (yaml.YAMLError, AttributeError):
            recorded = None  # run_study's settings check names an unreadable config.yaml
    if launcher is None:
        return recorded if isinstance(recorded, dict) else None
    if not options and isinstance(recorded, dict) and recorded.get("name") == launcher:
        options = parse_launcher_options(
            recorded.get("options") or {}, where=f"{config_yaml}: launcher.options"
        )
    return {"name": launcher, "options": dict(options or {})}


def run_study(
    run_dir: str | os.PathLike[str],
    profile: str | StudyProfile = "demo",
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    restart: bool = False,
    seeds: Sequence[int] | None = None,
    cells: Sequence[Cell] | None = None,
    launcher: str | None = None,
    launcher_options: Mapping[str, Any] | None = None,
    allow_missing: bool = False,
    **overrides: Any,
) -> StudyResult:
    """Run the paper's grid (networks x losses) end to end into ``run_dir``.

    Parameters
    ----------
    run_dir
        The run folder (created; re-running continues where a previous run stopped).
    profile
        ``"demo"`` (CPU, minutes), ``"paper"`` (the paper's settings, GPUs) or ``"ci"``, or a
        :class:`StudyProfile`.
    data_dir
        A dataset in the autoPET, nnU-Net or flat layout; ``None`` makes the synthetic cohort.
    seed
        Seed of the cohort and the split, and of training when ``seeds`` is not given.
    seeds
        Training seeds (``pcatools study --seeds 0,1,2``): every (network, loss) pair is trained
        once per seed on the same split (:mod:`pcatools.cells`), and Table 1 averages each model's
        per-case values over them (:func:`pcatools.seed_stats.table1_over_seeds`). ``None``: ``(seed,)``;
        with one seed the outputs have no ``seed`` column.
    cells
        Train only these cells of the grid (``pcatools study --cells``, e.g. one cell per task of
        another scheduler's job array); the results are made only once every cell of the grid is
        done, otherwise :class:`~pcatools.cell_status.MissingCellsError` says which are not.
    launcher
        ``"local"`` or ``"slurm"``: train the cells as submitit jobs (:mod:`pcatools.launcher`,
        docs/cluster.md) with ``launcher_options`` (:data:`pcatools.launcher.LAUNCHER_OPTIONS`;
        without them, those of ``config.yaml``'s ``launcher:`` block, :func:`launcher_block`)
        and wait for them; ``None`` trains them one after another in this process (or as local
        jobs side by side, for a ``cpu_parallel`` profile on a CPU machine: :func:`cpu_parallel_jobs`).
        Each cell's job also predicts its test set; evaluation and the analysis run in this process.
    allow_missing
        Where cells are not done after training (a failed job), analyse the models that are and
        say so in ``table1.md``'s notes, instead of raising
        :class:`~pcatools.cell_status.MissingCellsError`.
    restart
        Start over: move everything the run folder holds (but the synthetic cohort in ``data/``,
        which is remade only where its settings changed) to ``run_dir/replaced/<time>/`` first.
        Without it, a run folder whose ``config.yaml`` has other settings is refused, listing
        them; continuing would mix models trained one way with results computed another.
        ``workers``, ``networks``, ``losses`` and ``seeds`` may change (a grid can grow), the rest
        may not.
    **overrides
        Any study or training setting (:func:`get_profile`), e.g. ``epochs=5`` or
        ``networks=("segresnet",)``.

    Returns
    -------
    StudyResult

    Raises
    ------
    RunSettingsError
        The run folder holds a study (or a model) with other settings; the message lists them.
    MissingCellsError
        Cells of the grid are not done after training (``cells``; or a failed job without
        ``allow_missing``); the message lists each with its state.
    """
    from pcatools.training.loop import RunSettingsError  # deferred: start-up (see tests/test_imports.py)

    prof = get_profile(profile, **overrides)
    run = Path(run_dir).resolve()
    data = str(Path(data_dir).resolve()) if data_dir is not None else None
    seeds = (seed,) if seeds is None else check_seeds(seeds)
    n_cells = len(cells) if cells is not None else len(study_cells(prof.networks, prof.losses, seeds))
    if launcher is None and (at_once := cpu_parallel_jobs(prof, n_cells)) > 1:
        launcher, launcher_options = "local", {"gpus_per_job": 0, "max_parallel": at_once}
    config = {
        "profile": prof.settings(),
        "data_dir": data,
        "seed": seed,
        "seeds": list(seeds),
        "user_code": user_code(prof),
        "cwd": str(Path.cwd()),  # where relative spec files of user_code resolve from (train_cell)
    }
    block = launcher_block(None if restart else run / "config.yaml", launcher, launcher_options)
    if block is not None:
        config["launcher"] = block
        if launcher is not None:
            launcher_options = block["options"]
    start_over = (
        f"pass restart=True (pcatools study --restart) to move its files to {run / REPLACED_DIR}/ and start "
        "over, or use another run folder"
    )
    old_config = run / "config.yaml"
    if restart and run.is_dir():
        moved = set_aside(run, sorted(p.name for p in run.iterdir() if p.name not in ("data", REPLACED_DIR)))
        if moved is not None:
            logging.getLogger("pcatools.study").warning(
                "study %s: the earlier files were moved to %s", run, moved
            )
    elif old_config.is_file():
        try:
            old = yaml.safe_load(old_config.read_text())
            before = {**old["profile"], "data_dir": old["data_dir"], "seed": old["seed"]}
        except (yaml.YAMLError, TypeError, KeyError) as err:
            raise RunSettingsError(
                f"study {run}: {old_config} cannot be read ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); {start_over}",
                run,
                {},
            ) from None
        before = _profile_then_and_now(before)
        if before["data_dir"] is not None:
            before["data_dir"] = str(Path(before["data_dir"]).resolve())
        now = {**_yaml_ready(config["profile"]), "data_dir": data, "seed": seed}
        free = (
            "name",
            "workers",
            "networks",
            "losses",
            "cpu_parallel",
        )  # change nothing a model or result holds
        diffs = setting_differences(before, now, [k for k in now if k in before and k not in free])
        if diffs:
            listing = describe_differences(diffs)
            raise RunSettingsError(
                f"study {run} was run with other settings ({listing}); {start_over}", run, diffs
            )
    run.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run / "config.yaml", yaml.safe_dump(_yaml_ready(config), sort_keys=False))
    write_text_atomic(run / "versions.json", json.dumps(versions(), indent=2))

    manifest = prepare_data(run, prof, data_dir, seed, progress)
    split = split_manifest(run, manifest, prof, seed)
    try:
        checkpoints = train_grid(
            run, prof, seed, progress, seeds, cells, launcher, launcher_options, allow_missing
        )
    except RunSettingsError as err:  # a model folder trained with other settings than the study's
        listing = describe_differences(err.differences)
        raise RunSettingsError(
            f"study {run}: model {err.run_dir.name} was trained with other settings ({listing}); {start_over}",
            err.run_dir,
            err.differences,
        ) from None
    preds = predict_grid(run, split, checkpoints, prof, progress, seed, seeds)

    from pcatools.metrics import evaluate_cohort  # deferred: start-up (see tests/test_imports.py)

    cases, lesions = evaluate_cohort(preds, pred_col="pred", progress=progress)
    results = run / "results"
    for name, table in (("predictions", preds), ("cases", cases), ("lesions", lesions)):
        write_manifest(table, results / f"{name}.csv", root=run)
    grid = study_cells(prof.networks, prof.losses, seeds)
    left_out = [cell.name for cell in grid if cell.key(seed) not in checkpoints]
    notes = (
        [
            f"Not done and left out (--allow-missing): {', '.join(left_out)}; {len(grid) - len(left_out)} of {len(grid)} models analysed."
        ]
        if left_out
        else []
    )
    tables = analyse(results, cases, lesions, seed=seed, notes=notes)
    study = StudyResult(run, split, preds, cases, lesions, tables["table1"])
    study.figures = draw_figures(run / "figures", study, tables)
    return study


def ensure_study(
    run_dir: str | os.PathLike[str] | None = None, profile: str = "demo", **kwargs: Any
) -> StudyResult:
    """A finished study for the notebooks: read ``run_dir`` if it holds one, else run ``profile`` there.

    ``run_dir=None`` uses ``runs/<profile>``. Extra keyword arguments go to :func:`run_study`.
    """
    run = Path(run_dir) if run_dir is not None else Path("runs") / profile
    try:
        return load_study(run)
    except FileNotFoundError:
        return run_study(run, profile=profile, **kwargs)
