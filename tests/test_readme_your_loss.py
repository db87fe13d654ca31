"""README "Your own loss" (issue 23 item 8): the block runs as printed.

The test takes the README's python block (the user's ``my_losses.py``) and its bash command from
between the ``<!-- your-loss -->`` markers, writes the file into an empty working folder, and runs
the command there as a user would (only ``.venv/bin/`` is replaced by this checkout's venv). The
study must hold the three losses with the spread across the two training seeds, and its run folder
must name ``my_losses.py`` with the file's SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pcatools.stats import SEED_SPREAD
from tests.conftest import REPO

BLOCK = re.compile(
    r"<!-- your-loss -->\s*```python\n(?P<python>.*?)```\s*```bash\n(?P<bash>.*?)```\s*<!-- /your-loss -->",
    re.S,
)


def readme_block() -> tuple[str, list[str]]:
    """The README's ``my_losses.py`` and its command as argv (continuation lines joined, as bash does)."""
    match = BLOCK.search((REPO / "README.md").read_text())
    assert match is not None, "README.md: no python and bash block between <!-- your-loss --> markers"
    python = match["python"]
    assert python.startswith("# my_losses.py\n"), python[:40]
    return python, shlex.split(match["bash"].replace("\\\n", " "))


def test_the_block_names_the_file_it_writes_and_the_venv_command() -> None:
    python, argv = readme_block()
    assert argv[:2] == [".venv/bin/pcatools", "study"]
    assert "tversky=my_losses.py:TverskyLoss" in argv and "class TverskyLoss(" in python


@pytest.mark.slow
def test_the_readme_your_loss_command_runs_as_printed(tmp_path: Path) -> None:
    python, argv = readme_block()
    source = tmp_path / "my_losses.py"
    source.write_text(python)
    argv[0] = str(REPO / ".venv" / "bin" / "pcatools")
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / argv[2]

    # Table 1: the three losses of each network, with the spread across the two seeds
    table1 = pd.read_csv(run / "results" / "table1.csv")
    assert sorted(set(table1["Loss"])) == ["DL", "L1DFL", "tversky"]
    assert SEED_SPREAD in table1.columns and table1[SEED_SPREAD].notna().all()
    by_seed = pd.read_csv(run / "results" / "table1_by_seed.csv")
    assert sorted(set(by_seed["seed"])) == [0, 1]
    cases = pd.read_csv(run / "results" / "cases.csv")
    assert sorted(set(cases["loss"])) == ["dice", "l1dfl", "tversky"] and sorted(set(cases["seed"])) == [0, 1]
    # the spread, by hand: the SD (ddof=1) of the two seeds' mean DSC over the cases with a lesion
    scored = cases[cases["n_gt_lesions"] > 0]
    for loss, label in (("dice", "DL"), ("l1dfl", "L1DFL"), ("tversky", "tversky")):
        m0, m1 = (scored[(scored["loss"] == loss) & (scored["seed"] == s)]["dice"].mean() for s in (0, 1))
        spread = float(table1.loc[table1["Loss"] == label, SEED_SPREAD].iloc[0])
        assert spread == pytest.approx(abs(m0 - m1) / 2**0.5, abs=0.005 + 1e-9), loss  # printed to 2 digits

    # the run records the user's file by its spec and SHA-256, with the option given, in the study's
    # config.yaml (what a process re-registers it from) and in each model's
    recorded = {
        "spec": "tversky=my_losses.py:TverskyLoss",
        "file": str(source.resolve()),
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "options": "{'alpha': 0.4}",  # --loss-option, bound to the loss where the command registered it
    }
    study_config = yaml.safe_load((run / "config.yaml").read_text())
    assert study_config["user_code"]["losses"]["tversky"]["source"] == recorded
    models = sorted((run / "models").glob("*__tversky*"))
    assert [m.name for m in models] == ["segresnet__tversky", "segresnet__tversky__seed1"]
    for model in models:
        config = yaml.safe_load((model / "config.yaml").read_text())
        assert (config["loss"], config["loss_source"]) == ("tversky", recorded)
        assert config["loss_overrides"] == {}  # the ci profile's batch=True goes to pcatools' losses only
