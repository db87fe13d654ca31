"""Predictions by name: ``NAME=PATH`` / path / ``(name, mask)`` items, and every model of a study's case.

Several predictions each get their own labels layer and colour
(:func:`pcatools.viewer.layer_style.pred_colour`), named here so that the layers, the lesion
dock's detection columns and the command line agree.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pcatools.analysis import load_study
from pcatools.cells import Cell
from pcatools.viewer.layer_style import BASE_LAYER_NAMES, L1_LAYER_NAMES

__all__ = ["name_predictions", "study_case"]


def _pred_spec(item: Any) -> tuple[str, Any, str]:
    """``(name, value, how it was given)`` of one ``NAME=PATH`` / path / ``(name, value)`` item."""
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(f"prediction: expected (name, mask or path), found a tuple of {len(item)}")
        name, value = str(item[0]), item[1]
        return name, value, f"{name}={value}" if isinstance(value, str | os.PathLike) else name
    if not isinstance(item, str | os.PathLike):
        raise TypeError(
            f"prediction: expected 'NAME=PATH', a path or (name, mask), found {type(item).__name__}"
        )
    text = os.fspath(item)
    name, sep, rest = text.partition("=")
    if isinstance(item, str) and sep and name and "/" not in name and os.sep not in name:
        return name, Path(rest), text
    # a bare path: named after its folder (predict writes every model's masks as <case_id>.nii.gz)
    path = Path(text)
    return path.absolute().parent.name, path, text


def name_predictions(items: Iterable[Any]) -> dict[str, Any]:
    """``{name: mask or path}`` from ``NAME=PATH`` strings, bare paths and ``(name, value)`` pairs.

    A bare path is named after its parent folder, because ``pcatools predict`` writes every
    model's masks as ``<case_id>.nii.gz`` in the model's own folder (``predictions/<network>__<loss>``).
    The text before the first ``=`` is a name when it holds no ``/``. Names must be unique and
    must not be one of the fixed layers' names; paths must exist.

    Examples
    --------
    >>> import numpy as np
    >>> list(name_predictions([("A", np.zeros(3)), ("B", np.ones(3))]))
    ['A', 'B']
    >>> name_predictions([("A", np.zeros(3)), ("A", np.ones(3))])
    Traceback (most recent call last):
    ValueError: two predictions named 'A' (A and A): name them with NAME=PATH
    """
    named: dict[str, Any] = {}
    given: dict[str, str] = {}
    for item in items:
        name, value, text = _pred_spec(item)
        if not name:
            raise ValueError(f"prediction {text!r}: expected NAME=PATH with a non-empty NAME")
        if name in BASE_LAYER_NAMES or name in L1_LAYER_NAMES:
            raise ValueError(
                f"prediction {text!r}: the name {name!r} is taken by a fixed layer; choose another"
            )
        if name in named:
            raise ValueError(
                f"two predictions named {name!r} ({given[name]} and {text}): name them with NAME=PATH"
            )
        if isinstance(value, str | os.PathLike) and not Path(value).is_file():
            raise FileNotFoundError(f"prediction {text!r}: expected a NIfTI mask, found no file {value}")
        named[name], given[name] = value, text
    return named


def study_case(run_dir: str | os.PathLike[str], case_id: str) -> tuple[dict[str, Path], dict[str, Path]]:
    """A study's case: its ``{ct, pet[, label]}`` files and ``{network__loss: mask}`` of every model.

    Reads the run (or a ``pcatools evaluate`` folder) with :func:`pcatools.analysis.load_study`
    (``results/predictions.csv``: one row per case, network and loss, with the case's files and
    the mask in ``pred``), so that one call opens every model's prediction of a case side by side.
    Each model is named as its cell's folder (:meth:`pcatools.cells.Cell.key`): ``network__loss``,
    and with several training seeds (a ``seed`` column) ``network__loss__seed<N>`` for every seed
    but the first, so that each seed's mask is its own layer.
    """
    study = load_study(run_dir)
    table = study.predictions
    csv = Path(run_dir) / "results" / "predictions.csv"
    missing = [c for c in ("case_id", "network", "loss", "pred", "ct", "pet") if c not in table]
    if missing:
        raise ValueError(f"{csv}: expected columns case_id, network, loss, pred, ct, pet; missing {missing}")
    rows = table[table["case_id"].astype(str) == str(case_id)]
    if rows.empty:
        ids = sorted(table["case_id"].astype(str).unique())
        raise ValueError(
            f"{csv}: expected a case id among {ids[:10]}{' ...' if len(ids) > 10 else ''}, found {case_id!r}"
        )
    first = rows.iloc[0]
    paths = {k: Path(str(first[k])) for k in ("ct", "pet")}
    label = first.get("label")
    if isinstance(label, str) and label:
        paths["label"] = Path(label)
    for key, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"{csv}: the {key} file of case {case_id!r} does not exist: {path}")
    seeds = sorted(int(s) for s in rows["seed"].dropna().unique()) if "seed" in rows else []

    def name(row: Any) -> str:
        # a model of a `pcatools evaluate` folder named without network/loss: network "", its name as loss
        if not str(row.network):
            return str(row.loss)
        seed = int(row.seed) if len(seeds) > 1 else 0
        return Cell(str(row.network), str(row.loss), seed).key(seeds[0] if len(seeds) > 1 else 0)

    preds = name_predictions((name(r), Path(str(r.pred))) for r in rows.itertuples(index=False))
    return paths, preds
