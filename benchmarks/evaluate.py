"""Benchmark: ``pcatools evaluate`` on a 100-case cohort with 3 models, against the official autoPET approach.

What is measured:

1. A synthetic cohort of ``--cases`` phantom cases at 4 mm (``make_cohort``, nnU-Net layout; not
   timed) and three "models" made from each ground truth (not timed): ``dilated`` (one voxel of
   18-connected dilation), ``missed`` (the smallest lesion dropped, a 3x3x3 false positive added),
   ``eroded`` (one voxel of erosion).
2. **pcatools**: the whole ``evaluate_folders`` run as ``pcatools evaluate`` does it, with
   ``--workers`` processes: pairing by case id, reading and checking every file, every metric of
   the paper with the SUVmax rule and the prediction-side measures, Table 1 with bootstrap CIs and
   Wilcoxon tests, thresholds, Dmax groups, the mixed model, Figures 3-6 (PNG + HTML) and the
   atomic swap of the output folder. Goal: under 60 s on 2 cores for 100 cases x 3 models.
3. **The official autoPET evaluation approach** (``lab-midas/autoPET`` ``val_script.py``, from
   ``benchmarks/metrics.py``): per (case, model), both masks read with ``get_fdata()``, Dice,
   false-positive and false-negative volume with a full-volume scan per component, in one
   process. It computes three metrics where pcatools computes all of the paper's, so the ratio
   is a lower bound of what pcatools saves. Timed on ``--official-cases`` cases and scaled.
4. **pcatools metrics alone, one process** (``evaluate_cohort_tables(workers=0)``) on the same
   cases as 3: reading and checking the files and every metric, like for like with 3.

Printed: time per (case, model) of each and the ratio (official / pcatools), the whole
evaluation's wall time against the goal, and whether Dice, FPV and FNV agree (to 1e-9).

Run: ``python benchmarks/evaluate.py [--cases 100] [--workers 2] [--official-cases 20]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from pcatools.data.phantom import make_cohort
from pcatools.evaluation import evaluate_folders, pair_cases, parse_model
from pcatools.metrics import label_components
from pcatools.metrics.evaluate import evaluate_cohort_tables

try:  # run as a script (python benchmarks/evaluate.py) or as a module
    from metrics import official_compute_metrics  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    from benchmarks.metrics import official_compute_metrics

MODELS = ("dilated", "missed", "eroded")


def _model_mask(model: str, label: np.ndarray) -> np.ndarray:
    struct = ndimage.generate_binary_structure(3, 2)  # 18-connectivity
    if model == "dilated":
        return ndimage.binary_dilation(label, struct).astype(np.uint8)
    if model == "eroded":
        return ndimage.binary_erosion(label, struct).astype(np.uint8)
    out = label.copy()
    lab, n = label_components(label)
    if n:
        sizes = np.bincount(lab.ravel())[1:]
        out[lab == int(np.argmin(sizes)) + 1] = 0
    x, y, z = (s // 2 for s in out.shape)
    out[x - 1 : x + 2, y - 1 : y + 2, 2:5] = 1  # a false positive low in the scan
    return out


def make_predictions(manifest: pd.DataFrame, root: Path) -> dict[str, Path]:
    folders = {m: root / m for m in MODELS}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for row in manifest.itertuples():
        img = nib.load(str(row.label))
        label = np.asarray(img.dataobj).astype(np.uint8)
        for m in MODELS:
            nib.save(
                nib.Nifti1Image(_model_mask(m, label), img.affine), str(folders[m] / f"{row.case_id}.nii.gz")
            )
    return folders


def official(manifest: pd.DataFrame, folders: dict[str, Path], n: int) -> tuple[float, pd.DataFrame]:
    rows = []
    start = time.perf_counter()
    for row in manifest.head(n).itertuples():
        for m in MODELS:
            gt_img = nib.load(str(row.label))
            gt = gt_img.get_fdata()
            pred = nib.load(str(folders[m] / f"{row.case_id}.nii.gz")).get_fdata()
            voxel_ml = float(np.prod(np.asarray(gt_img.header.get_zooms()[:3], dtype=np.float64))) / 1000.0
            rows.append({"case_id": row.case_id, "model": m, **official_compute_metrics(gt, pred, voxel_ml)})
    return (time.perf_counter() - start) / (n * len(MODELS)), pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--official-cases", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="copy the evaluation folder here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        manifest = make_cohort(args.cases, root / "data", seed=0, progress=False, workers=args.workers)
        folders = make_predictions(manifest, root / "preds")
        print(
            f"cohort: {args.cases} phantom cases at 4 mm + {len(MODELS)} models in {time.perf_counter() - t0:.0f} s"
        )
        labels = root / "data" / "labelsTr"
        start = time.perf_counter()
        result = evaluate_folders(
            root / "out", labels, pred={m: folders[m] for m in MODELS}, suv=root / "data",
            workers=args.workers, progress=False,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if args.keep is not None:
            import shutil

            shutil.copytree(root / "out", args.keep, dirs_exist_ok=True)
        n_pairs = len(result.cases)
        ours = wall / n_pairs
        n_official = min(args.official_cases, args.cases)
        theirs, ref = official(manifest, folders, n_official)
        subset = pair_cases(labels, [parse_model((m, folders[m])) for m in MODELS], root / "data")[0]
        subset = subset[subset["case_id"].isin(manifest["case_id"].head(n_official))]
        t1 = time.perf_counter()
        evaluate_cohort_tables(subset, workers=0, progress=False)
        ours_one = (time.perf_counter() - t1) / len(subset)
        merged = ref.merge(result.cases, on=["case_id", "model"], suffixes=("_official", ""))
        agree = all(
            np.allclose(merged[f"{c}_official"], merged[c], rtol=1e-9, atol=1e-12)
            for c in ("dice", "fpv_ml", "fnv_ml")
        )
        print(f"pcatools evaluate: {n_pairs} (case, model) pairs, {wall:.1f} s wall with {args.workers} workers "
              f"(goal < 60 s): {'MET' if wall < 60 else 'NOT MET'}")  # fmt: skip
        print(f"  per pair: pcatools {ours * 1000:.0f} ms (all metrics, statistics, figures) | official autoPET "
              f"approach {theirs * 1000:.0f} ms (Dice, FPV, FNV only) | ratio official / pcatools {theirs / ours:.2f}x")  # fmt: skip
        print(f"  metrics alone, one process: pcatools {ours_one * 1000:.0f} ms per pair (every metric of the "
              f"paper) | ratio official / pcatools {theirs / ours_one:.2f}x")  # fmt: skip
        print(f"  Dice, FPV, FNV equal to the official approach on {len(merged)} pairs: {agree}")


if __name__ == "__main__":
    main()
