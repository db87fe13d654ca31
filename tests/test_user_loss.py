"""Your own loss (issue 23, items 2, 3 and 5): ``NAME=SPEC`` through ``pcatools train``, ``study`` and
``nnunet train``, through Python, each bad spec refused in one line before anything is written, and
a run refused after its loss's source changed.

The loss files are written into ``tmp_path`` (outside the package), as a user's would be.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from pcatools.loss_registry import loss_names, register_loss, unregister_loss
from pcatools.losses import build_loss, check_loss
from tests.test_training import tiny_cohort
from tests.user_code import LOSS, invoke, tiny_config, train_from_a_file_and_refuse_it_changed, user_code_dir

TVERSKY = '''
import torch


class TverskyLoss(torch.nn.Module):
    """Tversky loss of the foreground: 1 - TP / (TP + alpha FP + beta FN), mean over the batch."""

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1e-5):
        super().__init__()
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def forward(self, logits, labels):
        p = torch.softmax(logits.float(), dim=1)[:, 1]
        g = (labels[:, 0] == 1).float()
        dims = tuple(range(1, p.dim()))
        tp, fp, fn = (p * g).sum(dims), (p * (1 - g)).sum(dims), ((1 - p) * g).sum(dims)
        return (1 - (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)).mean()
'''

BROKEN = """
import torch

NOT_CALLABLE = 3


class VectorLoss(torch.nn.Module):
    def forward(self, logits, labels):
        return logits.mean(dim=(1, 2, 3, 4))


class NanLoss(torch.nn.Module):
    def forward(self, logits, labels):
        return logits.sum() * float("nan")


class DetachedLoss(torch.nn.Module):
    def forward(self, logits, labels):
        return logits.detach().mean()
"""

CHECK = "on logits (2, 2, 8, 8, 8) and labels (2, 1, 8, 8, 8)"


@pytest.fixture
def losses_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``my_losses.py`` and ``broken.py`` in the working directory; every loss they register is removed after."""
    files = {"my_losses.py": TVERSKY, "broken.py": BROKEN}
    yield from user_code_dir(tmp_path, monkeypatch, files, loss_names, unregister_loss)


BAD_SPECS = [
    (
        "gone=no_such_pkg.losses:Loss",
        "loss gone=no_such_pkg.losses:Loss: no module named 'no_such_pkg' (not installed, or not on sys.path)",
    ),
    ("gone=missing.py:Loss", "loss gone=missing.py:Loss: file missing.py not found (from {cwd})"),
    ("gone=broken.py:NoSuchLoss", "loss gone=broken.py:NoSuchLoss: broken.py has no attribute 'NoSuchLoss'"),
    (
        "gone=broken.py:NOT_CALLABLE",
        "loss gone=broken.py:NOT_CALLABLE: NOT_CALLABLE is a int, expected a class or a factory (callable)",
    ),
    ("broken=broken.py:VectorLoss", "loss broken=broken.py:VectorLoss returns shape (2,), expected a scalar"),
    (
        "broken=broken.py:NanLoss",
        f"loss broken=broken.py:NanLoss returns nan {CHECK}, expected a finite value",
    ),
    (
        "broken=broken.py:DetachedLoss",
        "loss broken=broken.py:DetachedLoss gives no gradient to the logits (its value does not depend on them)",
    ),
    (
        "broken=broken.py",
        "loss broken=broken.py: expected NAME=package.module:attr or NAME=path/to/file.py:attr",
    ),
    (
        "tversky",
        "unknown loss 'tversky'; expected one of dice, dice_focal, l1dfl, focal (or DL, DFL, L1DFL), "
        "or NAME=SPEC (package.module:attr or path/to/file.py:attr)",
    ),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[s for s, _ in BAD_SPECS])
def test_bad_spec_is_one_line_exit_2_and_nothing_written(losses_dir: Path, spec: str, message: str) -> None:
    expected = "error: " + message.format(cwd=losses_dir)
    run = losses_dir / "run"
    train = invoke(
        "train", "--loss", spec, "--run-dir", run, "--data-dir", losses_dir / "data", "--no-progress"
    )
    assert (train.exit_code, train.output.rstrip("\n")) == (2, expected)
    study = invoke("study", run, "--profile", "ci", "--loss", spec, "--no-progress")
    assert (study.exit_code, study.output.rstrip("\n")) == (2, expected)
    assert not run.exists()
    nnunet = invoke(
        "nnunet", "train", "501", "3d_fullres", "0", "--loss", spec, "--results", losses_dir / "res"
    )
    assert nnunet.exit_code == 2
    assert nnunet.output.rstrip("\n") == expected + (
        "; or dice_ce (nnU-Net's own nnUNetTrainer)" if spec == "tversky" else ""
    )
    assert not (losses_dir / "res").exists()


def test_a_loss_from_a_file_through_python(losses_dir: Path) -> None:
    """Registered by spec or by the class itself: the loss the class builds, with the same numbers."""
    import importlib.util

    loader = importlib.util.spec_from_file_location("user_losses", losses_dir / "my_losses.py")
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    register_loss("tv_class", module.TverskyLoss, label="TV", colour="#D55E00")
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 2, 6, 6, 6, generator=gen)
    labels = torch.randint(0, 2, (2, 1, 6, 6, 6), generator=gen)
    plain = module.TverskyLoss(alpha=0.3)(logits, labels)
    assert torch.equal(build_loss("tv_class", alpha=0.3)(logits, labels), plain)
    assert torch.equal(build_loss("tversky=my_losses.py:TverskyLoss", alpha=0.3)(logits, labels), plain)
    assert check_loss("tversky").shown == "tversky=my_losses.py:TverskyLoss"
    # a YAML config / TrainConfig names it the same way, and is checked the same way
    from pcatools.loss_registry import LossError
    from pcatools.training.config import TrainConfig

    TrainConfig(loss="tversky=my_losses.py:TverskyLoss", loss_overrides={"alpha": 0.3}).check_components()
    with pytest.raises(LossError) as err:
        TrainConfig(loss="broken=broken.py:VectorLoss").check_components()
    assert str(err.value) == "loss broken=broken.py:VectorLoss returns shape (2,), expected a scalar"
    # alpha = beta = 1/2 is the soft Dice of the foreground: MONAI's without the background channel
    from monai.losses import DiceLoss

    dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, smooth_nr=1e-5, smooth_dr=1e-5)
    torch.testing.assert_close(
        build_loss("tversky")(logits, labels), dice(logits, labels), rtol=1e-6, atol=1e-7
    )


@pytest.mark.slow
def test_a_loss_from_a_file_through_the_cli_and_a_changed_file_is_refused(
    losses_dir: Path, repo_root: Path
) -> None:
    cohort = tiny_cohort(losses_dir / "cohort")
    manifest = losses_dir / "split.csv"
    cohort.to_csv(manifest, index=False)
    # configs/ci_tiny.yaml without its loss settings (``batch=True`` is an argument of pcatools' losses)
    config = tiny_config(losses_dir, repo_root, "loss", "loss_overrides")
    spec = "tversky=my_losses.py:TverskyLoss"
    args = [
        "train", "--config", config, "--manifest", manifest, "--run-dir", losses_dir / "run",
        "--spacing", "4", "--epochs", "1", "--no-progress", "--loss", spec, "--loss-option", "tversky.alpha=0.3",
    ]  # fmt: skip
    changed = TVERSKY.replace("1e-5", "1e-6")
    train_from_a_file_and_refuse_it_changed(LOSS, losses_dir, args, spec, {"alpha": 0.3}, changed, max_loss=1)


@pytest.mark.slow
def test_the_documented_study_command_runs_and_a_changed_loss_file_is_refused(
    losses_dir: Path, repo_root: Path
) -> None:
    """docs/losses.md "Your own loss": the command as printed (with the ci profile), then the refusal."""
    text = (repo_root / "docs" / "losses.md").read_text()
    command = "pcatools study runs/mine --loss dice --loss l1dfl --loss tversky=my_losses.py:TverskyLoss"
    assert command in text
    args = [*command.split()[1:], "--profile", "ci", "--network", "segresnet", "--no-progress"]
    out = invoke(*args)
    assert out.exit_code == 0, out.output
    run = losses_dir / "runs" / "mine"
    cases = pd.read_csv(run / "results" / "cases.csv")
    assert sorted(cases["loss"].unique()) == ["dice", "l1dfl", "tversky"]
    assert "tversky" in out.output  # Table 1, printed, names it
    config = yaml.safe_load((run / "models" / "segresnet__tversky" / "config.yaml").read_text())
    assert config["loss_overrides"] == {}  # the ci profile's batch=True goes to pcatools' losses only
    assert config["loss_source"]["file"] == str((losses_dir / "my_losses.py").resolve())
    assert yaml.safe_load((run / "models" / "segresnet__dice" / "config.yaml").read_text())[
        "loss_overrides"
    ] == {"batch": True}

    (losses_dir / "my_losses.py").write_text(TVERSKY.replace("1e-5", "1e-6"))
    refused = invoke(*args)
    assert refused.exit_code == 1
    assert refused.output.startswith(f"error: study {run}: model segresnet__tversky was trained with other")
    assert str((losses_dir / "my_losses.py").resolve()) in refused.output
    assert refused.output.count("\n") == 1


def test_entry_point_package_installed_into_a_folder(tmp_path: Path) -> None:
    """A package declaring ``[pcatools.losses]`` is found by the registry, the CLI help and the check."""
    import subprocess
    import sys

    site = tmp_path / "site"
    (site / "ep_losses").mkdir(parents=True)
    (site / "ep_losses" / "__init__.py").write_text(TVERSKY)
    info = site / "ep_losses-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-losses\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text("[pcatools.losses]\neptversky = ep_losses:TverskyLoss\n")
    (info / "top_level.txt").write_text("ep_losses\n")
    code = (
        "from pcatools.loss_registry import loss_names, loss_source\n"
        "from pcatools.losses import check_loss\n"
        "print(loss_names()[-1], check_loss('eptversky').shown, loss_source('eptversky'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "300"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == (
        "eptversky eptversky=ep_losses:TverskyLoss {'spec': 'eptversky=ep_losses:TverskyLoss', "
        "'module': 'ep_losses', 'package': 'ep-losses', 'version': '1.2'}"
    )
    helped = subprocess.run(
        [sys.executable, "-m", "pcatools.cli", "train", "--help"], capture_output=True, text=True, env=env
    )
    assert helped.returncode == 0 and "eptversky" in helped.stdout
