"""The paper's whole evaluation for any set of segmentations: ground truth + predictions folders -> tables, figures.

:func:`evaluate_folders` (the library side of ``pcatools evaluate``) pairs a folder of ground-truth
masks, optionally a folder of PET in SUV, and one folder of predicted masks per model **by case
id** (:func:`pcatools.data.folders.case_files`), evaluates every (case, model) with the paper's
metrics (:func:`pcatools.metrics.evaluate_cohort_tables`), runs section 3's statistics and draws
Figures 3-6, and writes it all into one folder laid out like a study run's::

    OUT/
        README.md                what was compared, with which options, and Table 1
        evaluation.json          the same as data (inputs, options, left-out cases, versions)
        manifest.csv             the evaluated cases: case_id, patient_id, label, pet
        results/                 predictions.csv, cases.csv, lesions.csv, components.csv,
                                 table1.{csv,md,tex}, wilcoxon.csv, thresholds_{patient,lesion}.csv,
                                 dmax_groups.csv, mixed_model.csv
        figures/                 figure3 (with SUV) .. figure6 as PNG and interactive HTML

Models are named ``NAME=DIR``. A name ``network/loss`` (``segresnet/l1dfl``) fills the
``network`` and ``loss`` columns, so a study's grid reads as in the paper; any other name is one
model, with an empty ``network`` and the name as its ``loss``, so that all such models sit side
by side in one panel of each figure. Table 1's P values compare the reference model (default: the
first) with every other model, paired on the cases (one-tailed Wilcoxon, H1: the reference scores
higher).

``OUT`` is written whole or not at all: everything is made in a hidden folder beside it and
renamed into place at the end, so an interrupted run leaves ``OUT`` as it was, and a re-run
replaces a previous evaluation folder as a whole (a folder that is not one is refused).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pcatools._atomic import write_text_atomic
from pcatools._docs import EVALUATE_PARAMETERS, fill_doc
from pcatools.data.discovery import patient_ids
from pcatools.data.errors import DataError
from pcatools.data.folders import case_files
from pcatools.data.manifest import write_manifest
from pcatools.metrics.detection import CRITERIA, Criterion

MARKER = "evaluation.json"
"""The file that makes a folder a pcatools evaluation folder (and lets a re-run replace it)."""


@dataclass(frozen=True)
class Model:
    """One model's predictions: its name, the ``network`` and ``loss`` columns it fills, its folder."""

    name: str
    network: str
    loss: str
    folder: Path


def parse_model(spec: str | tuple[str, str | os.PathLike[str]]) -> Model:
    """A :class:`Model` from ``"NAME=DIR"`` (or ``(NAME, DIR)``); a bare ``DIR`` is named after its folder.

    Examples
    --------
    >>> parse_model("segresnet/l1dfl=preds/a")
    Model(name='segresnet/l1dfl', network='segresnet', loss='l1dfl', folder=PosixPath('preds/a'))
    >>> m = parse_model("runs/nnunet_dc")
    >>> m.name, m.network, m.loss
    ('nnunet_dc', '', 'nnunet_dc')
    """
    if isinstance(spec, tuple):
        name, folder = str(spec[0]), Path(spec[1])
    elif "=" in spec:
        name, _, path = spec.partition("=")
        folder = Path(path)
    else:
        folder = Path(spec)
        name = folder.resolve().name
    name = name.strip()
    if not name or not str(folder):
        raise ValueError(
            f"prediction {spec!r}: expected NAME=DIR, e.g. segresnet/l1dfl=preds/segresnet_l1dfl"
        )
    network, sep, loss = name.partition("/")
    if sep and (not network or not loss or "/" in loss):
        raise ValueError(f"prediction {spec!r}: a name with '/' must be network/loss, e.g. segresnet/l1dfl")
    return Model(name, network if sep else "", loss if sep else name, folder)


def _models(preds: Mapping[str, Any] | Sequence[Any]) -> list[Model]:
    items = list(preds.items()) if isinstance(preds, Mapping) else list(preds)
    models = [m if isinstance(m, Model) else parse_model(m) for m in items]
    if not models:
        raise ValueError("predictions: expected at least one NAME=DIR")
    names = [m.name for m in models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"predictions: model names must differ, found {twice} more than once")
    return models


def study_predictions(run_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """``{"network/loss": folder}`` of a finished study's test predictions, to evaluate them like any model's.

    Examples
    --------
    >>> study_predictions("runs/demo")  # doctest: +SKIP
    {'attention_unet/dice': PosixPath('runs/demo/predictions/attention_unet__dice'), ...}
    """
    from pcatools.study import load_study

    preds = load_study(run_dir).predictions
    folders: dict[str, Path] = {}
    for network, loss, pred in preds[["network", "loss", "pred"]].itertuples(index=False):
        folders.setdefault(f"{network}/{loss}", Path(str(pred)).parent)
    return folders


def command_line(
    out: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    preds: Mapping[str, Any],
    suv: str | os.PathLike[str] | None = None,
    **options: Any,
) -> str:
    """The ``pcatools evaluate`` command that :func:`evaluate_folders` with these arguments runs.

    Examples
    --------
    >>> command_line("out", "gt", {"a": "p/a"}, allow_missing=True)
    'pcatools evaluate out --gt gt --pred a=p/a --allow-missing'
    """
    import shlex

    parts = ["pcatools", "evaluate", str(out), "--gt", str(gt)]
    parts += [f"--pred {shlex.quote(f'{k}={v}')}" for k, v in preds.items()]
    if suv is not None:
        parts += ["--suv", str(suv)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif value not in (None, False):
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def _missing_report(folders: dict[str, set[str]], every: set[str]) -> list[str]:
    lines = []
    for what, ids in folders.items():
        absent = sorted(every - ids)
        if absent:
            shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
            lines.append(f"{what} lacks {len(absent)} case(s): {shown}")
    return lines


def pair_cases(
    gt: str | os.PathLike[str],
    models: Sequence[Model],
    suv: str | os.PathLike[str] | None = None,
    allow_missing: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """The (case, model) manifest of :func:`evaluate_folders`, paired by case id, and the cases left out.

    Returns a DataFrame with ``case_id, patient_id, model, network, loss, label, pet, ct, pred``
    (absolute paths; ``pet`` empty without ``suv``; ``ct`` found beside the SUV or the ground
    truth for the viewer, empty where there is none) and the sorted ids that some folder lacks.

    Raises
    ------
    DataError
        A case is in one folder and missing in another (each folder's missing ids listed), unless
        ``allow_missing``; no case is in every folder.
    """
    gt_files = case_files(gt, "label")
    suv_files = case_files(suv, "pet") if suv is not None else None
    pred_files = {m.name: case_files(m.folder, "pred") for m in models}
    ct_files: dict[str, Path] = {}
    for source in (suv, gt):  # the CT only serves the viewer: optional
        if source is not None and not ct_files:
            with contextlib.suppress(DataError):
                ct_files = case_files(source, "ct")
    folders = {f"ground truth {gt}": set(gt_files)}
    if suv_files is not None:
        folders[f"SUV {suv}"] = set(suv_files)
    for m in models:
        folders[f"prediction {m.name!r} ({m.folder})"] = set(pred_files[m.name])
    every = set().union(*folders.values())
    common = set.intersection(*folders.values())
    left_out = sorted(every - common)
    if left_out and not allow_missing:
        raise DataError(
            "cases missing: "
            + "; ".join(_missing_report(folders, every))
            + f" (pass --allow-missing to evaluate the {len(common)} case(s) that every folder has)"
        )
    if not common:
        raise DataError(
            "no case is in every folder: "
            + "; ".join(_missing_report(folders, every))
            + " (are the ids alike?)"
        )
    ids = sorted(common)
    pids = patient_ids(ids)
    rows = [
        {
            "case_id": cid,
            "patient_id": pids[cid],
            "model": m.name,
            "network": m.network,
            "loss": m.loss,
            "label": str(gt_files[cid].resolve()),
            "pet": str(suv_files[cid].resolve()) if suv_files is not None else "",
            "ct": str(ct_files[cid].resolve()) if cid in ct_files else "",
            "pred": str(pred_files[m.name][cid].resolve()),
        }
        for m in models
        for cid in ids
    ]
    return pd.DataFrame(rows), left_out


def _check_out(out: Path) -> None:
    """Refuse an ``OUT`` that is a file, or a non-empty folder that is not an evaluation folder."""
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out}: expected a folder (new or a previous evaluation), found a file")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise DataError(
            f"output {out}: the folder exists and is not a pcatools evaluation folder (no {MARKER}); "
            "choose a new path, so that nothing of yours is replaced"
        )
    parent = out.parent if out.parent != Path("") else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise DataError(f"output {out}: cannot write in {parent}")


@contextlib.contextmanager
def _staged(out: Path) -> Any:
    """Yield a hidden folder beside ``out``; on success it replaces ``out`` whole, on failure it is removed."""
    stage = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        if out.exists():
            os.replace(out, old)
        os.replace(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _readme(config: dict[str, Any], table1_md: str, figures: Sequence[str]) -> str:
    models = "\n".join(f"| `{m['name']}` | `{m['folder']}` |" for m in config["models"])
    left = config["left_out"]
    left_txt = (
        f"{len(left)} case(s) that some folder lacks were left out (`--allow-missing`): "
        + ", ".join(f"`{c}`" for c in left[:20])
        + (" ..." if len(left) > 20 else "")
        if left
        else "Every folder held the same cases."
    )
    suv = config["suv"] or "none (SUV-based values are NaN; detection falls back to the overlap rule)"
    return f"""# pcatools evaluation

Made by `pcatools evaluate` (pcatools {config["versions"]["pcatools"]}) on {config["created"]}.

- ground truth: `{config["gt"]}`
- SUV: `{suv}`
- detection criterion: `{config["criterion_used"]}` (asked: `{config["criterion"]}`)
- label value: {config["label"] if config["label"] is not None else "masks are 0/1"}
- reference model for the P values: `{config["reference"]}` (one-tailed paired Wilcoxon, H1: the
  reference scores higher; Holm over all comparisons in `P value (Holm)`)
- cases: {config["n_cases"]}. {left_txt}

| model | predictions |
|---|---|
{models}

## Table 1

{table1_md}
TP and FN are per-patient rates, FP a per-patient count of false-positive components (mean ± SD).

## Files

- `results/cases.csv`: one row per (case, model): DSC, TP/FP/FN, F1, FPV/FNV, TMTV, TLA, Dmax and
  the prediction's own TMTV, TLA, SUVmax and Dmax (`pred_*`).
- `results/lesions.csv`: one row per ground-truth lesion and model: MTV, SUVmax, TLA, lesion DSC,
  detected, and the matched predicted components (`pred_components`, their volume and SUVmax).
- `results/components.csv`: one row per predicted component: volume, SUVmax, TLA, the lesions it
  overlaps, its DSC and whether it is a false positive.
- `results/table1.{{csv,md,tex}}`, `wilcoxon.csv`, `thresholds_patient.csv`, `thresholds_lesion.csv`,
  `dmax_groups.csv`, `mixed_model.csv`: section 3's statistics.
- `figures/`: {", ".join(f"`{f}`" for f in figures)} (PNG and interactive HTML).
"""


@fill_doc(EVALUATE_PARAMETERS)
def evaluate_folders(
    out: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    preds: Mapping[str, Any] | Sequence[Any],
    suv: str | os.PathLike[str] | None = None,
    *,
    reference: str | None = None,
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
    label: int | None = None,
    allow_missing: bool = False,
    workers: int | None = None,
    progress: bool = True,
    seed: int = 0,
) -> Any:
    """Evaluate every model's predictions against the ground truth, the paper's way, into ``out``.

    Parameters
    ----------
    out : path-like
        The evaluation folder (layout in the module docstring); replaced whole if it holds a
        previous evaluation, refused if it holds anything else.
    gt : path-like
        {{gt}}
    preds : mapping or sequence
        ``{NAME: DIR}`` or ``["NAME=DIR", ...]``: {{pred}}
    suv : path-like, optional
        {{suv}}
    reference : str, optional
        {{reference}}
    criterion : {"suvmax", "suvmax_iou", "overlap", "iou"}
        {{criterion}}
    label : int, optional
        {{label}}
    allow_missing : bool
        {{allow_missing}}
    workers, progress, seed
        {{workers}} {{progress}} {{seed}}

    Returns
    -------
    pcatools.study.StudyResult
        The folder read back (``cases``, ``lesions``, ``table1``, ``figures`` ...).

    Raises
    ------
    DataError
        Missing cases (listed per folder), a mask with values other than 0/1, a prediction or
        SUV on another grid, NaN in the SUV, an unreadable file (each naming case, model and
        file), or an ``out`` that is a file or another folder.
    """
    from pcatools import stats
    from pcatools.metrics.evaluate import evaluate_cohort_tables
    from pcatools.study import StudyResult, analyse, draw_figures, load_study, versions

    if criterion not in CRITERIA:
        raise ValueError(f"criterion: expected one of {CRITERIA}, found {criterion!r}")
    models = _models(preds)
    ref = models[0].name if reference is None else reference
    if ref not in {m.name for m in models}:
        raise ValueError(f"reference: {ref!r} is not one of the models {[m.name for m in models]}")
    pairs = {(m.network, m.loss) for m in models}
    if len(pairs) != len(models):
        raise ValueError("predictions: two models give the same network/loss; name them differently")
    out_path = Path(out)
    _check_out(out_path)
    manifest, left_out = pair_cases(gt, models, suv, allow_missing)

    tables = evaluate_cohort_tables(
        manifest, workers=workers, progress=progress, criterion=criterion,
        iou_threshold=iou_threshold, label_value=label,
    )  # fmt: skip
    cases = tables.cases
    with _staged(out_path) as stage:
        results = stage / "results"
        cases_manifest = manifest.drop_duplicates("case_id")[["case_id", "patient_id", "label", "pet", "ct"]]
        write_manifest(cases_manifest, stage / "manifest.csv", root=stage)
        for name, table in (("predictions", manifest), ("cases", cases), ("lesions", tables.lesions),
                            ("components", tables.components)):  # fmt: skip
            write_manifest(table, results / f"{name}.csv", root=stage)
        analysed = analyse(results, cases, tables.lesions, seed=seed, reference=ref, by=None, arm="model")
        study = StudyResult(
            stage, cases_manifest, manifest, cases, tables.lesions, analysed["table1"], label_value=label
        )
        figures = draw_figures(stage / "figures", study, analysed, loss_figures=False, pet=suv is not None)
        config = {
            "gt": str(Path(gt).resolve()),
            "suv": str(Path(suv).resolve()) if suv is not None else None,
            "models": [{"name": m.name, "network": m.network, "loss": m.loss, "folder": str(m.folder.resolve())}
                       for m in models],
            "reference": ref,
            "criterion": criterion,
            "criterion_used": str(cases["criterion"].iloc[0]),
            "iou_threshold": iou_threshold,
            "label": label,
            "allow_missing": allow_missing,
            "n_cases": int(cases["case_id"].nunique()),
            "left_out": left_out,
            "seed": seed,
            "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "versions": versions(),
        }  # fmt: skip
        write_text_atomic(
            stage / "README.md", _readme(config, stats.table1_markdown(analysed["table1"]), sorted(figures))
        )
        write_text_atomic(stage / MARKER, json.dumps(config, indent=2))
    return load_study(out_path)
