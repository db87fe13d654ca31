"""One description per parameter, shared by a function's docstring and its command-line help.

A docstring names a shared description as ``{{name}}``; :func:`fill_doc` puts the text in, so that
``help(evaluate_folders)`` and ``pcatools evaluate --help`` say the same words from one place
(nilearn's ``docdict`` pattern).

Examples
--------
>>> @fill_doc({"seed": "Seed of the bootstrap."})
... def f(seed: int = 0) -> None:
...     '''Parameters: seed -- {{seed}}'''
>>> f.__doc__
'Parameters: seed -- Seed of the bootstrap.'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["fill_doc"]

F = TypeVar("F", bound=Callable[..., object])


def fill_doc(descriptions: Mapping[str, str]) -> Callable[[F], F]:
    """Replace each ``{{name}}`` in the decorated function's docstring with ``descriptions[name]``.

    A name missing from ``descriptions`` raises ``KeyError`` at import, so that a docstring never
    shows a bare placeholder.
    """

    def decorate(func: F) -> F:
        if func.__doc__:
            func.__doc__ = re.sub(r"\{\{(\w+)\}\}", lambda m: descriptions[m.group(1)], func.__doc__)
        return func

    return decorate
