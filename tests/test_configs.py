"""The training settings are one list (``TrainConfig``): the shipped YAML configs load into it and equal
the study cell they say they are, the CLI's options are its settings, and what a run records reads back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
import yaml

from pcatools.commands.train import DATA_KEYS, load_config
from pcatools.study import get_profile
from pcatools.training.config import IDENTITY_KEYS, SlidingWindow, TrainConfig, setting_help
from pcatools.training.run_files import plain
from tests.conftest import REPO

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_there_are_configs() -> None:
    assert {p.name for p in CONFIGS} >= {"ci_tiny.yaml", "demo_cpu.yaml", "paper_segresnet_l1dfl.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_equals_the_study_cell_it_names(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    said = re.fullmatch(r"# equals: profile (\w+), (\w+) / (\w+)", first)
    assert said, f"{path.name}: the first line says which study cell the file is ({first!r})"
    profile, network, loss = said.groups()
    data = load_config(path)
    config = TrainConfig.from_dict({k: v for k, v in data.items() if k not in DATA_KEYS}, where=path.name)
    cell = get_profile(profile).train_config(network, loss)
    differences = {
        k: (v, getattr(cell, k)) for k, v in config.to_dict().items() if plain(v) != plain(getattr(cell, k))
    }
    assert differences == {}, f"{path.name} differs from profile {profile}'s {network}/{loss}"


def test_unknown_or_bad_key_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: segresnet\nval_evry: 3\n")
    with pytest.raises(
        typer.BadParameter,
        match=r"bad.yaml: unknown training setting 'val_evry' \(did you mean 'val_every'\?\)",
    ):
        load_config(bad)
    bad.write_text("overlap: 1.5\n")
    with pytest.raises(typer.BadParameter, match=r"bad.yaml: overlap must be in \[0, 1\), found 1.5"):
        load_config(bad)
    with pytest.raises(ValueError, match=r"warmup_epochs must be in \[0, epochs=5\), found 5"):
        TrainConfig(epochs=5, warmup_epochs=5)


def test_identity_keys_and_the_sliding_window() -> None:
    assert IDENTITY_KEYS == (
        "model", "model_overrides", "in_channels", "out_channels", "output_prior", "loss", "loss_overrides",
        "epochs", "batch_size", "lr", "warmup_epochs", "weight_decay", "patch_size", "spacing", "num_samples", "seed",
        "transform_overrides",
    )  # fmt: skip
    cfg = TrainConfig(patch_size=(32, 32, 32))
    assert cfg.sliding_window == SlidingWindow((32, 32, 32), 0.25, "gaussian", 4)  # window = patch
    assert cfg.replace(roi_size=64).sliding_window.roi_size == (64, 64, 64)
    # a run written before the names were one (val_roi_size, sw_mode) reads as today's
    old = {"patch_size": [32] * 3, "val_roi_size": [48, 48, 64], "sw_mode": "constant", "device": "cpu"}
    assert SlidingWindow.from_recorded(old) == SlidingWindow((48, 48, 64), 0.25, "constant", 4)
    assert TrainConfig.from_dict(old, recorded=True).mode == "constant"
    with pytest.raises(ValueError, match="unknown training setting 'val_roi_size'"):
        TrainConfig.from_dict(old)  # a config file uses today's names


def test_train_options_are_the_settings_with_their_one_description() -> None:
    from typer.main import get_command

    from pcatools.cli import app

    command = get_command(app).commands["train"]  # type: ignore[attr-defined]
    not_settings = {
        "config",
        "data_dir",
        "manifest",
        "run_dir",
        "resume",
        "max_epochs_this_call",
        "device",
        "progress",
    }
    overrides = {
        "model_override": "model_overrides",
        "loss_override": "loss_overrides",
        "transform_override": "transform_overrides",
        "loss_option": "loss_overrides",
        "network_option": "model_overrides",
    }
    settings = {f for f in TrainConfig.__dataclass_fields__}
    seen = set()
    for param in command.params:
        if param.name in not_settings:
            continue
        name = overrides.get(param.name, param.name)
        assert name in settings, f"pcatools train --{param.name} is not a TrainConfig setting"
        assert setting_help(name) in (param.help or ""), param.name
        seen.add(name)
    assert seen == settings - {"in_channels", "out_channels", "tensorboard"}


def test_profile_settings_round_trip_through_yaml() -> None:
    demo = get_profile("demo")
    again = yaml.safe_load(yaml.safe_dump(plain(demo.settings())))
    train = TrainConfig.from_dict({k: v for k, v in again.items() if k in TrainConfig.__dataclass_fields__})
    assert train == demo.train
