"""The numpydoc examples of pcatools (the losses first) run and give the values they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["l1_weights", "dice", "focal", "dice_focal", "l1dfl", "curves", "factory", "reference_code"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"pcatools.losses.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"no examples in pcatools.losses.{name}"
    assert result.failed == 0


def _package_modules() -> list[str]:
    import pkgutil

    import pcatools

    skip = ("pcatools.viewer", "pcatools.cli", "pcatools.commands", "pcatools.__main__", "pcatools.losses")
    return [
        m.name for m in pkgutil.walk_packages(pcatools.__path__, "pcatools.") if not m.name.startswith(skip)
    ]


@pytest.mark.parametrize("name", _package_modules())
def test_every_other_docstring_example(name: str) -> None:
    """The examples of every other module (metrics, training, data, figures, ...) hold as well."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
