"""The loss registry: every loss pcatools knows, each declared once.

A loss is declared once, here or by its user, so that its name, aliases, display label, colour,
constructor and capabilities cannot disagree between the places that use them (``build_loss``,
``pcatools.vocabulary``, Table 1's order, the figures, the nnU-Net trainers, every CLI help text).

The protocol of a loss (the one place it is written, with ``docs/losses.md``)::

    loss = factory(**options)                    # a class or a factory, keyword arguments only
    value = loss(logits, labels)                 # logits (B, 2, *spatial) float, labels (B, 1, *spatial) in {0, 1}
    value                                        # a scalar (0-dim) tensor, finite, differentiable in the logits

A loss enters the registry

* in pcatools: :data:`BUILTIN` below (defaults live in the class signature, nowhere else);
* from Python: ``register_loss("tversky", TverskyLoss, label="TL", colour="#D55E00")``;
* by name wherever a loss is named: ``NAME=SPEC`` with SPEC ``package.module:attr`` or
  ``path/to/file.py:attr`` (:mod:`pcatools.specs`), e.g. ``--loss tversky=my_losses.py:TverskyLoss``;
* from an installed package: an entry point in group ``pcatools.losses`` (name = loss name,
  value = ``package.module:attr``), read the first time the registry is asked.

Optional capabilities: ``curve`` (``p -> loss`` of one voxel of label 1 predicted at ``p``, the
loss's own Figure 7 curve; without one Figure 7 sweeps the foreground probability,
:func:`pcatools.losses.curves.generic_curve`) and ``weights`` (the module has
``element_weights(logits, labels)``, drawn in Figure 1 and napari).

This module imports no torch: a factory given as a spec string is imported on first use.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pcatools.registry import Registry, normalise
from pcatools.specs import Spec, SpecError, is_spec, load_spec, parse_spec, source_change, spec_source

__all__ = [
    "ENTRY_POINT_GROUP",
    "LossEntry",
    "LossError",
    "fitting_options",
    "get_loss",
    "loss_entries",
    "loss_help",
    "loss_name",
    "loss_names",
    "loss_source",
    "loss_source_change",
    "register_loss",
    "resolve_loss",
    "study_losses",
    "unregister_loss",
]

ENTRY_POINT_GROUP = "pcatools.losses"
"""Entry-point group of losses that installed packages declare."""

Factory = Callable[..., Any]


class LossError(SpecError):
    """A loss that cannot be named, built or used: one line naming the loss (or its spec) and what was found."""


@dataclass(frozen=True)
class LossEntry:
    """One declared loss.

    ``factory`` is a class or factory, or a spec string ``package.module:attr`` imported on first
    use; ``options`` are keyword arguments bound at registration (``--loss-option``); ``study``
    marks the paper's grid (Table 1); ``curve`` / ``weights`` are the optional capabilities (module
    docstring); ``nnunet_trainer`` names its nnU-Net trainer class; ``spec`` is the user's
    ``NAME=SPEC`` (its source is recorded in the run folder).
    """

    name: str
    factory: Factory | str
    label: str
    colour: str | None = None
    aliases: tuple[str, ...] = ()
    curve: Callable[..., Any] | str | None = None
    weights: bool = False
    study: bool = False
    nnunet_trainer: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    spec: Spec | None = None

    def load(self) -> Factory:
        """The factory (a spec string imported now)."""
        if isinstance(self.factory, str):
            return load_spec(self.spec or parse_spec(self.factory, need_name=False))  # type: ignore[no-any-return]
        return self.factory

    @property
    def shown(self) -> str:
        """The loss as messages name it: ``NAME=SPEC`` for a user spec, else its name."""
        return self.spec.text if self.spec is not None else self.name

    @property
    def trainer_name(self) -> str:
        """Its nnU-Net trainer class name (``nnUNetTrainer_<name>`` unless declared)."""
        return self.nnunet_trainer or f"nnUNetTrainer_{self.name}"


BUILTIN: tuple[LossEntry, ...] = (
    LossEntry(
        "dice", "pcatools.losses.dice:DiceLoss", "DL", "#0072B2", ("dl",),
        curve="pcatools.losses.curves:per_sample_dice", study=True, nnunet_trainer="nnUNetTrainerDice",
    ),
    LossEntry(
        "dice_focal", "pcatools.losses.dice_focal:DiceFocalLoss", "DFL", "#E69F00", ("dfl", "dicefocal"),
        curve="pcatools.losses.curves:per_sample_dice_focal", study=True,
        nnunet_trainer="nnUNetTrainerDiceFocal",
    ),
    LossEntry(
        "l1dfl", "pcatools.losses.l1dfl:L1DiceFocalLoss", "L1DFL", "#009E73", ("l1_dfl",),
        curve="pcatools.losses.curves:per_sample_l1dfl", weights=True, study=True,
        nnunet_trainer="nnUNetTrainerL1DFL",
    ),
    LossEntry(
        "focal", "pcatools.losses.focal:FocalLoss", "FL", "#CC79A7", ("fl",),
        curve="pcatools.losses.curves:per_sample_focal", nnunet_trainer="nnUNetTrainerFocal",
    ),
)  # fmt: skip
"""pcatools' own losses, in Table 1's order (DL, DFL, L1DFL; Focal is drawn in Figure 7 only)."""


def _from_entry_point(name: str, value: str) -> LossEntry:
    spec = parse_spec(f"{name}={value}", need_name=True)
    return LossEntry(name, spec.target, name, spec=spec)


_REGISTRY: Registry[LossEntry] = Registry(
    "loss", "losses", BUILTIN, LossError, "e.g. tversky", ENTRY_POINT_GROUP, _from_entry_point
)


def register_loss(
    name: str,
    factory: Factory | str,
    *,
    label: str | None = None,
    colour: str | None = None,
    aliases: tuple[str, ...] = (),
    curve: Callable[..., Any] | str | None = None,
    weights: bool = False,
    options: Mapping[str, Any] | None = None,
    replace_existing: bool = False,
) -> LossEntry:
    """Declare a loss under ``name`` (a class or factory, or a spec ``package.module:attr`` / ``file.py:attr``).

    ``label`` (default: the name) is how tables and legends show it, ``colour`` its colour (default:
    the next free one of :data:`pcatools.vocabulary.MODEL_PALETTE`). Registering a taken name is
    refused unless it is the same factory (or ``replace_existing``).

    Examples
    --------
    >>> from pcatools.losses.dice import DiceLoss
    >>> register_loss("my_dice", DiceLoss, label="MyDL").label
    'MyDL'
    >>> unregister_loss("my_dice")
    """
    target, spec = _REGISTRY.target(name, factory)
    entry = LossEntry(
        name, target, label or name, colour, tuple(normalise(a) for a in aliases),
        curve=curve, weights=weights, options=dict(options or {}), spec=spec,
    )  # fmt: skip
    return _REGISTRY.add(entry, replace_existing)


def unregister_loss(name: str) -> None:
    """Remove a loss that was registered (tests, notebooks); pcatools' own cannot be removed."""
    _REGISTRY.remove(name)


def loss_entries() -> tuple[LossEntry, ...]:
    """Every registered loss, pcatools' own first (Table 1's order), then in order of registration."""
    return tuple(_REGISTRY.entries().values())


def loss_names() -> tuple[str, ...]:
    """Names of every registered loss, in :func:`loss_entries` order."""
    return tuple(_REGISTRY.entries())


def study_losses() -> tuple[str, ...]:
    """The paper's grid (DL, DFL, L1DFL): the study's default losses."""
    return tuple(e.name for e in BUILTIN if e.study)


def loss_name(text: str) -> str:
    """The registered name behind a name, alias, label or ``NAME=SPEC`` (``DFL`` -> ``dice_focal``).

    An unknown name comes back normalised (lower case, ``-`` as ``_``), for the caller to refuse.
    """
    return _REGISTRY.find(text) or normalise(text)


def resolve_loss(text: str) -> LossEntry:
    """The entry of a name (or alias, label), registering ``NAME=SPEC`` first.

    Raises :class:`LossError` (a ``ValueError``) for an unknown name, naming the registered ones.
    """
    if is_spec(text):
        spec = parse_spec(text, "loss", need_name=True)
        return register_loss(str(spec.name), spec.target)
    entry = _REGISTRY.entries().get(loss_name(text))
    if entry is None:
        raise _REGISTRY.unknown(text, " (or DL, DFL, L1DFL)")
    return entry


def get_loss(text: str) -> LossEntry:
    """Alias of :func:`resolve_loss`."""
    return resolve_loss(text)


def accepts(name: str, key: str) -> bool:
    """Whether the loss's factory takes keyword ``key``; a class's ``**kwargs`` are followed into its bases
    (``DiceLoss(**kwargs)`` passes them to MONAI's ``DiceLoss``), a function's take anything."""
    factory = resolve_loss(name).load()
    for owner in factory.__mro__ if isinstance(factory, type) else (factory,):
        init = owner.__dict__.get("__init__") if isinstance(factory, type) else owner
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):  # no signature to read: let the factory decide
            return True
        if key in params:
            return True
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return False
    return False


def fitting_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``options`` the loss takes: a study profile's ``loss_overrides`` (``batch=True``) go to the
    losses that have that argument (pcatools' own), not to a user's loss without it."""
    return {k: v for k, v in options.items() if accepts(name, k)}


def loss_source(text: str) -> dict[str, str] | None:
    """Where a user loss's code comes from (:func:`pcatools.specs.spec_source`); ``None`` for pcatools' own."""
    entry = resolve_loss(text)
    if entry.spec is None:
        return None
    record = spec_source(entry.spec)
    if entry.options:
        record["options"] = repr(dict(entry.options))
    return record


def loss_source_change(old: Mapping[str, str] | None, new: Mapping[str, str] | None) -> str:
    """What changed in a user loss's code between two :func:`loss_source` records ("" if nothing).

    Examples
    --------
    >>> loss_source_change({"spec": "t=a.py:T", "file": "/x/a.py", "sha256": "ab" * 32},
    ...                    {"spec": "t=a.py:T", "file": "/x/a.py", "sha256": "cd" * 32})
    'loss t=a.py:T from /x/a.py (sha256 abababababab), which has changed since (sha256 now cdcdcdcdcdcd)'
    """
    return source_change(old, new, "loss")


def loss_help() -> str:
    """The losses for a CLI help text: ``dice (DL), ..., or NAME=SPEC``."""
    names = ", ".join(f"{e.name} ({e.label})" if e.label != e.name else e.name for e in loss_entries())
    return f"{names}, or your own as NAME=SPEC (SPEC package.module:attr or path/to/file.py:attr; docs/losses.md)."


def iter_curves() -> Iterator[tuple[str, Callable[..., Any] | None]]:
    """``(name, curve)`` of every registered loss, ``curve`` ``None`` where it declares none."""
    for e in loss_entries():
        curve = e.curve
        if isinstance(curve, str):
            curve = load_spec(parse_spec(curve, need_name=False))
        yield e.name, curve
