"""A synthetic cohort on disk: many phantom cases in a dataset layout, a manifest, resumable.

:func:`make_cohort` writes ``n`` cases with :func:`pcatools.data.case.write_case` (atomic) in the
``nnunet``, ``autopet`` or ``flat`` layout, plus

- ``manifest.csv``: the columns :func:`pcatools.data.discovery.discover_cases` returns
  (``case_id, patient_id, ct, pet, label, shape, spacing, n_lesions, tmtv_ml``);
- ``lesions.csv``: one row per lesion, the drawn parameters (site, volume, SUVmax, shape, profile,
  CT value, centre) beside what was measured on the written image and mask (``mask_volume_ml``,
  ``measured_suvmax``, ``measured_suvmean``);
- ``hard_negatives.csv``: the focal physiological uptake of each case (not in the labels);
- ``.phantom/<case_id>.json``: per case, the generation parameters and tables above. It is written
  last, so it marks the case complete.

Case ``i`` is ``make_case((seed, i), ...)`` with id ``PSMA_0000``-style; whether it is lesion-free
is decided from ``(seed, i)`` alone (probability ``lesion_free_fraction``). So a case never depends
on ``n`` or on the number of worker processes.

Re-running skips a case when its sidecar records the same parameters and its three NIfTI files
load completely (:func:`pcatools.data.io.load_case`: a truncated gzip or a wrong grid fails);
otherwise the case is regenerated (stale temporary files of interrupted writes are removed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pcatools._atomic import write_text_atomic
from pcatools.data.case import Layout, layout_paths, write_case
from pcatools.data.errors import DataError
from pcatools.data.io import count_lesions, load_case
from pcatools.data.manifest import write_manifest
from pcatools.data.phantom.render import FOV_MM, GENERATOR_VERSION, make_case

SIDECAR_DIR = ".phantom"
"""Folder (inside a cohort's folder) of each case's JSON sidecar: its parameters, lesions, hard negatives and anatomy."""
_CASE_KWARGS = {"n_lesions", "fwhm_mm", "hard_negatives", "noise", "fov_mm"}
MANIFEST_COLUMNS = ("case_id", "patient_id", "ct", "pet", "label", "shape", "spacing", "n_lesions", "tmtv_ml")
"""Columns of the cohort's manifest, the same as :func:`pcatools.data.discovery.discover_cases` writes."""


def case_id_for(i: int, n: int) -> str:
    """``PSMA_0000``-style id of case ``i`` in a cohort of ``n`` (at least 4 digits)."""
    return f"PSMA_{i:0{max(4, len(str(n - 1)))}d}"


def is_lesion_free(seed: int, i: int, fraction: float) -> bool:
    """Whether case ``i`` of a cohort is lesion-free: one uniform draw from ``(seed, i, 1)`` < ``fraction``."""
    if fraction <= 0:
        return False
    return bool(np.random.default_rng([seed, i, 1]).random() < fraction)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _stale_parts(paths: dict[str, Path]) -> list[Path]:
    out = []
    for p in paths.values():
        if p.parent.is_dir():
            out += list(p.parent.glob(f".{p.name}.*.part*"))
    return out


def _load_ok(
    paths: dict[str, Path], case_id: str, patient_id: str, shape: tuple[int, ...]
) -> dict[str, Any] | None:
    """Manifest row of a written case when its files load completely on the expected grid, else None."""

    if not all(p.is_file() for p in paths.values()):
        return None
    try:
        case = load_case(
            {"case_id": case_id, "patient_id": patient_id, **{k: str(v) for k, v in paths.items()}}
        )
    except (DataError, OSError, ValueError):
        return None
    if case.pet.shape != shape or case.label is None:
        return None
    zooms = case.meta["zooms"]
    return {
        "case_id": case_id,
        "patient_id": patient_id,
        "ct": str(paths["ct"]),
        "pet": str(paths["pet"]),
        "label": str(paths["label"]),
        "shape": tuple(int(v) for v in case.pet.shape),
        "spacing": tuple(round(float(z), 6) for z in zooms),
        "n_lesions": count_lesions(case.label),
        "tmtv_ml": float(np.count_nonzero(case.label)) * (float(np.prod(zooms)) / 1000.0),
    }


def _one_case(task: dict[str, Any]) -> dict[str, Any]:
    """Worker: skip a complete case or (re)generate it. Returns manifest row, lesions, negatives, status."""

    t0 = time.process_time()
    out_dir = Path(task["out_dir"])
    cid, pid, layout = task["case_id"], task["patient_id"], task["layout"]
    params = task["params"]
    paths = layout_paths(out_dir, cid, layout, pid)
    sidecar = out_dir / SIDECAR_DIR / f"{cid}.json"
    grid_shape = tuple(int(round(f / s)) for f, s in zip(params["fov_mm"], params["spacing"], strict=True))
    if sidecar.is_file():
        try:
            info = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            info = None
        if info is not None and info.get("params") == params:
            row = _load_ok(paths, cid, pid, grid_shape)
            if row is not None:
                return {
                    "row": row,
                    "lesions": info["lesions"],
                    "negatives": info["hard_negatives"],
                    "status": "skipped",
                    "cpu_s": time.process_time() - t0,
                }
        sidecar.unlink(missing_ok=True)
    for p in _stale_parts(paths):
        p.unlink(missing_ok=True)
    kwargs = {k: params[k] for k in _CASE_KWARGS if k in params}
    try:
        case = make_case(
            (params["seed"], params["index"]),
            spacing=params["spacing"],
            lesion_free=params["lesion_free"],
            case_id=cid,
            patient_id=pid,
            **kwargs,
        )
    except Exception as err:  # name the case; keep the cause
        raise RuntimeError(
            f"phantom case {cid} (seed ({params['seed']}, {params['index']})) failed: {err}"
        ) from err
    write_case(case, out_dir, layout=layout)
    lesions = [
        {"case_id": cid, "lesion_id": k + 1, **_jsonable(rec)} for k, rec in enumerate(case.meta["lesions"])
    ]
    negatives = [{"case_id": cid, **_jsonable(h)} for h in case.meta["hard_negatives"]]
    info = {
        "params": params,
        "lesions": lesions,
        "hard_negatives": negatives,
        "anatomy": _jsonable(case.meta["anatomy"]),
        "landmarks": _jsonable(case.meta["landmarks"]),
    }
    row = _load_ok(paths, cid, pid, grid_shape)
    if row is None:
        raise RuntimeError(f"phantom case {cid}: the files just written do not load: {paths}")
    write_text_atomic(sidecar, json.dumps(info, indent=1))
    return {
        "row": row,
        "lesions": lesions,
        "negatives": negatives,
        "status": "generated",
        "cpu_s": time.process_time() - t0,
    }


def make_cohort(
    n: int,
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    layout: Layout = "nnunet",
    spacing: Sequence[float] = (4.0, 4.0, 4.0),
    workers: int | None = None,
    progress: bool = True,
    lesion_free_fraction: float = 0.0,
    **case_kwargs: Any,
) -> pd.DataFrame:
    """Write a synthetic PSMA PET/CT cohort of ``n`` cases and return its manifest.

    Parameters
    ----------
    n : int
        Number of cases (the paper has 380).
    out_dir : path-like
        Dataset root (created).
    seed : int
        Cohort seed; case ``i`` uses the seed ``(seed, i)``.
    layout : {"nnunet", "autopet", "flat"}
        Dataset layout (:func:`pcatools.data.case.layout_paths`).
    spacing : (3,) float
        Voxel size in mm.
    workers : int or None
        Worker processes (None: one per CPU, at most ``n``; 0 or 1: in this process).
    progress : bool
        tqdm progress bar.
    lesion_free_fraction : float
        Probability that a case has no lesion (decided per case from ``(seed, i)``).
    **case_kwargs
        Passed to :func:`~pcatools.data.phantom.make_case`: ``n_lesions``, ``fwhm_mm``,
        ``hard_negatives``, ``noise``, ``fov_mm``.

    Returns
    -------
    pandas.DataFrame
        The manifest (as :func:`pcatools.data.discovery.discover_cases` returns it), also saved as
        ``manifest.csv``; ``lesions.csv`` and ``hard_negatives.csv`` beside it. ``df.attrs``
        holds ``generated`` / ``skipped`` counts and ``cpu_s`` (CPU seconds per case).

    Examples
    --------
    >>> df = make_cohort(2, "/tmp/synth", workers=1, progress=False)  # doctest: +SKIP
    >>> list(df.case_id)  # doctest: +SKIP
    ['PSMA_0000', 'PSMA_0001']
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n: expected a positive number of cases, found {n!r}")
    if layout not in get_args(Layout):
        raise ValueError(f"layout: expected one of {get_args(Layout)}, found {layout!r}")
    if not 0.0 <= lesion_free_fraction <= 1.0:
        raise ValueError(
            f"lesion_free_fraction: expected a probability in [0, 1], found {lesion_free_fraction}"
        )
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, found {seed!r}")
    unknown = set(case_kwargs) - _CASE_KWARGS
    if unknown:
        raise TypeError(
            f"make_cohort: unexpected case arguments {sorted(unknown)}; expected some of {sorted(_CASE_KWARGS)}"
        )
    sp = [float(s) for s in spacing]
    if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing: expected three positive numbers in mm (x, y, z), found {spacing!r}")

    out = Path(out_dir).resolve()  # absolute paths in the manifest: it reads the same from any directory
    out.mkdir(parents=True, exist_ok=True)
    n = int(n)
    common = {
        "generator": GENERATOR_VERSION,
        "seed": int(seed),
        "spacing": sp,
        "fov_mm": [float(v) for v in case_kwargs.get("fov_mm", FOV_MM)],
        **{k: _jsonable(v) for k, v in case_kwargs.items() if k != "fov_mm"},
    }
    tasks = []
    for i in range(n):
        cid = case_id_for(i, n)
        params = {**common, "index": i, "lesion_free": is_lesion_free(int(seed), i, lesion_free_fraction)}
        tasks.append(
            {"out_dir": str(out), "case_id": cid, "patient_id": cid, "layout": layout, "params": params}
        )

    n_workers = min(n, os.cpu_count() or 1) if workers is None else int(workers)
    results: list[dict[str, Any]] = []
    bar = tqdm(total=n, desc="phantom cases", unit="case", disable=not progress)
    try:
        if n_workers <= 1:
            for t in tasks:
                results.append(_one_case(t))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(n_workers, n), mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_one_case, t) for t in tasks]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
    finally:
        bar.close()

    results.sort(key=lambda r: r["row"]["case_id"])
    manifest = pd.DataFrame([r["row"] for r in results], columns=list(MANIFEST_COLUMNS))
    lesions = pd.DataFrame([les for r in results for les in r["lesions"]])
    negatives = pd.DataFrame([h for r in results for h in r["negatives"]])
    write_manifest(manifest, out / "manifest.csv")
    write_text_atomic(out / "lesions.csv", lesions.to_csv(index=False))
    write_text_atomic(out / "hard_negatives.csv", negatives.to_csv(index=False))
    manifest.attrs["generated"] = sum(r["status"] == "generated" for r in results)
    manifest.attrs["skipped"] = sum(r["status"] == "skipped" for r in results)
    manifest.attrs["cpu_s"] = [float(r["cpu_s"]) for r in results]
    return manifest
