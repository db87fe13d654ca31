"""A registry of named entries: what the loss and the network registries have in common, written once.

An entry has a ``name`` (lower case, letters, digits and ``_``), ``aliases``, a display ``label``,
a ``factory`` (a class or factory, or a spec string imported on first use), ``options`` bound at
registration and the user's ``spec`` (``NAME=SPEC``) where it came from one. A :class:`Registry`
holds pcatools' own entries first, then those registered in order, and

* refuses a taken name (unless it is the same factory with the same options) and an alias that
  another entry holds;
* finds an entry by name, alias or label (case and ``-``/``_`` aside);
* says in one line, for an unknown name, which names are registered;
* reads the entries of installed packages from an entry-point group the first time it is asked.

:mod:`pcatools.loss_registry` and :mod:`pcatools.network_registry` each keep one and add what is
their own (a loss's curve and weights; a network's defaults, MONAI classes and the check that runs it).
This module imports no torch.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Generic, Protocol, TypeVar

from pcatools.specs import Spec, SpecError, parse_spec

__all__ = ["Entry", "Registry", "normalise"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Entry(Protocol):
    """What a registry needs of an entry (:class:`~pcatools.loss_registry.LossEntry`,
    :class:`~pcatools.network_registry.NetworkEntry`)."""

    @property
    def name(self) -> str:
        """The registered name."""

    @property
    def factory(self) -> Any:
        """A class or factory, or a spec string imported on first use."""

    @property
    def label(self) -> str:
        """How tables, legends and messages show it."""

    @property
    def aliases(self) -> tuple[str, ...]:
        """Other names it answers to."""

    @property
    def options(self) -> Mapping[str, Any]:
        """Keyword arguments bound at registration."""

    @property
    def shown(self) -> str:
        """How refusals name it: ``NAME=SPEC`` for a user spec, else its name."""


E = TypeVar("E", bound=Entry)


def normalise(name: str) -> str:
    """A name as the registries compare it: stripped, lower case, ``-`` as ``_``.

    Examples
    --------
    >>> normalise(" Dice-Focal ")
    'dice_focal'
    """
    return name.strip().lower().replace("-", "_")


class Registry(Generic[E]):
    """Entries of one kind (``what``: ``"loss"``, ``"network"``) by name.

    Parameters
    ----------
    what, plural
        How messages name the kind (``"loss"``, ``"losses"``).
    builtin
        pcatools' own entries, in Table 1's order; they cannot be unregistered.
    error
        The :class:`~pcatools.specs.SpecError` subclass every refusal raises.
    example
        A name for the message on a malformed one (``"e.g. tversky"``).
    group, from_entry_point
        The entry-point group installed packages declare entries in, and how one becomes an entry
        (``(name, value) -> entry``); read once, the first time the registry is asked.
    """

    def __init__(
        self,
        what: str,
        plural: str,
        builtin: Sequence[E],
        error: type[SpecError],
        example: str,
        group: str | None = None,
        from_entry_point: Callable[[str, str], E] | None = None,
    ) -> None:
        self.what, self.plural, self.error, self.example = what, plural, error, example
        self.builtin = tuple(builtin)
        self._entries: dict[str, E] = {e.name: e for e in self.builtin}
        self._group, self._from_entry_point = group, from_entry_point
        self._entry_points_read = group is None

    def entries(self) -> dict[str, E]:
        """Every entry by name: pcatools' own, then installed packages', then in order of registration."""
        if not self._entry_points_read:
            self._entry_points_read = True
            assert self._group is not None and self._from_entry_point is not None
            for ep in importlib.metadata.entry_points(group=self._group):
                if ep.name not in self._entries:
                    self._entries[ep.name] = self._from_entry_point(ep.name, ep.value)
        return self._entries

    def target(self, name: str, factory: Any) -> tuple[Any, Spec | None]:
        """``(factory, spec)`` of a registration: a spec string parsed (``NAME=SPEC`` with this name),
        a class or factory as it is; a malformed name or a factory that is neither is refused."""
        if not _NAME.match(name):
            raise self.error(
                f"{self.what} {name!r}: expected a lower-case name of letters, digits and _, {self.example}"
            )
        if isinstance(factory, str):
            spec = replace(parse_spec(f"{name}={factory}", self.what, need_name=True), name=name)
            return spec.target, spec
        if not callable(factory):
            raise self.error(
                f"{self.what} {name}: {type(factory).__name__} is not a class or a factory (callable)"
            )
        return factory, None

    def add(self, entry: E, replace_existing: bool = False) -> E:
        """Register ``entry``; a name taken by another factory or other options, or an alias another
        entry holds, is refused; the same factory with the same options gives the entry there."""
        reg = self.entries()
        old = reg.get(entry.name)
        if old is not None and not replace_existing:
            if old.factory == entry.factory and dict(old.options) == dict(entry.options):
                return old
            raise self.error(
                f"{self.what} {entry.shown}: the name {entry.name!r} is already registered as {old.shown}"
            )
        taken = {a: e.name for e in reg.values() for a in e.aliases if e.name != entry.name}
        clash = [a for a in (entry.name, *entry.aliases) if a in taken]
        if clash:
            raise self.error(
                f"{self.what} {entry.shown}: {clash[0]!r} is already an alias of {taken[clash[0]]!r}"
            )
        reg[entry.name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Unregister ``name`` (nothing if it is not registered); pcatools' own are refused."""
        if name in {e.name for e in self.builtin}:
            raise self.error(f"{self.what} {name}: pcatools' own {self.plural} cannot be unregistered")
        self.entries().pop(name, None)

    def find(self, text: str) -> str | None:
        """The registered name behind a name, alias or label, or the name of ``NAME=SPEC``; ``None``
        where nothing registered answers to it."""
        if "=" in text:
            return text.split("=", 1)[0].strip()
        reg = self.entries()
        if text in reg:
            return text
        key = normalise(text)
        for e in reg.values():
            if key == e.name or key in e.aliases or key == normalise(e.label):
                return e.name
        return None

    def unknown(self, text: str, also: str = "") -> SpecError:
        """The refusal of an unknown name: one line listing the registered names (and ``also``)."""
        return self.error(
            f"unknown {self.what} {text!r}; expected one of {', '.join(self.entries())}{also}, "
            "or NAME=SPEC (package.module:attr or path/to/file.py:attr)"
        )
