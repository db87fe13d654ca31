"""Prediction (paper section 2.7): sliding window, argmax, and the mask back on the ORIGINAL grid.

The paper predicts whole-body PET/CT with a sliding window of 128^3 voxels (at the 2 mm training
spacing) and resamples the predictions "to the coordinates of the original ground truth masks".
Here:

1. the case is preprocessed by the evaluation pipeline
   (:func:`pcatools.data.transforms.eval_transforms`: RAS orientation, resampling to the
   training spacing, CT clip and scaling, channels CT, PET);
2. :func:`monai.inferers.sliding_window_inference` computes the logits (window ``roi_size``,
   ``overlap``, ``"gaussian"`` or ``"constant"`` blending, ``sw_batch_size`` windows per forward
   pass; the public code used MONAI's defaults, 0.25 and ``constant``; Gaussian blending is the
   default here as it removes seams between windows);
3. the argmax over the two classes gives the label map on the training grid;
4. :func:`pcatools.data.transforms.invert_to_original` inverts the evaluation pipeline (MONAI
   ``Invertd``, nearest-neighbour for labels) onto the PET's original grid;
5. the mask is written as uint8 NIfTI with the PET's affine; on request (``save_probs``) the
   foreground probability map too, float32 on the same grid (``<case_id>_probs.nii.gz``), for
   the viewer's L1 layers.

Reading chosen where the paper is vague: the argmax is taken on the training grid and the
label map is resampled with nearest neighbour (the public code inverts the logits with
linear interpolation and takes the argmax after; both agree where the grids coincide).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = [
    "PROBS_SUFFIX",
    "load_model",
    "predict_case",
    "predict_manifest",
    "probs_path",
    "sliding_window_logits",
]

_MODES = ("gaussian", "constant")
PROBS_SUFFIX = "_probs"
"""Added to the case id for the probability map beside a mask: ``<case_id>_probs.nii.gz``."""


def probs_path(mask_path: str | os.PathLike[str]) -> Path:
    """Where :func:`predict_manifest` puts the probability map of the mask ``mask_path``.

    Examples
    --------
    >>> probs_path("pred/PSMA_0001.nii.gz").as_posix()
    'pred/PSMA_0001_probs.nii.gz'
    """
    p = Path(mask_path)
    if not p.name.endswith(".nii.gz"):
        raise ValueError(f"probs_path: expected a mask path ending in .nii.gz, found {p}")
    return p.with_name(p.name[: -len(".nii.gz")] + PROBS_SUFFIX + ".nii.gz")


def _check_sw(roi_size: Sequence[int], overlap: float, mode: str, sw_batch_size: int) -> tuple[int, ...]:
    roi = tuple(int(r) for r in roi_size)
    if len(roi) != 3 or any(r < 1 for r in roi):
        raise ValueError(f"roi_size must be 3 positive integers (x, y, z), got {tuple(roi_size)}")
    if not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if int(sw_batch_size) < 1:
        raise ValueError(f"sw_batch_size must be >= 1, got {sw_batch_size}")
    return roi


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def sliding_window_logits(
    model: nn.Module,
    image: torch.Tensor,
    roi_size: Sequence[int] = (128, 128, 128),
    overlap: float = 0.25,
    mode: str = "gaussian",
    sw_batch_size: int = 4,
    device: str | torch.device | None = None,
    amp: bool | None = None,
) -> torch.Tensor:
    """Logits ``(B, C, X, Y, Z)`` of ``model`` over a whole image ``(B, 2, X, Y, Z)`` by sliding window.

    The model is put in eval mode; no gradients. ``amp=None`` uses float16 autocast on CUDA.
    Returns float32 logits on ``device``.

    Examples
    --------
    >>> net = nn.Conv3d(2, 2, 1)
    >>> sliding_window_logits(net, torch.zeros(1, 2, 20, 20, 9), roi_size=(8, 8, 8)).shape
    torch.Size([1, 2, 20, 20, 9])
    """
    from monai.inferers import sliding_window_inference

    roi = _check_sw(roi_size, overlap, mode, sw_batch_size)
    if image.ndim != 5:
        raise ValueError(f"image must be (B, C, X, Y, Z), found shape {tuple(image.shape)}")
    dev = _device(device)
    use_amp = dev.type == "cuda" if amp is None else bool(amp)
    model = model.to(dev).eval()
    x = image.as_tensor() if hasattr(image, "as_tensor") else image
    with (
        torch.no_grad(),
        torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp and dev.type == "cuda"),
    ):
        out = sliding_window_inference(
            x.to(dev), roi, int(sw_batch_size), model, overlap=float(overlap), mode=mode
        )
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return one tensor of logits, found {type(out).__name__}")
    logits = out.as_tensor() if hasattr(out, "as_tensor") else out
    return logits.float()


def _case_files(paths_or_row: Mapping[str, Any] | pd.Series | Any) -> dict[str, str]:
    getter = (
        paths_or_row.get if hasattr(paths_or_row, "get") else lambda k, d=None: getattr(paths_or_row, k, d)
    )
    files: dict[str, str] = {}
    for key in ("ct", "pet"):
        value = getter(key, None)
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == "":
            raise ValueError(f"predict_case needs a {key!r} path, found {value!r}")
        if not os.path.isfile(str(value)):
            raise FileNotFoundError(f"{key.upper()} image {value} does not exist")
        files[key] = str(value)
    label = getter("label", None)
    if isinstance(label, str | os.PathLike) and str(label) and os.path.isfile(str(label)):
        files["label"] = str(label)
    return files


@overload
def predict_case(
    model: nn.Module,
    paths_or_row: Mapping[str, Any] | pd.Series | Any,
    transform: Any = ...,
    roi_size: Sequence[int] = ...,
    overlap: float = ...,
    mode: str = ...,
    sw_batch_size: int = ...,
    device: str | torch.device | None = ...,
    amp: bool | None = ...,
    return_probs: Literal[False] = ...,
) -> nib.Nifti1Image: ...


@overload
def predict_case(
    model: nn.Module,
    paths_or_row: Mapping[str, Any] | pd.Series | Any,
    transform: Any = ...,
    roi_size: Sequence[int] = ...,
    overlap: float = ...,
    mode: str = ...,
    sw_batch_size: int = ...,
    device: str | torch.device | None = ...,
    amp: bool | None = ...,
    *,
    return_probs: Literal[True],
) -> tuple[nib.Nifti1Image, nib.Nifti1Image]: ...


def predict_case(
    model: nn.Module,
    paths_or_row: Mapping[str, Any] | pd.Series | Any,
    transform: Any = None,
    roi_size: Sequence[int] = (128, 128, 128),
    overlap: float = 0.25,
    mode: str = "gaussian",
    sw_batch_size: int = 4,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    return_probs: bool = False,
) -> nib.Nifti1Image | tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """Predict one case and return the lesion mask on the PET's original grid.

    Parameters
    ----------
    model
        A network from :func:`pcatools.models.build_model` (or :func:`load_model`).
    paths_or_row
        ``{"ct": path, "pet": path[, "label": path]}`` or a manifest row with those columns.
    transform
        The evaluation pipeline the model was trained with
        (:func:`pcatools.data.transforms.eval_transforms`); ``None`` = ``eval_transforms()``
        (2 mm, the paper's CT window).
    roi_size, overlap, mode, sw_batch_size
        Sliding-window settings (paper: 128^3 windows).
    device, amp
        Where to run (default CUDA if available) and float16 autocast (default on CUDA).
    return_probs
        Also return the foreground probability map: the softmax probability of the lesion
        class (summed over classes 1..C-1), float32, inverted onto the original grid with
        nearest neighbour like the mask, so that map and mask agree voxel by voxel: with two
        classes the mask is 1 exactly where p > 0.5 (up to float32 rounding of logits that
        differ by less than about 1e-7).

    Returns
    -------
    nibabel.Nifti1Image or (mask, probs)
        uint8 mask (0 background, 1 lesion) with the PET image's shape and affine; with
        ``return_probs`` also the float32 probability map on the same grid.

    Examples
    --------
    >>> from pcatools.models import build_model
    >>> mask = predict_case(build_model("segresnet"), {"ct": "ct.nii.gz", "pet": "pet.nii.gz"})  # doctest: +SKIP
    >>> mask.shape == nib.load("pet.nii.gz").shape  # doctest: +SKIP
    True
    """
    from pcatools.data.transforms import eval_transforms, invert_to_original

    files = _case_files(paths_or_row)
    tf = eval_transforms() if transform is None else transform
    data = tf(dict(files))
    image = data["image"]
    if image.ndim != 4 or image.shape[0] < 1:
        raise ValueError(
            f"the evaluation transform must give image (C, X, Y, Z), found shape {tuple(image.shape)}"
        )
    logits = sliding_window_logits(model, image[None], roi_size, overlap, mode, sw_batch_size, device, amp)
    maps = {"pred": torch.argmax(logits, dim=1, keepdim=True)[0].to(torch.uint8).cpu()}
    if return_probs:
        maps["probs"] = torch.softmax(logits, dim=1)[0, 1:].sum(dim=0, keepdim=True).cpu()
    for key, value in maps.items():
        if hasattr(image, "applied_operations"):
            # carry the image's metadata (affine, applied operations) so that Invertd can undo them
            from monai.data import MetaTensor

            data[key] = MetaTensor(
                value, meta=dict(image.meta), applied_operations=list(image.applied_operations)
            )
        else:
            data[key] = value
    inverted = invert_to_original(data, tf, keys=list(maps), nearest=True)
    pet_img = nib.load(files["pet"])
    if not isinstance(pet_img, nib.Nifti1Image | nib.Nifti2Image):
        raise ValueError(f"PET {files['pet']} is not a NIfTI image (found {type(pet_img).__name__})")
    arrays = {}
    for key in maps:
        out = inverted[key]
        arr = np.asarray(out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out)
        if arr.ndim == 4:
            arr = arr[0]
        if arr.shape != tuple(pet_img.shape[:3]):
            raise RuntimeError(
                f"inverted {key} has shape {arr.shape}, the PET {files['pet']} has "
                f"{tuple(pet_img.shape[:3])}: the transform given is not the one inverted"
            )
        arrays[key] = arr
    mask = _nifti_like(pet_img, (np.rint(arrays["pred"]) > 0).astype(np.uint8))
    if not return_probs:
        return mask
    return mask, _nifti_like(pet_img, arrays["probs"].astype(np.float32))


def _nifti_like(reference: nib.Nifti1Image | nib.Nifti2Image, arr: np.ndarray) -> nib.Nifti1Image:
    """``arr`` as a NIfTI image with ``reference``'s affine (qform and sform) and ``arr``'s dtype."""
    img = nib.Nifti1Image(arr, reference.affine)
    img.set_qform(reference.affine, code=1)
    img.set_sform(reference.affine, code=1)
    img.set_data_dtype(arr.dtype)
    return img


def load_model(
    checkpoint: str | os.PathLike[str], device: str | torch.device | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The network stored in a training checkpoint (``best.pt`` or ``last.pt``) and its config.

    The config (model name and overrides, channels, spacing, patch size, transform settings,
    sliding-window settings) is the one :func:`pcatools.training.train` stored.
    """
    from pcatools.models import build_model
    from pcatools.training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint, map_location="cpu")
    config = dict(state["config"])
    net = build_model(
        config["model"],
        in_channels=int(config.get("in_channels", 2)),
        out_channels=int(config.get("out_channels", 2)),
        **dict(config.get("model_overrides") or {}),
    )
    net.load_state_dict(state["model"])
    return net.to(_device(device)).eval(), config


def _eval_transform_from_config(config: Mapping[str, Any]) -> Any:
    import inspect

    from pcatools.data.transforms import eval_transforms

    params = set(inspect.signature(eval_transforms).parameters)
    extra = {k: v for k, v in dict(config.get("transform_overrides") or {}).items() if k in params}
    return eval_transforms(spacing=tuple(config.get("spacing", (2.0, 2.0, 2.0))), **extra)


def predict_manifest(
    checkpoint: str | os.PathLike[str],
    manifest: pd.DataFrame | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    roi_size: Sequence[int] | None = None,
    overlap: float | None = None,
    mode: str | None = None,
    sw_batch_size: int | None = None,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    overwrite: bool = False,
    progress: bool = True,
    save_probs: bool = False,
) -> pd.DataFrame:
    """Predict every case of a manifest with a checkpoint; masks go to ``out_dir/<case_id>.nii.gz``.

    Parameters
    ----------
    checkpoint
        ``best.pt`` / ``last.pt`` of :func:`pcatools.training.train`: the model and its
        preprocessing (spacing, CT window) are rebuilt from its stored config.
    manifest
        DataFrame or CSV with ``case_id, ct, pet`` (``label`` optional).
    out_dir
        Output folder (created). Also receives ``predictions.csv`` (the manifest + ``pred``).
    roi_size, overlap, mode, sw_batch_size
        Sliding-window settings; ``None`` takes the training run's (window = training patch).
    device, amp
        As in :func:`predict_case`.
    overwrite
        Re-predict cases whose mask exists (default: skip them; masks are written atomically,
        so an existing file is complete).
    progress
        tqdm bar.
    save_probs
        Also write each case's foreground probability map (float32, the mask's grid, see
        :func:`predict_case`) to :func:`probs_path` of its mask, ``<case_id>_probs.nii.gz``, for
        ``pcatools view --probs`` (the L1 layers); a case whose map is missing is predicted again.

    Returns
    -------
    pandas.DataFrame
        The manifest with a column ``pred`` (path of each mask, str) and, with ``save_probs``,
        ``probs`` (path of each probability map).
    """
    from tqdm.auto import tqdm

    from pcatools._atomic import write_text_atomic
    from pcatools.data.case import save_nifti
    from pcatools.training.loop import read_manifest

    table = read_manifest(manifest)
    for col in ("case_id", "ct", "pet"):
        if col not in table:
            raise ValueError(
                f"predict_manifest: the manifest lacks column {col!r} (found {list(table.columns)})"
            )
    ids = table["case_id"].astype(str)
    if ids.duplicated().any():
        raise ValueError(
            f"predict_manifest: duplicated case_id values {sorted(set(ids[ids.duplicated()]))[:5]}"
        )
    if save_probs:
        clashes = sorted(set(ids) & {f"{c}{PROBS_SUFFIX}" for c in ids})
        if clashes:
            raise ValueError(
                f"predict_manifest: case ids {clashes[:5]} would be overwritten by the probability maps "
                f"<case_id>{PROBS_SUFFIX}.nii.gz of other cases; rename them or predict without save_probs"
            )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = _device(device)
    model, config = load_model(checkpoint, dev)
    roi = tuple(roi_size) if roi_size is not None else tuple(config.get("patch_size", (128, 128, 128)))
    ov = float(config.get("overlap", 0.25) if overlap is None else overlap)
    md = str(config.get("sw_mode", "gaussian") if mode is None else mode)
    swb = int(config.get("sw_batch_size", 4) if sw_batch_size is None else sw_batch_size)
    _check_sw(roi, ov, md, swb)
    tf = _eval_transform_from_config(config)
    preds: list[str] = []
    prob_paths: list[str] = []
    for case_id, row in tqdm(
        zip(ids, table.to_dict("records"), strict=True),
        total=len(table),
        desc="predict",
        disable=not progress,
    ):
        target = out / f"{case_id}.nii.gz"
        probs_target = probs_path(target)
        if overwrite or not target.exists() or (save_probs and not probs_target.exists()):
            if save_probs:
                mask, probs = predict_case(model, row, tf, roi, ov, md, swb, dev, amp, return_probs=True)
                save_nifti(probs, probs_target)
            else:
                mask = predict_case(model, row, tf, roi, ov, md, swb, dev, amp)
            save_nifti(mask, target)
        preds.append(str(target))
        prob_paths.append(str(probs_target))
    result = table.copy()
    result["pred"] = preds
    if save_probs:
        result["probs"] = prob_paths
    write_text_atomic(out / "predictions.csv", result.to_csv(index=False))
    return result
