"""Your own network (issue 23, items 4 and 5): ``NAME=SPEC`` or a MONAI class name through ``pcatools
train`` and Python, each bad spec refused in one line before anything is written, and a run refused
after its network's source changed.

The network files are written into ``tmp_path`` (outside the package), as a user's would be.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from pcatools.models import build_model, check_network
from pcatools.network_registry import (
    NetworkError,
    network_names,
    network_source,
    register_network,
    unregister_network,
)
from tests.test_training import tiny_cohort
from tests.user_code import (
    NETWORK,
    invoke,
    tiny_config,
    train_from_a_file_and_refuse_it_changed,
    user_code_dir,
)

MY_NETS = '''
from torch import nn


class TinyNet(nn.Module):
    """Two 3-D convolutions: (B, in_channels, *spatial) -> (B, out_channels, *spatial)."""

    def __init__(self, in_channels: int = 2, out_channels: int = 2, width: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Conv3d(width, out_channels, 1)
        )

    def forward(self, x):
        return self.body(x)


def make_tiny(in_channels, out_channels, **options):
    return TinyNet(in_channels, out_channels, **options)
'''

BROKEN = """
from torch import nn

NOT_CALLABLE = 3


class OneChannel(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, 1, 1)

    def forward(self, x):
        return self.conv(x)


class Halves(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 2, stride=2)

    def forward(self, x):
        return self.conv(x)
"""

INPUT = "on an input (1, 2, 32, 32, 32)"


@pytest.fixture
def nets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``my_nets.py`` and ``broken_nets.py`` in the working directory; every network they register is removed after."""
    files = {"my_nets.py": MY_NETS, "broken_nets.py": BROKEN}
    yield from user_code_dir(tmp_path, monkeypatch, files, network_names, unregister_network)


BAD_SPECS = [
    (
        "gone=no_such_pkg.nets:Net",
        "network gone=no_such_pkg.nets:Net: no module named 'no_such_pkg' (not installed, or not on sys.path)",
    ),
    ("gone=missing.py:Net", "network gone=missing.py:Net: file missing.py not found (from {cwd})"),
    (
        "gone=broken_nets.py:NoSuchNet",
        "network gone=broken_nets.py:NoSuchNet: broken_nets.py has no attribute 'NoSuchNet'",
    ),
    (
        "gone=broken_nets.py:NOT_CALLABLE",
        "network gone=broken_nets.py:NOT_CALLABLE: NOT_CALLABLE is a int, expected a class or a factory (callable)",
    ),
    (
        "one=broken_nets.py:OneChannel",
        f"network one=broken_nets.py:OneChannel returns shape (1, 1, 32, 32, 32) {INPUT}, expected (1, 2, 32, 32, 32)",
    ),
    (
        "half=broken_nets.py:Halves",
        f"network half=broken_nets.py:Halves returns shape (1, 2, 16, 16, 16) {INPUT}, expected (1, 2, 32, 32, 32)",
    ),
    (
        "UNet",
        "network unet=monai.networks.nets:UNet: building it failed (TypeError: UNet.__init__() missing 2 "
        "required positional arguments: 'channels' and 'strides')",
    ),
    (
        "bad=broken_nets.py",
        "network bad=broken_nets.py: expected NAME=package.module:attr or NAME=path/to/file.py:attr",
    ),
    (
        "unetx",
        # the registered names: the built-in three, and any a test before this one registered in this process
        "unknown network 'unetx'; expected one of {names}, a MONAI "
        "network (e.g. UNet or monai.networks.nets.UNet), or NAME=SPEC (package.module:attr or path/to/file.py:attr)",
    ),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[s for s, _ in BAD_SPECS])
def test_bad_spec_is_one_line_exit_2_and_nothing_written(nets_dir: Path, spec: str, message: str) -> None:
    expected = "error: " + message.format(cwd=nets_dir, names=", ".join(network_names()))
    assert network_names()[:3] == ("attention_unet", "segresnet", "attention_unet_reference")
    run = nets_dir / "run"
    args = ["train", "--run-dir", run, "--data-dir", nets_dir / "data", "--patch-size", "32", "--no-progress"]
    train = invoke(*args, "--network", spec)
    assert (train.exit_code, train.output.rstrip("\n")) == (2, expected)
    study = invoke("study", run, "--profile", "ci", "--network", spec, "--no-progress")
    assert (study.exit_code, study.output.rstrip("\n")) == (2, expected)
    assert not run.exists()
    assert not (nets_dir / "data").exists()
    if spec.startswith("gone="):  # a spec that cannot be loaded is not kept: the name stays free
        assert "gone" not in network_names()


def test_a_network_from_a_file_through_python(nets_dir: Path) -> None:
    """By spec, by the class itself and through a factory: the network the class builds, with the same numbers."""
    import importlib.util

    loader = importlib.util.spec_from_file_location("user_nets", nets_dir / "my_nets.py")
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    x = torch.randn(1, 2, 8, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    plain = module.TinyNet(2, 2, width=3)(x)
    for name in ("tiny=my_nets.py:TinyNet", "factory=my_nets.py:make_tiny"):
        torch.manual_seed(0)
        assert torch.equal(build_model(name, width=3)(x), plain), name
    register_network("tiny_class", module.TinyNet, label="Tiny", colour="#7B3294")
    torch.manual_seed(0)
    assert torch.equal(build_model("tiny_class", width=3)(x), plain)
    from pcatools.vocabulary import NETWORK_COLORS, NETWORK_LABELS, network_label

    assert (network_label("tiny_class"), NETWORK_COLORS["tiny_class"]) == ("Tiny", "#7B3294")
    assert list(NETWORK_LABELS)[:3] == ["attention_unet", "segresnet", "attention_unet_reference"]
    # the check leaves torch's random state as it was
    state = torch.random.get_rng_state()
    assert check_network("tiny", {"width": 3}).shown == "tiny=my_nets.py:TinyNet"
    assert torch.equal(torch.random.get_rng_state(), state)
    source = nets_dir / "my_nets.py"
    assert network_source("tiny") == {
        "spec": "tiny=my_nets.py:TinyNet",
        "file": str(source.resolve()),
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
    }
    assert network_source("segresnet") is None  # pcatools' own: nothing to record
    # a YAML config / TrainConfig names it the same way, and is checked the same way
    from pcatools.training.config import TrainConfig

    TrainConfig(
        model="tiny=my_nets.py:TinyNet", model_overrides={"width": 3}, patch_size=32
    ).check_components()
    with pytest.raises(ValueError) as err:
        TrainConfig(model="tiny", model_overrides={"depth": 3}, patch_size=32).check_components()
    assert str(err.value) == (
        "train: model_overrides ['depth'] are not arguments of 'tiny' (TinyNet); allowed: width"
    )
    TrainConfig(
        model="tiny", model_overrides={"width": 3}, patch_size=32, output_prior=0.01
    ).check_components()
    with pytest.raises(
        NetworkError
    ) as two:  # width 2: two convolutions give 2 channels, which is the output?
        TrainConfig(
            model="tiny", model_overrides={"width": 2}, patch_size=32, output_prior=0.01
        ).check_components()
    assert str(two.value) == (
        "network tiny=my_nets.py:TinyNet: output_prior needs its output layer: TinyNet: expected exactly one "
        "convolution with 2 output channels (the output layer), found 2: ['body.0', 'body.2']"
    )
    with pytest.raises(NetworkError) as bad:
        TrainConfig(model="one=broken_nets.py:OneChannel", patch_size=(16, 32, 64)).check_components()
    assert str(bad.value) == (
        "network one=broken_nets.py:OneChannel returns shape (1, 1, 16, 32, 32) on an input (1, 2, 16, 32, 32), "
        "expected (1, 2, 16, 32, 32)"
    )


def test_a_monai_network_by_name(nets_dir: Path) -> None:
    """``UNet`` and ``monai.networks.nets.UNet`` build MONAI's UNet (3-D) with the given channels and strides."""
    from monai import __version__ as monai_version
    from monai.networks.nets import UNet

    from pcatools.training.config import TrainConfig

    x = torch.randn(1, 2, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    plain = UNet(spatial_dims=3, in_channels=2, out_channels=2, channels=(4, 8, 16), strides=(2, 2))(x)
    for name in ("UNet", "monai.networks.nets.UNet"):
        torch.manual_seed(0)
        net = build_model(name, channels=(4, 8, 16), strides=(2, 2))
        assert isinstance(net, UNet) and torch.equal(net(x), plain), name
    config = yaml.safe_load(
        "model: monai.networks.nets.UNet\nmodel_overrides: {channels: [4, 8, 16], strides: [2, 2]}\n"
    )
    TrainConfig.from_dict(config).check_components()
    assert network_source("UNet") == {
        "spec": "unet=monai.networks.nets:UNet",
        "module": "monai.networks.nets",
        "package": "monai",
        "version": monai_version,
    }


def _tiny_config(tmp_path: Path, repo_root: Path) -> Path:
    """configs/ci_tiny.yaml without its network settings (``init_filters`` is an argument of SegResNet)."""
    return tiny_config(tmp_path, repo_root, "model", "model_overrides")


@pytest.mark.slow
def test_a_network_from_a_file_through_the_cli_and_a_changed_file_is_refused(
    nets_dir: Path, repo_root: Path
) -> None:
    cohort = tiny_cohort(nets_dir / "cohort")
    manifest = nets_dir / "split.csv"
    cohort.to_csv(manifest, index=False)
    spec = "tiny=my_nets.py:TinyNet"
    args = [
        "train", "--config", _tiny_config(nets_dir, repo_root), "--manifest", manifest, "--run-dir", nets_dir / "run",
        "--spacing", "4", "--epochs", "1", "--no-progress", "--network", spec, "--network-option", "tiny.width=3",
    ]  # fmt: skip
    changed = MY_NETS.replace("padding=1", "padding=(1, 1, 1)")
    train_from_a_file_and_refuse_it_changed(NETWORK, nets_dir, args, spec, {"width": 3}, changed, max_loss=2)


@pytest.mark.slow
def test_a_monai_network_by_name_through_the_cli(nets_dir: Path, repo_root: Path) -> None:
    cohort = tiny_cohort(nets_dir / "cohort")
    manifest = nets_dir / "split.csv"
    cohort.to_csv(manifest, index=False)
    out = invoke(
        "train", "--config", _tiny_config(nets_dir, repo_root), "--manifest", manifest, "--spacing", "4",
        "--epochs", "1", "--no-progress", "--network", "UNet",
        "--network-option", "unet.channels=[4,8,16]", "--network-option", "unet.strides=[2,2]",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    run = nets_dir / "runs" / "unet__l1dfl"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["model"], config["model_overrides"]) == (
        "UNet",
        {"channels": [4, 8, 16], "strides": [2, 2]},
    )
    assert config["network_source"]["package"] == "monai"


@pytest.mark.slow
def test_a_study_with_your_network_and_a_changed_file_is_refused(nets_dir: Path) -> None:
    """``pcatools study --network NAME=SPEC --network-option``: a grid row of its own, its source recorded."""
    run = nets_dir / "runs" / "mine"
    args = [
        "study", run, "--profile", "ci", "--loss", "dice", "--network", "segresnet",
        "--network", "tiny=my_nets.py:TinyNet", "--network-option", "tiny.width=3", "--no-progress",
    ]  # fmt: skip
    out = invoke(*args)
    assert out.exit_code == 0, out.output
    cases = pd.read_csv(run / "results" / "cases.csv")
    assert sorted(cases["network"].unique()) == ["segresnet", "tiny"]
    config = yaml.safe_load((run / "models" / "tiny__dice" / "config.yaml").read_text())
    source = nets_dir / "my_nets.py"
    assert config["network_source"] == {
        "spec": "tiny=my_nets.py:TinyNet",
        "file": str(source.resolve()),
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "options": "{'width': 3}",
    }
    assert "network_source" not in yaml.safe_load(
        (run / "models" / "segresnet__dice" / "config.yaml").read_text()
    )

    source.write_text(MY_NETS.replace("padding=1", "padding=(1, 1, 1)"))
    refused = invoke(*args)
    assert refused.exit_code == 1
    assert refused.output.startswith(f"error: study {run}: model tiny__dice was trained with other")
    assert str(source.resolve()) in refused.output
    assert refused.output.count("\n") == 1


OTHER = """
from torch import nn


def a_dict(in_channels, out_channels):
    return {}


class Pair(nn.Conv3d):
    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x):
        return super().forward(x), x


class ThreeD(nn.Conv3d):
    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels + 1, out_channels, 1)
"""


def test_the_other_refusals_in_python(nets_dir: Path) -> None:
    """The rows of docs/refusals.md "Networks" that the CLI test does not reach, with their exact messages."""
    from pcatools.network_registry import declare_network

    (nets_dir / "other.py").write_text(OTHER)
    expected = {
        "segresnet=other.py:Pair": "network segresnet=other.py:Pair: the name 'segresnet' is already registered as segresnet",
        "d=other.py:a_dict": "network d=other.py:a_dict: builds a dict, expected a torch.nn.Module",
        "p=other.py:Pair": "network p=other.py:Pair returns a tuple on an input (1, 2, 32, 32, 32), expected a "
        "tensor of shape (1, 2, 32, 32, 32)",
        "t=other.py:ThreeD": "network t=other.py:ThreeD fails on an input (1, 2, 32, 32, 32) (RuntimeError: Given "
        "groups=1, weight of size [2, 3, 1, 1, 1], expected input[1, 2, 32, 32, 32] to have 3 channels, but got "
        "2 channels instead)",
    }
    for spec, message in expected.items():
        with pytest.raises(NetworkError) as err:
            check_network(spec)
        assert str(err.value) == message, spec
    with pytest.raises(NetworkError) as err:
        declare_network("segresnet", {"init_filters": 4})
    assert str(err.value) == (
        "network segresnet: options go to a MONAI network or a network given as NAME=SPEC; pcatools' own take "
        "the profile's model_overrides"
    )


def test_study_networks_bind_their_options(nets_dir: Path) -> None:
    """``pcatools study --network UNet --network-option unet.channels=...``: the options go to the registry entry."""
    import typer

    from pcatools.commands.study import study_networks
    from pcatools.network_registry import resolve_network

    options = ["unet.channels=[4,8,16]", "unet.strides=[2,2]"]
    assert study_networks(["segresnet", "UNet"], options, "ci") == ("segresnet", "unet")
    assert dict(resolve_network("unet").options) == {"channels": [4, 8, 16], "strides": [2, 2]}
    assert study_networks(["UNet"], options, "ci") == ("unet",)  # a re-run declares the same entry
    with pytest.raises(typer.BadParameter) as err:
        study_networks(["segresnet"], ["tiny.width=3"], "ci")
    assert err.value.message == "--network-option tiny: options go to a network given with --network here"
