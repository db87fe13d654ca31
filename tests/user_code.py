"""Scaffolding shared by the tests of user code (tests/test_user_loss.py, tests/test_user_network.py).

A user's loss or network lives in a file of their working folder and is named ``NAME=FILE.py:ATTR``;
these helpers write such files, run the CLI, and train once from a file and once more after it
changed, so that the two kinds of user code are tested the same way, written once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pcatools.cli import app


def invoke(*args: str | Path) -> Any:
    """``pcatools ARGS`` through typer's runner (the result's ``exit_code`` and ``output``)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def user_code_dir(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: Mapping[str, str],
    names: Callable[[], tuple[str, ...]],
    unregister: Callable[[str], None],
) -> Iterator[Path]:
    """``files`` written into ``tmp_path``, the working directory while the test runs; every name the
    test registered (``names()`` after against before) is removed after, so no test sees another's."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    before = set(names())
    yield tmp_path
    for name in set(names()) - before:
        unregister(name)


def tiny_config(tmp_path: Path, repo_root: Path, *drop: str) -> Path:
    """configs/ci_tiny.yaml without the settings ``drop`` (those of pcatools' own loss or network,
    which a user's does not take), written to ``tmp_path/tiny.yaml``."""
    config = yaml.safe_load((repo_root / "configs" / "ci_tiny.yaml").read_text())
    for key in drop:
        del config[key]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass(frozen=True)
class UserCode:
    """One kind of user code as ``pcatools train`` records it: the option that names it, and the
    ``config.yaml`` keys of its spec, its keyword arguments and its source."""

    kind: str  # "loss" or "network": the option (--loss, --network-option) and the messages' word
    setting: str  # config.yaml key of the spec: "loss" / "model"
    overrides: str  # of the keyword arguments: "loss_overrides" / "model_overrides"
    source: str  # of the recorded source: "loss_source" / "network_source"


LOSS = UserCode("loss", "loss", "loss_overrides", "loss_source")
"""A user's loss in ``pcatools train``."""
NETWORK = UserCode("network", "model", "model_overrides", "network_source")
"""A user's network in ``pcatools train``."""


def train_from_a_file_and_refuse_it_changed(
    code: UserCode,
    work: Path,
    args: list[str | Path],
    spec: str,
    options: dict[str, Any],
    changed: str,
    max_loss: float,
) -> None:
    """Train with ``args`` (naming ``spec`` from ``work``'s file, with ``options``): the run records
    the spec, its options and the file's SHA-256; after the file changes to ``changed`` the same
    command is refused (exit 1, one line naming the file and both hashes) until ``--resume no``."""
    run = work / "run"
    out = invoke(*args)
    assert out.exit_code == 0, out.output
    assert "finished: 1 epochs" in out.output
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config[code.setting] == spec
    assert config[code.overrides] == options
    source = work / spec.split("=", 1)[1].split(":", 1)[0]
    old = hashlib.sha256(source.read_bytes()).hexdigest()
    assert config[code.source] == {"spec": spec, "file": str(source.resolve()), "sha256": old}
    history = pd.read_csv(run / "history.csv")
    assert len(history) == 1 and bool(history["train_loss"].between(0, max_loss).all())

    source.write_text(changed)
    new = hashlib.sha256(source.read_bytes()).hexdigest()
    refused = invoke(*args)
    assert refused.exit_code == 1
    assert refused.output.rstrip("\n") == (
        f"error: train: {run / 'last.pt'} was trained with {code.kind} {spec} from "
        f"{source.resolve()} (sha256 {old[:12]}), which has changed since (sha256 now {new[:12]}); start over "
        f"with resume=False (pcatools train --resume no), which moves the earlier run's files to "
        f"{run / 'replaced'}/, or use another run folder"
    )
    again = invoke(*args, "--resume", "no")
    assert again.exit_code == 0, again.output
    assert yaml.safe_load((run / "config.yaml").read_text())[code.source]["sha256"] == new
