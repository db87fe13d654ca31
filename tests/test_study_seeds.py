"""A study replicated over training seeds (``pcatools study --seeds``, issue 23 item 6).

Known answers: each seed's rows of ``table1_by_seed.csv`` are the Table 1 of a one-seed study run
separately with that seed; the pooled Table 1 of a small hand-made table is worked out by hand in
the comments; a one-seed study's outputs have no ``seed`` column. ``train_cell`` trains a cell of a
study whose loss comes from a user's file, in a fresh process that never saw the command line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pcatools import seed_stats, stats
from pcatools.analysis import StudyResult
from pcatools.study import run_study

REPO = Path(__file__).resolve().parents[1]
GRID: dict[str, Any] = dict(
    profile="ci", seed=0, progress=False, networks=("segresnet",), losses=("dice", "l1dfl"), epochs=1
)


def _table(run: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run / "results" / f"{name}.csv", keep_default_na=False, dtype=str)


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StudyResult]:
    """A one-seed study (seed 0), that folder grown to seeds (0, 1), and seed 1 alone.

    The grown study trains only seed 1 (the seed-0 folders keep their names), and the seed-1 study
    starts from a copy of the grown one's folder, so it trains nothing (and draws no figures): four
    trainings in all, and each study predicts, evaluates and analyses on its own.
    """
    root = tmp_path_factory.mktemp("seeds")
    one0 = run_study(root / "one0", **GRID)
    shutil.copytree(root / "one0", root / "two")
    before = (root / "two" / "models" / "segresnet__dice" / "best.pt").read_bytes()
    two = run_study(root / "two", seeds=(0, 1), **GRID)
    # growing the grid by a seed reuses the study seed's models (same folder names)
    assert (root / "two" / "models" / "segresnet__dice" / "best.pt").read_bytes() == before
    shutil.copytree(root / "two", root / "one1")
    for outputs in ("results", "figures"):
        shutil.rmtree(root / "one1" / outputs)
    with pytest.MonkeyPatch.context() as patch:  # its tables are compared, not its figures
        patch.setattr("pcatools.study.draw_figures", lambda *args, **kwargs: {})
        one1 = run_study(root / "one1", seeds=(1,), **GRID)
    return {"one0": one0, "two": two, "one1": one1}


def test_each_seeds_table_is_the_table_of_a_one_seed_study(studies: dict[str, StudyResult]) -> None:
    by_seed = _table(studies["two"].run_dir, "table1_by_seed")
    assert by_seed.columns[0] == "seed" and sorted(set(by_seed["seed"])) == ["0", "1"]
    for seed, alone in (("0", studies["one0"]), ("1", studies["one1"])):
        rows = by_seed[by_seed["seed"] == seed].drop(columns="seed").reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, _table(alone.run_dir, "table1"))


def test_the_pooled_table_averages_the_seeds_cases(studies: dict[str, StudyResult]) -> None:
    two, one0, one1 = studies["two"], studies["one0"], studies["one1"]
    cases = two.cases
    assert sorted(cases["seed"].unique()) == [0, 1] and len(cases) == len(one0.cases) + len(one1.cases)
    assert sorted(two.predictions["pred"].map(lambda p: Path(p).parent.name).unique()) == [
        "segresnet__dice", "segresnet__dice__seed1", "segresnet__l1dfl", "segresnet__l1dfl__seed1",
    ]  # fmt: skip
    # the independent computation: mean DSC of each one-seed study's cases with lesions, then their SD
    table = _table(two.run_dir, "table1")
    for loss, label in (("dice", "DL"), ("l1dfl", "L1DFL")):
        means = [
            s.cases.loc[(s.cases["loss"] == loss) & (s.cases["n_gt_lesions"] > 0), "dice"].mean()
            for s in (one0, one1)
        ]
        sd = abs(means[0] - means[1]) / 2**0.5  # SD (ddof=1) of two values
        row = table[table["Loss"] == label].iloc[0]
        assert row[stats.SEED_SPREAD] == f"{sd:.2f}"
        both = pd.concat([one0.cases, one1.cases])
        per_case = both[(both["loss"] == loss) & (both["n_gt_lesions"] > 0)].groupby("case_id")["dice"].mean()
        assert row["DSC mean"] == stats.fmt_mean_sd(per_case)
    notes = (two.run_dir / "results" / "table1.md").read_text()
    assert "Training seeds: 2 (0, 1)." in notes
    mixed = _table(two.run_dir, "mixed_model")
    assert "seed_var" in set(mixed.get("term", [])) or mixed.columns.tolist() == ["note"]


def test_a_one_seed_study_has_no_seed_column_and_no_seed_outputs(studies: dict[str, StudyResult]) -> None:
    one0, two = studies["one0"].run_dir, studies["two"].run_dir
    for name in ("cases", "lesions", "predictions", "table1", "wilcoxon"):
        assert "seed" not in _table(one0, name).columns, name
    assert stats.SEED_SPREAD not in _table(one0, "table1").columns
    assert not (one0 / "results" / "table1_by_seed.csv").exists()
    assert not (one0 / "figures" / "seeds.png").exists()
    assert yaml.safe_load((one0 / "config.yaml").read_text())["seeds"] == [0]
    for name in ("cases", "lesions", "predictions"):
        assert "seed" in _table(two, name).columns, name
    assert (two / "figures" / "seeds.png").stat().st_size > 0 and (two / "figures" / "seeds.html").is_file()


def test_pooled_table1_by_hand() -> None:
    """Two cases (a: 3 lesions, b: 1), two losses, two seeds; every number below worked out by hand."""
    rows = []
    #          loss     case seed dice  tp fp fn
    for loss, case, seed, dice, tp, fp, fn in [
        ("l1dfl", "a", 0, 0.8, 3, 1, 0), ("l1dfl", "a", 1, 0.6, 1, 0, 2),
        ("l1dfl", "b", 0, 0.4, 1, 2, 0), ("l1dfl", "b", 1, 0.6, 1, 1, 0),
        ("dice", "a", 0, 0.5, 1, 0, 2), ("dice", "a", 1, 0.3, 1, 0, 2),
        ("dice", "b", 0, 0.2, 0, 0, 1), ("dice", "b", 1, 0.0, 0, 0, 1),
    ]:  # fmt: skip
        n = 3 if case == "a" else 1
        rows.append(dict(network="segresnet", loss=loss, case_id=case, seed=seed, dice=dice, f1=dice,
                         tp=tp, fp=fp, fn=fn, n_gt_lesions=n))  # fmt: skip
    table = seed_stats.table1_over_seeds(pd.DataFrame(rows), ci=False)
    assert table["Loss"].tolist() == ["DL", "L1DFL"]
    dl, l1 = table.iloc[0], table.iloc[1]
    # L1DFL per case over seeds: DSC a (0.8+0.6)/2 = 0.7, b (0.4+0.6)/2 = 0.5 -> mean 0.6, SD sqrt(2*0.1^2) = 0.14
    assert l1["DSC mean"] == "0.60 ± 0.14" and l1["F1"] == "0.60 ± 0.14"
    # TP counts a (3+1)/2 = 2 of 3 lesions -> rate 0.667, b 1 of 1 -> 1; mean 0.833, SD 0.333/sqrt(2) = 0.236
    assert l1["TP"] == "0.83 ± 0.24" and l1["FN"] == "0.17 ± 0.24"
    # FP a (1+0)/2 = 0.5, b (2+1)/2 = 1.5 -> mean 1.0, SD 1/sqrt(2) = 0.71
    assert l1["FP"] == "1.00 ± 0.71"
    # seed means: seed 0 (0.8+0.4)/2 = 0.6, seed 1 (0.6+0.6)/2 = 0.6 -> SD 0
    assert l1[stats.SEED_SPREAD] == "0.00"
    # DL: DSC a 0.4, b 0.1 -> 0.25 ± 0.21; TP a 1 of 3, b 0 of 1 -> 0.17 ± 0.24; seed means 0.35, 0.15 -> 0.14
    assert dl["DSC mean"] == "0.25 ± 0.21" and dl["TP"] == "0.17 ± 0.24" and dl["FN"] == "0.83 ± 0.24"
    assert dl["FP"] == "0.00 ± 0.00" and dl[stats.SEED_SPREAD] == "0.14"
    # Wilcoxon on the averages: L1DFL - DL = 0.3 (a), 0.4 (b), both > 0 -> exact one-tailed P = 1/2^2
    assert dl["P value"] == "0.25" and l1["P value"] == ""
    assert list(table.columns[:4]) == ["Network", "Loss", "DSC mean", stats.SEED_SPREAD]
    # each seed's own table: seed 0's L1DFL DSC 0.8, 0.4 -> 0.60 ± 0.28
    by_seed = seed_stats.table1_by_seed(pd.DataFrame(rows), ci=False)
    assert by_seed[["seed", "Loss", "DSC mean"]].values.tolist() == [
        [0, "DL", "0.35 ± 0.21"], [0, "L1DFL", "0.60 ± 0.28"], [1, "DL", "0.15 ± 0.21"], [1, "L1DFL", "0.60 ± 0.00"],
    ]  # fmt: skip


LOSS_FILE = """
import torch


class SoftDice(torch.nn.Module):
    def __init__(self, weight=1.0):
        super().__init__()
        self.weight = weight

    def forward(self, logits, labels):
        p = torch.softmax(logits, 1)[:, 1:]
        y = labels.float()
        return self.weight * (1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1))
"""


def _train_cells_in_a_fresh_process(run: Path) -> subprocess.CompletedProcess[str]:
    """``train_cell`` on cells segresnet/soft/1 then /0 of ``run``, in a new Python started in the repo
    (another working directory than the study's), as a cluster job would; prints each checkpoint."""
    code = (
        "import sys\nfrom pathlib import Path\nfrom pcatools.cells import Cell\nfrom pcatools.study import train_cell\n"
        "for seed in (1, 0):\n    print(train_cell(Path(sys.argv[1]), Cell('segresnet', 'soft', seed)))\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(run)], cwd=REPO, capture_output=True, text=True)


def test_train_cell_trains_a_user_loss_in_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pcatools.cells import Cell
    from pcatools.loss_registry import register_loss, unregister_loss
    from pcatools.study import train_cell

    class Stop(Exception):
        pass

    def stop(*args: Any, **kwargs: Any) -> None:
        raise Stop  # the study's folder, settings and split are written; the cells are trained below

    (tmp_path / "my_loss.py").write_text(LOSS_FILE)
    monkeypatch.chdir(tmp_path)  # the spec's file is relative, as a user types it
    monkeypatch.setattr("pcatools.study.train_grid", stop)
    run = tmp_path / "run"
    register_loss("soft", "my_loss.py:SoftDice", options={"weight": 0.5})
    try:
        with pytest.raises(Stop):
            run_study(run, **{**GRID, "losses": ("soft",)})
        seed0 = train_cell(run, Cell("segresnet", "soft", 0))  # in the study's own process
    finally:
        unregister_loss("soft")
    recorded = yaml.safe_load((run / "config.yaml").read_text())["user_code"]["losses"]["soft"]
    assert recorded["target"] == "my_loss.py:SoftDice" and recorded["options"] == {"weight": 0.5}
    before = seed0.read_bytes()
    out = _train_cells_in_a_fresh_process(run)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [Path(line) for line in out.stdout.split()] == [
        run / "models" / "segresnet__soft__seed1" / "best.pt",
        seed0,
    ]
    assert seed0.read_bytes() == before  # finished: continued, not trained again
    # the fresh process trained the same user loss: same spec, file, SHA-256 and options as the study's model
    sources = [
        yaml.safe_load((run / "models" / m / "config.yaml").read_text())["loss_source"]
        for m in ("segresnet__soft", "segresnet__soft__seed1")
    ]
    assert sources[0] == sources[1] and sources[0]["options"] == "{'weight': 0.5}"
    # a changed file is refused, naming it
    (tmp_path / "my_loss.py").write_text(LOSS_FILE + "\n# edited\n")
    out = _train_cells_in_a_fresh_process(run)
    assert out.returncode != 0
    assert f"loss soft=my_loss.py:SoftDice from {tmp_path / 'my_loss.py'}" in out.stderr
    assert "which has changed since" in out.stderr


def test_mixed_model_separates_the_seed_from_the_patient() -> None:
    """Simulated lesion DSC = 0.5 + 0.1 [L1DFL] + patient (SD 0.1) + patient x seed (SD 0.05) + noise
    (SD 0.05): the fit recovers the loss effect and both variances (0.01 and 0.0025) roughly."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for patient in range(40):
        u = rng.normal(0, 0.1)
        for seed in range(3):
            v = rng.normal(0, 0.05)
            for loss in ("dice", "l1dfl"):
                for _ in range(2):
                    dice = 0.5 + u + v + (0.1 if loss == "l1dfl" else 0.0) + rng.normal(0, 0.05)
                    rows.append(dict(patient_id=f"p{patient}", seed=seed, network="segresnet", loss=loss,
                                     volume_ml=rng.uniform(1, 5), suvmax=rng.uniform(5, 20), dice=dice))  # fmt: skip
    fit = stats.lesion_mixed_model(pd.DataFrame(rows), seed_col="seed").set_index("term")["estimate"]
    assert fit["loss[l1dfl]"] == pytest.approx(0.1, abs=0.01)
    assert fit["patient_var"] == pytest.approx(0.01, rel=0.5) and fit["seed_var"] == pytest.approx(
        0.0025, rel=0.5
    )
    assert "seed_var" not in set(stats.lesion_mixed_model(pd.DataFrame(rows))["term"])  # without seed_col


def test_bad_seeds_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pcatools.cli import app

    result = CliRunner().invoke(app, ["study", str(tmp_path / "run"), "--profile", "ci", "--seeds", "0,1,1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == "error: seeds '0,1,1': seed 1 is given twice"
    assert not (tmp_path / "run").exists()
