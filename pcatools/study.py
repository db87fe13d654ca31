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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pcatools._atomic import write_text_atomic
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
    """Folder name of one grid cell, e.g. ``segresnet__l1dfl``."""
    return f"{network}__{loss}"


@dataclass
class StudyResult:
    """Paths and tables of a finished study."""

    run_dir: Path
    manifest: pd.DataFrame
    predictions: pd.DataFrame
    cases: pd.DataFrame
    lesions: pd.DataFrame
    table1: pd.DataFrame
    figures: dict[str, Path] = field(default_factory=dict)
    #: the lesion class of integer label maps (``pcatools evaluate --label``); None: masks are 0/1
    label_value: int | None = None

    def table(self, name: str) -> pd.DataFrame:
        """Another table of ``results/`` by name, e.g. ``"wilcoxon"`` or ``"dmax_groups"``."""
        path = self.run_dir / "results" / f"{name}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{self.run_dir}: no table {name!r} (expected {path})")
        return read_manifest(path)


def versions() -> dict[str, str]:
    """Versions of the packages a run depends on (written to ``versions.json``).

    Read from the installed packages' metadata, so that recording them does not import torch
    (seconds) into commands that never use it, such as ``pcatools evaluate``; the CUDA version
    is recorded when torch is already loaded.
    """
    import platform
    import sys
    from importlib.metadata import PackageNotFoundError, version

    import pcatools

    out = {"python": platform.python_version(), "pcatools": pcatools.__version__}
    for name in ("torch", "monai", "numpy", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    torch = sys.modules.get("torch")
    out["cuda"] = str(torch.version.cuda) if torch is not None else "not loaded"
    return out


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
    each, keyed by :func:`model_key` (each model's ``config.yaml`` names the split by its file)."""
    from pcatools.training import train

    best: dict[str, Path] = {}
    for network in profile.networks:
        for loss in profile.losses:
            key = model_key(network, loss)
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
        window = profile.train.sliding_window
        kwargs: dict[str, Any] = dict(
            roi_size=window.roi_size,
            overlap=window.overlap,
            mode=window.mode,
            sw_batch_size=window.sw_batch_size,
            progress=progress,
        )
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


def dmax_grouped(cases: pd.DataFrame, scenario: str = "M", paper_edges: bool = False) -> pd.DataFrame:
    """Cases with their Dmax group G0-G3 (Figure 6), for ``scenario`` ``"M"`` (the paper), ``"S"`` or ``"all"``.

    Groups are the quartiles of this cohort's Dmax, or the paper's 0-9, 9-11, 11-14, 14-60 cm with
    ``paper_edges=True``. Where quartile edges tie (tiny cohorts) the paper's edges are used instead,
    with a warning. Each row records its group's cut points (``dmax_low_mm``, ``dmax_high_mm``) and
    where the edges came from (``dmax_edges``: ``"quartiles"``, ``"paper"`` or
    ``"paper (quartiles tie)"``), so that ``dmax_groups.csv`` says which edges were used.
    """
    import warnings

    from pcatools import stats

    if scenario != "all":
        cases = cases[cases["scenario"] == scenario]
    source = "paper"
    if not paper_edges:
        try:
            return stats.dmax_groups(cases).assign(dmax_edges="quartiles")
        except ValueError as err:
            if pd.to_numeric(cases["dmax_mm"], errors="coerce").notna().any():  # ties, not an empty group
                warnings.warn(
                    f"Dmax groups: {err}; the paper's edges 0-9, 9-11, 11-14, 14-60 cm are used instead",
                    UserWarning,
                    stacklevel=2,
                )
                source = "paper (quartiles tie)"
    return stats.dmax_groups(cases, edges=stats.PAPER_DMAX_EDGES_MM).assign(dmax_edges=source)


def analyse(
    results_dir: Path,
    cases: pd.DataFrame,
    lesions: pd.DataFrame,
    seed: int = 0,
    reference: str = "l1dfl",
    by: str | None = "network",
    arm: str = "loss",
    empty_cases: str = "autopet",
    notes: Sequence[str] = (),
) -> dict[str, pd.DataFrame]:
    """Section 3's statistics from the per-case and per-lesion tables; written to ``results_dir``.

    ``reference``, ``by``, ``arm``: what the Wilcoxon tests compare (:func:`pcatools.stats.table1`):
    L1DFL against each other loss per network in a study, one model against all others in
    :func:`pcatools.evaluation.evaluate_folders`, whose mixed model then compares ``arm`` against
    ``reference`` too. ``empty_cases``: how lesion-free cases count in Table 1 and the Wilcoxon
    tests (:data:`pcatools.stats.EMPTY_CASE_RULES`). ``table1.md`` ends with
    :func:`pcatools.stats.table1_notes` and ``notes`` (further rules the caller used).
    """
    import warnings

    from pcatools import stats

    tables: dict[str, pd.DataFrame] = {}
    table1 = stats.table1(cases, reference=reference, seed=seed, by=by, arm=arm, empty_cases=empty_cases)
    tables["table1"] = table1
    write_text_atomic(results_dir / "table1.tex", stats.table1_latex(table1))
    scored = stats.scored_cases(cases, empty_cases)
    has_reference = reference in set(scored[arm])
    tables["wilcoxon"] = (
        stats.wilcoxon_vs(scored, reference, by=by, loss_col=arm) if has_reference else pd.DataFrame()
    )
    tables["thresholds_patient"] = stats.threshold_curve(cases, value_col="tmtv_ml")
    tables["thresholds_lesion"] = stats.threshold_curve(lesions, value_col="volume_ml")
    tables["dmax_groups"] = dmax_grouped(cases)
    footnote = [
        *stats.table1_notes(cases, empty_cases, arm=arm),
        *notes,
        stats.dmax_note(tables["dmax_groups"]),
    ]
    write_text_atomic(results_dir / "table1.md", stats.table1_markdown(table1, footnote))
    try:
        with warnings.catch_warnings():  # statsmodels' fit warnings: a failed fit is noted in the table
            # statsmodels' first import puts "always" filters for its warnings first: import, then ignore
            import statsmodels.tools.sm_exceptions  # noqa: F401

            warnings.simplefilter("ignore")
            tables["mixed_model"] = (
                stats.lesion_mixed_model(lesions)
                if arm == "loss"
                else stats.lesion_mixed_model(lesions, arm=arm, reference=reference)
            )
    except (ValueError, RuntimeError, ArithmeticError, IndexError) as err:  # too few lesions in tiny runs
        tables["mixed_model"] = pd.DataFrame({"note": [f"mixed model not estimable: {err}"]})
    for name, df in tables.items():
        write_text_atomic(results_dir / f"{name}.csv", df.to_csv(index=False))
    return tables


def draw_figures(
    figures_dir: Path,
    study: StudyResult,
    tables: dict[str, pd.DataFrame],
    loss_figures: bool = True,
    pet: bool = True,
) -> dict[str, Path]:
    """Figures 1-7 of the paper from the study's tables, as PNG and HTML.

    ``loss_figures=False`` leaves out Figures 1 and 7 (they show the loss, not the results);
    ``pet=False`` leaves out Figures 2 and 3, which need the PET (the SUVmax rule, the background).
    """
    from pcatools.figures import figure1, figure4, figure5, figure6, figure7, save_figure

    figures: dict[str, Any] = {}
    if loss_figures:
        figures["figure1"] = figure1()
    if pet:
        figures["figure2"] = figure2_for_study(study)
        figures["figure3"] = figure3_for_study(study)
    figures["figure4"] = figure4(study.cases)
    figures["figure5"] = figure5(tables["thresholds_patient"], tables["thresholds_lesion"])
    figures["figure6"] = figure6(tables["dmax_groups"])
    if loss_figures:
        from pcatools.losses import loss_vs_probability  # torch: only for the loss figures

        figures["figure7"] = figure7(loss_vs_probability())
    # One shared plotly.min.js beside the HTML files: they open offline and stay small.
    from plotly.offline import get_plotlyjs

    write_text_atomic(figures_dir / "plotly.min.js", get_plotlyjs())
    written = {}
    for name, fig in figures.items():
        save_figure(fig, figures_dir / name, include_plotlyjs="directory")
        written[name] = figures_dir / f"{name}.png"
    return written


def figure3_case(cases: pd.DataFrame) -> str:
    """The test case shown in Figure 3 by default: the one where the grid's DSCs disagree most."""
    with_lesions = cases[cases["n_gt_lesions"] > 0]
    spread = with_lesions.groupby("case_id")["dice"].agg(lambda s: s.max() - s.min())
    return str(spread.idxmax()) if len(spread) else str(cases["case_id"].iloc[0])


def _case_images(study: StudyResult, case_id: str) -> tuple[Any, np.ndarray, pd.DataFrame]:
    """PET image, ground-truth mask and prediction rows of one case of a study or evaluation folder."""
    from pcatools.data.io import Grid, load_nifti
    from pcatools.metrics.evaluate import read_mask

    rows = study.manifest[study.manifest["case_id"].astype(str) == case_id]
    if rows.empty:
        raise ValueError(f"case {case_id!r} is not in the manifest of {study.run_dir}")
    row = rows.iloc[0]
    if not isinstance(row.get("label"), str) or not row["label"]:
        raise ValueError(f"case {case_id!r} has no ground-truth label; Figures 2 and 3 need one")
    gt = read_mask(row["label"], study.label_value, "ground truth")
    pet = load_nifti(row["pet"], "pet", onto=Grid(gt.shape, gt.affine, "ground truth", row["label"]))
    label = np.asarray(gt.dataobj)
    return pet, label, study.predictions[study.predictions["case_id"].astype(str) == case_id]


def _on_pet(pet: Any) -> Any:
    """The grid of a case's PET (the ground truth's), onto which its predictions are read as evaluated."""
    from pcatools.data.io import Grid

    return Grid(pet.shape, pet.affine, "PET", pet.get_filename() or "")


def figure2_for_study(study: StudyResult, case_id: str | None = None, model: int = 0) -> Any:
    """Figure 2 (the SUVmax detection rule drawn on a case) for one case and model of a study.

    ``case_id=None`` picks :func:`figure3_case`; ``model`` is the position of the model among the
    case's predictions (grid order in a study, ``--pred`` order in an evaluation). Detection uses
    :mod:`pcatools.metrics` through :func:`pcatools.figures.figure2_data`.
    """
    from pcatools.figures import figure2
    from pcatools.metrics.evaluate import read_mask

    case_id = figure3_case(study.cases) if case_id is None else str(case_id)
    pet, label, preds = _case_images(study, case_id)
    pick = preds.iloc[model]
    pred = np.asarray(read_mask(pick["pred"], study.label_value, "prediction", onto=_on_pet(pet)).dataobj)
    name = pick["model"] if "model" in preds.columns else f"{pick['network']}/{pick['loss']}"
    spacing = tuple(float(z) for z in pet.header.get_zooms()[:3])
    return figure2(
        label,
        pred,
        np.asarray(pet.dataobj),
        spacing=spacing,
        title=f"Figure 2: SUVmax rule, case {case_id}, {name}",
    )


def figure3_for_study(study: StudyResult, case_id: str | None = None) -> Any:
    """Figure 3 (ground truth against every network and loss) for one test case of a study.

    ``case_id=None`` picks :func:`figure3_case`. The background is the coronal PET MIP.
    """
    from pcatools.figures import figure3
    from pcatools.metrics.evaluate import read_mask

    case_id = figure3_case(study.cases) if case_id is None else str(case_id)
    pet, label, preds = _case_images(study, case_id)
    masks: dict[tuple[str, str], np.ndarray] = {}
    for network, loss, pred in preds[["network", "loss", "pred"]].itertuples(index=False):
        masks[(str(network), str(loss))] = np.asarray(
            read_mask(pred, study.label_value, "prediction", onto=_on_pet(pet)).dataobj
        )
    spacing = tuple(float(z) for z in pet.header.get_zooms()[:3])
    return figure3(np.asarray(pet.dataobj), label, masks, spacing=spacing, title=f"Case {case_id}")


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


def load_study(run_dir: str | os.PathLike[str]) -> StudyResult:
    """Read a finished study run folder, or a ``pcatools evaluate`` folder, back (for notebooks).

    The evaluation folder's ``manifest.csv`` takes the place of the study's ``split.csv``; an
    empty ``network`` (a model named without ``network/loss``) reads back as ``""``.
    """
    run = Path(run_dir)
    results = run / "results"
    needed = ("predictions.csv", "cases.csv", "lesions.csv", "table1.csv")
    missing = [results / n for n in needed if not (results / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"{run} is not a finished study run or evaluation folder: missing {[str(p) for p in missing]}"
        )
    manifest = run / "split.csv" if (run / "split.csv").is_file() else run / "manifest.csv"
    evaluation = run / "evaluation.json"
    label_value = json.loads(evaluation.read_text())["label"] if evaluation.is_file() else None
    return StudyResult(
        run_dir=run,
        manifest=read_manifest(manifest),
        predictions=read_manifest(results / "predictions.csv"),
        cases=read_manifest(results / "cases.csv"),
        lesions=read_manifest(results / "lesions.csv"),
        table1=pd.read_csv(results / "table1.csv", keep_default_na=False),
        figures={p.stem: p for p in sorted((run / "figures").glob("*.png"))},
        label_value=label_value,
    )


def grid(networks: Sequence[str] = NETWORKS, losses: Sequence[str] = LOSSES) -> list[tuple[str, str]]:
    """The (network, loss) pairs of the study grid."""
    return [(n, lo) for n in networks for lo in losses]


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
