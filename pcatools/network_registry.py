"""The network registry: every network pcatools knows, each declared once.

A network is declared once, here or by its user, so that its name, display label, colour,
constructor and default arguments cannot disagree between the places that use them
(:func:`pcatools.models.build_model`, :mod:`pcatools.vocabulary`, Table 1, the figures, the CLI).

The protocol of a network (the one place it is written, with ``docs/losses.md``)::

    net = factory(in_channels=2, out_channels=2, **options)   # a class or a factory; spatial_dims=3 where it takes one
    logits = net(x)                                            # x (B, in_channels, *spatial) -> (B, out_channels, *spatial)

A network enters the registry

* in pcatools: :data:`BUILTIN` below (the paper's SegResNet and Attention U-Net);
* from Python: ``register_network("mynet", MyNet, label="MyNet", colour="#7B3294")``;
* by name wherever a network is named: ``NAME=SPEC`` with SPEC ``package.module:attr`` or
  ``path/to/file.py:attr`` (:mod:`pcatools.specs`), e.g. ``--network mynet=my_nets.py:MyNet``;
* any MONAI network by its class name: ``UNet`` or ``monai.networks.nets.UNet`` (its keyword
  arguments from ``model_overrides`` / ``--network-option unet.channels=[4,8,16]``).

:func:`pcatools.models.check_network` builds it and runs it once on a small input before anything trains.
This module imports no torch at import time.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pcatools.registry import Registry, normalise
from pcatools.specs import Spec, SpecError, is_spec, load_spec, parse_spec, source_change, spec_source

__all__ = [
    "BUILTIN",
    "NetworkEntry",
    "NetworkError",
    "declare_network",
    "network_entries",
    "network_name",
    "network_names",
    "network_source",
    "network_source_change",
    "register_network",
    "resolve_network",
    "study_networks",
    "unregister_network",
]

Factory = Callable[..., Any]


class NetworkError(SpecError):
    """A network that cannot be named, built or used: one line naming it (or its spec) and what was found."""


@dataclass(frozen=True)
class NetworkEntry:
    """One declared network.

    ``factory`` is a class or factory, or a spec string ``package.module:attr`` imported on first
    use; ``defaults`` are the constructor arguments pcatools passes (pcatools' own networks);
    ``options`` keyword arguments bound at registration (``--network-option`` of ``pcatools
    study``); ``study`` marks the paper's grid; ``spec`` is the user's ``NAME=SPEC`` (its source
    is recorded in the run folder); ``builtin`` marks pcatools' own (not re-checked before training).
    """

    name: str
    factory: Factory | str
    label: str
    colour: str | None = None
    aliases: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    study: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    spec: Spec | None = None
    builtin: bool = False

    def load(self) -> Factory:
        """The factory (a spec string imported now)."""
        if isinstance(self.factory, str):
            return load_spec(self.spec or parse_spec(self.factory, "network", need_name=False), "network")  # type: ignore[no-any-return]
        return self.factory

    @property
    def shown(self) -> str:
        """The network as messages name it: ``NAME=SPEC`` for a user spec, else its name."""
        return self.spec.text if self.spec is not None else self.name


_ATTENTION = {"spatial_dims": 3, "kernel_size": 3, "up_kernel_size": 3, "dropout": 0.0}

BUILTIN: tuple[NetworkEntry, ...] = (
    NetworkEntry(
        "attention_unet", "monai.networks.nets:AttentionUnet", "Attention U-Net", "#332288",
        ("attunet", "attentionunet"),
        {**_ATTENTION, "channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2)}, study=True, builtin=True,
    ),
    NetworkEntry(
        "segresnet", "monai.networks.nets:SegResNet", "SegResNet", "#882255", ("segresnet3d",),
        {
            "spatial_dims": 3, "init_filters": 16, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1),
            "norm": ("GROUP", {"num_groups": 8}), "act": ("RELU", {"inplace": True}), "dropout_prob": None,
            "upsample_mode": "nontrainable",
        },
        study=True, builtin=True,
    ),
    NetworkEntry(
        "attention_unet_reference", "monai.networks.nets:AttentionUnet", "attention_unet_reference",
        "#44AA99", (),
        {**_ATTENTION, "channels": (16, 32, 64, 128, 256, 512), "strides": (2, 2, 2, 2, 2)}, builtin=True,
    ),
)  # fmt: skip
"""pcatools' own networks (paper section 2.4; :mod:`pcatools.models`), in Table 1's order."""

_REGISTRY: Registry[NetworkEntry] = Registry("network", "networks", BUILTIN, NetworkError, "e.g. mynet")


def register_network(
    name: str,
    factory: Factory | str,
    *,
    label: str | None = None,
    colour: str | None = None,
    aliases: tuple[str, ...] = (),
    options: Mapping[str, Any] | None = None,
    replace_existing: bool = False,
) -> NetworkEntry:
    """Declare a network under ``name`` (a class or factory, or a spec ``package.module:attr`` / ``file.py:attr``).

    ``label`` (default: the name) is how tables and figures show it. Registering a taken name is
    refused unless it is the same factory with the same options (or ``replace_existing``).

    Examples
    --------
    >>> register_network("my_unet", "monai.networks.nets:UNet", options={"channels": (4, 8), "strides": (2,)}).label
    'my_unet'
    >>> unregister_network("my_unet")
    """
    target, spec = _REGISTRY.target(name, factory)
    entry = NetworkEntry(
        name, target, label or name, colour, tuple(normalise(a) for a in aliases),
        options=dict(options or {}), spec=spec,
    )  # fmt: skip
    return _REGISTRY.add(entry, replace_existing)


def unregister_network(name: str) -> None:
    """Remove a network that was registered (tests, notebooks); pcatools' own cannot be removed."""
    _REGISTRY.remove(name)


def network_entries() -> tuple[NetworkEntry, ...]:
    """Every registered network, pcatools' own first (Table 1's order), then in order of registration."""
    return tuple(_REGISTRY.entries().values())


def network_names() -> tuple[str, ...]:
    """Names of every registered network, in :func:`network_entries` order."""
    return tuple(_REGISTRY.entries())


def study_networks() -> tuple[str, ...]:
    """The paper's grid (Attention U-Net, SegResNet): the study's default networks."""
    return tuple(e.name for e in BUILTIN if e.study)


def _monai_class(text: str) -> str | None:
    """``UNet`` or ``monai.networks.nets.UNet`` -> ``monai.networks.nets:UNet`` where MONAI has that network."""
    if not re.match(r"^(monai\.networks\.nets\.)?[A-Za-z_][A-Za-z0-9_]*$", text):
        return None
    attr = text.rsplit(".", 1)[-1]
    nets = importlib.import_module("monai.networks.nets")
    return f"monai.networks.nets:{attr}" if isinstance(getattr(nets, attr, None), type) else None


def network_name(text: str) -> str:
    """The registered name behind a name, alias, label, ``NAME=SPEC`` or MONAI class (``UNet`` -> ``unet``).

    An unknown name comes back normalised (lower case, ``-`` as ``_``), for the caller to refuse.
    """
    found = _REGISTRY.find(text)
    if found is not None:
        return found
    return normalise(text.rsplit(".", 1)[-1] if text.startswith("monai.networks.nets.") else text)


def _loaded(
    name: str, target: str, label: str | None = None, options: Mapping[str, Any] | None = None
) -> NetworkEntry:
    """Register ``name`` for ``target`` and import it now; a spec that cannot be loaded is not kept."""
    new = name not in _REGISTRY.entries()
    entry = register_network(name, target, label=label, options=options)
    try:
        entry.load()
    except SpecError as err:
        if new:
            _REGISTRY.remove(name)
        raise NetworkError(str(err)) from None
    return entry


def resolve_network(text: str) -> NetworkEntry:
    """The entry of a name (or alias, label), registering ``NAME=SPEC`` or a MONAI class name first.

    Raises :class:`NetworkError` (a ``ValueError``) for an unknown name, naming the registered ones.
    """
    if is_spec(text):
        spec = parse_spec(text, "network", need_name=True)
        return _loaded(str(spec.name), spec.target)
    entry = _REGISTRY.entries().get(network_name(text))
    if entry is not None:
        return entry
    target = _monai_class(text.strip())
    if target is not None:
        return _loaded(network_name(text), target, label=text.rsplit(".", 1)[-1])
    raise _REGISTRY.unknown(text, ", a MONAI network (e.g. UNet or monai.networks.nets.UNet)")


def declare_network(text: str, options: Mapping[str, Any] | None = None) -> NetworkEntry:
    """:func:`resolve_network` with keyword arguments bound to the network (``--network-option`` of
    ``pcatools study``, whose cells take no per-network ``model_overrides`` for a user's network).

    Declaring the same network with the same options again (a re-run) gives the same entry;
    pcatools' own networks take none: their arguments are the profile's ``model_overrides``.
    """
    opts = dict(options or {})
    if is_spec(text):
        spec = parse_spec(text, "network", need_name=True)
        return _loaded(str(spec.name), spec.target, options=opts)
    entry = _REGISTRY.entries().get(network_name(text))
    if entry is None and (target := _monai_class(text.strip())) is not None:
        return _loaded(network_name(text), target, label=text.rsplit(".", 1)[-1], options=opts)
    entry = entry or resolve_network(text)  # an unknown name: refused there
    if opts and entry.builtin:
        raise NetworkError(
            f"network {entry.name}: options go to a MONAI network or a network given as NAME=SPEC; "
            "pcatools' own take the profile's model_overrides"
        )
    if opts and dict(entry.options) != opts:
        factory = entry.spec.target if entry.spec is not None else entry.factory
        return register_network(
            entry.name, factory, label=entry.label, colour=entry.colour, options=opts, replace_existing=True
        )
    return entry


def network_source(text: str) -> dict[str, str] | None:
    """Where a user network's code comes from (:func:`pcatools.specs.spec_source`); ``None`` for pcatools' own."""
    entry = resolve_network(text)
    if entry.spec is None or entry.builtin:
        return None
    record = spec_source(entry.spec, "network")
    if entry.options:
        record["options"] = repr(dict(entry.options))
    return record


def network_source_change(old: Mapping[str, str] | None, new: Mapping[str, str] | None) -> str:
    """What changed in a user network's code between two :func:`network_source` records ("" if nothing)."""
    return source_change(old, new, "network")


def accepted_keys(factory: Factory) -> set[str] | None:
    """The keyword arguments ``factory`` takes (a class's ``__init__``), ``None`` where it takes any (``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read: let the factory decide
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)
