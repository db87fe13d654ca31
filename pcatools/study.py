"""The paper's experiment grid end to end (sections 2.5-3).

``run_study`` takes a dataset (or makes the built-in synthetic cohort), splits it by patient,
trains every (network, loss) pair of the grid, predicts the test set with each best-DSC
checkpoint, evaluates every prediction, runs the statistics and draws the figures. Everything
lands in one run folder::

    runs/<name>/
        config.yaml, versions.json      the study's settings and package versions
        data/                           the synthetic cohort (when no data directory is given)
        manifest.csv, split.csv         cases and the patient-level split
        models/<network>__<loss>/       each training run (checkpoints, history, TensorBoard)
        predictions/<network>__<loss>/  test-set masks on the original grid (NIfTI)
        results/                        cases.csv, lesions.csv, table1.{csv,md,tex}, wilcoxon.csv,
                                        thresholds_{patient,lesion}.csv, dmax_groups.csv, mixed_model.csv
        figures/                        figure1..figure7 as PNG and interactive HTML

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
    4 mm with small patches, narrower networks and few epochs (400-600 steps per model); it shows
    the pipeline and is not a reproduction of the paper's values. Two departures from the paper
    let so few steps learn to leave normal uptake alone: the Dice term is summed over the batch
    (``loss_overrides={"batch": True}``) and half of the patches are centred on lesions
    (``pos_fraction=0.5``; paper 0.8); Attention U-Net gets 600 steps, 65 % lesion patches and
    lr 5e-3 through ``network_train``. docs/decisions.md (2026-11-29) has the measurements.
``ci``
    The smallest setting that still runs every stage (tests and notebooks).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pcatools._atomic import write_text_atomic
from pcatools.analysis import StudyResult, analyse, draw_figures, load_study, versions
from pcatools.cells import Cell
from pcatools.data.manifest import read_manifest, write_manifest
from pcatools.training.config import TrainConfig
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
            from pcatools.loss_registry import fitting_options

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
            epochs=40,
            batch_size=2,
            num_samples=2,
            val_every=60,  # once, at the end (each validation of 4 cases costs ~15 s a model)
            max_steps_per_epoch=10,
            sw_batch_size=8,
            workers=0,
            threads=2,  # a CPU run's numbers hold for one thread count (pcatools.reproducibility)
            lr=3e-3,
            # 400-600 steps instead of ~130,000: batch Dice and 50 % lesion patches (module docstring)
            loss_overrides={"batch": True},
            transform_overrides={"pos_fraction": 0.5},
        ),
        # Attention U-Net learns slower: 65 % lesion patches and 600 steps (docs/decisions.md)
        network_train={
            "segresnet": {"model_overrides": {"init_filters": 8}},
            "attention_unet": {
                "model_overrides": {"channels": (8, 16, 32, 64, 128)},
                "lr": 5e-3,
                "epochs": 60,
                "transform_overrides": {"pos_fraction": 0.65},
            },
        },
        fractions=(0.65, 0.1, 0.25),
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


def model_key(network: str, loss: str) -> str:
    """Folder name of one grid cell trained with the study's seed, e.g. ``segresnet__l1dfl``
    (:meth:`pcatools.cells.Cell.key`; kept for :mod:`pcatools.viewer`, its last caller)."""
    return Cell(network, loss, 0).key(0)


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
        from pcatools.data.phantom import make_cohort

        manifest = make_cohort(
            profile.n_cases,
            run_dir / "data",
            seed=seed,
            spacing=profile.spacing,
            progress=progress,
            fwhm_mm=profile.phantom_fwhm_mm,
        )
    else:
        from pcatools.data.discovery import discover_cases

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
    from pcatools.data.splits import make_splits

    split = make_splits(manifest, fractions=profile.fractions, seed=seed)
    write_manifest(split, split_csv, root=run_dir)
    return split


def train_grid(run_dir: Path, profile: StudyProfile, seed: int, progress: bool) -> dict[str, Path]:
    """Train every (network, loss) pair on the study's ``split.csv``; returns the best checkpoint of
    each, keyed by :meth:`pcatools.cells.Cell.key` (each model's ``config.yaml`` names the split by its file)."""
    from pcatools.training import train

    best: dict[str, Path] = {}
    for network in profile.networks:
        for loss in profile.losses:
            key = Cell(network, loss, seed).key(seed)
            config = profile.train_config(network, loss, seed=seed)
            result = train(
                run_dir / "split.csv", run_dir / "models" / key, config, progress=progress, resume=True
            )
            best[key] = Path(result.best_checkpoint)
    return best


def predict_grid(
    run_dir: Path, split: pd.DataFrame, checkpoints: dict[str, Path], profile: StudyProfile, progress: bool
) -> pd.DataFrame:
    """Predict the test set with every checkpoint; one row per (case, network, loss) with column ``pred``."""
    import warnings

    from pcatools.inference import PredictionMismatchError, predict_manifest

    test = split[split["split"] == "test"].reset_index(drop=True)
    frames = []
    for key, checkpoint in checkpoints.items():
        network, loss = key.split("__")
        kwargs: dict[str, Any] = dict(window=profile.train.sliding_window, progress=progress)
        out = run_dir / "predictions" / key
        try:
            preds = predict_manifest(checkpoint, test, out, **kwargs)
        except PredictionMismatchError as err:
            # the study owns its predictions folder: masks its own models made with other
            # settings (or before pcatools recorded provenance) are remade, and it says so
            warnings.warn(
                f"study {run_dir}: re-predicting {len(err.differences)} test masks of {key} "
                f"({next(iter(err.differences.values()), 'no record')})",
                UserWarning,
                stacklevel=2,
            )
            preds = predict_manifest(checkpoint, test, out, overwrite=True, **kwargs)
        frames.append(preds.assign(network=network, loss=loss))
    return pd.concat(frames, ignore_index=True)


def run_study(
    run_dir: str | os.PathLike[str],
    profile: str | StudyProfile = "demo",
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    restart: bool = False,
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
        Seed of the cohort, the split, and training.
    restart
        Start over: move everything the run folder holds (but the synthetic cohort in ``data/``,
        which is remade only where its settings changed) to ``run_dir/replaced/<time>/`` first.
        Without it, a run folder whose ``config.yaml`` has other settings is refused, listing
        them; continuing would mix models trained one way with results computed another.
        ``workers``, ``networks`` and ``losses`` may change (a grid can grow), the rest may not.
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
    """
    import logging

    from pcatools.training.loop import RunSettingsError
    from pcatools.training.run_files import (
        REPLACED_DIR,
        describe_differences,
        set_aside,
        setting_differences,
    )

    prof = get_profile(profile, **overrides)
    run = Path(run_dir).resolve()
    data = str(Path(data_dir).resolve()) if data_dir is not None else None
    config = {"profile": prof.settings(), "data_dir": data, "seed": seed}
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
        free = ("name", "workers", "networks", "losses")  # change nothing a finished model or result holds
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
        checkpoints = train_grid(run, prof, seed, progress)
    except RunSettingsError as err:  # a model folder trained with other settings than the study's
        listing = describe_differences(err.differences)
        raise RunSettingsError(
            f"study {run}: model {err.run_dir.name} was trained with other settings ({listing}); {start_over}",
            err.run_dir,
            err.differences,
        ) from None
    preds = predict_grid(run, split, checkpoints, prof, progress)

    from pcatools.metrics import evaluate_cohort

    cases, lesions = evaluate_cohort(preds, pred_col="pred", progress=progress)
    results = run / "results"
    for name, table in (("predictions", preds), ("cases", cases), ("lesions", lesions)):
        write_manifest(table, results / f"{name}.csv", root=run)
    tables = analyse(results, cases, lesions, seed=seed)
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
