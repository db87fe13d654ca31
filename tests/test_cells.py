"""The cells of a study grid: their names, folder keys, order, and the parsers' one-line refusals."""

from __future__ import annotations

import pytest

from pcatools.cells import Cell, parse_cell, parse_seeds, study_cells

NETS, LOSSES, SEEDS = ("segresnet", "attention_unet"), ("dice", "l1dfl"), (0, 1, 2)


def test_name_is_the_cli_spelling_and_the_key_drops_the_study_seed() -> None:
    cell = Cell("segresnet", "l1dfl", 1)
    assert cell.name == "segresnet/l1dfl/1"
    assert cell.key(study_seed=1) == "segresnet__l1dfl"  # laid out as a one-seed study
    assert cell.key(study_seed=0) == "segresnet__l1dfl__seed1"


def test_study_cells_are_networks_then_losses_then_seeds() -> None:
    cells = study_cells(NETS, LOSSES, (0, 1))
    assert [c.name for c in cells] == [
        "segresnet/dice/0", "segresnet/dice/1", "segresnet/l1dfl/0", "segresnet/l1dfl/1",
        "attention_unet/dice/0", "attention_unet/dice/1", "attention_unet/l1dfl/0", "attention_unet/l1dfl/1",
    ]  # fmt: skip
    assert len({c.key(0) for c in cells}) == 8  # every cell has its own folder


def test_parse_cell_reads_back_every_name() -> None:
    for cell in study_cells(NETS, LOSSES, SEEDS):
        assert parse_cell(cell.name, NETS, LOSSES, SEEDS) == cell


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("segresnet/dice", "cell 'segresnet/dice': expected network/loss/seed, e.g. segresnet/l1dfl/0"),
        (
            "unet/dice/0",
            "cell 'unet/dice/0': network 'unet' is not in the grid; "
            "expected one of ['segresnet', 'attention_unet']",
        ),
        (
            "segresnet/tversky/0",
            "cell 'segresnet/tversky/0': loss 'tversky' is not in the grid; expected one of ['dice', 'l1dfl']",
        ),
        (
            "segresnet/dice/7",
            "cell 'segresnet/dice/7': seed '7' is not in the grid; expected one of [0, 1, 2]",
        ),
        (
            "segresnet/dice/x",
            "cell 'segresnet/dice/x': seed 'x' is not in the grid; expected one of [0, 1, 2]",
        ),
    ],
)
def test_parse_cell_names_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_cell(text, NETS, LOSSES, SEEDS)
    assert str(err.value) == message


def test_parse_seeds() -> None:
    assert parse_seeds("0,1,2") == (0, 1, 2)
    assert parse_seeds(" 3, 1") == (3, 1)  # the order given
    with pytest.raises(ValueError) as err:
        parse_seeds("0,a")
    assert str(err.value) == "seeds '0,a': expected integers separated by commas, found 'a'"
    with pytest.raises(ValueError) as err:
        parse_seeds("0,1,0")
    assert str(err.value) == "seeds '0,1,0': seed 0 is given twice"
    with pytest.raises(ValueError) as err:
        parse_seeds("")
    assert str(err.value) == "seeds '': expected integers separated by commas, found ''"
