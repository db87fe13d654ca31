"""Lazy imports for a package ``__init__``: a name is imported from its module on first use (PEP 562).

Every package of pcatools that offers names from heavier modules (``pcatools``, ``pcatools.data``,
``pcatools.training``, ``pcatools.nnunet``) builds its module ``__getattr__`` and ``__dir__`` here,
so that ``import pcatools`` stays fast and free of torch while ``from pcatools import train``
still works; one implementation, so that the four packages cannot drift apart.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, table: Mapping[str, str], computed: Callable[[str], Any] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` for the names of ``table``.

    ``table`` maps each name to the module that defines it; the first look-up imports that module
    and keeps the value in the package's namespace, so later look-ups skip ``__getattr__``.
    ``computed(name)``, when given, answers the names outside ``table`` anew on each look-up (and
    raises ``AttributeError`` for those it does not know): values read from a registry that can
    grow, which must not be kept. ``__dir__`` lists the package's ``__all__``, the names of
    ``table``, the dunders and the subpackages imported so far, without the ``__init__``'s own
    helpers.

    Examples
    --------
    >>> import types, sys
    >>> pkg = types.ModuleType("demo_pkg"); sys.modules["demo_pkg"] = pkg
    >>> pkg.__getattr__, pkg.__dir__ = lazy_exports("demo_pkg", {"dumps": "json"})
    >>> pkg.dumps([1]), "dumps" in vars(pkg)
    ('[1]', True)
    >>> pkg.loads
    Traceback (most recent call last):
    AttributeError: module 'demo_pkg' has no attribute 'loads'
    >>> del sys.modules["demo_pkg"]
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
            vars(sys.modules[package])[name] = value  # later look-ups skip __getattr__
            return value
        if computed is not None:
            return computed(name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        namespace = vars(sys.modules[package])
        loaded = [
            n
            for n, v in namespace.items()
            if isinstance(v, types.ModuleType) and v.__name__.startswith(f"{package}.")
        ]
        dunders = [n for n in namespace if n.startswith("__")]
        return sorted({*namespace.get("__all__", ()), *table, *dunders, *loaded})

    return __getattr__, __dir__
