"""The paper's preprocessing and augmentation (2.3) as MONAI dictionary transforms, and their inversion.

Input dictionaries hold file paths under ``ct``, ``pet`` and ``label`` (a manifest row from
:func:`pcatools.data.discovery.discover_cases` has them). Output dictionaries hold

- ``image``: float32 ``(2, X, Y, Z)`` MetaTensor, channel 0 CT scaled to [0, 1], channel 1 PET in SUV;
- ``label``: float32 ``(1, X, Y, Z)`` MetaTensor with values 0/1.

The ``affine`` of each output MetaTensor maps its voxels to RAS mm, so the spacing of the result can
be read from it.

Pipeline, ``variant="paper"`` (the default, following the text of section 2.3):

1. ``LoadImaged`` (nibabel reader, channel first);
2. CT clipped to ``ct_range`` HU and scaled linearly to [0, 1] (``ScaleIntensityRanged`` with
   ``clip=True``: -1000 HU -> 0, 3000 HU -> 1); PET untouched (SUV); the paper clips and scales
   before resampling, and so do we;
3. optional ``ResampleToMatchd`` of CT onto the PET grid (``resample_ct=True``; outside the CT
   field of view CT becomes 0, i.e. -1000 HU);
4. ``Orientationd`` to RAS;
5. ``Spacingd`` to ``spacing`` mm (bilinear for CT and PET, nearest for the label);
6. training only: ``SpatialPadd`` to at least ``patch_size`` (zeros: air, no uptake, background);
   the crop-centre candidates, computed once per case and cached (``FgBgToIndicesd``: lesion
   voxels, and background voxels with PET > ``neg_pet_threshold``, i.e. inside the body, as the
   public code does with ``image_key="PT", image_threshold=0``; :class:`ThinIndicesd` keeps at
   most 200,000 evenly spaced ones); ``RandCropByPosNegLabeld`` (a patch centred on a foreground
   candidate with probability ``pos_fraction``, else on a background one);
7. ``ConcatItemsd`` of CT and PET to ``image``, CT and PET keys removed;
8. training only: ``RandAffined`` on ``image`` and ``label`` together (translation uniform in
   ``[-translate, translate]`` voxels, rotation uniform in ``[-rotate, rotate]`` rad, scale factor
   uniform in ``[1 - scale, 1 + scale]``, each drawn per axis -- the paper's "rotations of up to
   pi/15 and scaling by a factor of up to 1.1" read as MONAI's per-axis ranges; bilinear for the
   image, nearest for the label; zeros outside the patch). Joining CT and PET first resamples them
   in one call with the same affine, as before, at less cost.

``variant="reference-code"`` follows the public code (``get_train_transforms`` /
``get_valid_transforms`` in ``segmentation/initialize_train.py`` of
https://github.com/ObedDzik/pca_segment) where it differs from the text: all images are cropped
to the bounding box of CT > 0 HU (``CropForegroundd(source_key="CT")``, which keeps the region of
soft tissue and bone) and CT is min-max scaled per volume to [0, 1] (``ScaleIntensityd``) without
clipping, so a metal implant at 20000 HU squeezes all soft tissue into a narrow band. Both happen
before orientation and resampling, as there. (The public code also uses ``prob=0.5`` for the affine
and rotates about the last axis only; pass ``affine_prob=0.5`` for the former.)

The pipelines do not check that CT, PET and label share one grid: when the shapes after resampling
happen to agree, misaligned inputs are concatenated silently. Validate the files first with
:func:`pcatools.data.discovery.discover_cases` / :func:`~pcatools.data.io.load_case` (which name both
geometries), and pass ``resample_ct=True`` here when the manifest was built with it.

:func:`invert_to_original` takes a prediction made on the output of :func:`eval_transforms` back
onto the grid of the original files with MONAI's ``Invertd`` (nearest-neighbour for labels), as the
paper does before computing metrics (2.7).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    ConcatItemsd,
    CropForegroundd,
    DeleteItemsd,
    FgBgToIndicesd,
    Invertd,
    LoadImaged,
    MapTransform,
    Orientationd,
    RandAffined,
    RandCropByPosNegLabeld,
    ResampleToMatchd,
    ScaleIntensityd,
    ScaleIntensityRanged,
    Spacingd,
    SpatialPadd,
)

Variant = Literal["paper", "reference-code"]
"""Preprocessing of the paper's text or of its public code (``docs/conventions.md``)."""

KEYS: tuple[str, str, str] = ("ct", "pet", "label")
"""Dictionary keys of a case in the transforms: CT, PET and the label."""
IMAGE_KEYS: tuple[str, str] = ("ct", "pet")
"""The image keys (the label excluded): CT and PET."""
PAPER_SPACING: tuple[float, float, float] = (2.0, 2.0, 2.0)
"""The paper's voxel spacing in mm (2.3)."""
PAPER_PATCH: tuple[int, int, int] = (128, 128, 128)
"""The paper's training patch size in voxels."""
PAPER_CT_RANGE: tuple[float, float] = (-1000.0, 3000.0)
"""The paper's CT intensity window in HU, scaled to [0, 1] (2.3)."""
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def _without_gpu_codec_notices() -> Iterator[None]:
    """Silence MONAI's notices that the optional nvImageCodec DICOM decoder is absent.

    ``LoadImaged`` builds every MONAI reader, the DICOM one included, even when only
    ``NibabelReader`` is used, so each construction logs "nvImageCodec is not available" and warns
    that the decoder plugin did not register; neither concerns NIfTI reading.
    """
    logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    drop = _DropMessage("nvImageCodec is not available")
    logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register",
                category=UserWarning,
            )  # fmt: skip
            yield
    finally:
        logger.removeFilter(drop)


def _check_triple(value: Sequence[float], name: str, integer: bool = False) -> tuple[Any, Any, Any]:
    values = tuple(value)
    if len(values) != 3 or not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name}: expected three positive numbers (x, y, z), found {value!r}")
    if integer:
        if not all(float(v).is_integer() for v in values):
            raise ValueError(f"{name}: expected three positive integers (voxels), found {value!r}")
        return tuple(int(v) for v in values)  # type: ignore[return-value]
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def _check_common(spacing: Sequence[float], ct_range: Sequence[float], variant: str) -> tuple[Any, Any]:
    sp = _check_triple(spacing, "spacing")
    lo, hi = (float(v) for v in ct_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"ct_range: expected (low, high) HU with low < high, found {tuple(ct_range)}")
    if variant not in ("paper", "reference-code"):
        raise ValueError(f"variant: expected 'paper' or 'reference-code', found {variant!r}")
    return sp, (lo, hi)


def _preprocess(
    spacing: tuple[float, float, float],
    ct_range: tuple[float, float],
    variant: str,
    resample_ct: bool,
    allow_missing_label: bool,
) -> list[MapTransform]:
    """Steps 1-5 of the module docstring (shared by training and evaluation)."""
    keys = list(KEYS)
    missing = allow_missing_label
    with _without_gpu_codec_notices():
        load = LoadImaged(
            keys,
            reader="NibabelReader",
            ensure_channel_first=True,
            image_only=True,
            allow_missing_keys=missing,
        )
    steps: list[MapTransform] = [load]
    if variant == "paper":
        steps.append(
            ScaleIntensityRanged("ct", a_min=ct_range[0], a_max=ct_range[1], b_min=0.0, b_max=1.0, clip=True)
        )
        if resample_ct:
            steps.append(ResampleToMatchd("ct", key_dst="pet", mode="bilinear", padding_mode="zeros"))
    else:
        if resample_ct:
            steps.append(ResampleToMatchd("ct", key_dst="pet", mode="bilinear", padding_mode="border"))
        steps += [
            CropForegroundd(keys, source_key="ct", allow_smaller=True, allow_missing_keys=missing),
            ScaleIntensityd("ct", minv=0.0, maxv=1.0),
        ]
    steps += [
        Orientationd(keys, axcodes="RAS", labels=_RAS_LABELS, allow_missing_keys=missing),
        Spacingd(keys, pixdim=spacing, mode=("bilinear", "bilinear", "nearest"), allow_missing_keys=missing),
    ]
    return steps


MAX_CENTRE_CANDIDATES = 200_000
"""Most background (and foreground) patch-centre candidates kept per case, see :class:`ThinIndicesd`."""


class ThinIndicesd(MapTransform):
    """Keep at most ``max_n`` evenly spaced entries of 1-D index arrays, as int32 where they fit.

    Deterministic, so it belongs to the cached part of a pipeline: it makes the crop-centre
    candidates that ``FgBgToIndicesd`` computes once per case small (a whole-body background at
    2 mm has ~10^7 voxels, 80 MB of int64 per case, which ``RandCropByPosNegLabeld`` would also
    deep-copy into every patch). Every ``ceil(n / max_n)``-th candidate in memory order is a
    regular grid through the region, finer than the random affine's +-10-voxel translation.
    """

    def __init__(self, keys: Sequence[str], max_n: int = MAX_CENTRE_CANDIDATES) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.max_n = int(max_n)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            idx = np.asarray(d[key]).ravel()
            if idx.size > self.max_n:
                idx = idx[:: -(-idx.size // self.max_n)]
            d[key] = idx.astype(np.int32) if idx.size == 0 or idx.max() < 2**31 - 1 else idx
        return d


def _concat() -> list[MapTransform]:
    return [ConcatItemsd(list(IMAGE_KEYS), name="image", dim=0), DeleteItemsd(list(IMAGE_KEYS))]


def eval_transforms(
    spacing: Sequence[float] = PAPER_SPACING,
    ct_range: Sequence[float] = PAPER_CT_RANGE,
    variant: Variant = "paper",
    *,
    resample_ct: bool = False,
) -> Compose:
    """Validation / test / inference pipeline: load, CT scaling, RAS, resampling, concatenation.

    Parameters
    ----------
    spacing : three floats
        Target voxel spacing in mm (paper: 2 mm isotropic).
    ct_range : (low, high)
        CT window in HU clipped and mapped to [0, 1] (paper: [-1000, 3000]); unused by
        ``variant="reference-code"`` (per-volume min-max, no clipping).
    variant : {"paper", "reference-code"}
        See the module docstring.
    resample_ct : bool
        CT on another grid than PET: resample it onto PET first (as
        :func:`pcatools.data.io.load_case` with ``resample_ct=True``).

    Returns
    -------
    monai.transforms.Compose
        Input ``{"ct": path, "pet": path[, "label": path]}`` (the label is optional here), output
        ``{"image": (2, X, Y, Z)[, "label": (1, X, Y, Z)]}``.

    Examples
    --------
    >>> t = eval_transforms(spacing=(4.0, 4.0, 4.0))
    >>> [type(s).__name__ for s in t.transforms][:4]
    ['LoadImaged', 'ScaleIntensityRanged', 'Orientationd', 'Spacingd']
    """
    sp, ct = _check_common(spacing, ct_range, variant)
    return Compose([*_preprocess(sp, ct, variant, resample_ct, allow_missing_label=True), *_concat()])


def train_transforms(
    spacing: Sequence[float] = PAPER_SPACING,
    patch_size: Sequence[int] = PAPER_PATCH,
    pos_fraction: float = 0.8,
    num_samples: int = 1,
    translate: float = 10,
    rotate: float = math.pi / 15,
    scale: float = 0.1,
    affine_prob: float = 1.0,
    ct_range: Sequence[float] = PAPER_CT_RANGE,
    variant: Variant = "paper",
    *,
    neg_pet_threshold: float | None = 0.0,
    resample_ct: bool = False,
    seed: int | None = 0,
) -> Compose:
    """Training pipeline of the paper (2.3): preprocessing, foreground-biased crops, random affine.

    Parameters
    ----------
    spacing : three floats
        Target voxel spacing in mm (paper: 2 mm).
    patch_size : three ints
        Patch size in voxels (paper: 128^3). Volumes smaller than this are zero-padded first.
    pos_fraction : float in [0, 1]
        Probability that a patch is centred on a foreground voxel (paper: 0.8); the remaining
        patches are centred on background voxels.
    num_samples : int
        Patches drawn per volume (the pipeline then returns a list of that many dictionaries).
    translate : float
        Maximum translation in voxels per axis (paper: 10).
    rotate : float
        Maximum rotation in radians about each axis (paper: pi/15).
    scale : float
        Maximum relative scaling per axis (paper: 0.1, i.e. factors in [0.9, 1.1]).
    affine_prob : float
        Probability of applying the random affine (the paper's text implies 1; the public code 0.5).
    ct_range : (low, high)
        CT window in HU (paper: [-1000, 3000]).
    variant : {"paper", "reference-code"}
        See the module docstring.
    neg_pet_threshold : float or None
        Background patch centres are drawn among voxels with PET > this value (inside the body);
        None: among all background voxels.
    resample_ct : bool
        Resample CT onto the PET grid first.
    seed : int or None
        Seed of the random crops and affines (``Compose.set_random_state``); None leaves MONAI's
        global state.

    Returns
    -------
    monai.transforms.Compose
        Input ``{"ct", "pet", "label"}`` paths, output a list of ``num_samples`` dictionaries with
        ``image`` ``(2, *patch_size)`` and ``label`` ``(1, *patch_size)``.

    Examples
    --------
    >>> t = train_transforms(spacing=(4.0, 4.0, 4.0), patch_size=(16, 16, 16))
    >>> [type(s).__name__ for s in t.transforms][-7:-2]
    ['FgBgToIndicesd', 'ThinIndicesd', 'RandCropByPosNegLabeld', 'DeleteItemsd', 'ConcatItemsd']
    """
    sp, ct = _check_common(spacing, ct_range, variant)
    patch = _check_triple(patch_size, "patch_size", integer=True)
    if not 0.0 <= pos_fraction <= 1.0:
        raise ValueError(f"pos_fraction: expected a probability in [0, 1], found {pos_fraction!r}")
    if not 0.0 <= affine_prob <= 1.0:
        raise ValueError(f"affine_prob: expected a probability in [0, 1], found {affine_prob!r}")
    if int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples: expected an integer >= 1, found {num_samples!r}")
    for name, value in (("translate", translate), ("rotate", rotate), ("scale", scale)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, found {value!r}")
    if scale >= 1:
        raise ValueError(
            f"scale: expected < 1 (factors 1 - scale .. 1 + scale must stay positive), found {scale!r}"
        )

    keys = list(KEYS)
    steps = [
        *_preprocess(sp, ct, variant, resample_ct, allow_missing_label=False),
        SpatialPadd(keys, spatial_size=patch, mode="constant"),
        # crop-centre candidates computed once per case (cached), not at every draw
        FgBgToIndicesd(
            "label",
            fg_postfix="_fg",
            bg_postfix="_bg",
            image_key="pet" if neg_pet_threshold is not None else None,
            image_threshold=float(neg_pet_threshold or 0.0),
        ),
        ThinIndicesd(["label_fg", "label_bg"]),
        RandCropByPosNegLabeld(
            keys,
            label_key="label",
            spatial_size=patch,
            pos=float(pos_fraction),
            neg=1.0 - float(pos_fraction),
            num_samples=int(num_samples),
            fg_indices_key="label_fg",
            bg_indices_key="label_bg",
        ),
        DeleteItemsd(["label_fg", "label_bg"]),
        # CT and PET joined first: one two-channel resampling instead of two (same affine for all)
        *_concat(),
        RandAffined(
            ["image", "label"],
            prob=float(affine_prob),
            translate_range=(float(translate),) * 3,
            rotate_range=(float(rotate),) * 3,
            scale_range=(float(scale),) * 3,
            mode=("bilinear", "nearest"),
            padding_mode="zeros",
        ),
    ]
    compose = Compose(steps)
    if seed is not None:
        compose.set_random_state(seed=seed)
    return compose


def invert_to_original(
    data: Mapping[Hashable, Any],
    transform: Compose,
    keys: str | Sequence[str] = "pred",
    nearest: bool | Sequence[bool] = True,
) -> dict[Hashable, Any]:
    """Take predictions made on an :func:`eval_transforms` output back onto the original file's grid.

    Parameters
    ----------
    data : mapping
        The dictionary returned by ``transform`` (holding ``image``, and ``label`` if given) plus the
        prediction(s) under ``keys``: tensors ``(C, X, Y, Z)`` on the same grid as ``image``.
    transform : Compose
        The :func:`eval_transforms` pipeline that produced ``data``.
    keys : str or sequence of str
        Keys to invert (default ``"pred"``).
    nearest : bool or sequence of bool
        Nearest-neighbour interpolation (True, for label maps) or the forward modes (False, e.g.
        bilinear for probabilities), per key.

    Returns
    -------
    dict
        ``data`` with each key in ``keys`` replaced by a MetaTensor ``(C, *original_shape)`` whose
        ``affine`` is the original file's (MONAI ``Invertd`` undoes resampling, reorientation and,
        for ``variant="reference-code"``, the foreground crop).
    """
    key_list = [keys] if isinstance(keys, str) else list(keys)
    d: dict[Hashable, Any] = dict(data)
    missing = [k for k in key_list if k not in d]
    if missing:
        raise KeyError(f"invert_to_original: keys {missing} not in data (found {sorted(map(str, d))})")
    reference = d.get("label") if isinstance(d.get("label"), MetaTensor) else d.get("image")
    if not isinstance(reference, MetaTensor) or not reference.applied_operations:
        raise ValueError(
            "invert_to_original: expected the output of eval_transforms (a MetaTensor 'image' or 'label' "
            "carrying its applied transforms)"
        )
    # Invertd replays the inverse on the key it is told the history belongs to; the spatial steps act
    # on ct/pet/label, and 'pet' had the same spatial history as 'image' and 'label'
    inverted: dict[Hashable, Any] = {}
    for key in key_list:
        pred = d[key]
        if not isinstance(pred, torch.Tensor):
            pred = torch.as_tensor(pred)
        work: dict[Hashable, Any] = {"pet": reference, key: pred}
        out = Invertd(
            keys=key, transform=transform, orig_keys="pet", nearest_interp=_pick(nearest, key_list, key)
        )(work)
        inverted[key] = out[key]
    d.update(inverted)
    return d


def _pick(values: bool | Sequence[bool], keys: list[str], key: str) -> bool:
    if isinstance(values, bool):
        return values
    seq = list(values)
    if len(seq) != len(keys):
        raise ValueError(f"nearest: expected one bool per key ({len(keys)}), found {len(seq)}")
    return bool(seq[keys.index(key)])
