"""The study's vocabulary: network and loss names, their display labels, colours and order.

Every table, figure, CLI and config derives its names from here, so that the paper's order
(Table 1: Attention U-Net before SegResNet; DL, DFL, L1DFL) and a loss's colour are the same
everywhere. The losses' names, labels, colours and order are read from the loss registry
(:mod:`pcatools.loss_registry`), the networks' from the network registry
(:mod:`pcatools.network_registry`), each time they are asked for, so a loss or network registered
later (``register_loss``, ``register_network``, ``NAME=SPEC``, an entry point) appears in them too. A name outside the
vocabulary (a model of ``pcatools evaluate``) is shown as it is.

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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pcatools.loss_registry import loss_entries, loss_name, study_losses
from pcatools.network_registry import network_entries, study_networks

__all__ = [
    "NETWORKS",
    "LOSSES",
    "SCENARIOS",
    "NETWORK_LABELS",
    "NETWORK_COLORS",
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

NETWORKS: tuple[str, ...] = study_networks()
"""The study's networks, in Table 1's order: the network registry's ``study`` networks."""

LOSSES: tuple[str, ...] = study_losses()
"""The study's losses, in Table 1's order (DL, DFL, L1DFL): the registry's ``study`` losses."""

SCENARIOS: tuple[str, ...] = ("S", "M")
"""Patient scenarios (3.2): single lesion, multiple lesions."""


class _LossView(Mapping[str, str]):
    """``{name: label}`` or ``{name: colour}`` of every registered loss (or network), read from its
    registry on each use."""

    def __init__(self, attr: str, entries: Any = loss_entries) -> None:
        self._attr, self._entries = attr, entries

    def _data(self) -> dict[str, str]:
        return {e.name: str(getattr(e, self._attr)) for e in self._entries() if getattr(e, self._attr)}

    def __getitem__(self, key: str) -> str:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return repr(self._data())


NETWORK_LABELS: Mapping[str, str] = _LossView("label", network_entries)
"""Display labels of the registered networks, in the registry's order (Table 1's two, the public code's, then yours)."""

NETWORK_COLORS: Mapping[str, str] = _LossView("colour", network_entries)
"""Fixed network colours (Tol's palette; a registered network without one has none)."""

LOSS_LABELS: Mapping[str, str] = _LossView("label")
"""Display labels of the registered losses, in the registry's order (the study's three, Focal, then yours)."""

LOSS_COLORS: Mapping[str, str] = _LossView("colour")
"""Fixed loss colours (Okabe-Ito, colour-blind safe; a registered loss without one gets :data:`MODEL_PALETTE`'s)."""

MODEL_PALETTE: tuple[str, ...] = ("#D55E00", "#56B4E9", "#F0E442", "#8C564B", "#7B3294", "#E377C2", "#17BECF")
"""Colours given to other model names (``pcatools evaluate``), in the order they are first drawn."""

OTHER_COLOR = "#7F7F7F"
"""Colour of a model once :data:`MODEL_PALETTE` is used up."""

_MODEL_COLORS: dict[str, str] = {}


def loss_key(name: str) -> str:
    """The loss name behind a label, alias or ``NAME=SPEC``, case-insensitive (``DFL`` -> ``dice_focal``).

    Unknown names are returned normalised (lower case, ``-`` as ``_``), for the caller to refuse.
    """
    return loss_name(name)


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
