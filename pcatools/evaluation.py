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

``OUT`` is written whole or not at all, and nothing evaluate did not write is ever removed:

- an ``OUT`` that holds (or is) one of the inputs, or that holds a file evaluate did not write
  (``evaluation.json`` records the files it wrote), is refused before anything is read;
- everything is made in a hidden folder ``.OUT.partial-<hex>`` beside ``OUT``, whose
  ``evaluation.json`` is written last, and swapped with ``OUT`` in one step (Linux
  ``renameat2(RENAME_EXCHANGE)``), so ``OUT``'s name holds the old or the new complete folder at
  every instant. Where the system cannot swap, the old folder is renamed ``.OUT.old-<hex>`` first and
  kept until the new one is in place; a run killed in between leaves ``OUT`` missing, and the next
  run puts the old folder back before anything else;
- a ``.OUT.lock`` file beside ``OUT`` (``flock``) refuses a second evaluation into the same ``OUT``
  while one is writing it; the next run removes the ``.OUT.partial-*`` and ``.OUT.old-*`` folders that
  a killed run left, when they hold nothing but what evaluate writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import re
import shlex
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pcatools import stats
from pcatools._atomic import LockBusyError, exchange_paths, exclusive_lock, write_text_atomic
from pcatools._docs import EVALUATE_PARAMETERS, fill_doc
from pcatools.analysis import StudyResult, analyse, draw_figures, load_study
from pcatools.data.discovery import read_patients_csv
from pcatools.data.errors import DataError
from pcatools.data.folders import case_files, case_patients, folder_summary, match_cases
from pcatools.data.manifest import write_manifest
from pcatools.metrics.components import check_connectivity
from pcatools.metrics.detection import Criterion
from pcatools.metrics.evaluate import evaluate_cohort_tables
from pcatools.metrics.overlap import check_lesion_dice_reading
from pcatools.training.run_files import versions

MARKER = "evaluation.json"
"""The file that makes a folder a pcatools evaluation folder (and lets a re-run replace it); it lists
the files evaluate wrote there (``files``) and is written last, so a folder holding it is complete."""

_HIDDEN = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-[0-9a-f]{8}$")
"""The hidden folders beside ``OUT``: a staging folder (``partial``) and a replaced one (``old``)."""

_WRITTEN = re.compile(r"^(?:(?:results|figures)/)?[^/]+\.(?:csv|md|tex|png|html|js|json|svg|pdf)$")
"""Names evaluate writes (temporary ``.<name>.<x>.part.<ext>`` ones included), for a folder with no list."""


@dataclass
class EvaluationResult(StudyResult):
    """What :func:`evaluate_folders` returns: the folder read back as a study's, and two more tables."""

    #: one row per predicted component (``results/components.csv``): volume, SUVmax, its lesions, FP
    components: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the reference model against every other (``results/wilcoxon.csv``)
    wilcoxon: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the detection rule the counts were made with: the one asked for, or ``overlap`` without SUV
    criterion: Criterion = Criterion.SUVMAX


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
    preds = load_study(run_dir).predictions
    folders: dict[str, Path] = {}
    for network, loss, pred in preds[["network", "loss", "pred"]].itertuples(index=False):
        folders.setdefault(f"{network}/{loss}", Path(str(pred)).parent)
    return folders


def command_line(
    out: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    *,
    pred: Mapping[str, Any],
    suv: str | os.PathLike[str] | None = None,
    **options: Any,
) -> str:
    """The ``pcatools evaluate`` command that :func:`evaluate_folders` with these arguments runs.

    Examples
    --------
    >>> command_line("out", "gt", pred={"a": "p/a"}, allow_missing=True)
    'pcatools evaluate out --gt gt --pred a=p/a --allow-missing'
    """
    parts = ["pcatools", "evaluate", shlex.quote(str(out)), "--gt", shlex.quote(str(gt))]
    parts += [f"--pred {shlex.quote(f'{k}={v}')}" for k, v in pred.items()]
    if suv is not None:
        parts += ["--suv", shlex.quote(str(suv))]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif value not in (None, False):
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def _missing_report(folders: dict[str, tuple[set[str], Path | None]], every: set[str]) -> list[str]:
    """Per folder that lacks cases: how many, which, the file expected for the first ones (plain
    folders of SUV and predictions) and what the folder holds, so that a naming mismatch shows."""
    lines = []
    for what, (ids, folder) in folders.items():
        absent = sorted(every - ids)
        if absent:
            shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
            line = f"{what} lacks {len(absent)} case(s): {shown}"
            if folder is not None:
                expected = ", ".join(str(folder / f"{c}.nii.gz") for c in absent[:2])
                line += f"; expected {expected}{' ...' if len(absent) > 2 else ''}; it holds {folder_summary(folder)}"
            lines.append(line)
    return lines


def pair_cases(
    gt: str | os.PathLike[str],
    models: Sequence[Model],
    suv: str | os.PathLike[str] | None = None,
    allow_missing: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """The (case, model) manifest of :func:`evaluate_folders`, paired by case id, and the cases left out.

    Returns a DataFrame with ``case_id, patient_id, model, network, loss, label, pet, ct, pred``
    (absolute paths, links kept as links: a file's format is judged by its own name, not by its
    target's, which in a content-addressed store such as DVC's cache has no ``.nii.gz``; ``pet``
    empty without ``suv``; ``ct`` found beside the SUV or the ground truth for the viewer, empty
    where there is none) and the sorted ids that some folder lacks.

    Raises
    ------
    DataError
        A case is in one folder and missing in another (each folder's missing ids listed), unless
        ``allow_missing``; no case is in every folder.
    """
    gt_files = case_files(gt, "label")
    gt_patients = case_patients(gt, "label")
    suv_files = match_cases(case_files(suv, "pet"), gt_patients, suv, "pet") if suv is not None else None
    pred_files = {m.name: match_cases(case_files(m.folder, "pred"), gt_patients, m.folder) for m in models}
    ct_files: dict[str, Path] = {}
    for source in (suv, gt):  # the CT only serves the viewer: optional
        if source is not None and not ct_files:
            with contextlib.suppress(DataError):
                ct_files = case_files(source, "ct")
    folders: dict[str, tuple[set[str], Path | None]] = {f"ground truth {gt}": (set(gt_files), None)}
    if suv_files is not None:
        folders[f"SUV {suv}"] = (set(suv_files), None)
    for m in models:
        folders[f"prediction {m.name!r} ({m.folder})"] = (set(pred_files[m.name]), m.folder)
    every = set().union(*(ids for ids, _ in folders.values()))
    common = set.intersection(*(ids for ids, _ in folders.values()))
    left_out = sorted(every - common)
    if left_out and not allow_missing and common:
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
    pids = {cid: gt_patients[cid] for cid in ids}  # the autoPET patient folder, patients.csv, <patient>__
    rows = [
        {
            "case_id": cid,
            "patient_id": pids[cid],
            "model": m.name,
            "network": m.network,
            "loss": m.loss,
            "label": os.path.abspath(gt_files[cid]),
            "pet": os.path.abspath(suv_files[cid]) if suv_files is not None else "",
            "ct": os.path.abspath(ct_files[cid]) if cid in ct_files else "",
            "pred": os.path.abspath(pred_files[m.name][cid]),
        }
        for m in models
        for cid in ids
    ]
    return pd.DataFrame(rows), left_out


def _foreign(folder: Path, recorded: set[str] | None) -> str | None:
    """The first entry of ``folder`` (relative path) that evaluate did not write, or None.

    ``recorded``: the files its ``evaluation.json`` lists; ``None`` (a staging folder, or a folder
    from a version that kept no list): the names evaluate writes (``_WRITTEN``). A link, or anything
    but a file or folder, is never evaluate's.
    """
    parents = {str(Path(r).parent) for r in recorded} if recorded is not None else {"results", "figures"}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            return rel
        if path.is_dir():
            if rel not in parents:
                return rel
        elif rel != MARKER and (rel not in recorded if recorded is not None else not _WRITTEN.match(rel)):
            return rel
    return None


def _recorded(folder: Path) -> set[str] | None:
    """The files a folder's ``evaluation.json`` lists; None when it keeps no list or does not read."""
    try:
        files = json.loads((folder / MARKER).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return {str(f) for f in files} if isinstance(files, list) else None


def _complete(folder: Path) -> bool:
    """True for a finished evaluation folder: its marker (written last) and every file it lists."""
    files = _recorded(folder)
    return (
        files is not None and all((folder / f).is_file() for f in files) and _foreign(folder, files) is None
    )


def _check_out(out: Path) -> None:
    """Refuse an ``OUT`` that is a file or a link, a non-empty folder that is not an evaluation folder,
    or one that holds a file evaluate did not write (named); nothing is written."""
    if out.is_symlink():
        raise DataError(
            f"output {out}: expected a folder (new or a previous evaluation), found a symbolic link"
        )
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out}: expected a folder (new or a previous evaluation), found a file")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DataError(
                f"output {out}: the folder exists and is not a pcatools evaluation folder (no {MARKER}); "
                "choose a new path, so that nothing of yours is replaced"
            )
        foreign = _foreign(out, _recorded(out))
        if foreign is not None:
            raise DataError(
                f"output {out}: holds {foreign}, which pcatools evaluate did not write; move it out of the "
                "folder or choose a new path, so that nothing of yours is replaced"
            )
    ancestor = out.parent if str(out.parent) else Path(".")
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise DataError(f"output {out}: cannot write in {ancestor}")


def _check_inputs(out: Path, inputs: Sequence[tuple[str, str | os.PathLike[str]]]) -> None:
    """Refuse an ``OUT`` that is or holds an input ``(what, path)``: replacing it would delete the input.

    Both the path as given and the path its links lead to are compared with ``OUT`` and with the
    hidden folders beside it, so that a link into ``OUT`` is caught too.
    """
    outs = {Path(os.path.abspath(out)), Path(os.path.realpath(out))}
    for what, path in inputs:
        for where in {Path(os.path.abspath(path)), Path(os.path.realpath(path))}:
            for o in outs:
                hidden = (
                    where.is_relative_to(o.parent)
                    and where != o.parent
                    and (
                        (m := _HIDDEN.match(where.relative_to(o.parent).parts[0])) is not None
                        and m["name"] == o.name
                    )
                )
                if where == o or o in where.parents or hidden:
                    raise DataError(
                        f"output {out}: holds the input {path} ({what}), which replacing it would delete; "
                        "choose an output folder outside the inputs"
                    )


def _input_files(manifest: pd.DataFrame) -> list[tuple[str, str]]:
    """Every file of the paired manifest, as ``(what, path)`` for :func:`_check_inputs`."""
    files = []
    for row in manifest.itertuples(index=False):
        for col in ("label", "pet", "ct"):
            if getattr(row, col):
                files.append((f"case {row.case_id!r} {col}", str(getattr(row, col))))
        files.append((f"case {row.case_id!r}, model {row.model!r}", str(row.pred)))
    return files


def _step(name: str) -> None:
    """Called at each step of replacing ``OUT`` ("locked", "staging", "staged", "swapped", "moved_old").

    Does nothing; the tests replace it to stop a run at that step and check what is left.
    """


def _tidy(out: Path) -> None:
    """Undo what a killed run left beside ``OUT`` (under the lock): put a replaced folder back where
    ``OUT`` is missing, and remove hidden folders that hold nothing but evaluate's files."""
    hidden = sorted(
        p for p in out.parent.iterdir()
        if (m := _HIDDEN.match(p.name)) and m["name"] == out.name and p.is_dir() and not p.is_symlink()
    )  # fmt: skip
    if not out.exists():
        olds = [p for p in hidden if _HIDDEN.match(p.name)["kind"] == "old" and _complete(p)]  # type: ignore[index]
        if olds:
            newest = max(olds, key=lambda p: (p / MARKER).stat().st_mtime)
            os.rename(newest, out)
            hidden.remove(newest)
    for p in hidden:
        if _foreign(p, _recorded(p) if (p / MARKER).is_file() else None) is None:
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def _staged(out: Path) -> Any:
    """Yield a hidden folder beside ``out``; on success it replaces ``out`` whole, on failure it is removed.

    Held under ``.OUT.lock``; the swap is :func:`pcatools._atomic.exchange_paths` where the system
    can (the module docstring says what happens where it cannot).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(lock))
        except LockBusyError:
            raise DataError(
                f"output {out}: another pcatools evaluate is writing it (lock {lock}); wait for it to finish "
                "or choose another output folder"
            ) from None
        _tidy(out)
        _check_out(out)  # again, under the lock
        _step("locked")
        stage = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
        stage.mkdir()
        old: Path | None = None
        try:
            yield stage
            _step("staged")
            if not out.exists():
                os.rename(stage, out)
            elif exchange_paths(stage, out):
                _step("swapped")
                shutil.rmtree(stage)  # the previous evaluation, now under the staging name
            else:
                old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(out, old)
                _step("moved_old")
                os.rename(stage, out)
                shutil.rmtree(old)
        except BaseException:
            if old is not None and old.exists() and not out.exists():
                os.rename(old, out)
            shutil.rmtree(stage, ignore_errors=True)
            raise


def _rule_notes(connectivity: int, lesion_dice: str, panoptic: bool) -> list[str]:
    """Table 1's footnote lines for the evaluation's own rules (connectivity, eq. 16, PQ)."""
    reading = (
        "each lesion against the union of its matched components"
        if lesion_dice == "union"
        else "each matched (lesion, component) pair alone, the lesion reporting its best pair (eq. 16 literally)"
    )
    return [
        f"Lesions and predicted components are {connectivity}-connected"
        + (" (autoPET's official rule)." if connectivity == 18 else " (autoPET's official rule is 18)."),
        f"Lesion DSC (lesions.csv, the mixed model) scores {reading} (--lesion-dice {lesion_dice})."
        + (" Panoptic quality (rq, sq, pq in cases.csv) matches at IoU > 0.5." if panoptic else ""),
    ]


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
- lesion-free cases: `{config["empty_cases"]}` (`--empty-cases`); connectivity: {config["connectivity"]}
  (`--connectivity`); lesion DSC: `{config["lesion_dice"]}` (`--lesion-dice`); panoptic quality:
  {"RQ, SQ, PQ in `cases.csv`" if config["panoptic"] else "not computed (`--panoptic`)"}
- patients: {config["n_patients"]} ({f"from `{config['patients']}`" if config["patients"] else "from the folders"}; each
  case's in `manifest.csv`, the mixed model's groups)
- reference model for the P values: `{config["reference"]}` (one-tailed paired Wilcoxon, H1: the
  reference scores higher; Holm over all comparisons in `P value (Holm)`)
- cases: {config["n_cases"]}. {left_txt}

| model | predictions |
|---|---|
{models}

## Table 1

{table1_md}
{"".join(f"{n}{chr(10)}{chr(10)}" for n in config["table1_notes"])}
## Files

- `results/cases.csv`: one row per (case, model): DSC, TP/FP/FN, F1, FPV/FNV, TMTV, TLA, Dmax and
  the prediction's own TMTV, TLA, SUVmax and Dmax (`pred_*`).
- `results/lesions.csv`: one row per ground-truth lesion and model: MTV, SUVmax, TLA, lesion DSC,
  detected, and the matched predicted components (`pred_components`, their volume and SUVmax).
- `results/components.csv`: one row per predicted component: volume, SUVmax, TLA, the lesions it
  overlaps, its DSC and whether it is a false positive.
- `results/table1.{{csv,md,tex}}`, `wilcoxon.csv`, `thresholds_patient.csv`, `thresholds_lesion.csv`,
  `dmax_groups.csv`, `mixed_model.csv`: section 3's statistics.
- `figures/`: {", ".join(f"`{f}`" for f in figures) + " (PNG and interactive HTML)" if figures else "not drawn (`figures=False`)"}.
"""


@fill_doc(EVALUATE_PARAMETERS)
def evaluate_folders(
    out: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    *,
    pred: Mapping[str, Any] | Sequence[Any],
    suv: str | os.PathLike[str] | None = None,
    reference: str | None = None,
    criterion: Criterion | str = "suvmax",
    iou_threshold: float = 0.5,
    label: int | None = None,
    allow_missing: bool = False,
    empty_cases: str = "autopet",
    connectivity: int = 18,
    lesion_dice: str = "union",
    panoptic: bool = False,
    patients: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
    figures: bool = True,
) -> EvaluationResult:
    """Evaluate every model's predictions against the ground truth, the paper's way, into ``out``.

    The keyword arguments follow ``pcatools evaluate``'s options in their order, so that a command
    line reads as a call (:func:`command_line` writes one back).

    Parameters
    ----------
    out : path-like
        The evaluation folder (layout in the module docstring); replaced whole if it holds a
        previous evaluation, refused if it holds anything else.
    gt : path-like
        {{gt}}
    pred : mapping or sequence
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
    empty_cases : {"autopet", "count", "exclude"}
        {{empty_cases}}
    connectivity : {6, 18, 26}
        {{connectivity}}
    lesion_dice : {"union", "pair"}
        {{lesion_dice}}
    panoptic : bool
        {{panoptic}}
    patients : path-like, optional
        {{patients}}
    workers, seed, progress
        {{workers}} {{seed}} {{progress}}
    figures : bool
        Draw Figures 2-6 into ``out/figures`` (the command always does); ``False`` for ad hoc use
        from Python, where the tables are wanted in seconds.

    Returns
    -------
    EvaluationResult
        The folder read back (``cases``, ``lesions``, ``table1``, ``figures`` ...) with the
        ``components`` and ``wilcoxon`` tables, and the ``criterion`` the counts were made with.

    Raises
    ------
    DataError
        Missing cases (listed per folder), a mask with values other than 0/1, a prediction or
        SUV on another grid, NaN in the SUV, an unreadable file (each naming case, model and
        file), or an ``out`` that is a file or another folder.
    """
    rule = Criterion.parse(criterion)  # checked here once, then carried as a Criterion
    stats.check_empty_cases(empty_cases)
    check_connectivity(connectivity)
    check_lesion_dice_reading(lesion_dice)
    models = _models(pred)
    ref = models[0].name if reference is None else reference
    if ref not in {m.name for m in models}:
        raise ValueError(f"reference: {ref!r} is not one of the models {[m.name for m in models]}")
    pairs = {(m.network, m.loss) for m in models}
    if len(pairs) != len(models):
        raise ValueError("predictions: two models give the same network/loss; name them differently")
    out_path = Path(out)
    folders = [("ground truth", gt), *([("SUV", suv)] if suv is not None else [])]
    folders += [(f"prediction {m.name!r}", m.folder) for m in models]
    _check_inputs(out_path, folders)
    manifest, left_out = pair_cases(gt, models, suv, allow_missing)
    if patients is not None:
        manifest["patient_id"] = manifest["case_id"].map(read_patients_csv(patients, manifest["case_id"]))
    _check_inputs(out_path, _input_files(manifest))
    _check_out(out_path)

    tables = evaluate_cohort_tables(
        manifest, workers=workers, progress=progress, criterion=rule,
        iou_threshold=iou_threshold, label_value=label, connectivity=connectivity,
        lesion_dice_reading=lesion_dice, panoptic=panoptic,
    )  # fmt: skip
    cases = tables.cases
    with _staged(out_path) as stage:
        results = stage / "results"
        cases_manifest = manifest.drop_duplicates("case_id")[["case_id", "patient_id", "label", "pet", "ct"]]
        write_manifest(cases_manifest, stage / "manifest.csv", root=stage)
        for name, table in (("predictions", manifest), ("cases", cases), ("lesions", tables.lesions),
                            ("components", tables.components)):  # fmt: skip
            write_manifest(table, results / f"{name}.csv", root=stage)
        _step("staging")
        rules = _rule_notes(connectivity, lesion_dice, panoptic)
        analysed = analyse(
            results, cases, tables.lesions, seed=seed, reference=ref, by=None, arm="model",
            empty_cases=empty_cases, notes=rules,
        )  # fmt: skip
        study = StudyResult(
            stage, cases_manifest, manifest, cases, tables.lesions, analysed["table1"], label_value=label
        )
        drawn = (
            draw_figures(stage / "figures", study, analysed, loss_figures=False, pet=suv is not None)
            if figures
            else {}
        )
        config = {
            "gt": str(Path(gt).resolve()),
            "suv": str(Path(suv).resolve()) if suv is not None else None,
            "models": [{"name": m.name, "network": m.network, "loss": m.loss, "folder": str(m.folder.resolve())}
                       for m in models],
            "reference": ref,
            "criterion": rule.value,
            "criterion_used": tables.criterion.value,
            "iou_threshold": iou_threshold,
            "label": label,
            "allow_missing": allow_missing,
            "empty_cases": empty_cases,
            "connectivity": connectivity,
            "lesion_dice": lesion_dice,
            "panoptic": panoptic,
            "patients": str(Path(patients).resolve()) if patients is not None else None,
            "n_patients": int(cases["patient_id"].nunique()),
            "dmax_edges": stats.dmax_edges(analysed["dmax_groups"]),
            "table1_notes": [
                *stats.table1_notes(cases, empty_cases, arm="model"), *rules,
                stats.dmax_note(analysed["dmax_groups"]),
            ],
            "n_cases": int(cases["case_id"].nunique()),
            "left_out": left_out,
            "seed": seed,
            "figures": figures,
            "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "versions": versions(),
        }  # fmt: skip
        write_text_atomic(
            stage / "README.md", _readme(config, stats.table1_markdown(analysed["table1"]), sorted(drawn))
        )
        config["files"] = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        write_text_atomic(stage / MARKER, json.dumps(config, indent=2))  # last: the folder is complete
    return dataclasses.replace(load_evaluation(out_path), criterion=tables.criterion)


def load_evaluation(out: str | os.PathLike[str]) -> EvaluationResult:
    """An evaluation folder that :func:`evaluate_folders` wrote, read back without evaluating again.

    Notebooks open an existing ``OUT`` this way (a whole evaluation takes minutes, reading it
    seconds).

    Raises
    ------
    DataError
        ``out`` is not a complete evaluation folder (no ``evaluation.json``).
    """
    out_path = Path(out)
    if not (out_path / MARKER).is_file():
        raise DataError(
            f"evaluation folder {out_path}: expected a folder written by pcatools evaluate (with {MARKER}), "
            f"found {'a folder without it' if out_path.is_dir() else 'nothing'}"
        )
    result = load_study(out_path)
    return EvaluationResult(
        **{f.name: getattr(result, f.name) for f in dataclasses.fields(result)},
        components=result.table("components"),
        wilcoxon=result.table("wilcoxon"),
        criterion=Criterion.parse(json.loads((out_path / MARKER).read_text())["criterion_used"]),
    )
