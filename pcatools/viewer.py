"""napari inspection of a case: PET, CT, masks, and the L1 norms, bins and weights of L1DFL.

:func:`build_layers` returns plain napari *layer data tuples* ``(data, kwargs, layer_type)`` (no
napari import needed to build them); :func:`view_case` opens a viewer with them, a dock with the
ground-truth lesion table (:func:`add_lesion_dock`, click a row to jump to the lesion; one column
per prediction says whether it detects the lesion) and, when a probability map is given, a
bin-width slider (:func:`bin_width_widget`) that recomputes the Delta / bins / weights layers.
Several predictions (:func:`name_predictions`, or every model of a study: :func:`study_case`)
each get their own labels layer and colour.

Geometry: every layer gets ``scale`` = the case's voxel spacing (mm) and ``translate`` = the
affine's origin, so napari's world coordinates are physical millimetres and all layers overlay.
The affine's rotation / axis flips are not applied (array axes are shown as stored, as
everywhere in pcatools).

The L1 layers (section 2.6, eq. 4-10) for a foreground probability map ``p`` and the ground truth
``g`` are: ``Delta = |g - p|`` (eq. 4), the bin index ``k`` of each voxel (nearest centre
``B_k = k * Gamma``, a tie going up, as :func:`pcatools.losses.l1_weights` assigns it) shown as
labels, and the weight ``w_i = N / D(B_k)`` (eq. 10). The histogram is taken over the whole case
(N = number of voxels); in training it is taken over the batch. The background channel of the
two-channel loss has the same Delta (``|(1-g) - (1-p)| = |g - p|``), so the one-channel histogram
gives the same weights as the two-channel one. Bin 0 (Delta near 0, the easy voxels) is label 0,
which napari draws transparent: what remains visible are the harder voxels.

Display: Qt's platform plugin aborts the whole process (exit 134, a dead notebook kernel) when it
finds no display, so every entry point that opens napari calls :func:`require_display` first
(:func:`display_problem` says why there is none); :func:`static_layers_figure` draws the same
layers as matplotlib slices where there is no display.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pcatools.data.case import Case, layout_paths

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure
    import napari

__all__ = [
    "LayerData",
    "GT_COLORMAP",
    "PRED_COLORMAP",
    "NO_DISPLAY_HINT",
    "SCREENSHOT_SIZE",
    "NoDisplayError",
    "display_problem",
    "display_available",
    "require_display",
    "pred_colour",
    "name_predictions",
    "study_case",
    "lesion_slice",
    "slice_mm",
    "static_layers_figure",
    "physical_kwargs",
    "l1_layers",
    "build_layers",
    "detection_column",
    "lesion_table",
    "lesion_world_centroid",
    "jump_to_lesion",
    "lesion_table_widget",
    "add_lesion_dock",
    "update_l1_layers",
    "bin_width_widget",
    "show_l1_weights",
    "resolve_case_paths",
    "load_target",
    "set_coronal",
    "view_case",
]

LayerData = tuple[Any, dict[str, Any], str]
"""One napari layer data tuple: ``(data, kwargs, layer_type)``."""

GT_COLORMAP: dict[Any, str] = {1: "#00c000", None: "transparent"}
"""Label colours of the ground-truth layer (green)."""
PRED_COLORMAP: dict[Any, str] = {1: "#ff2020", None: "transparent"}
"""Label colours of a prediction layer (red)."""
L1_LAYER_NAMES = ("Delta |g - p|", "L1 bin index", "L1 weights")
BASE_LAYER_NAMES = ("CT", "PET (SUV)", "ground truth")
SCREENSHOT_SIZE = (1500, 850)
"""Window size (width, height in pixels) of ``view_case(screenshot=...)``, for pictures that agree."""
_PRED_COLOURS = ("#ff2020", "#ff9900", "#ff00ff", "#00c8ff", "#ffff00", "#8080ff")

NO_DISPLAY_HINT = (
    "run it on a desktop, under `xvfb-run -a pcatools view ...`, or save a PNG of the window with "
    "`xvfb-run -a pcatools view ... --screenshot out.png`"
)
"""How to run napari without a display of one's own (the second half of :class:`NoDisplayError`)."""

# Qt platform plugins that need no display server (QT_QPA_PLATFORM set by the user)
_HEADLESS_QT_PLATFORMS = ("offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")


# --------------------------------------------------------------------------- display


class NoDisplayError(RuntimeError):
    """No display for napari's window; raised before Qt is imported, which would abort the process."""


def _x_server_reachable(display: str, timeout: float = 2.0) -> bool:
    """Whether the X server of ``display`` (``[host]:n[.screen]``) accepts a connection on its socket.

    Only the socket is opened, no X connection is set up: an X server without other clients
    (Xvfb under ``xvfb-run``) resets when its last client leaves, and after an X connection set
    up and closed here Qt's own connection a moment later failed (measured with libxcb: 69 of
    100 times), which aborts the process. X authorisation is therefore not checked.
    """
    import socket

    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        # libxcb's order on Linux: the abstract socket, then the file
        addresses = [f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"]
        for address in addresses:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                try:
                    sock.connect(address)
                    return True
                except OSError:
                    continue
        return False
    try:
        with socket.create_connection((host.strip("[]"), 6000 + int(number)), timeout=timeout):
            return True
    except OSError:
        return False


def _wayland_socket(environ: Mapping[str, str]) -> Path | None:
    name = environ.get("WAYLAND_DISPLAY", "")
    if not name:
        return None
    path = Path(name) if os.path.isabs(name) else Path(environ.get("XDG_RUNTIME_DIR", "")) / name
    return path if path.exists() else None


def display_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why Qt could not open a window here, or ``None`` when it can.

    On Linux and the BSDs: a Wayland socket (``WAYLAND_DISPLAY``) that exists, or an X server
    (``DISPLAY``) that accepts a connection, for the platforms ``QT_QPA_PLATFORM`` allows (both
    when unset); a headless platform (``offscreen``, ``minimal``, ...) chosen there needs none.
    macOS and Windows always have a display. The check runs without Qt because Qt's platform
    plugin, finding no display, aborts the process instead of raising.

    Examples
    --------
    >>> display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    True
    """
    env = os.environ if environ is None else environ
    if not (sys.platform.startswith("linux") or "bsd" in sys.platform):
        return None
    requested = [p.split(":")[0].strip() for p in env.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]
    platforms = requested or ["wayland", "xcb"]
    if any(p in _HEADLESS_QT_PLATFORMS for p in platforms):
        return None
    display = env.get("DISPLAY", "")
    wants_wayland = any(p.startswith("wayland") for p in platforms)
    if wants_wayland and _wayland_socket(env) is not None:
        return None
    if "xcb" in platforms and display and _x_server_reachable(display):
        return None
    if not display and not env.get("WAYLAND_DISPLAY"):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    found = []
    if display:
        found.append(
            f"the X server DISPLAY={display} is not reachable"
            if "xcb" in platforms
            else f"DISPLAY={display} is set but QT_QPA_PLATFORM={env['QT_QPA_PLATFORM']} excludes X"
        )
    if env.get("WAYLAND_DISPLAY"):
        found.append(
            f"no Wayland socket {env['WAYLAND_DISPLAY']!r}"
            if wants_wayland
            else f"WAYLAND_DISPLAY is set but QT_QPA_PLATFORM={env['QT_QPA_PLATFORM']} excludes Wayland"
        )
    return "no usable display (" + "; ".join(found) + ")"


def display_available(environ: Mapping[str, str] | None = None) -> bool:
    """Whether napari can open a window here (:func:`display_problem` is ``None``)."""
    return display_problem(environ) is None


def require_display(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`NoDisplayError` (why, and how to run napari anyway) when there is no display.

    Called before napari / Qt is imported, which on Linux would abort the process with exit 134.
    """
    problem = display_problem(environ)
    if problem is not None:
        raise NoDisplayError(f"{problem}; {NO_DISPLAY_HINT}")


# --------------------------------------------------------------------------- predictions


def pred_colour(index: int) -> str:
    """Colour of the ``index``-th prediction layer: six fixed colours, then evenly spread hues.

    The fixed colours avoid the ground truth's green; beyond them the hue steps by the golden
    angle so that any number of predictions get distinct colours.

    Examples
    --------
    >>> pred_colour(0), pred_colour(1), len({pred_colour(i) for i in range(20)})
    ('#ff2020', '#ff9900', 20)
    """
    if index < 0:
        raise ValueError(f"pred_colour: expected an index >= 0, found {index}")
    if index < len(_PRED_COLOURS):
        return _PRED_COLOURS[index]
    import colorsys

    hue = ((index - len(_PRED_COLOURS)) * 0.381966 + 0.05) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


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

    Reads the run (or a ``pcatools evaluate`` folder) with :func:`pcatools.study.load_study`
    (``results/predictions.csv``: one row per case, network and loss, with the case's files and
    the mask in ``pred``), so that one call opens every model's prediction of a case side by side.
    """
    from pcatools.study import load_study, model_key

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
    # a model of a `pcatools evaluate` folder named without network/loss has network "" and its name as loss
    preds = name_predictions(
        (model_key(str(r.network), str(r.loss)) if str(r.network) else str(r.loss), Path(str(r.pred)))
        for r in rows.itertuples(index=False)
    )
    return paths, preds


def physical_kwargs(case: Case) -> dict[str, tuple[float, float, float]]:
    """``scale`` (voxel spacing, mm) and ``translate`` (affine origin, mm) shared by all layers.

    Examples
    --------
    >>> import numpy as np
    >>> from pcatools.data.case import Case
    >>> aff = np.diag([4.0, 4.0, 2.0, 1.0]); aff[:3, 3] = (-10, 0, 5)
    >>> c = Case("c", np.zeros((2, 2, 2), np.float32), np.zeros((2, 2, 2), np.float32), None, aff)
    >>> physical_kwargs(c)
    {'scale': (4.0, 4.0, 2.0), 'translate': (-10.0, 0.0, 5.0)}
    """
    return {
        "scale": tuple(float(s) for s in case.spacing),  # type: ignore[dict-item]
        "translate": tuple(float(t) for t in np.asarray(case.affine)[:3, 3]),  # type: ignore[dict-item]
    }


def _check_case(case: Any) -> Case:
    if not isinstance(case, Case):
        raise TypeError(f"expected a pcatools.data.case.Case, found {type(case).__name__}")
    return case


def _as_mask_u8(mask: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.shape != shape:
        raise ValueError(f"{what}: expected shape {shape} (the case grid), found {arr.shape}")
    if arr.dtype != np.bool_:
        values = np.unique(arr)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"{what}: expected a binary 0/1 mask, found values {values[:8].tolist()}")
    return (arr > 0).astype(np.uint8)


def _check_probs(probs: Any, shape: tuple[int, ...]) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float32)
    if p.shape != shape:
        raise ValueError(f"probs: expected the case shape {shape}, found {p.shape}")
    lo, hi = float(np.nanmin(p)), float(np.nanmax(p))
    if not np.isfinite(p).all() or lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"probs: expected foreground probabilities in [0, 1], found range [{lo:.4g}, {hi:.4g}]"
        )
    return p


def l1_layers(label: np.ndarray, probs: np.ndarray, bin_width: float = 0.1) -> dict[str, np.ndarray]:
    """Delta (eq. 4), bin index and weights (eq. 10) of every voxel, from :mod:`pcatools.losses`.

    Parameters
    ----------
    label : array of 0/1
        Ground truth g.
    probs : array in [0, 1], same shape
        Foreground probability p.
    bin_width : float
        Gamma.

    Returns
    -------
    dict
        ``delta`` (float32), ``bins`` (uint8 bin index k) and ``weights`` (float32), input shape.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.array([[0, 0, 1, 1]]); p = np.array([[0.2, 0.2, 0.9, 0.35]])
    >>> d = l1_layers(g, p)
    >>> d["bins"].tolist(), d["weights"].astype(float).round(2).tolist()
    ([[2, 2, 1, 7]], [[0.2, 0.2, 0.4, 0.4]])
    """
    import torch

    from pcatools.losses import l1_binning

    g = np.asarray(label)
    p = np.asarray(probs, dtype=np.float32)
    if g.shape != p.shape:
        raise ValueError(f"l1_layers: label and probs must have one shape, found {g.shape} and {p.shape}")
    binning = l1_binning(
        torch.from_numpy(np.ascontiguousarray(p)),
        torch.from_numpy((g > 0).astype(np.float32)),
        bin_width=bin_width,
    )
    n_bins = int(binning.centres.numel())
    if n_bins > 256:
        raise ValueError(
            f"l1_layers: bin width {bin_width} gives {n_bins} bins; the labels layer holds at most 256"
        )
    return {
        "delta": binning.delta.numpy().astype(np.float32),
        "bins": binning.index.numpy().astype(np.uint8),
        "weights": binning.element_weights().numpy().astype(np.float32),
    }


def _l1_layer_tuples(l1: dict[str, np.ndarray], geo: dict[str, Any], bin_width: float) -> list[LayerData]:
    wmax = float(l1["weights"].max())
    return [
        (
            l1["delta"],
            {
                "name": L1_LAYER_NAMES[0],
                "colormap": "magma",
                "contrast_limits": (0.0, 1.0),
                "blending": "additive",
                "visible": False,
                **geo,
            },
            "image",
        ),
        (
            l1["bins"],
            {
                "name": L1_LAYER_NAMES[1],
                "opacity": 0.6,
                "visible": False,
                "metadata": {"bin_width": bin_width},
                **geo,
            },
            "labels",
        ),
        (
            l1["weights"],
            {
                "name": L1_LAYER_NAMES[2],
                "colormap": "viridis",
                "contrast_limits": (0.0, wmax if wmax > 0 else 1.0),
                "blending": "additive",
                "visible": False,
                "metadata": {"bin_width": bin_width},
                **geo,
            },
            "image",
        ),
    ]


def build_layers(
    case: Case,
    pred: np.ndarray | Mapping[str, np.ndarray] | None = None,
    probs: np.ndarray | None = None,
    bin_width: float = 0.1,
    suv_window: tuple[float, float] = (0.0, 10.0),
    ct_window: tuple[float, float] = (-160.0, 240.0),
) -> list[LayerData]:
    """napari layer data tuples for a case, all in physical mm (scale = spacing, same translate).

    Layers, bottom to top: ``CT`` (image, grey, HU window ``ct_window``), ``PET (SUV)`` (image,
    ``hot`` colormap, SUV window ``suv_window``, additive over the CT), ``ground truth`` (labels
    uint8, green), one labels layer per prediction (uint8, named after its key, colours
    :func:`pred_colour` in order; ``pred`` is a mask or ``{name: mask}``), and where ``probs``
    (foreground probability) and a ground truth are given: ``Delta |g - p|`` (image), ``L1 bin
    index`` (labels, uint8) and ``L1 weights`` (image) with bin width ``bin_width`` (see the
    module docstring). The L1 layers start hidden.

    Examples
    --------
    >>> import numpy as np
    >>> from pcatools.data.case import Case
    >>> c = Case("c", np.ones((3, 3, 3), np.float32), np.zeros((3, 3, 3), np.float32),
    ...          np.zeros((3, 3, 3), np.uint8), np.diag([2.0, 2.0, 3.0, 1.0]))
    >>> [(kw["name"], kind, kw["scale"]) for _, kw, kind in build_layers(c)][:2]
    [('CT', 'image', (2.0, 2.0, 3.0)), ('PET (SUV)', 'image', (2.0, 2.0, 3.0))]
    """
    case = _check_case(case)
    for name, win in (("suv_window", suv_window), ("ct_window", ct_window)):
        if len(win) != 2 or not float(win[1]) > float(win[0]):
            raise ValueError(f"{name}: expected (low, high) with high > low, found {win!r}")
    geo = physical_kwargs(case)
    shape = case.pet.shape
    layers: list[LayerData] = [
        (
            np.asarray(case.ct, dtype=np.float32),
            {
                "name": BASE_LAYER_NAMES[0],
                "colormap": "gray",
                "contrast_limits": tuple(map(float, ct_window)),
                **geo,
            },
            "image",
        ),
        (
            np.asarray(case.pet, dtype=np.float32),
            {
                "name": BASE_LAYER_NAMES[1],
                "colormap": "hot",
                "contrast_limits": tuple(map(float, suv_window)),
                "blending": "additive",
                **geo,
            },
            "image",
        ),
    ]
    if case.label is not None:
        layers.append(
            (
                _as_mask_u8(case.label, shape, "case.label"),
                {"name": BASE_LAYER_NAMES[2], "colormap": dict(GT_COLORMAP), "opacity": 0.5, **geo},
                "labels",
            )
        )
    if pred is not None:
        preds = name_predictions(pred.items() if isinstance(pred, Mapping) else [("prediction", pred)])
        for i, (name, mask) in enumerate(preds.items()):
            layers.append(
                (
                    _as_mask_u8(mask, shape, f"pred {name!r}"),
                    {
                        "name": name,
                        "colormap": {1: pred_colour(i), None: "transparent"},
                        "opacity": 0.5,
                        **geo,
                    },
                    "labels",
                )
            )
    if probs is not None:
        if case.label is None:
            raise ValueError("probs given but the case has no ground truth label: Delta = |g - p| needs g")
        p = _check_probs(probs, shape)
        layers.extend(_l1_layer_tuples(l1_layers(case.label, p, bin_width), geo, bin_width))
    return layers


# --------------------------------------------------------------------------- lesion table


def detection_column(name: str) -> str:
    """Column of :func:`lesion_table` saying whether prediction ``name`` detects each lesion."""
    return f"detected: {name}"


def lesion_table(case: Case, pred: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Ground-truth lesions of a case (18-connected components, :mod:`pcatools.metrics`).

    Columns: ``lesion_id`` (component label), ``volume_ml``, ``suvmax``, ``centroid_i, _j, _k``
    (voxel indices, float), ``x_mm, y_mm, z_mm`` (the centroid in napari world coordinates:
    ``translate + index * spacing``) and, for each prediction ``{name: mask}`` of ``pred``, a
    boolean column :func:`detection_column` ``(name)``: the paper's detection rule (2.7.1, the
    prediction covers the lesion's SUVmax voxel), from :func:`pcatools.metrics.lesion_table`, so
    that the viewer and the study's tables count detections alike. Empty table when there is no
    label or no lesion.

    Examples
    --------
    >>> import numpy as np
    >>> from pcatools.data.case import Case
    >>> lab = np.zeros((4, 4, 4), np.uint8); lab[0, 0, 0:2] = 1
    >>> pet = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    >>> c = Case("c", pet, pet, lab, np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> lesion_table(c)[["lesion_id", "volume_ml", "suvmax", "z_mm"]].values.tolist()
    [[1.0, 0.016, 1.0, 1.0]]
    >>> hit = np.zeros_like(lab); hit[0, 0, 1] = 1  # covers the SUVmax voxel (SUV 1)
    >>> lesion_table(c, {"A": hit, "B": lab - hit})[["detected: A", "detected: B"]].values.tolist()
    [[True, False]]
    """
    from pcatools.metrics import components
    from pcatools.metrics import lesion_table as metrics_lesion_table
    from pcatools.metrics.burden import gt_suv, lesion_suv

    case = _check_case(case)
    shape = case.pet.shape
    named = name_predictions((pred or {}).items())
    preds = {name: _load_mask(m, shape, f"pred {name!r}") for name, m in named.items()}
    cols = ["lesion_id", "volume_ml", "suvmax", "centroid_i", "centroid_j", "centroid_k"]
    cols += ["x_mm", "y_mm", "z_mm"]
    cols += [detection_column(name) for name in preds]
    if case.label is None or not np.any(case.label):
        return pd.DataFrame(columns=cols)
    label = _as_mask_u8(case.label, shape, "case.label")
    pet = np.asarray(case.pet)
    comp = components(label, np.zeros(shape, np.uint8), case.spacing)
    n = comp.n_gt
    lab = comp.gt_voxel_label
    counts = comp.gt_sizes[1:]
    coords = comp.gt_coords.astype(np.float64)
    sums = np.stack([np.bincount(lab, weights=coords[:, a], minlength=n + 1)[1:] for a in range(3)], axis=1)
    centroids = sums / counts[:, None].astype(np.float64)
    geo = physical_kwargs(case)
    world = np.asarray(geo["translate"]) + centroids * np.asarray(geo["scale"])
    table = pd.DataFrame(
        {
            "lesion_id": np.arange(1, n + 1),
            "volume_ml": counts * comp.voxel_ml,
            "suvmax": lesion_suv(comp, gt_suv(comp, pet)).suvmax,
            "centroid_i": centroids[:, 0],
            "centroid_j": centroids[:, 1],
            "centroid_k": centroids[:, 2],
            "x_mm": world[:, 0],
            "y_mm": world[:, 1],
            "z_mm": world[:, 2],
        }
    )
    for name, mask in preds.items():
        det = metrics_lesion_table(label, mask, pet, case.spacing, criterion="suvmax")
        # both tables number lesions 1..n in C order of their first voxel (label_components)
        table[detection_column(name)] = det["detected"].to_numpy(dtype=bool)
    return table[cols]


def lesion_world_centroid(table: pd.DataFrame, lesion_id: int) -> tuple[float, float, float]:
    """World (mm) centroid of ``lesion_id`` in a :func:`lesion_table`."""
    row = table.loc[table["lesion_id"] == lesion_id]
    if row.empty:
        raise KeyError(f"lesion {lesion_id} not in the table (ids {table['lesion_id'].tolist()[:20]})")
    r = row.iloc[0]
    return float(r["x_mm"]), float(r["y_mm"]), float(r["z_mm"])


def _camera(viewer: napari.Viewer) -> Any:
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def jump_to_lesion(viewer: napari.Viewer, table: pd.DataFrame, lesion_id: int) -> tuple[float, float, float]:
    """Move the viewer to a lesion: slice position (``dims``) and camera centre at its centroid (mm)."""
    world = lesion_world_centroid(table, lesion_id)
    ndim = viewer.dims.ndim
    if ndim < 3:
        raise ValueError(f"jump_to_lesion: expected a viewer with 3 dimensions (x, y, z), found {ndim}")
    axes = list(range(ndim - 3, ndim))
    viewer.dims.set_point(axes, world)
    displayed = [d - (ndim - 3) for d in viewer.dims.displayed]
    _camera(viewer).center = tuple(world[d] for d in displayed)
    return world


def lesion_table_widget(
    case: Case, viewer: napari.Viewer | None = None, pred: Mapping[str, Any] | None = None
) -> Any:
    """A Qt table of the ground-truth lesions (id, volume ml, SUVmax, centroid mm, detections).

    One column per prediction of ``pred`` (``{name: mask}``) says ``yes`` / ``no``: whether it
    detects the lesion (the paper's SUVmax rule, see :func:`lesion_table`). Clicking a row calls
    ``widget.select_lesion(row)``, which jumps ``viewer`` to that lesion (:func:`jump_to_lesion`)
    and returns the lesion's world centroid. ``widget.lesions`` is the :func:`lesion_table`.
    """
    from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

    table = lesion_table(case, pred)
    detect_cols = [c for c in table.columns if c.startswith(detection_column(""))]
    # two-line headers keep the columns narrow: "detected by" over the prediction's name
    headers = ["id", "volume (ml)", "SUVmax", "x (mm)", "y (mm)", "z (mm)"]
    headers += [c.replace(detection_column(""), "detected by\n") for c in detect_cols]
    widget: Any = QTableWidget(len(table), len(headers))
    widget.setHorizontalHeaderLabels(headers)
    widget.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    widget.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    for r, row in enumerate(table.itertuples(index=False)):
        values = [
            f"{row.lesion_id}",
            f"{row.volume_ml:.3f}",
            f"{row.suvmax:.2f}",
            f"{row.x_mm:.1f}",
            f"{row.y_mm:.1f}",
            f"{row.z_mm:.1f}",
        ]
        values += ["yes" if table.iloc[r][col] else "no" for col in detect_cols]
        for c, text in enumerate(values):
            widget.setItem(r, c, QTableWidgetItem(text))
    widget.resizeColumnsToContents()
    # wide enough for every column (up to 600 px), so that the detection columns are in view
    columns_px = sum(widget.columnWidth(c) for c in range(len(headers)))
    widget.setMinimumWidth(min(columns_px + widget.verticalHeader().sizeHint().width() + 8, 600))
    widget.lesions = table

    def select_lesion(row: int, column: int = 0) -> tuple[float, float, float] | None:
        if not 0 <= row < len(table):
            raise IndexError(f"row {row} outside the lesion table (0..{len(table) - 1})")
        lesion_id = int(table.iloc[row]["lesion_id"])
        if viewer is None:
            return lesion_world_centroid(table, lesion_id)
        return jump_to_lesion(viewer, table, lesion_id)

    widget.select_lesion = select_lesion
    widget.cellClicked.connect(select_lesion)
    return widget


def add_lesion_dock(viewer: napari.Viewer, case: Case, pred: Mapping[str, Any] | None = None) -> Any:
    """Dock a :func:`lesion_table_widget` (detections by ``pred``) on the right of ``viewer``; return it."""
    widget = lesion_table_widget(case, viewer, pred)
    viewer.window.add_dock_widget(widget, name=f"Lesions ({len(widget.lesions)})", area="right")
    return widget


# --------------------------------------------------------------------------- bin width


def update_l1_layers(
    viewer: napari.Viewer, case: Case, probs: np.ndarray, bin_width: float
) -> dict[str, np.ndarray]:
    """Recompute the Delta / bin index / weights layers of ``viewer`` for a new bin width.

    Layers missing from the viewer are added (hidden); existing ones get new data (and, for the
    weights, new contrast limits). Returns the arrays (see :func:`l1_layers`).
    """
    from napari.layers import Layer

    case = _check_case(case)
    if case.label is None:
        raise ValueError("update_l1_layers: the case has no ground truth label")
    p = _check_probs(probs, case.pet.shape)
    l1 = l1_layers(case.label, p, bin_width)
    for data, kwargs, kind in _l1_layer_tuples(l1, physical_kwargs(case), bin_width):
        name = kwargs["name"]
        if name in viewer.layers:
            layer = viewer.layers[name]
            layer.data = data
            layer.metadata["bin_width"] = bin_width
            if name == L1_LAYER_NAMES[2]:
                layer.contrast_limits = kwargs["contrast_limits"]
        else:
            viewer.add_layer(Layer.create(data, kwargs, kind))
    return l1


def bin_width_widget(
    viewer: napari.Viewer,
    case: Case,
    probs: np.ndarray,
    value: float = 0.1,
    min_width: float = 0.01,
    max_width: float = 0.5,
    add_dock: bool = True,
) -> Any:
    """A magicgui slider for the bin width Gamma that recomputes the L1 layers (eq. 4-10).

    Returns the magicgui ``FunctionGui``; calling it (``widget(bin_width=0.2)``) or moving the
    slider runs :func:`update_l1_layers`. Docked on the right when ``add_dock``.
    """
    from magicgui import magicgui

    @magicgui(
        auto_call=True,
        bin_width={
            "widget_type": "FloatSlider",
            "min": min_width,
            "max": max_width,
            "step": 0.01,
            "label": "bin width \u0393",
        },
    )
    def l1_bin_width(bin_width: float = value) -> None:
        update_l1_layers(viewer, case, probs, bin_width)

    if add_dock:
        viewer.window.add_dock_widget(l1_bin_width, name="L1 bin width", area="right")
    return l1_bin_width


def show_l1_weights(viewer: napari.Viewer) -> None:
    """Put the ``L1 weights`` layer on view: visible, translucent over the CT, with its colour bar.

    PET is hidden (tick it back on in the layer list), so that the weights are read against
    anatomy rather than against another hot colormap; this is the README's picture.
    """
    weights = viewer.layers[L1_LAYER_NAMES[2]]
    weights.visible, weights.blending, weights.opacity = True, "translucent", 0.6
    weights.colorbar.visible = True
    viewer.layers[BASE_LAYER_NAMES[1]].visible = False


# --------------------------------------------------------------------------- opening cases


def resolve_case_paths(
    target: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None
) -> dict[str, Path]:
    """Find a case's ``ct``, ``pet`` (and ``label`` when present) files.

    ``target`` may be: an autoPET study folder (``CTres.nii.gz``, ``SUV.nii.gz``, ``SEG.nii.gz``);
    a folder holding one flat-layout case (``<id>_ct/_pet/_label.nii.gz``); or a case id looked up
    under ``data_dir`` in the nnU-Net layout (``imagesTr``/``labelsTr``, then ``Ts``), the flat
    layout, or the autoPET layout (``<data_dir>/<patient>/<id>``).
    """
    t = Path(target)
    candidates: list[dict[str, Path]] = []
    if t.is_dir():
        candidates.append({"ct": t / "CTres.nii.gz", "pet": t / "SUV.nii.gz", "label": t / "SEG.nii.gz"})
        flat_ids = sorted(p.name[: -len("_pet.nii.gz")] for p in t.glob("*_pet.nii.gz"))
        if len(flat_ids) > 1:
            raise ValueError(
                f"{t}: holds {len(flat_ids)} flat-layout cases {flat_ids[:5]}; pass a case id "
                f"with --data-dir {t}"
            )
        candidates += [layout_paths(t, cid, "flat") for cid in flat_ids]
    if data_dir is not None:
        root, cid = Path(data_dir), str(target)
        candidates += [
            layout_paths(root, cid, "nnunet", split="Tr"),
            layout_paths(root, cid, "nnunet", split="Ts"),
            layout_paths(root, cid, "flat"),
        ]
        candidates += [
            layout_paths(root, cid, "autopet", patient_id=p.name) for p in sorted(root.glob(f"*/{cid}"))
        ]
    for paths in candidates:
        if paths["ct"].is_file() and paths["pet"].is_file():
            if not paths["label"].is_file():
                paths = {k: v for k, v in paths.items() if k != "label"}
            return paths
    tried = "; ".join(f"{c['pet']}" for c in candidates) or "(no candidate: not a folder and no --data-dir)"
    raise FileNotFoundError(
        f"No case found for {str(target)!r}: expected CT and PET NIfTI files; tried PET at {tried}"
    )


def load_target(target: Any, data_dir: str | os.PathLike[str] | None = None) -> Case:
    """A :class:`Case` from a Case, a ``{ct, pet, label}`` mapping / manifest row, or a folder / id."""
    if isinstance(target, Case):
        return target
    if isinstance(target, Mapping | pd.Series):
        from pcatools.data.io import load_case

        return load_case(target)
    if isinstance(target, str | os.PathLike):
        paths = resolve_case_paths(target, data_dir)
        from pcatools.data.io import load_case

        return load_case({k: str(v) for k, v in paths.items()})
    raise TypeError(
        f"expected a Case, a mapping of paths, a folder or a case id, found {type(target).__name__}"
    )


def _nifti_dataobj(path: str | os.PathLike[str]) -> Any:
    import nibabel as nib

    img: Any = nib.load(str(path))
    return img.dataobj


def _load_mask(mask: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    if isinstance(mask, str | os.PathLike):
        mask = np.asanyarray(_nifti_dataobj(mask))
    return _as_mask_u8(mask, shape, what)


def set_coronal(viewer: napari.Viewer) -> None:
    """Slice along y (array axis 1) and show x horizontally, z pointing up (a coronal view)."""
    viewer.dims.order = (1, 2, 0)
    _camera(viewer).orientation2d = ("up", "right")


def _named_preds(pred: Any) -> dict[str, Any] | None:
    """``{name: mask or path}`` of :func:`view_case`'s ``pred`` (see there), names checked."""
    if pred is None:
        return None
    if isinstance(pred, Mapping):
        return name_predictions(pred.items())
    if isinstance(pred, str | os.PathLike):
        return name_predictions([pred])
    if isinstance(pred, list | tuple):
        return name_predictions(pred)
    return {"prediction": pred}


def view_case(
    case_or_paths: Any,
    pred: Any = None,
    probs: Any = None,
    bin_width: float = 0.1,
    data_dir: str | os.PathLike[str] | None = None,
    suv_window: tuple[float, float] = (0.0, 10.0),
    show: bool = True,
    block: bool = True,
    screenshot: str | os.PathLike[str] | None = None,
    weights: bool = False,
) -> napari.Viewer:
    """Open a case in napari with the PET, CT, masks, the L1 layers and the lesion dock.

    The view is coronal, on the slice with the most lesion voxels (:func:`lesion_slice`), so
    that it opens on a lesion. Checks for a display first (:func:`require_display`, raises
    :class:`NoDisplayError`), since Qt would otherwise abort the process.

    Parameters
    ----------
    case_or_paths : Case, mapping of paths, folder or case id
        See :func:`load_target`.
    pred : mask, path, ``{name: mask or path}`` or a list of ``NAME=PATH`` / paths, optional
        Predictions on the case grid, one labels layer each (names: :func:`name_predictions`; a
        single mask is called ``prediction``). The lesion dock says which detect each lesion.
    probs : array or path, optional
        Foreground probability map (e.g. ``pcatools predict --save-probs``); adds Delta / bins /
        weights and the bin-width slider.
    bin_width : float
        Initial Gamma.
    data_dir : path, optional
        Dataset root for a case id.
    show, block : bool
        Show the window; run the Qt event loop until it is closed (``napari.run()``).
    screenshot : path, optional
        Show the window at :data:`SCREENSHOT_SIZE`, write a PNG of it (frame, layer list and
        docks included) there and return without running the event loop (``block`` is
        ignored).
    weights : bool
        Open on the L1 weights (:func:`show_l1_weights`); needs ``probs``.
    """
    if weights and probs is None:
        raise ValueError("view_case: weights=True needs probs (the foreground probability map)")
    preds_in = _named_preds(pred)
    require_display()
    case = load_target(case_or_paths, data_dir)
    shape = case.pet.shape
    preds = (
        None if preds_in is None else {k: _load_mask(v, shape, f"pred {k!r}") for k, v in preds_in.items()}
    )
    p = None
    if probs is not None:
        if isinstance(probs, str | os.PathLike):
            probs = np.asarray(_nifti_dataobj(probs), dtype=np.float32)
        p = _check_probs(probs, shape)
    import napari
    from napari.layers import Layer

    viewer = napari.Viewer(title=f"pcatools: {case.case_id}", show=show or screenshot is not None)
    for data, kwargs, kind in build_layers(case, preds, p, bin_width=bin_width, suv_window=suv_window):
        viewer.add_layer(Layer.create(data, kwargs, kind))
    set_coronal(viewer)
    if case.label is not None:
        add_lesion_dock(viewer, case, preds)
    if p is not None:
        bin_width_widget(viewer, case, p, value=bin_width)
        if weights:
            show_l1_weights(viewer)
    viewer.dims.set_point(1, slice_mm(case, 1, lesion_slice(case, 1)))  # set_coronal slices along y
    if screenshot is not None:
        from qtpy.QtWidgets import QApplication

        viewer.window.resize(*SCREENSHOT_SIZE)
        QApplication.processEvents()  # lays out the docks (absent from the picture otherwise)
    viewer.reset_view()
    if screenshot is not None:
        out = Path(screenshot)
        out.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(out), canvas_only=False, flash=False)
    elif show and block:
        napari.run()
    return viewer


# --------------------------------------------------------------------------- without a display


_PLANES = ("sagittal", "coronal", "axial")  # the slice across array axis 0, 1, 2 of a RAS case


def lesion_slice(case: Case, axis: int = 1) -> int:
    """Index along ``axis`` of the slice with the most lesion voxels; the middle one without lesions.

    The default view of :func:`view_case` and :func:`static_layers_figure`, so that both open
    on a lesion.

    Examples
    --------
    >>> import numpy as np
    >>> from pcatools.data.case import Case
    >>> lab = np.zeros((4, 6, 4), np.uint8); lab[1, 4, 1:3] = 1
    >>> pet = np.ones((4, 6, 4), np.float32)
    >>> lesion_slice(Case("c", pet, pet, lab, np.eye(4))), lesion_slice(Case("c", pet, pet, None, np.eye(4)))
    (4, 3)
    """
    case = _check_case(case)
    if axis not in (0, 1, 2):
        raise ValueError(f"lesion_slice: expected axis 0, 1 or 2, found {axis!r}")
    if case.label is None:
        return case.pet.shape[axis] // 2
    label = _as_mask_u8(case.label, case.pet.shape, "case.label")
    per_slice = label.sum(axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(per_slice)) if per_slice.any() else case.pet.shape[axis] // 2


def slice_mm(case: Case, axis: int, index: float) -> float:
    """World position (mm, napari's coordinates) of slice ``index`` along ``axis``: origin + index * spacing."""
    geo = physical_kwargs(case)
    return geo["translate"][axis] + index * geo["scale"][axis]


def static_layers_figure(
    case: Case,
    probs: np.ndarray | None = None,
    pred: np.ndarray | Mapping[str, np.ndarray] | None = None,
    bin_width: float = 0.1,
    axis: int = 1,
    index: int | None = None,
    suv_window: tuple[float, float] = (0.0, 10.0),
    ct_window: tuple[float, float] = (-160.0, 240.0),
) -> matplotlib.figure.Figure:
    """The napari layers of :func:`build_layers` as matplotlib slices, one panel per layer.

    Panels: ``PET (SUV)``, ``ground truth`` and each prediction (over the CT), and with ``probs``
    ``Delta |g - p|``, ``L1 bin index`` (bin 0 transparent over the CT, as in napari) and ``L1
    weights``, each image with a colour bar; same colormaps and windows as the napari layers
    (the weights on a log scale when they span more than two decades, as they usually do), in
    mm (x to the right, the other axis up). The slice is ``index`` along ``axis`` (default
    :func:`lesion_slice`). This is what a notebook shows where there is no display, since
    napari cannot open a window there.
    """
    from matplotlib.colors import ListedColormap, LogNorm, Normalize

    from pcatools.figures.inputs import plane_axes as _plane_axes
    from pcatools.figures.inputs import project as _project
    from pcatools.figures.style import new_mpl_figure as _new_mpl_figure
    from pcatools.figures.style import overlay as _overlay

    if axis not in (0, 1, 2):
        raise ValueError(f"static_layers_figure: expected axis 0, 1 or 2, found {axis!r}")
    layers = build_layers(case, pred, probs, bin_width=bin_width, suv_window=suv_window, ct_window=ct_window)
    idx = lesion_slice(case, axis) if index is None else int(index)
    h_ax, v_ax = _plane_axes(axis)
    n_h, n_v = case.pet.shape[h_ax], case.pet.shape[v_ax]
    # outer edges of the first and last voxels
    extent = (
        slice_mm(case, h_ax, -0.5),
        slice_mm(case, h_ax, n_h - 0.5),
        slice_mm(case, v_ax, -0.5),
        slice_mm(case, v_ax, n_v - 0.5),
    )
    by_name = {kw["name"]: (data, kw, kind) for data, kw, kind in layers}
    ct_data, ct_kw, _ = by_name[BASE_LAYER_NAMES[0]]
    ct2d = _project(ct_data, axis, idx, "slice")
    panels = [name for name in by_name if name != BASE_LAYER_NAMES[0]]
    ncols = min(len(panels), 3)
    nrows = -(-len(panels) // ncols)
    width_mm, height_mm = extent[1] - extent[0], extent[3] - extent[2]
    panel_w = 13.0 / ncols
    fig = _new_mpl_figure(13.0, nrows * (panel_w * height_mm / width_mm + 0.5))
    where = f"{_PLANES[axis]} slice {idx} ({'xyz'[axis]} = {slice_mm(case, axis, idx):.1f} mm)"
    fig.suptitle(f"{case.case_id}: {where}, bin width \u0393 = {bin_width:g}")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    for ax, name in zip(axes, panels, strict=False):
        data, kw, kind = by_name[name]
        plane = _project(data, axis, idx, "slice")
        ax.set_title(name)
        ax.set_xlabel(f"{'xyz'[h_ax]} (mm)")
        ax.set_ylabel(f"{'xyz'[v_ax]} (mm)")
        if kind == "image":
            lo, hi = kw["contrast_limits"]
            positive = data[data > 0]
            norm: Normalize
            if name == L1_LAYER_NAMES[2] and positive.size and hi > 100 * positive.min():
                # w = N / D spans decades (rare bins weigh far more): linear, all but one bin is dark
                norm = LogNorm(vmin=float(positive.min()), vmax=float(hi))
            else:
                norm = Normalize(vmin=lo, vmax=hi)
            im = ax.imshow(
                plane.T,
                origin="lower",
                extent=extent,
                cmap=kw["colormap"],
                norm=norm,
                interpolation="nearest",
            )
            fig.colorbar(im, ax=ax, shrink=0.8)
            continue
        ax.imshow(
            ct2d.T,
            origin="lower",
            extent=extent,
            cmap="gray",
            vmin=ct_kw["contrast_limits"][0],
            vmax=ct_kw["contrast_limits"][1],
            interpolation="nearest",
        )
        if name == L1_LAYER_NAMES[1]:
            n_bins = int(data.max()) + 1
            cmap = ListedColormap([(0, 0, 0, 0)] + [tuple(c) for c in _tab_colours(n_bins - 1)])
            im = ax.imshow(
                np.ma.masked_equal(plane.T, 0),
                origin="lower",
                extent=extent,
                cmap=cmap,
                vmin=-0.5,
                vmax=n_bins - 0.5,
                interpolation="nearest",
            )
            fig.colorbar(im, ax=ax, shrink=0.8, ticks=range(n_bins), label="bin k")
        else:
            _overlay(ax, plane > 0, extent, kw["colormap"][1], 0.6)
    return fig


def _tab_colours(n: int) -> np.ndarray:
    """``n`` RGBA colours of matplotlib's ``tab20``, cycled (distinct neighbouring bins)."""
    import matplotlib

    rgba = np.asarray(matplotlib.colormaps["tab20"](np.arange(20)))
    return rgba[np.arange(max(n, 0)) % len(rgba)]
