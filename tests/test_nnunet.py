"""L1DFL inside nnU-Net (nnunetv2 2.8.1, the ``nnunet`` extra): known answers from pcatools' own losses and nnU-Net's own code.

* The trainers' loss equals :class:`~pcatools.losses.L1DiceFocalLoss` (and ``DiceFocalLoss``) on
  the same tensors at every deep-supervision scale, combined with the weights nnU-Net's own
  ``nnUNetTrainer._build_loss`` gives (by hand: ``[4/7, 2/7, 1/7, 0]`` for four outputs).
* ``install-trainers`` makes nnU-Net's own class lookup resolve ``nnUNetTrainerL1DFL``, and
  ``--uninstall`` takes it away again; this runs against a copy of the nnunetv2 package, so the
  virtual environment is never modified.
* A phantom goes through nnU-Net's real pipeline: export, plan and preprocess, one epoch of L1DFL
  training on the CPU, prediction, and pcatools' evaluation (``slow``).

Without nnunetv2 the tests that need it are skipped, except under ``CI=true``, where they fail:
there a missing nnunetv2 means ``scripts/setup.sh`` lost its install step.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from pcatools.commands.nnunet import app
from pcatools.losses import DiceFocalLoss, L1DiceFocalLoss

runner = CliRunner()


def _need_nnunet() -> Any:
    try:
        import nnunetv2
    except ImportError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"nnunetv2 is not installed under CI=true: scripts/setup.sh must install the nnunet extra ({err})"
            )
        pytest.skip("nnunetv2 is not installed (pip install -e '.[nnunet]')")
    return nnunetv2


DATASET_JSON = {
    "channel_names": {"0": "CT", "1": "noNorm"},
    "labels": {"background": 0, "lesion": 1},
    "numTraining": 4,
    "file_ending": ".nii.gz",
}


def _trainer(cls: type, tmp_path: Path, dataset_json: dict | None = None) -> Any:
    """A trainer on nnU-Net plans for a 64^3 patch (5 stages: 4 deep-supervision outputs), no dataset needed."""
    from pcatools.nnunet.trainers import standalone_trainer

    return standalone_trainer(cls, tmp_path / "results", (64, 64, 64), dataset_json or DATASET_JSON)


def _scales(c: int = 2, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Logits and labels at nnU-Net's four output scales of a 32^3 patch (labels int16, float when downsampled, as nnU-Net's)."""
    gen = torch.Generator().manual_seed(seed)
    outputs, targets = [], []
    for i, s in enumerate((32, 16, 8, 4)):
        outputs.append(torch.randn(2, c, s, s, s, generator=gen))
        labels = (torch.rand(2, 1, s, s, s, generator=gen) < 0.1).to(torch.int16)
        targets.append(labels if i == 0 else labels.float())
    return outputs, targets


def test_l1dfl_trainer_loss_is_l1dfl_at_every_scale_with_nnunet_weights(tmp_path: Path) -> None:
    _need_nnunet()
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from pcatools.nnunet import nnUNetTrainerL1DFL

    loss = _trainer(nnUNetTrainerL1DFL, tmp_path)._build_loss()
    stock = _trainer(nnUNetTrainer, tmp_path)._build_loss()
    assert isinstance(loss, DeepSupervisionWrapper)
    assert loss.weight_factors == stock.weight_factors  # nnU-Net's own weights
    assert loss.weight_factors == pytest.approx((4 / 7, 2 / 7, 1 / 7, 0.0), abs=1e-12)  # 1/2^i, last 0, sum 1
    paper = L1DiceFocalLoss(bin_width=0.1, gamma=2.0, convention="paper")
    assert repr(loss.loss) == repr(paper)

    outputs, targets = _scales()
    for o, t in zip(outputs, targets, strict=True):
        assert torch.equal(loss.loss(o, t), paper(o, t))
    by_hand = sum(
        w * paper(o, t) for w, o, t in zip((4 / 7, 2 / 7, 1 / 7), outputs[:3], targets[:3], strict=True)
    )
    torch.testing.assert_close(loss(outputs, targets), by_hand, rtol=1e-6, atol=0)


def test_dice_focal_trainer_loss_is_pcatools_dfl(tmp_path: Path) -> None:
    _need_nnunet()
    from pcatools.nnunet import nnUNetTrainerDiceFocal

    loss = _trainer(nnUNetTrainerDiceFocal, tmp_path)._build_loss()
    dfl = DiceFocalLoss(gamma=2.0)
    outputs, targets = _scales(seed=1)
    for o, t in zip(outputs, targets, strict=True):
        torch.testing.assert_close(loss.loss(o, t), dfl(o, t), rtol=0, atol=0)
    by_hand = sum(
        w * dfl(o, t) for w, o, t in zip((4 / 7, 2 / 7, 1 / 7), outputs[:3], targets[:3], strict=True)
    )
    torch.testing.assert_close(loss(outputs, targets), by_hand, rtol=1e-6, atol=0)


def test_three_classes_take_multiclass_l1dfl(tmp_path: Path) -> None:
    _need_nnunet()
    from pcatools.nnunet import nnUNetTrainerL1DFL

    three = {**DATASET_JSON, "labels": {"background": 0, "lesion": 1, "organ": 2}}
    loss = _trainer(nnUNetTrainerL1DFL, tmp_path, three)._build_loss()
    o = torch.randn(2, 3, 8, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.randint(0, 3, (2, 1, 8, 8, 8), generator=torch.Generator().manual_seed(3))
    assert torch.equal(loss.loss(o, t), L1DiceFocalLoss(num_classes=3)(o, t))


def test_settings_come_from_class_attributes_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_nnunet()
    from pcatools.nnunet import nnUNetTrainerL1DFL
    from pcatools.nnunet.trainers import ENV_BIN_WIDTH, ENV_CONVENTION, ENV_GAMMA, loss_settings

    class nnUNetTrainerL1DFL_bw02(nnUNetTrainerL1DFL):
        loss_bin_width = 0.2
        loss_gamma = 1.0

    for var in (ENV_BIN_WIDTH, ENV_GAMMA, ENV_CONVENTION):
        monkeypatch.delenv(var, raising=False)
    assert loss_settings(nnUNetTrainerL1DFL) == {"bin_width": None, "gamma": 2.0, "convention": "paper"}
    built = _trainer(nnUNetTrainerL1DFL_bw02, tmp_path)._build_loss().loss
    assert (built.bin_width, built.gamma, built.convention) == (0.2, 1.0, "paper")

    monkeypatch.setenv(ENV_BIN_WIDTH, "0.05")
    monkeypatch.setenv(ENV_GAMMA, "3")
    monkeypatch.setenv(ENV_CONVENTION, "reference-code")
    built = _trainer(nnUNetTrainerL1DFL_bw02, tmp_path)._build_loss().loss
    assert repr(built) == repr(L1DiceFocalLoss(bin_width=0.05, gamma=3.0, convention="reference-code"))

    monkeypatch.setenv(ENV_GAMMA, "two")
    with pytest.raises(ValueError, match=r"^PCATOOLS_NNUNET_GAMMA: expected a number, found 'two'$"):
        loss_settings(nnUNetTrainerL1DFL)
    monkeypatch.setenv(ENV_GAMMA, "2")
    monkeypatch.setenv(ENV_CONVENTION, "papr")
    with pytest.raises(ValueError, match=r"loss convention: expected one of \('paper', 'reference-code'\)"):
        loss_settings(nnUNetTrainerL1DFL)


@pytest.mark.parametrize(
    ("labels", "extra", "message"),
    [
        ({"background": 0, "lesion": 1, "ignore": 2}, {}, r"declares an ignore label \(2\)"),
        (
            {"background": 0, "whole": [1, 2], "core": 2},
            {"regions_class_order": [1, 2]},
            "region-based training",
        ),
    ],
    ids=["ignore-label", "regions"],
)
def test_ignore_label_and_regions_are_refused(
    labels: dict, extra: dict, message: str, tmp_path: Path
) -> None:
    _need_nnunet()
    from pcatools.nnunet import nnUNetTrainerL1DFL

    trainer = _trainer(nnUNetTrainerL1DFL, tmp_path, {**DATASET_JSON, "labels": labels, **extra})
    with pytest.raises(ValueError, match=message):
        trainer._build_loss()


_LOOKUP = textwrap.dedent(
    """
    import importlib, json, os, sys
    sys.path.insert(0, sys.argv[1])
    import nnunetv2
    assert nnunetv2.__file__.startswith(sys.argv[1]), nnunetv2.__file__
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    found = error = None
    try:
        cls = recursive_find_python_class(
            os.path.join(nnunetv2.__path__[0], "training", "nnUNetTrainer"), "nnUNetTrainerL1DFL",
            "nnunetv2.training.nnUNetTrainer",
        )
        found = None if cls is None else f"{cls.__module__}.{cls.__name__}"
    except Exception as err:  # nnU-Net's lookup imports primus/ (timm) once it searches the subfolders
        error = type(err).__name__
    try:
        importlib.import_module("nnunetv2.training.nnUNetTrainer.pcatools_l1dfl")
        shim = True
    except ModuleNotFoundError:
        shim = False
    print(json.dumps({"found": found, "error": error, "shim": shim}))
    """
)


def _lookup(site: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _LOOKUP, str(site)], capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_install_trainers_makes_nnunet_lookup_find_l1dfl_and_uninstall_removes_it(tmp_path: Path) -> None:
    nnunetv2 = _need_nnunet()
    site = tmp_path / "site"
    shutil.copytree(nnunetv2.__path__[0], site / "nnunetv2", ignore=shutil.ignore_patterns("__pycache__"))
    folder = site / "nnunetv2" / "training" / "nnUNetTrainer"
    before = sorted(p.name for p in folder.rglob("*") if "__pycache__" not in p.parts)

    result = runner.invoke(app, ["install-trainers", "--target", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["written", str(folder / "pcatools_l1dfl.py")]
    assert _lookup(site) == {
        "found": "pcatools.nnunet.trainers.nnUNetTrainerL1DFL",
        "error": None,
        "shim": True,
    }
    again = runner.invoke(app, ["install-trainers", "--target", str(folder)])
    assert again.output.split()[0] == "unchanged"

    result = runner.invoke(app, ["install-trainers", "--uninstall", "--target", str(folder)])
    assert result.exit_code == 0, result.output
    removed = [line.split() for line in result.output.splitlines()]
    assert removed[0] == ["removed", str(folder / "pcatools_l1dfl.py")]
    assert all(
        a == "removed" and "__pycache__" in p for a, p in removed[1:]
    )  # the bytecode the lookup compiled
    after = _lookup(site)
    assert after["found"] is None and after["shim"] is False
    assert sorted(p.name for p in folder.rglob("*") if "__pycache__" not in p.parts) == before
    assert (
        runner.invoke(app, ["install-trainers", "--uninstall", "--target", str(folder)]).output.split()[0]
        == "absent"
    )


def test_install_trainers_never_touches_a_foreign_file(tmp_path: Path) -> None:
    from pcatools.nnunet.install import MARKER, SHIM_DIR, install_trainers, uninstall_trainers

    foreign = tmp_path / "pcatools_l1dfl.py"
    foreign.write_text("class nnUNetTrainerL1DFL: ...\n")
    for args in (["install-trainers"], ["install-trainers", "--uninstall"]):
        result = runner.invoke(app, [*args, "--target", str(tmp_path)])
        assert result.exit_code == 1
        assert result.output.count("\n") == 1 and "was not written by pcatools" in result.output
    assert foreign.read_text() == "class nnUNetTrainerL1DFL: ...\n"

    foreign.write_text(MARKER + " (an older pcatools)\n")  # an older shim is ours: updated, then removed
    assert [c.action for c in install_trainers(tmp_path)] == ["updated"]
    assert foreign.read_text() == (SHIM_DIR / "pcatools_l1dfl.py").read_text()
    assert [c.action for c in uninstall_trainers(tmp_path)] == ["removed"]
    missing = runner.invoke(app, ["install-trainers", "--target", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "expected an existing directory" in missing.output


def test_export_dataset_writes_an_nnunet_raw_dataset_with_patient_level_folds(tmp_path: Path) -> None:
    from pcatools.data.folders import case_files
    from pcatools.data.manifest import read_manifest
    from pcatools.nnunet import export_dataset

    ds = export_dataset(
        tmp_path / "raw", n_cases=6, spacing=8.0, test_fraction=0.34, workers=1, progress=False
    )
    assert ds == (tmp_path / "raw" / "Dataset501_PSMA").resolve()
    info = json.loads((ds / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "CT", "1": "noNorm"}
    assert info["labels"] == {"background": 0, "lesion": 1}
    assert (info["numTraining"], info["file_ending"], info["pcatools"]["test_cases"]) == (4, ".nii.gz", 2)
    train = sorted(p.name[: -len(".nii.gz")] for p in (ds / "labelsTr").iterdir())
    test = sorted(case_files(ds / "labelsTs", "label"))
    assert len(train) == 4 and len(test) == 2 and not set(train) & set(test)
    assert sorted(p.name for p in (ds / "imagesTr").iterdir()) == sorted(
        f"{c}_{k:04d}.nii.gz" for c in train for k in (0, 1)
    )
    assert sorted(case_files(ds / "imagesTs", "pet")) == test  # channel 1 is the PET pcatools evaluates with
    folds = json.loads((ds / "splits_final.json").read_text())
    assert len(folds) == 4  # one per training patient (fewer than nnU-Net's 5)
    for fold in folds:
        assert sorted(fold["train"] + fold["val"]) == train and not set(fold["train"]) & set(fold["val"])
    manifest = read_manifest(ds / "manifest.csv")
    assert sorted(manifest["case_id"]) == sorted(train + test)
    assert all(Path(p).is_file() for p in manifest["label"])

    again = export_dataset(
        tmp_path / "raw", n_cases=5, spacing=8.0, workers=1, progress=False
    )  # replaces its own export
    assert json.loads((again / "dataset.json").read_text())["pcatools"]["n_cases"] == 5
    with pytest.raises(FileExistsError, match="dataset id 501 is already used by Dataset501_PSMA"):
        export_dataset(tmp_path / "raw", n_cases=5, spacing=8.0, name="Other", workers=1, progress=False)
    foreign = tmp_path / "raw" / "Dataset502_PSMA"
    foreign.mkdir()
    result = runner.invoke(
        app, ["export-dataset", str(tmp_path / "raw"), "--n-cases", "4", "--dataset-id", "502"]
    )
    assert (
        result.exit_code == 1
        and result.output.count("\n") == 1
        and "is not a pcatools export" in result.output
    )


def test_export_dataset_from_a_discovered_cohort_links_its_files(tmp_path: Path) -> None:
    from pcatools.data.phantom import make_cohort
    from pcatools.nnunet import export_dataset

    source = make_cohort(
        4, tmp_path / "autopet", layout="autopet", spacing=(8.0,) * 3, workers=1, progress=False
    )
    ds = export_dataset(
        tmp_path / "raw", data_dir=tmp_path / "autopet", test_fraction=0.25, link=True, progress=False
    )
    info = json.loads((ds / "dataset.json").read_text())
    assert info["pcatools"]["source"] == str((tmp_path / "autopet").resolve())
    assert (info["numTraining"], info["pcatools"]["test_cases"], info["pcatools"]["folds"]) == (3, 1, 3)
    for row in source.itertuples():
        split = "Tr" if (ds / "labelsTr" / f"{row.case_id}.nii.gz").exists() else "Ts"
        assert (ds / f"images{split}" / f"{row.case_id}_0000.nii.gz").samefile(
            row.ct
        )  # hard links, not copies
        assert (ds / f"images{split}" / f"{row.case_id}_0001.nii.gz").samefile(row.pet)
        assert (ds / f"labels{split}" / f"{row.case_id}.nii.gz").samefile(row.label)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export-dataset", "OUT"], "give either n_cases"),
        (
            ["export-dataset", "OUT", "--n-cases", "4", "--pet-norm", "suv"],
            "pet_normalization: expected one of",
        ),
        (["export-dataset", "OUT", "--n-cases", "4", "--name", "PS MA"], "name: expected letters"),
        # an unknown --loss is a bad option (exit 2): tests/test_user_loss.py
        (["train", "501", "3d_fullres", "0", "--device", "tpu"], "device: expected cpu, cuda or mps"),
        (["train", "501", "3d_fullres", "first"], "fold: expected an integer (0-4) or 'all', found 'first'"),
        (["predict", "MODEL", "IMAGES", "OUT"], "not a trained nnU-Net model folder"),
    ],
)
def test_bad_input_is_one_error_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if args[0] in ("train", "predict"):
        _need_nnunet()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1 and message in result.output


@pytest.mark.slow
def test_phantom_through_nnunet_plan_train_predict_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """export -> nnU-Net plan and preprocess -> 1 epoch of L1DFL on the CPU -> nnU-Net prediction -> pcatools evaluate."""
    _need_nnunet()
    from pcatools.evaluation import evaluate_folders

    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    raw = tmp_path / "nnUNet_raw"

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    cli(
        "export-dataset",
        str(raw),
        "--n-cases",
        "8",
        "--spacing",
        "8",
        "--test-fraction",
        "0.25",
        "--workers",
        "1",
        "--no-progress",
    )
    ds = raw / "Dataset501_PSMA"
    cli("plan", "501", "--workers", "1")
    out = cli(
        "train", "501", "3d_fullres", "0", "--loss", "l1dfl", "--device", "cpu", "--epochs", "1",
        "--iterations", "2", "--val-iterations", "1", "--no-validate", "--workers", "0",
    )  # fmt: skip
    model = tmp_path / "nnUNet_results" / "Dataset501_PSMA" / "nnUNetTrainerL1DFL__nnUNetPlans__3d_fullres"
    assert f"trained: {model / 'fold_0'}" in out
    checkpoint = torch.load(model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == "nnUNetTrainerL1DFL"
    log = next((model / "fold_0").glob("training_log_*.txt")).read_text()
    assert (
        "pcatools loss (nnUNetTrainerL1DFL): L1DiceFocalLoss(bin_width=0.1, gamma=2.0, convention='paper'"
        in log
    )
    splits = json.loads(
        (tmp_path / "nnUNet_preprocessed" / "Dataset501_PSMA" / "splits_final.json").read_text()
    )
    assert splits == json.loads((ds / "splits_final.json").read_text())  # pcatools' patient-level folds

    preds = tmp_path / "preds" / "l1dfl"
    cli(
        "predict",
        str(model),
        str(ds / "imagesTs"),
        str(preds),
        "--fold",
        "0",
        "--device",
        "cpu",
        "--no-tta",
        "--workers",
        "1",
        "--no-progress",
    )
    assert sorted(p.name for p in preds.glob("*.nii.gz")) == sorted(
        p.name for p in (ds / "labelsTs").iterdir()
    )
    result = evaluate_folders(
        tmp_path / "evaluation",
        ds / "labelsTs",
        pred={"nnunet/l1dfl": preds},
        suv=ds / "imagesTs",
        workers=0,
        progress=False,
    )
    assert sorted(result.cases["case_id"]) == sorted(
        p.name[: -len(".nii.gz")] for p in preds.glob("*.nii.gz")
    )
    assert list(result.table1["Loss"]) == ["L1DFL"]
