"""A parameter is described once: a function's docstring and its command's ``--help`` show the same text."""

from __future__ import annotations

import pytest
from typer.main import get_command

from pcatools._docs import EVALUATE_PARAMETERS, fill_doc
from pcatools.cli import app
from pcatools.evaluation import evaluate_folders
from pcatools.training.config import setting_help


def _option_help(command: str) -> dict[str, str]:
    cmd = get_command(app).commands[command]  # type: ignore[attr-defined]
    return {p.name: " ".join((getattr(p, "help", None) or "").split()) for p in cmd.params}


def test_evaluate_docstring_and_help_share_each_description() -> None:
    doc = " ".join((evaluate_folders.__doc__ or "").split())
    assert "{{" not in doc
    helps = _option_help("evaluate")
    for name, text in EVALUATE_PARAMETERS.items():
        assert " ".join(text.split()) in doc, name
        assert " ".join(text.split()) in helps[name], name


def test_predict_window_options_take_the_training_settings_description() -> None:
    helps = _option_help("predict")
    for name in ("roi_size", "overlap", "mode", "sw_batch_size"):
        assert helps[name].startswith(setting_help(name)), name


def test_a_missing_description_fails_at_import() -> None:
    with pytest.raises(KeyError, match="nope"):

        @fill_doc({})
        def f() -> None:
            """{{nope}}"""
