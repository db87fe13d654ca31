"""The study's vocabulary: network and loss names, their display labels, colours and order.

Every table, figure, CLI and config derives its names from here, so that the paper's order
(Table 1: Attention U-Net before SegResNet; DL, DFL, L1DFL) and a loss's colour are the same
everywhere. A name outside the vocabulary (a model of ``pcatools evaluate``) is shown as it is.

Examples
--------
>>> [loss_label(n) for n in LOSSES], network_label("segresnet")
(['DL', 'DFL', 'L1DFL'], 'SegResNet')
>>> ordered(["L1DFL", "mine", "dice"], LOSS_LABELS)
['dice', 'L1DFL', 'mine']
>>> loss_key("DFL"), loss_key("L1-DFL")
('dice_focal', 'l1dfl')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "NETWORKS",
    "LOSSES",
    "SCENARIOS",
    "NETWORK_LABELS",
    "LOSS_LABELS",
    "LOSS_COLORS",
    "MODEL_PALETTE",
    "OTHER_COLOR",
    "loss_key",
    "loss_label",
    "network_label",
    "loss_color",
    "ordered",
]

NETWORKS: tuple[str, ...] = ("attention_unet", "segresnet")
"""The study's networks, in Table 1's order."""

LOSSES: tuple[str, ...] = ("dice", "dice_focal", "l1dfl")
"""The study's losses, in Table 1's order (DL, DFL, L1DFL)."""

SCENARIOS: tuple[str, ...] = ("S", "M")
"""Patient scenarios (3.2): single lesion, multiple lesions."""

NETWORK_LABELS: dict[str, str] = {"attention_unet": "Attention U-Net", "segresnet": "SegResNet"}
"""Display labels of the networks, in Table 1's order."""

LOSS_LABELS: dict[str, str] = {"dice": "DL", "dice_focal": "DFL", "l1dfl": "L1DFL", "focal": "FL"}
"""Display labels of the losses (the study's three, then Focal, drawn in Figure 7 only)."""

LOSS_COLORS: dict[str, str] = {
    "dice": "#0072B2",
    "dice_focal": "#E69F00",
    "l1dfl": "#009E73",
    "focal": "#CC79A7",
}
"""Fixed loss colours (Okabe-Ito, colour-blind safe)."""

MODEL_PALETTE: tuple[str, ...] = ("#D55E00", "#56B4E9", "#F0E442", "#8C564B", "#7B3294", "#E377C2", "#17BECF")
"""Colours given to other model names (``pcatools evaluate``), in the order they are first drawn."""

OTHER_COLOR = "#7F7F7F"
"""Colour of a model once :data:`MODEL_PALETTE` is used up."""

_LOSS_ALIASES = {
    "dl": "dice",
    "dfl": "dice_focal",
    "dicefocal": "dice_focal",
    "l1_dfl": "l1dfl",
    "fl": "focal",
}
_MODEL_COLORS: dict[str, str] = {}


def loss_key(name: str) -> str:
    """The loss name behind a label or alias, case-insensitive (``DFL`` -> ``dice_focal``).

    Unknown names are returned normalised (lower case, ``-`` as ``_``), for the caller to refuse.
    """
    key = name.strip().lower().replace("-", "_")
    return _LOSS_ALIASES.get(key, key)


def loss_label(name: str) -> str:
    """Display label of a loss name (``dice`` -> ``DL``); unknown names are returned as they are."""
    return LOSS_LABELS.get(name, name)


def network_label(name: str) -> str:
    """Display label of a network name (``segresnet`` -> ``SegResNet``)."""
    return NETWORK_LABELS.get(name, name)


def loss_color(name: str) -> str:
    """Fixed colour of a loss name (:data:`LOSS_COLORS`).

    Another name (a model of ``pcatools evaluate``) gets the next free colour of
    :data:`MODEL_PALETTE` the first time it is drawn and keeps it (:data:`OTHER_COLOR` once the
    palette is used up), so that models are told apart alike in every figure.
    """
    if name in LOSS_COLORS:
        return LOSS_COLORS[name]
    if name not in _MODEL_COLORS:
        free = [c for c in MODEL_PALETTE if c not in _MODEL_COLORS.values()]
        _MODEL_COLORS[name] = free[0] if free else OTHER_COLOR
    return _MODEL_COLORS[name]


def ordered(values: Iterable[Any], order: Sequence[str] | Mapping[str, str]) -> list[Any]:
    """Unique values in the vocabulary's order, the others in order of appearance.

    ``order`` is a sequence of names or a ``{name: label}`` mapping, in which case a display label
    sorts as its name does (tables use labels, figures names). NaN values are dropped.
    """
    uniq = list(dict.fromkeys(v for v in values if v == v))  # v != v only for NaN
    if isinstance(order, Mapping):
        rank = {**{k: i for i, k in enumerate(order)}, **{v: i for i, v in enumerate(order.values())}}
    else:
        rank = {k: i for i, k in enumerate(order)}
    known = sorted((v for v in uniq if v in rank), key=lambda v: rank[v])
    return known + [v for v in uniq if v not in rank]
