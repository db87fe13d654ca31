"""The paper's MONAI preprocessing / augmentation / inversion (issue 2, item 6; paper 2.3).

Small volumes (at most 40^3 at 3-4 mm) and small patches keep this fast; the defaults of the
paper (2 mm, 128^3) are the functions' defaults and are exercised where cheap.
"""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from pcatools.data.transforms import eval_transforms, invert_to_original, train_transforms


def grid(spacing: tuple[float, float, float], flip: bool = False) -> np.ndarray:
    a = np.diag([*spacing, 1.0])
    if flip:  # LPS storage order, as DICOM-derived NIfTI often is
        a[0, 0], a[1, 1] = -a[0, 0], -a[1, 1]
    a[:3, 3] = (12.0, -30.0, 5.0)
    return a


def write(
    tmp: Path, aff: np.ndarray, pet: np.ndarray, ct: np.ndarray, label: np.ndarray | None = None
) -> dict[str, str]:
    paths = {}
    arrays = {"pet": pet.astype(np.float32), "ct": ct.astype(np.float32)}
    if label is not None:
        arrays["label"] = label.astype(np.uint8)
    for key, arr in arrays.items():
        path = tmp / f"{key}.nii.gz"
        nib.save(nib.Nifti1Image(arr, aff), path)
        paths[key] = str(path)
    return paths


def spacing_of(t: torch.Tensor) -> np.ndarray:
    return np.linalg.norm(np.asarray(t.affine)[:3, :3], axis=0)  # type: ignore[attr-defined]


def world(aff: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    return ijk @ aff[:3, :3].T + aff[:3, 3]


def block_case(
    tmp: Path, shape=(16, 16, 16), spacing=(4.0, 4.0, 4.0), flip=False
) -> tuple[dict[str, str], np.ndarray]:
    label = np.zeros(shape, np.uint8)
    label[4:12, 3:11, 5:13] = 1
    pet = np.where(label > 0, 6.0, 1.0)
    ct = np.full(shape, 40.0)
    return write(tmp, grid(spacing, flip), pet, ct, label), label


# ------------------------------------------------------------------------------------------ evaluation


def test_eval_default_is_2mm_ras(tmp_path: Path) -> None:
    paths, _ = block_case(tmp_path)
    out = eval_transforms()(paths)
    image, label = out["image"], out["label"]
    assert image.shape == (2, 31, 31, 31) and label.shape == (1, 31, 31, 31)  # (16 - 1) * 4 / 2 + 1
    assert image.dtype == torch.float32
    np.testing.assert_allclose(spacing_of(image), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(spacing_of(label), [2.0, 2.0, 2.0])
    assert set(out) == {"image", "label"}


def test_eval_anisotropic_input_gives_requested_spacing(tmp_path: Path) -> None:
    # the paper's PET voxels: 3.64 x 3.64 mm in plane, 5 mm slices (here made up)
    paths, _ = block_case(tmp_path, spacing=(3.64, 3.64, 5.0))
    out = eval_transforms(spacing=(4.0, 4.0, 4.0))(paths)
    np.testing.assert_allclose(spacing_of(out["image"]), [4.0, 4.0, 4.0])
    assert tuple(out["image"].shape[1:]) == (15, 15, 20)  # ceil((n - 1) * s / 4) + 1: covers the input extent


def test_ct_clipped_to_window_and_scaled_to_unit_range(tmp_path: Path) -> None:
    shape = (20, 6, 6)
    ct = np.empty(shape)
    for i, hu in enumerate([-3000.0, -1000.0, 1000.0, 3000.0, 9000.0]):
        ct[4 * i : 4 * i + 4] = hu
    paths = write(tmp_path, grid((4.0, 4.0, 4.0)), np.ones(shape), ct, np.zeros(shape))
    out = eval_transforms(spacing=(4.0, 4.0, 4.0))(paths)["image"][0].numpy()
    np.testing.assert_allclose(out[[1, 5, 9, 13, 17], 2, 2], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    # with resampling (bilinear between slabs) everything stays in [0, 1]
    resampled = eval_transforms(spacing=(1.5, 1.5, 1.5))(paths)["image"][0]
    assert float(resampled.min()) == 0.0 and float(resampled.max()) == 1.0
    # another window: (-100, 100) HU maps 1000 HU to 1 and -1000 HU to 0
    narrow = eval_transforms(spacing=(4.0, 4.0, 4.0), ct_range=(-100.0, 100.0))(paths)["image"][0].numpy()
    np.testing.assert_allclose(narrow[[5, 9], 2, 2], [0.0, 1.0])


def test_suv_values_preserved_in_a_constant_region(tmp_path: Path) -> None:
    shape = (20, 20, 20)
    aff = grid((3.0, 3.0, 3.0))
    pet = np.full(shape, 0.3)
    pet[4:16, 4:16, 4:16] = 7.25
    paths = write(tmp_path, aff, pet, np.zeros(shape), np.zeros(shape))
    out = eval_transforms(spacing=(2.0, 2.0, 2.0))(paths)["image"]
    suv = out[1].numpy()
    out_aff = np.asarray(out.affine)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in suv.shape], indexing="ij"), -1).reshape(-1, 3)
    src = world(np.linalg.inv(aff), world(out_aff, ijk))  # continuous input voxel index of each output voxel
    inside = np.all((src >= 4.0) & (src <= 15.0), axis=1)
    background = np.all((src <= 2.9) | (src >= 16.1), axis=1) & np.all((src >= 0) & (src <= 19), axis=1)
    assert inside.sum() > 3000
    np.testing.assert_allclose(suv.reshape(-1)[inside], 7.25, rtol=1e-6)
    np.testing.assert_allclose(suv.reshape(-1)[background], 0.3, rtol=1e-6)


def test_orientation_to_ras_keeps_world_positions(tmp_path: Path) -> None:
    paths, label = block_case(tmp_path, flip=True)
    out = eval_transforms(spacing=(4.0, 4.0, 4.0))(paths)["label"]
    out_aff = np.asarray(out.affine)
    assert np.all(np.diag(out_aff)[:3] > 0)  # RAS
    before = world(grid((4.0, 4.0, 4.0), flip=True), np.argwhere(label)).mean(axis=0)
    after = world(out_aff, np.argwhere(out[0].numpy() > 0)).mean(axis=0)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert int(out.sum()) == int(label.sum())


# ------------------------------------------------------------------------------------------- training


def test_train_patch_shape_and_padding_of_small_volumes(tmp_path: Path) -> None:
    paths, _ = block_case(tmp_path, shape=(12, 12, 12))
    samples = train_transforms(spacing=(4.0, 4.0, 4.0), patch_size=(16, 16, 16), num_samples=3)(paths)
    assert len(samples) == 3
    for s in samples:
        assert s["image"].shape == (2, 16, 16, 16) and s["label"].shape == (1, 16, 16, 16)
        assert s["image"].dtype == torch.float32
        assert set(torch.unique(s["label"]).tolist()) <= {0.0, 1.0}
        assert float(s["image"][0].min()) >= 0.0 and float(s["image"][0].max()) <= 1.0
    # without the affine, a 12^3 volume padded to 16^3: 2 voxels of zeros on each side
    plain = train_transforms(spacing=(4.0, 4.0, 4.0), patch_size=(16, 16, 16), affine_prob=0.0)(paths)[0]
    assert (
        float(plain["image"][1, :2].abs().sum()) == 0.0
        and float(plain["image"][1, 2:14, 2:14, 2:14].min()) == 1.0
    )


def _foreground_share(tmp_path: Path, pos_fraction: float, draws: int = 200) -> float:
    shape = (40, 40, 40)
    label = np.zeros(shape, np.uint8)
    label[20:22, 20:22, 20:22] = 1  # one 8-voxel lesion
    paths = write(tmp_path, grid((4.0, 4.0, 4.0)), np.ones(shape), np.zeros(shape), label)
    t = train_transforms(
        spacing=(4.0, 4.0, 4.0),
        patch_size=(8, 8, 8),
        pos_fraction=pos_fraction,
        num_samples=draws,
        affine_prob=0.0,
        seed=0,
    )
    samples = t(paths)
    assert len(samples) == draws
    return float(np.mean([float(s["label"].max()) for s in samples]))


def test_about_80_percent_of_patches_contain_foreground(tmp_path: Path) -> None:
    # a background-centred 8^3 patch overlaps the lesion with probability ~ (9/32)^3 = 2 %,
    # so the expected share is 0.8 + 0.2 * 0.02 = 0.804; binomial sd over 200 draws = 0.028
    share = _foreground_share(tmp_path, 0.8)
    assert 0.72 <= share <= 0.89
    assert _foreground_share(tmp_path, 1.0) == 1.0
    assert _foreground_share(tmp_path, 0.0) < 0.1


def test_random_affine_with_zero_ranges_is_identity(tmp_path: Path) -> None:
    paths, _ = block_case(tmp_path)
    kw = {"spacing": (4.0, 4.0, 4.0), "patch_size": (8, 8, 8), "seed": 3}
    plain = train_transforms(affine_prob=0.0, **kw)(paths)[0]  # type: ignore[arg-type]
    ident = train_transforms(affine_prob=1.0, translate=0, rotate=0.0, scale=0.0, **kw)(paths)[0]  # type: ignore[arg-type]
    torch.testing.assert_close(ident["image"].as_tensor(), plain["image"].as_tensor(), atol=1e-5, rtol=0)
    torch.testing.assert_close(ident["label"].as_tensor(), plain["label"].as_tensor())


def test_random_translation_moves_label_by_at_most_translate(tmp_path: Path) -> None:
    paths, _ = block_case(tmp_path, shape=(24, 24, 24))
    kw = {
        "spacing": (4.0, 4.0, 4.0),
        "patch_size": (24, 24, 24),
        "num_samples": 20,
        "pos_fraction": 1.0,
        "seed": 4,
    }
    plain = train_transforms(affine_prob=0.0, **kw)(paths)  # type: ignore[arg-type]
    moved = train_transforms(affine_prob=1.0, translate=3, rotate=0.0, scale=0.0, **kw)(paths)  # type: ignore[arg-type]
    shifts = []
    for a, b in zip(plain, moved, strict=True):
        assert set(torch.unique(b["label"]).tolist()) <= {0.0, 1.0}  # nearest for the label
        ca = np.argwhere(a["label"][0].numpy() > 0).mean(axis=0)
        cb = np.argwhere(b["label"][0].numpy() > 0).mean(axis=0)
        shifts.append(np.abs(cb - ca))
    shifts_arr = np.array(shifts)
    assert shifts_arr.max() <= 3.5 and shifts_arr.max() > 0.5


def test_training_is_seeded(tmp_path: Path) -> None:
    paths, _ = block_case(tmp_path)
    kw = {"spacing": (4.0, 4.0, 4.0), "patch_size": (8, 8, 8), "num_samples": 4}
    a = train_transforms(seed=5, **kw)(paths)  # type: ignore[arg-type]
    b = train_transforms(seed=5, **kw)(paths)  # type: ignore[arg-type]
    c = train_transforms(seed=6, **kw)(paths)  # type: ignore[arg-type]
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x["image"], y["image"]) for x, y in zip(a, c, strict=True))


# ------------------------------------------------------------------------------------------- inversion


def test_inversion_round_trip_onto_the_original_grid(tmp_path: Path) -> None:
    paths, label = block_case(tmp_path, shape=(20, 18, 12), spacing=(4.0, 4.0, 5.0), flip=True)
    t = eval_transforms(spacing=(2.0, 2.0, 2.0))
    out = t(paths)
    assert out["label"].shape[1:] != label.shape
    out["pred"] = out["label"].clone()
    back = invert_to_original(out, t)["pred"]
    assert tuple(back.shape) == (1, *label.shape)
    np.testing.assert_allclose(np.asarray(back.affine), grid((4.0, 4.0, 5.0), flip=True))
    np.testing.assert_array_equal(back[0].numpy(), label)

    # without a label (inference on images only): the history of 'image' is used
    out.pop("label")
    out["pred"] = out["image"][1:2] > 3.0  # the PET block (6 SUV inside, 1 outside)
    back = invert_to_original(out, t)["pred"]
    np.testing.assert_array_equal(back[0].numpy() > 0.5, label > 0)

    # probabilities inverted with the forward (bilinear) modes: the block interior keeps its value
    out["prob"] = out["image"][1:2] / 6.0
    probs = invert_to_original(out, t, keys=["prob"], nearest=False)["prob"][0].numpy()
    assert probs.shape == label.shape and probs.min() >= 1 / 6 - 1e-6 and probs.max() <= 1 + 1e-6
    np.testing.assert_allclose(probs[binary_erosion(label)], 1.0, atol=1e-6)


def test_invert_needs_eval_output(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected the output of eval_transforms"):
        invert_to_original(
            {"image": torch.zeros(2, 4, 4, 4), "pred": torch.zeros(1, 4, 4, 4)}, eval_transforms()
        )
    with pytest.raises(KeyError, match=r"keys \['pred'\] not in data"):
        invert_to_original({"image": torch.zeros(2, 4, 4, 4)}, eval_transforms())


# ------------------------------------------------------------------------------- variants and options


def test_reference_code_variant_crops_to_ct_foreground_and_min_max_scales(tmp_path: Path) -> None:
    shape = (16, 12, 10)
    ct = np.full(shape, -1000.0)
    ct[3:13, 2:10, 1:9] = 1000.0  # the "body"
    ct[5, 5, 5] = 9000.0  # metal: max of the min-max scaling
    ct[4, 4, 4] = -500.0  # lung inside the body: min of the min-max scaling (the crop drops the -1000 air)
    label = np.zeros(shape)
    label[6:9, 4:7, 3:6] = 1
    paths = write(tmp_path, grid((4.0, 4.0, 4.0)), np.ones(shape), ct, label)
    t = eval_transforms(spacing=(4.0, 4.0, 4.0), variant="reference-code")
    out = t(paths)
    assert tuple(out["image"].shape[1:]) == (10, 8, 8)  # the bounding box of CT > 0
    np.testing.assert_allclose(
        np.asarray(out["image"].affine)[:3, 3], world(grid((4.0, 4.0, 4.0)), np.array([3, 2, 1]))
    )
    ct_out = out["image"][0].numpy()
    np.testing.assert_allclose(ct_out[2, 3, 4], 1.0)  # 9000 HU
    np.testing.assert_allclose(ct_out[1, 2, 3], 0.0)  # -500 HU
    np.testing.assert_allclose(
        ct_out[0, 0, 0], 1500.0 / 9500.0, rtol=1e-6
    )  # 1000 HU: (1000 + 500) / (9000 + 500)
    # the paper's variant clips instead: 1000 HU -> 0.5, and keeps the whole volume
    paper = eval_transforms(spacing=(4.0, 4.0, 4.0))(paths)["image"]
    assert tuple(paper.shape[1:]) == shape and float(paper[0, 3, 2, 1]) == pytest.approx(0.5)
    # the crop is undone by the inversion
    out["pred"] = out["label"].clone()
    back = invert_to_original(out, t)["pred"]
    assert tuple(back.shape[1:]) == shape
    np.testing.assert_array_equal(back[0].numpy(), label)


def test_resample_ct_option(tmp_path: Path) -> None:
    shape = (10, 10, 10)
    paths = write(tmp_path, grid((4.0, 4.0, 4.0)), np.ones(shape), np.zeros(shape), np.zeros(shape))
    ct = np.full((30, 30, 30), -1000.0, np.float32)
    ct[:16, :16, :16] = 1000.0  # 0 .. 30 mm from the origin along each axis
    nib.save(nib.Nifti1Image(ct, grid((2.0, 2.0, 2.0))), paths["ct"])
    with pytest.raises(RuntimeError):
        eval_transforms(spacing=(4.0, 4.0, 4.0))(paths)  # CT and PET grids differ: concatenation fails
    out = eval_transforms(spacing=(4.0, 4.0, 4.0), resample_ct=True)(paths)["image"]
    assert tuple(out.shape) == (2, 10, 10, 10)
    np.testing.assert_allclose(out[0, :7, :7, :7].numpy(), 0.5, atol=1e-6)  # 1000 HU at 0 .. 24 mm
    np.testing.assert_allclose(out[0, 8:, 8:, 8:].numpy(), 0.0, atol=1e-6)  # -1000 HU at 32 .. 36 mm


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spacing": (2.0, 2.0)}, r"spacing: expected three positive numbers"),
        ({"spacing": (2.0, 0.0, 2.0)}, r"spacing: expected three positive numbers"),
        ({"ct_range": (3000.0, -1000.0)}, r"ct_range: expected \(low, high\) HU with low < high"),
        ({"variant": "nnunet"}, r"variant: expected 'paper' or 'reference-code'"),
        ({"patch_size": (128, 128, 12.5)}, r"patch_size: expected three positive integers"),
        ({"pos_fraction": 1.2}, r"pos_fraction: expected a probability in \[0, 1\]"),
        ({"scale": 1.0}, r"scale: expected < 1"),
        ({"rotate": -math.pi}, r"rotate: expected a finite number >= 0"),
        ({"num_samples": 0}, r"num_samples: expected an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train_transforms(**kwargs)


def test_cached_case_is_not_changed_by_draws_without_copy(tmp_path: Path) -> None:
    """The training loop caches with ``copy_cache=False``: no random transform may write into the cache."""
    from monai.data import CacheDataset

    paths, _ = block_case(tmp_path, shape=(20, 20, 20))
    t = train_transforms(spacing=(4.0, 4.0, 4.0), patch_size=(8, 8, 8), num_samples=2, seed=0)
    ds = CacheDataset([paths], transform=t, cache_rate=1.0, progress=False, copy_cache=False)
    cached = ds._cache[0]
    before = {
        k: (v.clone() if isinstance(v, torch.Tensor) else np.array(v, copy=True)) for k, v in cached.items()
    }
    for _ in range(5):
        ds[0]
    for k, v in before.items():
        now = cached[k]
        assert torch.equal(now, v) if isinstance(v, torch.Tensor) else np.array_equal(now, v), k


def test_crop_centre_candidates_are_cached_and_thinned(tmp_path: Path) -> None:
    from pcatools.data.transforms import ThinIndicesd

    paths, label = block_case(tmp_path, shape=(20, 20, 20))
    t = train_transforms(spacing=(4.0, 4.0, 4.0), patch_size=(8, 8, 8), seed=0)
    cached = t.transforms[: t.get_index_of_first(lambda x: hasattr(x, "R"))]
    from monai.transforms import Compose

    d = Compose(cached)(paths)
    fg, bg = d["label_fg"], d["label_bg"]
    assert fg.dtype == np.int32 and len(fg) == int(label.sum())  # every lesion voxel
    assert len(bg) == 20**3 - int(label.sum())  # PET > 0 everywhere in this case
    thin = ThinIndicesd(["i"], max_n=1000)({"i": np.arange(10_001, dtype=np.int64)})["i"]
    # every ceil(10001 / 1000) = 11th index: 910 of them, never more than max_n
    assert thin.dtype == np.int32 and len(thin) == 910 and thin[0] == 0 and np.all(np.diff(thin) == 11)
