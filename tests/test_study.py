"""The study runner: an interrupted study continues where it stopped, a finished one is not redone,
and the profile's loss / transform settings reach every training run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pcatools.study import PROFILES, get_profile, run_study


def test_demo_profile_follows_the_paper_where_it_says_it_does() -> None:
    demo = PROFILES["demo"]
    assert demo.roi_size == demo.patch_size  # the paper's window is its patch (128^3)
    assert demo.loss_overrides == {"batch": True}
    assert demo.transform_overrides == {"pos_fraction": 0.8}  # the paper's 80 % lesion patches
    assert demo.overlap == 0.25  # windows side by side halved the test DSC (docs/decisions.md)
    attention, segresnet = demo.train_kwargs("attention_unet", "dice"), demo.train_kwargs("segresnet", "dice")
    assert (attention["lr"], segresnet["lr"]) == (5e-3, 3e-3)
    # SegResNet 300 steps of 2 x 2 crops, Attention U-Net 600 steps of one crop per case
    steps = [
        (c["epochs"], c["max_steps_per_epoch"], c["batch_size"], c["num_samples"])
        for c in (segresnet, attention)
    ]
    assert steps == [(30, 10, 2, 2), (60, 10, 2, 1)]
    assert attention["transform_overrides"] == segresnet["transform_overrides"] == {"pos_fraction": 0.8}
    # SegResNet starts at p = 0.01 (its L1DFL models stayed at MONAI's p = 0.5, docs/decisions.md)
    assert (segresnet["output_prior"], attention["output_prior"]) == (0.01, None)
    assert attention["loss_overrides"] == segresnet["loss_overrides"] == {"batch": True}
    with pytest.raises(ValueError, match=r"network_train\['segresnet'\] has keys \['lrr'\]"):
        get_profile("demo", network_train={"segresnet": {"lrr": 1.0}}).train_kwargs("segresnet", "dice")
    paper = PROFILES["paper"]
    assert paper.loss_overrides == {} and paper.transform_overrides == {}  # per-patch Dice, pos 0.8
    assert get_profile("demo", loss_overrides={}).loss_overrides == {}


def test_demo_trains_one_thread_cells_side_by_side_on_every_core_of_a_cpu_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """issue 23: the demo's cells train at one thread each, as many at once as the cores allow, so
    its numbers do not depend on the core count; a GPU machine or another profile trains in-process."""
    from pcatools import study

    demo = PROFILES["demo"]
    assert demo.threads == 1 and demo.cpu_parallel and not PROFILES["paper"].cpu_parallel
    monkeypatch.setattr(study, "visible_gpus", lambda: [])
    for cores, cells, expected in ((2, 6, 2), (1, 6, 1), (16, 6, 6), (16, 3, 3)):
        monkeypatch.setattr(study.os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert study.cpu_parallel_jobs(demo, cells) == expected
    assert study.cpu_parallel_jobs(get_profile("demo", threads=4), 6) == 4  # 16 cores / 4 threads
    assert study.cpu_parallel_jobs(PROFILES["ci"], 6) == 0
    monkeypatch.setattr(study, "visible_gpus", lambda: [0])
    assert study.cpu_parallel_jobs(demo, 6) == 0


def test_paper_profile_trains_dfl_as_the_public_code_and_paper_text_as_eq_2_reads() -> None:
    """issue 25: the public code's DFL is MONAI's DiceFocalLoss(softmax=True), whose focal term is a
    sigmoid per logit; ``paper`` runs that, ``paper-text`` the softmax focal term of eq. 2. The
    built losses equal MONAI's and pcatools' own on one batch; the other arms do not change."""
    import monai
    import torch

    from pcatools.losses import build_loss

    code, text = get_profile("paper"), get_profile("paper-text")
    assert code.train_config("segresnet", "dice_focal").loss_overrides == {"focal": "sigmoid"}
    assert text.train_config("segresnet", "dice_focal").loss_overrides == {}
    for network in ("segresnet", "attention_unet"):
        for loss in ("dice", "l1dfl"):
            assert code.train_config(network, loss).to_dict() == text.train_config(network, loss).to_dict()
    logits = torch.randn(2, 2, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = (torch.rand(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.8).long()
    built = build_loss("dice_focal", **code.train_config("segresnet", "dice_focal").loss_overrides)
    monai_dfl = monai.losses.DiceFocalLoss(softmax=True, to_onehot_y=True)
    torch.testing.assert_close(built(logits, labels), monai_dfl(logits, labels))
    eq2 = build_loss("dice_focal", **text.train_config("segresnet", "dice_focal").loss_overrides)
    assert abs(float(eq2(logits, labels)) - float(built(logits, labels))) > 1e-3


def test_interrupted_study_continues_and_finished_study_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pcatools.training as training

    real_train = training.train
    calls: list[str] = []

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[2].loss)  # train(manifest, run_dir, config, ...)
        if len(calls) == 2:  # Ctrl-C while the second model trains
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    run = tmp_path / "run"
    settings: dict[str, Any] = dict(
        profile="ci",
        seed=0,
        progress=False,
        networks=("segresnet",),
        losses=("dice", "l1dfl"),
        network_train={"segresnet": {"lr": 5e-4}},
    )
    monkeypatch.setattr(training, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(run, **settings)
    first = run / "models" / "segresnet__dice" / "best.pt"
    assert first.exists() and not (run / "models" / "segresnet__l1dfl" / "best.pt").exists()
    stamp = first.stat().st_mtime_ns

    monkeypatch.setattr(training, "train", real_train)
    run_study(run, **settings)
    assert first.stat().st_mtime_ns == stamp  # the finished model was not trained again
    for key in ("segresnet__dice", "segresnet__l1dfl"):
        config = yaml.safe_load((run / "models" / key / "config.yaml").read_text())
        assert config["loss_overrides"] == {"batch": True}
        assert config["transform_overrides"] == {"pos_fraction": 0.5}
        assert config["lr"] == 5e-4
        # issue 28: no absolute path and no placeholder; the study's split.csv named from the model folder
        assert (config["run_dir"], config["manifest"], config["manifest_source"]) == (
            ".",
            "split.csv",
            "../../split.csv",
        )
    results, figures = run / "results", run / "figures"
    assert {"table1.csv", "table1.md", "cases.csv", "lesions.csv", "wilcoxon.csv"} <= {
        p.name for p in results.iterdir()
    }
    for n in (1, 2, 3, 4, 5, 6, 7):
        assert any(figures.glob(f"figure{n}*.png")) and any(figures.glob(f"figure{n}*.html")), n

    # a finished study re-run: no training, the same tables
    table = (results / "table1.csv").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in (run / "models").rglob("*.pt")}
    run_study(run, **settings)
    assert (results / "table1.csv").read_bytes() == table
    assert {p: p.stat().st_mtime_ns for p in (run / "models").rglob("*.pt")} == stamps


def test_a_copied_run_folder_reads_its_own_files_after_the_original_is_gone(tmp_path: Path) -> None:
    """Run folders store paths relative to themselves (data.manifest.write_manifest), so a copy works alone."""
    import shutil

    from pcatools.analysis import figure3_for_study, load_study
    from pcatools.evaluation import evaluate_folders, study_predictions

    settings: dict[str, Any] = dict(
        profile="ci", seed=0, progress=False, networks=("segresnet",), losses=("dice", "l1dfl")
    )
    original = tmp_path / "original"
    run_study(original, **settings)
    assert "/original/" not in (original / "split.csv").read_text()  # relative, not absolute
    copy = tmp_path / "shared" / "copy"
    shutil.copytree(original, copy)
    shutil.rmtree(original)

    study = load_study(copy)
    for table, cols in (
        (study.manifest, ("ct", "pet", "label")),
        (study.predictions, ("pet", "label", "pred")),
    ):
        for col in cols:
            paths = [Path(p) for p in table[col]]
            assert all(p.is_file() and copy.resolve() in p.parents for p in paths), col
    assert len(figure3_for_study(study).data) > 0

    stamps = {p: p.stat().st_mtime_ns for p in (copy / "models").rglob("*.pt")}
    table1 = (copy / "results" / "table1.csv").read_bytes()
    run_study(copy, **settings)  # continues in the copy: nothing retrained, the same results
    assert {p: p.stat().st_mtime_ns for p in (copy / "models").rglob("*.pt")} == stamps
    assert (copy / "results" / "table1.csv").read_bytes() == table1
    # masks without a provenance record (older pcatools) are remade by the study, which says so
    (copy / "predictions" / "segresnet__dice" / "provenance.json").unlink()
    with pytest.warns(UserWarning, match="re-predicting .* test masks of segresnet__dice"):
        run_study(copy, **settings)
    assert (copy / "results" / "table1.csv").read_bytes() == table1

    evaluated = evaluate_folders(
        tmp_path / "eval", copy / "data", pred=study_predictions(copy), suv=copy / "data",
        allow_missing=True, workers=0, progress=False,
    )  # fmt: skip
    merged = evaluated.cases.merge(study.cases, on=["case_id", "network", "loss"], suffixes=("", "_study"))
    assert len(merged) == len(study.cases)
    assert merged["dice"].tolist() == pytest.approx(merged["dice_study"].tolist(), abs=1e-12)
