"""The study's analysis: section 3's statistics and the paper's figures from a cohort's evaluation.

Both :func:`pcatools.study.run_study` and :func:`pcatools.evaluation.evaluate_folders` hand their
per-case and per-lesion tables to :func:`analyse` (Table 1, the Wilcoxon tests, the threshold
curves, the Dmax groups, the lesion mixed model) and :func:`draw_figures` (Figures 1-7); a
finished study or evaluation folder reads back with :func:`load_study`. Keeping the analysis
apart from the grid runner lets ``pcatools evaluate`` analyse predictions without the study.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pcatools._atomic import write_text_atomic
from pcatools.data.manifest import read_manifest
from pcatools.vocabulary import loss_label, network_label


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


def dmax_grouped(cases: pd.DataFrame, scenario: str = "M", paper_edges: bool = False) -> pd.DataFrame:
    """Cases with their Dmax group G0-G3 (Figure 6), for ``scenario`` ``"M"`` (the paper), ``"S"`` or ``"all"``.

    Groups are the quartiles of this cohort's Dmax, or the paper's 0-9, 9-11, 11-14, 14-60 cm with
    ``paper_edges=True``. Where quartile edges tie (tiny cohorts) the paper's edges are used instead,
    with a warning. Each row records its group's cut points (``dmax_low_mm``, ``dmax_high_mm``) and
    where the edges came from (``dmax_edges``: ``"quartiles"``, ``"paper"`` or
    ``"paper (quartiles tie)"``), so that ``dmax_groups.csv`` says which edges were used.
    """
    from pcatools import stats  # deferred: start-up (see tests/test_imports.py)

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


def study_seeds(table: pd.DataFrame) -> list[int]:
    """The training seeds a study's table holds (its ``seed`` column, ascending); ``[]`` without one
    (a one-seed study, an evaluation)."""
    return sorted(int(s) for s in table["seed"].dropna().unique()) if "seed" in table.columns else []


def empty_models_note(cases: pd.DataFrame, arm: str = "loss") -> list[str]:
    """A Table 1 footnote naming every model that predicted nothing on any of its cases; ``[]`` when none.

    A model whose mask is empty everywhere scores DSC 0 and TP 0 like a very poor one; the note
    says which it is, so that nobody reads a network that never reached the lesion class (argmax
    below p = 0.5 everywhere) as a segmentation result. Models are told apart by ``network``,
    ``arm`` and ``seed`` (where the table has them); a model is empty when ``n_pred_lesions``
    (predicted components) is 0 on every case.

    Examples
    --------
    >>> df = pd.DataFrame({"network": "segresnet", "loss": ["dice", "dice", "l1dfl", "l1dfl"],
    ...                    "case_id": ["a", "b", "a", "b"], "n_pred_lesions": [0, 0, 3, 0]})
    >>> empty_models_note(df)
    ['Predicted nothing on any case: SegResNet DL (2 of 2 cases empty). Its DSC and TP are those of an empty mask, not of a poor segmentation.']
    """
    if "n_pred_lesions" not in cases.columns or cases.empty:
        return []
    keys = [c for c in ("network", arm, "seed") if c in cases.columns]
    empty = []
    for key, g in cases.groupby(keys, sort=False) if keys else [((), cases)]:
        if (pd.to_numeric(g["n_pred_lesions"], errors="coerce").fillna(0) == 0).all():
            named: dict[str, Any] = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
            parts = [network_label(str(named["network"]))] if named.get("network") else []
            if arm in named:
                parts.append(loss_label(str(named[arm])) if arm == "loss" else str(named[arm]))
            seed = f", seed {int(named['seed'])}" if "seed" in named else ""
            empty.append(f"{' '.join(parts) or 'the model'} ({len(g)} of {len(g)} cases empty{seed})")
    if not empty:
        return []
    return [
        f"Predicted nothing on any case: {'; '.join(empty)}. Its DSC and TP are those of an empty mask, "
        "not of a poor segmentation."
        if len(empty) == 1
        else f"Predicted nothing on any case: {'; '.join(empty)}. Their DSC and TP are those of empty "
        "masks, not of poor segmentations."
    ]


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
    :func:`pcatools.stats.table1_notes`, :func:`empty_models_note` and ``notes`` (further rules the
    caller used).

    Tables with a ``seed`` column of several training seeds (a study with ``seeds``): Table 1 is
    :func:`pcatools.seed_stats.table1_over_seeds`, each seed's own in ``table1_by_seed``, each seed's
    mean DSC per model in ``seed_means``; the Wilcoxon tests, threshold curves and Dmax groups use
    the per-case (per-lesion) values averaged over seeds (:func:`pcatools.seed_stats.seed_average`);
    the mixed model fits every seed's lesions with the seed as a variance component.
    """
    from pcatools import seed_stats, stats  # deferred: start-up (see tests/test_imports.py)

    tables: dict[str, pd.DataFrame] = {}
    empty_models = empty_models_note(cases, arm)  # per seed, before the seeds are averaged
    seeds = study_seeds(cases)
    settings: dict[str, Any] = dict(reference=reference, seed=seed, by=by, arm=arm, empty_cases=empty_cases)
    seed_notes: list[str] = []
    if len(seeds) > 1:
        table1 = seed_stats.table1_over_seeds(cases, **settings)
        tables["table1_by_seed"] = seed_stats.table1_by_seed(cases, **settings)
        tables["seed_means"] = seed_stats.seed_means(cases, empty_cases=empty_cases, arm=arm)
        cases = seed_stats.seed_average(cases, keys=("network", arm, "case_id"))
        per_lesion = seed_stats.seed_average(lesions, keys=("network", arm, "case_id", "lesion_id"))
        seed_notes.append(seed_stats.seed_note(seeds))
    else:
        table1 = stats.table1(cases, **settings)
        per_lesion = lesions
    tables["table1"] = table1
    write_text_atomic(results_dir / "table1.tex", stats.table1_latex(table1))
    scored = stats.scored_cases(cases, empty_cases)
    has_reference = reference in set(scored[arm])
    tables["wilcoxon"] = (
        stats.wilcoxon_vs(scored, reference, by=by, loss_col=arm) if has_reference else pd.DataFrame()
    )
    tables["thresholds_patient"] = stats.threshold_curve(cases, value_col="tmtv_ml")
    tables["thresholds_lesion"] = stats.threshold_curve(per_lesion, value_col="volume_ml")
    tables["dmax_groups"] = dmax_grouped(cases)
    footnote = [
        *stats.table1_notes(cases, empty_cases, arm=arm),
        *empty_models,
        *seed_notes,
        *notes,
        stats.dmax_note(tables["dmax_groups"]),
    ]
    write_text_atomic(results_dir / "table1.md", stats.table1_markdown(table1, footnote))
    try:
        with warnings.catch_warnings():  # statsmodels' fit warnings: a failed fit is noted in the table
            # statsmodels' first import puts "always" filters for its warnings first: import, then ignore
            import statsmodels.tools.sm_exceptions  # noqa: F401  # deferred: start-up (see tests/test_imports.py)

            warnings.simplefilter("ignore")
            seed_col = "seed" if len(seeds) > 1 else None
            tables["mixed_model"] = (
                stats.lesion_mixed_model(lesions, seed_col=seed_col)
                if arm == "loss"
                else stats.lesion_mixed_model(lesions, arm=arm, reference=reference, seed_col=seed_col)
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
    A study with several training seeds adds ``seeds`` (:func:`pcatools.figures.seeds_figure`);
    Figure 4 then shows each case's DSC averaged over seeds, Figures 2 and 3 the first seed's masks.
    """
    from pcatools import seed_stats  # deferred: start-up (see tests/test_imports.py)
    from pcatools.figures import (  # deferred: start-up (see tests/test_imports.py)
        figure1,
        figure4,
        figure5,
        figure6,
        figure7,
        save_figure,
        seeds_figure,
    )

    figures: dict[str, Any] = {}
    if loss_figures:
        figures["figure1"] = figure1()
    if pet:
        figures["figure2"] = figure2_for_study(study)
        figures["figure3"] = figure3_for_study(study)
    several = len(study_seeds(study.cases)) > 1
    figures["figure4"] = figure4(seed_stats.seed_average(study.cases) if several else study.cases)
    figures["figure5"] = figure5(tables["thresholds_patient"], tables["thresholds_lesion"])
    figures["figure6"] = figure6(tables["dmax_groups"])
    if loss_figures:
        from pcatools.losses import loss_vs_probability  # deferred: start-up (see tests/test_imports.py)

        figures["figure7"] = figure7(loss_vs_probability())
    if several:
        figures["seeds"] = seeds_figure(tables["seed_means"])
    # One shared plotly.min.js beside the HTML files: they open offline and stay small.
    from plotly.offline import get_plotlyjs  # deferred: start-up (see tests/test_imports.py)

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
    from pcatools.data.io import Grid, load_nifti  # deferred: start-up (see tests/test_imports.py)
    from pcatools.metrics.evaluate import read_mask  # deferred: start-up (see tests/test_imports.py)

    rows = study.manifest[study.manifest["case_id"].astype(str) == case_id]
    if rows.empty:
        raise ValueError(f"case {case_id!r} is not in the manifest of {study.run_dir}")
    row = rows.iloc[0]
    if not isinstance(row.get("label"), str) or not row["label"]:
        raise ValueError(f"case {case_id!r} has no ground-truth label; Figures 2 and 3 need one")
    gt = read_mask(row["label"], study.label_value, "ground truth")
    pet = load_nifti(row["pet"], "pet", onto=Grid(gt.shape, gt.affine, "ground truth", row["label"]))
    label = np.asarray(gt.dataobj)
    preds = study.predictions[study.predictions["case_id"].astype(str) == case_id]
    if "seed" in preds.columns and len(preds):  # one mask per model: the first training seed's
        preds = preds[preds["seed"] == preds["seed"].iloc[0]]
    return pet, label, preds


def _on_pet(pet: Any) -> Any:
    """The grid of a case's PET (the ground truth's), onto which its predictions are read as evaluated."""
    from pcatools.data.io import Grid  # deferred: start-up (see tests/test_imports.py)

    return Grid(pet.shape, pet.affine, "PET", pet.get_filename() or "")


def figure2_for_study(study: StudyResult, case_id: str | None = None, model: int = 0) -> Any:
    """Figure 2 (the SUVmax detection rule drawn on a case) for one case and model of a study.

    ``case_id=None`` picks :func:`figure3_case`; ``model`` is the position of the model among the
    case's predictions (grid order in a study, ``--pred`` order in an evaluation). Detection uses
    :mod:`pcatools.metrics` through :func:`pcatools.figures.figure2_data`.
    """
    from pcatools.figures import figure2  # deferred: start-up (see tests/test_imports.py)
    from pcatools.metrics.evaluate import read_mask  # deferred: start-up (see tests/test_imports.py)

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
    from pcatools.figures import figure3  # deferred: start-up (see tests/test_imports.py)
    from pcatools.metrics.evaluate import read_mask  # deferred: start-up (see tests/test_imports.py)

    case_id = figure3_case(study.cases) if case_id is None else str(case_id)
    pet, label, preds = _case_images(study, case_id)
    masks: dict[tuple[str, str], np.ndarray] = {}
    for network, loss, pred in preds[["network", "loss", "pred"]].itertuples(index=False):
        masks[(str(network), str(loss))] = np.asarray(
            read_mask(pred, study.label_value, "prediction", onto=_on_pet(pet)).dataobj
        )
    spacing = tuple(float(z) for z in pet.header.get_zooms()[:3])
    return figure3(np.asarray(pet.dataobj), label, masks, spacing=spacing, title=f"Case {case_id}")
