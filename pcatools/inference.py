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

Provenance: :func:`predict_manifest` records what made each mask in ``provenance.json`` beside
the masks (the checkpoint's SHA-256, the sliding-window window, overlap and blending, whether
probability maps were written, and the path, size and modification time of the CT and PET), and
reuses an existing mask only where the record matches the request; a folder holding masks made
otherwise is refused unless ``overwrite`` replaces them, so that one model's masks are never taken
for another's.

Reading chosen where the paper is vague: the argmax is taken on the training grid and the
label map is resampled with nearest neighbour (the public code inverts the logits with
linear interpolation and takes the argmax after; both agree where the grids coincide).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import hashlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, overload

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from pcatools._atomic import write_text_atomic
from pcatools.data.case import save_nifti, save_niftis
from pcatools.data.manifest import read_manifest
from pcatools.models import build_model
from pcatools.reproducibility import cpu_threads
from pcatools.training.checkpoint import CheckpointError, load_checkpoint
from pcatools.training.config import DEFAULT_WINDOW, SlidingWindow

__all__ = [
    "PROBS_SUFFIX",
    "PROVENANCE_NAME",
    "PredictionMismatchError",
    "PredictionWriteError",
    "file_sha256",
    "load_model",
    "predict_case",
    "predict_manifest",
    "probs_path",
    "sliding_window_logits",
]

log = logging.getLogger("pcatools.inference")

PROBS_SUFFIX = "_probs"
"""Added to the case id for the probability map beside a mask: ``<case_id>_probs.nii.gz``."""

PROVENANCE_NAME = "provenance.json"
"""The file in a prediction folder that records what made each mask (:func:`predict_manifest`)."""

PROVENANCE_FORMAT = "pcatools-predictions/1"

#: Record fields that must match for a mask to be reused, with how a difference is described.
_COMPARED = {
    "checkpoint_sha256": "by another checkpoint",
    "roi_size": "with roi_size {old}",
    "overlap": "with overlap {old}",
    "mode": "with mode {old!r}",
    "ct": "from another CT file (path, size or time)",
    "pet": "from another PET file (path, size or time)",
}


class PredictionMismatchError(ValueError):
    """The output folder holds masks made by another checkpoint, with other options or from other
    input files than asked; ``overwrite=True`` (``pcatools predict --overwrite``) replaces them.

    ``out_dir`` and ``differences`` (``{case_id: what differs}``) let callers such as a study name
    their own way of starting over.
    """

    def __init__(self, message: str, out_dir: Path, differences: Mapping[str, str]) -> None:
        super().__init__(message)
        self.out_dir, self.differences = Path(out_dir), dict(differences)


class PredictionWriteError(OSError):
    """A mask, probability map or record cannot be written (disk full, folder not writable).

    An ``OSError`` because that is what it is; the message names the file. Masks written before it
    are complete and recorded (every file is written atomically), so a re-run continues.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks; remembered per (path, size, mtime) in this process.

    What made a prediction is recorded by the checkpoint's content, not its name (a ``best.pt``
    is replaced as training goes on); the cache spares hashing one checkpoint again for every call
    of a run, such as a study predicting with each of its models again.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "best.pt"
    >>> _ = path.write_bytes(b"abc")
    >>> file_sha256(path)[:16]
    'ba7816bf8f01cfea'
    """
    p = os.path.abspath(path)
    st = os.stat(p)
    key = (p, st.st_size, st.st_mtime_ns)
    if key not in _SHA256_CACHE:
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


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


def _device(device: str | torch.device | None) -> torch.device:
    """The device to predict on (``None``: CUDA if available), refusing a CUDA device that is not there
    (torch would fail on the first tensor moved, deep in the model)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device: expected cpu, cuda or cuda:N, found {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked, but torch finds no CUDA device here; use cpu")
    return dev


def sliding_window_logits(
    model: nn.Module,
    image: torch.Tensor,
    window: SlidingWindow = DEFAULT_WINDOW,
    device: str | torch.device | None = None,
    amp: bool | None = None,
) -> torch.Tensor:
    """Logits ``(B, C, X, Y, Z)`` of ``model`` over a whole image ``(B, 2, X, Y, Z)`` by sliding window.

    The one sliding window of pcatools: prediction and training's validation both call it with a
    :class:`~pcatools.training.SlidingWindow`, so that a model is validated as it predicts. The model is put in eval mode; no gradients. ``amp=None`` uses
    float16 autocast on CUDA; on CPU a channels-last copy of the model runs the windows (faster
    convolutions, :func:`_channels_last_on_cpu`). Returns float32 logits on ``device``.

    Examples
    --------
    >>> net = nn.Conv3d(2, 2, 1)
    >>> sliding_window_logits(net, torch.zeros(1, 2, 20, 20, 9), SlidingWindow((8, 8, 8))).shape
    torch.Size([1, 2, 20, 20, 9])
    """
    from monai.inferers import sliding_window_inference  # deferred: start-up (see tests/test_imports.py)

    if not isinstance(window, SlidingWindow):
        raise TypeError(f"window: expected a SlidingWindow, found {type(window).__name__}")
    if image.ndim != 5:
        raise ValueError(f"image must be (B, C, X, Y, Z), found shape {tuple(image.shape)}")
    dev = _device(device)
    use_amp = dev.type == "cuda" if amp is None else bool(amp)
    model = model.to(dev).eval()
    predictor = _channels_last_on_cpu(model) if dev.type == "cpu" else model
    x = image.as_tensor() if hasattr(image, "as_tensor") else image
    with (
        torch.no_grad(),
        torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp and dev.type == "cuda"),
    ):
        out = sliding_window_inference(
            x.to(dev),
            window.roi_size,
            window.sw_batch_size,
            predictor,
            overlap=window.overlap,
            mode=window.mode,
        )
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return one tensor of logits, found {type(out).__name__}")
    logits = out.as_tensor() if hasattr(out, "as_tensor") else out
    return logits.float()


def _channels_last_on_cpu(model: nn.Module) -> Callable[[torch.Tensor], Any]:
    """``model`` as a function of a window batch that runs in the channels-last layout, on a copy.

    oneDNN's 3-D convolutions on CPU are 1.3-1.5x faster channels-last
    (``benchmarks/cpu_inference.py``; the logits agree with the standard layout to about 6e-5).
    The copy leaves the caller's model, which training goes on updating (and DDP shares), as it
    was; it is made per call because validation predicts with weights that change between calls
    (a copy of the demo's networks takes milliseconds). A model that cannot be copied runs as it is
    (logged at debug level).
    """
    try:
        net = copy.deepcopy(model).to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    except Exception as err:  # a user's network that cannot be deep-copied: the standard layout
        log.debug("%s runs in the standard layout: no channels-last copy (%s)", type(model).__name__, err)
        return model

    def predict(window: torch.Tensor) -> Any:
        return net(window.contiguous(memory_format=torch.channels_last_3d) if window.ndim == 5 else window)

    return predict


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
    window: SlidingWindow = ...,
    device: str | torch.device | None = ...,
    amp: bool | None = ...,
    return_probs: Literal[False] = ...,
) -> nib.Nifti1Image: ...


@overload
def predict_case(
    model: nn.Module,
    paths_or_row: Mapping[str, Any] | pd.Series | Any,
    transform: Any = ...,
    window: SlidingWindow = ...,
    device: str | torch.device | None = ...,
    amp: bool | None = ...,
    *,
    return_probs: Literal[True],
) -> tuple[nib.Nifti1Image, nib.Nifti1Image]: ...


def predict_case(
    model: nn.Module,
    paths_or_row: Mapping[str, Any] | pd.Series | Any,
    transform: Any = None,
    window: SlidingWindow = DEFAULT_WINDOW,
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
    window
        The sliding window (:class:`~pcatools.training.SlidingWindow`; the paper's 128^3 windows
        by default).
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
    from pcatools.data.transforms import (  # deferred: start-up (see tests/test_imports.py)
        eval_transforms,
        invert_to_original,
    )

    files = _case_files(paths_or_row)
    tf = eval_transforms() if transform is None else transform
    data = tf(dict(files))
    image = data["image"]
    if image.ndim != 4 or image.shape[0] < 1:
        raise ValueError(
            f"the evaluation transform must give image (C, X, Y, Z), found shape {tuple(image.shape)}"
        )
    logits = sliding_window_logits(model, image[None], window, device, amp)
    maps = {"pred": torch.argmax(logits, dim=1, keepdim=True)[0].to(torch.uint8).cpu()}
    if return_probs:
        maps["probs"] = torch.softmax(logits, dim=1)[0, 1:].sum(dim=0, keepdim=True).cpu()
    for key, value in maps.items():
        if hasattr(image, "applied_operations"):
            # carry the image's metadata (affine, applied operations) so that Invertd can undo them
            from monai.data import MetaTensor  # deferred: start-up (see tests/test_imports.py)

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

    Raises
    ------
    CheckpointError
        The file is not a readable pcatools checkpoint, its config does not build a network, or
        its weights do not fit the network the config builds: one line naming the checkpoint, the
        first parameter that differs with both shapes, and the config's model settings (instead of
        torch's list of every mismatch, hundreds of lines for a SegResNet).
    """
    state = load_checkpoint(checkpoint, map_location="cpu")
    config = state["config"]
    if not isinstance(config, Mapping) or "model" not in config:
        raise CheckpointError(
            f"checkpoint {checkpoint}: expected a config with a 'model' entry, found {config!r}"
        )
    config = dict(config)
    settings = _model_settings(config)
    try:
        net = build_model(
            config["model"],
            in_channels=int(config.get("in_channels", 2)),
            out_channels=int(config.get("out_channels", 2)),
            **dict(config.get("model_overrides") or {}),
        )
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {checkpoint}: its config's model settings ({settings}) do not build a network "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    problem = _weights_problem(net, state["model"])
    if problem is not None:
        raise CheckpointError(
            f"checkpoint {checkpoint}: its weights do not fit the network its config describes: {problem} "
            f"(config: {settings})"
        )
    net.load_state_dict(state["model"])
    return net.to(_device(device)).eval(), config


def _model_settings(config: Mapping[str, Any]) -> str:
    """The config entries that decide a network's shape, as one line for messages."""
    keys = ("model", "model_overrides", "in_channels", "out_channels")
    return ", ".join(f"{k} {config.get(k)!r}" for k in keys)


def _weights_problem(net: nn.Module, weights: Any) -> str | None:
    """The first difference between ``net``'s parameters and the stored ``weights``, or ``None``."""
    if not isinstance(weights, Mapping):
        return f"expected a dict of tensors, found {type(weights).__name__}"
    expected = net.state_dict()
    for name, tensor in expected.items():
        if name not in weights:
            return f"parameter {name} {tuple(tensor.shape)} of the network is not in the checkpoint"
        stored = tuple(getattr(weights[name], "shape", ()))
        if stored != tuple(tensor.shape):
            return f"parameter {name} has shape {stored} in the checkpoint and {tuple(tensor.shape)} in the network"
    extra = [k for k in weights if k not in expected]
    if extra:
        shape = tuple(getattr(weights[extra[0]], "shape", ()))
        return f"the checkpoint's parameter {extra[0]} {shape} is not in the network ({len(extra)} such)"
    return None


def _eval_transform_from_config(config: Mapping[str, Any]) -> Any:
    from pcatools.data.transforms import eval_transforms  # deferred: start-up (see tests/test_imports.py)

    params = set(inspect.signature(eval_transforms).parameters)
    extra = {k: v for k, v in dict(config.get("transform_overrides") or {}).items() if k in params}
    return eval_transforms(spacing=tuple(config.get("spacing", (2.0, 2.0, 2.0))), **extra)


def _input_record(path: str, out: Path) -> dict[str, Any]:
    """Path (absolute, and relative to the prediction folder ``out``), size and modification time of an
    input image; size and time are ``None`` where the file cannot be read."""
    full = os.path.abspath(path) if path else ""
    try:
        relative = Path(os.path.relpath(full, os.path.abspath(out))).as_posix() if full else ""
    except ValueError:  # another drive
        relative = full
    try:
        st = os.stat(full)
    except OSError:
        return {"path": full, "relative": relative, "size": None, "mtime_ns": None}
    return {"path": full, "relative": relative, "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _same_file(old: Any, new: Mapping[str, Any]) -> bool:
    """Whether an input recorded as ``old`` is the file ``new`` describes: the same size and time (to the
    nanosecond), and the same absolute path or the same path relative to the prediction folder.

    Either path will do, so that a prediction folder moved alone, or a run folder moved or copied with
    its images and its predictions inside (a study, whose manifests are relative too), keeps its masks.
    """
    if not isinstance(old, Mapping) or new["size"] is None:
        return False
    same_path = old.get("path") == new["path"] or old.get("relative") == new["relative"]
    return same_path and (old.get("size"), old.get("mtime_ns")) == (new["size"], new["mtime_ns"])


def _difference(old: Any, new: Mapping[str, Any]) -> str | None:
    """How the mask ``old`` records was made otherwise than ``new`` asks, or ``None`` when it can be reused.

    A mask made with probability maps serves a request without them (the mask is the same); the
    reverse is a difference, since the maps are missing.
    """
    if not isinstance(old, Mapping):
        return f"of unknown origin (no record in {PROVENANCE_NAME})"
    for key, phrase in _COMPARED.items():
        same = _same_file(old.get(key), new[key]) if key in ("ct", "pet") else old.get(key) == new[key]
        if not same:
            return phrase.format(old=old.get(key))
    if new["save_probs"] and not old.get("save_probs"):
        return "without probability maps (save_probs)"
    return None


def _describe(differences: Mapping[str, str], shown: int = 3) -> str:
    """``{case_id: phrase}`` as ``"2 by another checkpoint (a, b); 1 with overlap 0.5 (c)"``."""
    groups: dict[str, list[str]] = {}
    for case_id, phrase in differences.items():
        groups.setdefault(phrase, []).append(case_id)
    parts = []
    for phrase, ids in groups.items():
        listed = ", ".join(ids[:shown]) + (", ..." if len(ids) > shown else "")
        parts.append(f"{len(ids)} {phrase} ({listed})")
    return "; ".join(parts)


def _read_provenance(out: Path) -> dict[str, Any]:
    """The mask records of ``out/provenance.json`` by case id; none where the file is absent or unreadable
    (its masks then count as of unknown origin, which only ``overwrite`` replaces)."""
    try:
        data = json.loads((out / PROVENANCE_NAME).read_text())
    except (OSError, ValueError):
        return {}
    masks = data.get("masks") if isinstance(data, dict) and data.get("format") == PROVENANCE_FORMAT else None
    return dict(masks) if isinstance(masks, dict) else {}


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed write of ``path`` into one :class:`PredictionWriteError` line naming it."""
    try:
        yield
    except PredictionWriteError:
        raise
    except OSError as err:
        cause = f"[Errno {err.errno}] {err.strerror}" if err.errno else str(err)
        raise PredictionWriteError(
            f"cannot write {path}: disk full or not writable ({type(err).__name__}: {cause}); the masks "
            f"written before it are complete and recorded in {PROVENANCE_NAME}, a re-run continues"
        ) from None


def predict_manifest(
    checkpoint: str | os.PathLike[str],
    manifest: pd.DataFrame | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    window: SlidingWindow | None = None,
    *,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    overwrite: bool = False,
    progress: bool = True,
    save_probs: bool = False,
    check_inputs: bool = True,
    **window_changes: Any,
) -> pd.DataFrame:
    """Predict every case of a manifest with a checkpoint; masks go to ``out_dir/<case_id>.nii.gz``.

    Every mask written is recorded in ``out_dir/provenance.json``: the checkpoint's SHA-256
    (:func:`file_sha256`), ``roi_size``, ``overlap``, ``mode``, ``save_probs``, and the path
    (absolute and relative to ``out_dir``), size and modification time of the case's CT and PET. An existing
    mask is reused only where its record matches this call (the same checkpoint content, options
    and input files), because a folder of masks reused without a check turned a second model's
    predictions into the first's.

    Parameters
    ----------
    checkpoint
        ``best.pt`` / ``last.pt`` of :func:`pcatools.training.train`: the model and its
        preprocessing (spacing, CT window) are rebuilt from its stored config.
    manifest
        DataFrame or CSV with ``case_id, ct, pet`` (``label`` optional).
    out_dir
        Output folder (created). Also receives ``predictions.csv`` (the manifest + ``pred``) and
        ``provenance.json``.
    window
        The sliding window (:class:`~pcatools.training.SlidingWindow`); ``None`` takes the training
        run's validation window (:meth:`~pcatools.training.SlidingWindow.from_recorded`: its
        ``roi_size``, default its patch).
    window_changes
        Window settings by name (``roi_size``, ``overlap``, ``mode``, ``sw_batch_size``) that replace
        those of ``window`` (or of the run's): ``pcatools predict`` passes the options given, and
        keeps the run's window for the others.
    device, amp
        As in :func:`predict_case`.
    overwrite
        Predict every case again, replacing masks made otherwise (default: reuse a mask made by
        the same checkpoint and options, refuse one made otherwise). Masks are written
        atomically and recorded after they are complete, so an existing recorded mask is whole.
    progress
        tqdm bars.
    save_probs
        Also write each case's foreground probability map (float32, the mask's grid, see
        :func:`predict_case`) to :func:`probs_path` of its mask, ``<case_id>_probs.nii.gz``, for
        ``pcatools view --probs`` (the L1 layers); a case whose map is missing is predicted again.
    check_inputs
        Check the cases to predict with :func:`pcatools.data.discovery.check_cases` first (files read
        whole, one voxel grid, finite values), so that a bad case is one error naming it and its
        file instead of a mask of zeros around a NaN or a MONAI traceback. ``False`` only for a
        table that :func:`~pcatools.data.discovery.discover_cases` has just checked the same way.

    Returns
    -------
    pandas.DataFrame
        The manifest with a column ``pred`` (path of each mask, str) and, with ``save_probs``,
        ``probs`` (path of each probability map). ``attrs["reused"]`` and ``attrs["predicted"]``
        count the masks reused and written.

    Raises
    ------
    PredictionMismatchError
        Without ``overwrite``: masks in ``out_dir`` made by another checkpoint, with other options,
        from other input files, or with no record (a ``ValueError``; the message counts them by
        reason).
    CheckpointError
        The checkpoint cannot be read, or its weights do not fit its config (:func:`load_model`).
    DataError
        A case to predict fails :func:`~pcatools.data.discovery.check_cases` (names the case and file).
    PredictionWriteError
        A file cannot be written (disk full); an ``OSError`` naming the file.
    """
    from pcatools.data.discovery import check_cases  # deferred: start-up (see tests/test_imports.py)

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
    read_manifest(
        table, check_files=("ct", "pet")
    )  # a missing image: one line naming it, before the model loads
    unknown = sorted(set(window_changes) - {f.name for f in dataclasses.fields(SlidingWindow)})
    if unknown:
        raise TypeError(f"predict_manifest: {unknown} are not sliding-window settings (SlidingWindow)")
    dev = _device(device)
    model, config = load_model(checkpoint, dev)
    window = dataclasses.replace(window or SlidingWindow.from_recorded(config), **window_changes)
    tf = _eval_transform_from_config(config)

    out = Path(out_dir)
    with _writing(out):
        out.mkdir(parents=True, exist_ok=True)
    records = _read_provenance(out)
    rows = table.to_dict("records")
    sha = file_sha256(checkpoint)
    wanted: dict[str, dict[str, Any]] = {}
    reuse: set[str] = set()
    differences: dict[str, str] = {}
    for case_id, row in zip(ids, rows, strict=True):
        wanted[case_id] = {
            "checkpoint_sha256": sha,
            "roi_size": list(window.roi_size),
            "overlap": window.overlap,
            "mode": window.mode,
            "save_probs": bool(save_probs),
            "ct": _input_record(str(row["ct"]), out),
            "pet": _input_record(str(row["pet"]), out),
        }
        target = out / f"{case_id}.nii.gz"
        if not target.exists():
            continue
        why = _difference(records.get(case_id), wanted[case_id])
        if why is not None:
            differences[case_id] = why
        elif not save_probs or probs_path(target).exists():
            reuse.add(case_id)
        # else: made by the same checkpoint and options, its probability map lost: made again
    if differences and not overwrite:
        raise PredictionMismatchError(
            f"prediction folder {out}: {len(differences)} of the {len(ids)} masks to write exist and were not "
            f"made by checkpoint {checkpoint} with these options and input files: {_describe(differences)}; "
            f"pass overwrite=True (pcatools predict --overwrite) to replace them, or predict into another folder",
            out,
            differences,
        )
    todo = [i for i, c in enumerate(ids) if overwrite or c not in reuse]
    if check_inputs and todo:
        check_cases(
            table.iloc[todo],
            progress=progress,
            require_labels=False,
            resample_ct=bool(dict(config.get("transform_overrides") or {}).get("resample_ct", False)),
            workers=min(4, os.cpu_count() or 1),
        )
    provenance = out / PROVENANCE_NAME

    def write_provenance() -> None:
        with _writing(provenance):
            write_text_atomic(
                provenance,
                json.dumps({"format": PROVENANCE_FORMAT, "masks": records}, indent=1, sort_keys=True) + "\n",
            )

    # a mask about to be replaced loses its record first: a crash then leaves it of unknown origin,
    # never recorded as what it is not
    if any(ids.iloc[i] in records for i in todo):
        for i in todo:
            records.pop(ids.iloc[i], None)
        write_provenance()
    threads = held_threads if (held_threads := config.get("threads")) and dev.type == "cpu" else None
    with cpu_threads(threads):  # the run's thread count: its CPU numbers hold for that one
        for i in tqdm(todo, desc="predict", disable=not progress):
            case_id, row = ids.iloc[i], rows[i]
            target = out / f"{case_id}.nii.gz"
            if save_probs:
                mask, probs = predict_case(model, row, tf, window, device=dev, amp=amp, return_probs=True)
                with _writing(target):
                    save_niftis({"probs": probs, "mask": mask}, {"probs": probs_path(target), "mask": target})
            else:
                mask = predict_case(model, row, tf, window, device=dev, amp=amp)
                with _writing(target):
                    save_nifti(mask, target)
            records[case_id] = {
                **wanted[case_id],
                "checkpoint": os.path.abspath(checkpoint),
                "sw_batch_size": window.sw_batch_size,
                "device": str(dev),
                "amp": dev.type == "cuda" and (amp is None or bool(amp)),
                "written": datetime.datetime.now().isoformat(timespec="seconds"),
            }
            write_provenance()
    n_reused = len(ids) - len(todo)
    if n_reused:
        log.info("reused %d masks made by the same checkpoint and options in %s", n_reused, out)
    result = table.copy()
    result["pred"] = [str(out / f"{c}.nii.gz") for c in ids]
    if save_probs:
        result["probs"] = [str(probs_path(out / f"{c}.nii.gz")) for c in ids]
    with _writing(out / "predictions.csv"):
        write_text_atomic(out / "predictions.csv", result.to_csv(index=False))
    result.attrs.update(reused=n_reused, predicted=len(todo))
    return result
