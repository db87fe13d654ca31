"""The loss registry (issue 23, item 1, 7): one declaration per loss, read everywhere a loss is named.

* a loss added through the registry alone appears in the CLI help of ``train``, ``study`` and
  ``nnunet train``, Table 1's order, the figure colours, Figure 7 and the nnU-Net trainer list;
* no other list of loss names exists in ``pcatools/`` (read with :mod:`ast`);
* ``build_loss``, the class and the nnU-Net trainer build the same loss for every convention (the
  bin width 0.1 / 0.05 disagreement of issue 23 gone by construction).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pcatools.loss_registry import loss_entries, loss_names, register_loss, unregister_loss
from pcatools.losses import L1DiceFocalLoss, build_loss, loss_vs_probability
from pcatools.losses.dice import DiceLoss
from pcatools.losses.l1_weights import Convention
from pcatools.vocabulary import LOSS_COLORS, LOSS_LABELS, LOSSES, loss_color, loss_key, loss_label, ordered
from tests.conftest import REPO


@pytest.fixture
def mine() -> Iterator[str]:
    """A loss registered through the registry alone (``register_loss``), removed afterwards."""
    register_loss("mine", DiceLoss, label="MINE", colour="#123456", aliases=("my-loss",))
    yield "mine"
    unregister_loss("mine")


def test_the_builtin_declarations() -> None:
    assert LOSSES == ("dice", "dice_focal", "l1dfl")
    assert loss_names() == ("dice", "dice_focal", "l1dfl", "focal")
    assert dict(LOSS_LABELS) == {"dice": "DL", "dice_focal": "DFL", "l1dfl": "L1DFL", "focal": "FL"}
    assert dict(LOSS_COLORS) == {
        "dice": "#0072B2",
        "dice_focal": "#E69F00",
        "l1dfl": "#009E73",
        "focal": "#CC79A7",
    }
    assert [loss_key(n) for n in ("DL", "dfl", "DiceFocal", "L1-DFL", "l1_dfl", "FL")] == [
        "dice", "dice_focal", "dice_focal", "l1dfl", "l1dfl", "focal",
    ]  # fmt: skip
    assert [e.name for e in loss_entries() if e.weights] == ["l1dfl"]


def test_a_registered_loss_is_everywhere_a_loss_name_appears(mine: str) -> None:
    # Table 1's order (tables sort by label, figures by name): the study's three, Focal, then ours
    assert ordered(["MINE", "L1DFL", "other", "DL"], LOSS_LABELS) == ["DL", "L1DFL", "MINE", "other"]
    assert ordered(["mine", "focal", "dice_focal"], LOSS_LABELS) == ["dice_focal", "focal", "mine"]
    assert (loss_label("mine"), loss_color("mine"), loss_key("My-Loss")) == ("MINE", "#123456", "mine")
    # Figure 7: every registered loss (ours swept generically), in its colour
    from pcatools.figures.figure7 import figure7

    curves = loss_vs_probability([0.25, 0.5])
    assert list(curves.columns) == ["p", "dice", "dice_focal", "l1dfl", "mine"]
    fig = figure7(curves)
    assert [(t.name, t.line.color) for t in fig.data][-1] == ("MINE", "#123456")
    # the nnU-Net trainers
    from pcatools.nnunet.run import trainer_names

    assert trainer_names() == {
        "dice": "nnUNetTrainerDice",
        "dice_focal": "nnUNetTrainerDiceFocal",
        "l1dfl": "nnUNetTrainerL1DFL",
        "focal": "nnUNetTrainerFocal",
        "mine": "nnUNetTrainer_mine",
        "dice_ce": "nnUNetTrainer",
    }


def test_the_generic_curve_is_the_module_on_one_voxel(mine: str) -> None:
    """A loss without its own curve: the module on one voxel of label 1 at P (logits log p)."""
    p = np.array([0.2, 0.7])
    got = loss_vs_probability(p, losses=["mine"])["mine"].to_numpy()
    for value, prob in zip(got, p, strict=True):
        logits = torch.log(torch.tensor([1 - prob, prob], dtype=torch.float64)).reshape(1, 2, 1, 1, 1)
        assert value == float(DiceLoss()(logits, torch.ones(1, 1, 1, 1, 1)))


def test_the_cli_help_lists_a_loss_registered_before_it_is_read() -> None:
    code = (
        "import sys\n"
        "from pcatools.loss_registry import register_loss\n"
        "register_loss('mine', 'pcatools.losses.dice:DiceLoss', label='MINE')\n"
        "from pcatools.cli import app\n"
        "app(sys.argv[1:])\n"
    )
    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb"}
    for command in (["train"], ["study"], ["nnunet", "train"]):
        out = subprocess.run(
            [sys.executable, "-c", code, *command, "--help"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        text = " ".join(out.stdout.split())
        assert "dice (DL), dice_focal (DFL), l1dfl (L1DFL), focal (FL), mine (MINE)" in text, (command, text)


_NAMES = {"dice", "dice_focal", "l1dfl", "focal", "DL", "DFL", "L1DFL", "FL"}


def test_no_other_list_of_loss_names_in_pcatools() -> None:
    """Outside pcatools/loss_registry.py no tuple, list, set or dict literal holds two loss names."""
    found = []
    for path in sorted((REPO / "pcatools").rglob("*.py")):
        if path.name == "loss_registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            items = (
                node.elts
                if isinstance(node, ast.Tuple | ast.List | ast.Set)
                else [*(k for k in node.keys if k is not None), *node.values]
                if isinstance(node, ast.Dict)
                else []
            )
            names = {i.value for i in items if isinstance(i, ast.Constant) and i.value in _NAMES}
            if len(names) >= 2:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {sorted(names)}")
    assert found == []


def _trainer_loss(convention: str, tmp_path: Path) -> torch.nn.Module:
    """The loss nnU-Net's ``nnUNetTrainerL1DFL`` builds with ``loss_convention = convention``."""
    pytest.importorskip("nnunetv2")
    from pcatools.nnunet.trainers import standalone_trainer, trainer_for

    cls = type("nnUNetTrainerL1DFL_conv", (trainer_for("l1dfl"),), {"loss_convention": convention})
    loss = standalone_trainer(cls, tmp_path / convention, patch_size=(16, 16, 16))._build_loss()
    inner: torch.nn.Module = getattr(loss, "loss", loss)  # inside nnU-Net's deep-supervision wrapper
    return inner


@pytest.mark.parametrize("convention", typing.get_args(Convention))
def test_build_loss_the_class_and_the_nnunet_trainer_build_the_same_loss(
    convention: str, tmp_path: Path
) -> None:
    built = build_loss("l1dfl", convention=convention)
    plain = L1DiceFocalLoss(convention=convention)
    trained = _trainer_loss(convention, tmp_path)
    assert vars(built)["bin_width"] == {"paper": 0.1, "reference-code": 0.05}[convention]
    keys = [k for k in vars(plain) if not k.startswith("_") and k != "training"]
    for loss in (built, trained):
        assert type(loss) is L1DiceFocalLoss
        assert {k: vars(loss)[k] for k in keys} == {k: vars(plain)[k] for k in keys}
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 2, 6, 6, 6, generator=gen)
    labels = torch.randint(0, 2, (2, 1, 6, 6, 6), generator=gen)
    value = plain(logits, labels)
    assert torch.equal(built(logits, labels), value) and torch.equal(trained(logits, labels), value)


class _HalfWeights(torch.nn.Module):
    """A user loss that declares weights: every voxel weighted 1/2."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return logits.mean() * 0

    def element_weights(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.full_like(logits, 0.5)


def test_figure1_draws_the_weights_of_a_loss_that_declares_them() -> None:
    from pcatools.figures.figure1 import PAPER_FIGURE1_G, PAPER_FIGURE1_P, figure1, figure1_data
    from pcatools.losses import l1_binning

    binning = l1_binning(
        torch.from_numpy(PAPER_FIGURE1_P.copy()), torch.from_numpy(PAPER_FIGURE1_G.copy()), 0.1
    )
    assert np.array_equal(figure1_data()["w"], binning.element_weights().numpy())  # L1DFL's own weights
    with pytest.raises(ValueError) as err:
        figure1_data(loss="dice")
    assert str(err.value) == "figure1: loss 'dice' declares no voxel weights; losses with weights: ['l1dfl']"
    register_loss("half", _HalfWeights, weights=True)
    try:
        assert np.array_equal(figure1(loss="half").data[4].z, np.full((4, 4), 0.5))
    finally:
        unregister_loss("half")
