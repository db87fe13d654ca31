"""The cells of a study grid: one (network, loss, training seed) each, and their names.

A study trains one model per cell. A cell's :attr:`Cell.name` (``segresnet/l1dfl/1``) is how a
user names it (``pcatools study --cells``); its :meth:`Cell.key` is the folder its model and
predictions live in. The key of a cell trained with the study's own seed carries no seed, so a
one-seed study is laid out as before seeds existed and a grid can grow seeds without retraining.

Examples
--------
>>> cells = study_cells(["segresnet"], ["dice", "l1dfl"], (0, 1))
>>> [c.name for c in cells]
['segresnet/dice/0', 'segresnet/dice/1', 'segresnet/l1dfl/0', 'segresnet/l1dfl/1']
>>> [c.key(0) for c in cells[:2]]
['segresnet__dice', 'segresnet__dice__seed1']
>>> parse_cell("segresnet/l1dfl/1", ["segresnet"], ["dice", "l1dfl"], (0, 1))
Cell(network='segresnet', loss='l1dfl', seed=1)
>>> parse_seeds("0,1,2")
(0, 1, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Cell", "study_cells", "parse_cell", "parse_seeds", "check_seeds"]


@dataclass(frozen=True, order=True)
class Cell:
    """One model of a study grid: a network trained with a loss from one training seed."""

    network: str
    loss: str
    #: the training seed
    seed: int

    @property
    def name(self) -> str:
        """``network/loss/seed``, e.g. ``segresnet/l1dfl/1``: the spelling of ``pcatools study --cells``."""
        return f"{self.network}/{self.loss}/{self.seed}"

    def key(self, study_seed: int) -> str:
        """The cell's ``models/`` and ``predictions/`` folder name.

        ``segresnet__l1dfl`` when the cell's seed is ``study_seed`` (the study's ``--seed``), else
        ``segresnet__l1dfl__seed1``: a one-seed study keeps the layout it had before seeds, and
        adding seeds to a grid reuses its models.
        """
        base = f"{self.network}__{self.loss}"
        return base if self.seed == study_seed else f"{base}__seed{self.seed}"


def study_cells(networks: Sequence[str], losses: Sequence[str], seeds: Sequence[int]) -> list[Cell]:
    """Every cell of a grid: ``networks x losses x seeds``, in that order."""
    return [Cell(n, lo, int(s)) for n in networks for lo in losses for s in seeds]


def parse_cell(text: str, networks: Sequence[str], losses: Sequence[str], seeds: Sequence[int]) -> Cell:
    """The cell named ``network/loss/seed`` in a grid of ``networks``, ``losses`` and ``seeds``.

    Raises
    ------
    ValueError
        ``text`` is not three parts joined by ``/``, or a part is not one of the grid's; the message
        names the part and lists the valid values.
    """
    parts = text.split("/")
    if len(parts) != 3:
        raise ValueError(f"cell {text!r}: expected network/loss/seed, e.g. segresnet/l1dfl/0")
    network, loss, seed_text = parts
    if network not in networks:
        raise ValueError(
            f"cell {text!r}: network {network!r} is not in the grid; expected one of {list(networks)}"
        )
    if loss not in losses:
        raise ValueError(f"cell {text!r}: loss {loss!r} is not in the grid; expected one of {list(losses)}")
    valid_seeds = [int(s) for s in seeds]
    try:
        seed = int(seed_text)
    except ValueError:
        seed = None
    if seed not in valid_seeds:
        raise ValueError(
            f"cell {text!r}: seed {seed_text!r} is not in the grid; expected one of {valid_seeds}"
        )
    return Cell(network, loss, seed)


def parse_seeds(text: str) -> tuple[int, ...]:
    """Training seeds from ``"0,1,2"``, in the order given.

    Raises
    ------
    ValueError
        An item is not an integer, or a seed is given twice (:func:`check_seeds`).
    """
    seeds: list[int] = []
    for item in text.split(","):
        try:
            seeds.append(int(item.strip()))
        except ValueError:
            raise ValueError(
                f"seeds {text!r}: expected integers separated by commas, found {item.strip()!r}"
            ) from None
    return check_seeds(seeds, repr(text))


def check_seeds(seeds: Sequence[int], shown: str | None = None) -> tuple[int, ...]:
    """``seeds`` as a tuple of ints, refused when empty or when a seed is given twice (it would
    train the same model twice); ``shown`` is how the message names them (default: the list)."""
    out = tuple(int(s) for s in seeds)
    shown = shown if shown is not None else str(list(out))
    if not out:
        raise ValueError(f"seeds {shown}: expected at least one training seed")
    for i, seed in enumerate(out):
        if seed in out[:i]:
            raise ValueError(f"seeds {shown}: seed {seed} is given twice")
    return out
