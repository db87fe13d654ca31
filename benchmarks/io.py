"""Reading scans: pcatools' checked loaders against plain SimpleITK / nibabel reading of the same files.

Measured, in one run:

* ``dicom_pet_to_suv``: ``pcatools.data.dicom_pet_to_suv(series)`` (pydicom headers, slice sorting
  along the normal, per-slice rescale, SUVbw factor, RAS affine) against SimpleITK's
  ``ImageSeriesReader`` reading the same series (GDCM file ordering, rescale slope/intercept, no
  SUV) followed by ``GetArrayFromImage``. Default series: ``../shared/data/suv-dro/DRO_0_0/PT``
  (``--dicom`` for another; skipped where it is absent).
* ``load_case``: ``pcatools.data.io.load_case`` of one case (three ``.nii.gz`` files: read,
  NaN/inf check of CT and PET, 0/1 check of the label, grid comparison) against plain nibabel
  reading of the same three files (``np.asanyarray(nib.load(p).dataobj)``). The case is generated
  in a temporary folder with ``pcatools.data.write_case``: a body-shaped cylinder of ``--shape``
  voxels (default 192 x 192 x 256, the paper's PET matrix) at 3.64 x 3.64 x 3.27 mm with noisy
  uptake and 5 lesions, seeded, so that compression is realistic.

Time: wall time of one call. The pcatools function and its peer run round-robin for
``--repeats`` rounds (so that load from other processes on a shared machine hits both alike) after
one untimed warm-up call each (imports, file cache); the median and the range are reported.
Ratio = median pcatools time / median peer time (the price of the checks and the SUV conversion).

Run: ``python benchmarks/io.py [--repeats 5] [--shape 192 192 256] [--dicom DIR]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from pcatools.data.case import Case, write_case  # noqa: E402
from pcatools.data.io import load_case  # noqa: E402

DEFAULT_DICOM = REPO.parent / "shared" / "data" / "suv-dro" / "DRO_0_0" / "PT"


def synthetic_case(shape: tuple[int, int, int], seed: int = 0) -> Case:
    """A body-like PET/CT case: cylinder of soft tissue with noisy uptake and 5 spherical lesions."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    body = ((x / 0.8) ** 2 + (y / 0.6) ** 2 <= 1.0)[:, :, None] & np.ones(shape[2], bool)[None, None, :]
    pet = np.where(body, rng.gamma(4.0, 0.25, shape), 0.0).astype(np.float32)
    ct = np.where(body, rng.normal(40.0, 20.0, shape), -1000.0).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    grid = np.indices(shape, sparse=True)
    for _ in range(5):
        centre = [rng.integers(n // 4, 3 * n // 4) for n in shape]
        ball = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= 16
        label[ball] = 1
        pet[ball] += 8.0
    affine = np.diag([3.64, 3.64, 3.27, 1.0])
    return Case("bench", pet, ct, label, affine)


def sitk_series(directory: Path) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(directory)))
    return sitk.GetArrayFromImage(reader.Execute())


def nibabel_three(paths: dict[str, Path]) -> list[np.ndarray]:
    return [np.asanyarray(nib.load(str(paths[k])).dataobj) for k in ("ct", "pet", "label")]  # type: ignore[attr-defined]


def compare(
    name: str, ours: Callable[[], object], peer: Callable[[], object], peer_name: str, repeats: int
) -> None:
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    ours()
    peer()
    for _ in range(repeats):
        for key, fn in (("ours", ours), ("peer", peer)):
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"{name:<18} {med['ours'] * 1e3:9.1f} ms  [{min(times['ours']) * 1e3:.1f} .. {max(times['ours']) * 1e3:.1f}]"
    )
    print(
        f"{peer_name:<18} {med['peer'] * 1e3:9.1f} ms  [{min(times['peer']) * 1e3:.1f} .. {max(times['peer']) * 1e3:.1f}]"
    )
    print(f"{'ratio':<18} {med['ours'] / med['peer']:9.2f} x  ({name} / {peer_name})\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shape", type=int, nargs=3, default=(192, 192, 256))
    parser.add_argument("--dicom", type=Path, default=DEFAULT_DICOM)
    args = parser.parse_args(argv)

    print(f"repeats: {args.repeats} (median [min .. max] per call)\n")
    if args.dicom.is_dir():
        try:
            from pcatools.data.dicom.suv import dicom_pet_to_suv
        except ImportError as err:  # the SUV module is written separately
            print(f"dicom_pet_to_suv: skipped, pcatools.data.dicom.suv not importable ({err})\n")
        else:
            n = len([p for p in args.dicom.iterdir() if p.is_file()])
            shape = dicom_pet_to_suv(args.dicom).shape
            print(f"DICOM PET series {args.dicom} ({n} files, volume {shape})")
            compare(
                "dicom_pet_to_suv",
                lambda: dicom_pet_to_suv(args.dicom),
                lambda: sitk_series(args.dicom),
                "sitk SeriesReader",
                args.repeats,
            )
    else:
        print(f"dicom_pet_to_suv: skipped, no DICOM series at {args.dicom}\n")

    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_case(synthetic_case(shape), tmp, "flat")
        size_mb = sum(p.stat().st_size for p in paths.values()) / 2**20
        print(f"NIfTI case {shape} voxels, CT + PET float32 + label uint8, {size_mb:.1f} MiB gzipped")
        compare(
            "load_case",
            lambda: load_case(paths),
            lambda: nibabel_three(paths),
            "nibabel x3",
            args.repeats,
        )


if __name__ == "__main__":
    main()
