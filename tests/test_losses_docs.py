"""The numpydoc examples of pcatools.losses run and give the values they show."""

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
