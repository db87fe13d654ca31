"""``pcatools.inference``: sliding window, argmax, masks on the original grid, batch prediction."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pcatools.data.case import Case, write_case
from pcatools.data.transforms import eval_transforms
from pcatools.inference import load_model, predict_case, predict_manifest, sliding_window_logits
from pcatools.models import build_model
from pcatools.training import SlidingWindow, save_checkpoint
from tests.test_training import tiny_cohort


class PetThreshold(nn.Module):
    """Logits (0, PET - 10): lesion where SUV > 10. A network whose right answer is known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[:, 1:2]), x[:, 1:2] - 10.0], dim=1)


def _direct_input(case: Case) -> torch.Tensor:
    """The network input computed by hand: CT clipped to [-1000, 3000] HU and scaled to [0, 1], PET as is."""
    ct = np.clip((case.ct + 1000.0) / 4000.0, 0.0, 1.0)
    return torch.from_numpy(np.stack([ct, case.pet]).astype(np.float32))[None]


def _case(shape: tuple[int, int, int], affine: np.ndarray, seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    ct = rng.normal(0.0, 200.0, shape).astype(np.float32)
    pet = rng.gamma(2.0, 0.5, shape).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    label[10:20, 8:18, 6:12] = 1
    pet[label > 0] += 15.0
    return Case("x", pet, ct, label, affine)


@pytest.mark.parametrize("net_name", ["threshold", "segresnet"])
def test_prediction_on_the_training_grid_is_the_argmax_of_the_logits(tmp_path: Path, net_name: str) -> None:
    # 4 mm isotropic, RAS: the evaluation pipeline's reorientation and resampling are identities
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = (-70.0, -50.0, 20.0)
    case = _case((40, 36, 24), affine)
    paths = write_case(case, tmp_path)
    torch.manual_seed(0)
    net = PetThreshold() if net_name == "threshold" else build_model("segresnet", init_filters=4).eval()
    mask = predict_case(
        net,
        paths,
        eval_transforms(spacing=(4.0, 4.0, 4.0)),
        SlidingWindow((16, 16, 16), overlap=0.5, mode="gaussian", sw_batch_size=3),
        device="cpu",
    )
    assert mask.shape == case.pet.shape
    np.testing.assert_array_equal(mask.affine, affine)
    assert mask.get_data_dtype() == np.uint8
    # direct computation: MONAI's sliding window on the hand-made input, argmax over the classes
    from monai.inferers import sliding_window_inference

    with torch.no_grad():
        logits = sliding_window_inference(
            _direct_input(case), (16, 16, 16), 3, net, overlap=0.5, mode="gaussian"
        )
    expected = torch.argmax(logits, dim=1)[0].numpy().astype(np.uint8)
    got = np.asarray(mask.dataobj)
    assert (got == expected).mean() == 1.0
    if net_name == "threshold":
        # SUV > 10 is exactly the lesion here (background SUV ~ Gamma(2, 0.5))
        np.testing.assert_array_equal(got, case.label)


def test_prediction_goes_back_to_an_anisotropic_flipped_grid(tmp_path: Path) -> None:
    # 3 x 3 x 5 mm, x and y flipped (LPS-like): resampled to 2 mm RAS for the network, then back
    affine = np.array([[-3.0, 0, 0, 50.0], [0, -3.0, 0, 40.0], [0, 0, 5.0, -30.0], [0, 0, 0, 1]])
    case = _case((40, 36, 24), affine)
    paths = write_case(case, tmp_path)
    mask = predict_case(
        PetThreshold(),
        paths,
        eval_transforms(spacing=(2.0, 2.0, 2.0)),
        SlidingWindow((32, 32, 32)),
        device="cpu",
    )
    assert mask.shape == case.pet.shape
    np.testing.assert_allclose(mask.affine, affine)
    got = np.asarray(mask.dataobj).astype(bool)
    dice = 2 * (got & (case.label > 0)).sum() / (got.sum() + case.label.sum())
    assert dice > 0.98  # only the lesion's boundary voxels may move under two resamplings
    assert got[case.label == 0].mean() < 0.01


def test_sliding_window_blending_of_a_pointwise_model() -> None:
    # a 1x1x1 convolution gives the same value in every overlapping window, so both blendings
    # must return exactly model(image) (up to float rounding of the weights' normalisation)
    torch.manual_seed(1)
    net = nn.Conv3d(2, 2, 1)
    image = torch.randn(1, 2, 21, 17, 9)
    with torch.no_grad():
        direct = net(image)
    for mode in ("gaussian", "constant"):
        out = sliding_window_logits(
            net, image, SlidingWindow((8, 8, 8), overlap=0.5, mode=mode, sw_batch_size=2), device="cpu"
        )
        torch.testing.assert_close(out, direct, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="mode must be one of"):
        sliding_window_logits(net, image, SlidingWindow((8, 8, 8), mode="linear"))
    with pytest.raises(ValueError, match="overlap must be in"):
        sliding_window_logits(net, image, SlidingWindow((8, 8, 8), overlap=1.0))
    with pytest.raises(ValueError, match=r"image must be \(B, C, X, Y, Z\)"):
        sliding_window_logits(net, image[0], SlidingWindow((8, 8, 8)))


def _checkpoint(path: Path, net: nn.Module, spacing: float) -> Path:
    config = {
        "model": "segresnet",
        "model_overrides": {"init_filters": 4},
        "in_channels": 2,
        "out_channels": 2,
        "spacing": (spacing,) * 3,
        "patch_size": (32, 32, 32),
        "overlap": 0.25,
        "sw_mode": "gaussian",
        "sw_batch_size": 2,
        "transform_overrides": {},
    }
    return save_checkpoint({"kind": "best", "config": config, "model": net.state_dict(), "epoch": 1}, path)


def test_predict_manifest_writes_skips_and_matches_predict_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tiny_cohort(tmp_path / "data", n=2, n_val=0)
    table.loc[1, "label"] = np.nan  # an unlabelled case is predicted too
    torch.manual_seed(0)
    net = build_model("segresnet", init_filters=4)
    ckpt = _checkpoint(tmp_path / "best.pt", net, 4.0)
    out = predict_manifest(ckpt, table, tmp_path / "pred", device="cpu", progress=False)
    assert out["pred"].tolist() == [str(tmp_path / "pred" / f"{c}.nii.gz") for c in table["case_id"]]
    assert list(out.columns) == [*table.columns, "pred"]
    saved = pd.read_csv(tmp_path / "pred" / "predictions.csv", dtype={"case_id": str})
    assert saved["pred"].tolist() == out["pred"].tolist()
    model, config = load_model(ckpt, device="cpu")
    assert config["spacing"] == (4.0, 4.0, 4.0)
    for row in table.to_dict("records"):
        written = nib.load(tmp_path / "pred" / f"{row['case_id']}.nii.gz")
        pet = nib.load(row["pet"])
        assert written.shape == pet.shape and np.allclose(written.affine, pet.affine)
        again = predict_case(
            model,
            row,
            eval_transforms(spacing=(4.0,) * 3),
            SlidingWindow((32, 32, 32), overlap=0.25, mode="gaussian", sw_batch_size=2),
            device="cpu",
        )
        np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(again.dataobj))

    # existing masks are skipped; overwrite=True predicts again
    calls: list[str] = []
    import pcatools.inference as inference

    real = inference.predict_case
    monkeypatch.setattr(inference, "predict_case", lambda *a, **k: calls.append("x") or real(*a, **k))
    predict_manifest(ckpt, table, tmp_path / "pred", device="cpu", progress=False)
    assert calls == []
    predict_manifest(ckpt, table, tmp_path / "pred", device="cpu", progress=False, overwrite=True)
    assert calls == ["x", "x"]


def test_cli_predict(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pcatools.cli import app

    table = tiny_cohort(tmp_path / "data", n=2, n_val=1)
    table.to_csv(tmp_path / "split.csv", index=False)
    torch.manual_seed(0)
    ckpt = _checkpoint(tmp_path / "best.pt", build_model("segresnet", init_filters=4), 4.0)
    out = CliRunner().invoke(
        app,
        [
            "predict",
            str(ckpt),
            str(tmp_path / "split.csv"),
            str(tmp_path / "pred"),
            "--split",
            "val",
            "--device",
            "cpu",
            "--no-progress",
        ],
    )
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "pred").glob("*.nii.gz")) == ["c01.nii.gz"]
    bad = CliRunner().invoke(
        app,
        [
            "predict",
            str(tmp_path / "split.csv"),
            str(tmp_path / "split.csv"),
            str(tmp_path / "p2"),
            "--no-progress",
        ],
    )
    assert bad.exit_code == 1 and "split.csv is corrupt or unreadable" in bad.output


def test_bad_inputs(tmp_path: Path) -> None:
    net = PetThreshold()
    with pytest.raises(FileNotFoundError, match="PET image .*nope.nii.gz does not exist"):
        predict_case(net, {"ct": __file__, "pet": str(tmp_path / "nope.nii.gz")})
    with pytest.raises(ValueError, match="needs a 'ct' path"):
        predict_case(net, {"pet": __file__})
    with pytest.raises(ValueError, match="lacks column 'pet'"):
        predict_manifest(tmp_path / "x.pt", pd.DataFrame({"case_id": ["a"], "ct": ["a"]}), tmp_path / "o")


class PetAboveOne(nn.Module):
    """Logits (0, PET - 1): about half the voxels (background SUV ~ Gamma(2, 0.5)) on either side."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[:, 1:2]), x[:, 1:2] - 1.0], dim=1)


def test_probability_map_agrees_with_the_mask_on_the_original_grid(tmp_path: Path) -> None:
    from pcatools.data.io import load_case
    from pcatools.inference import probs_path
    from pcatools.viewer import build_layers

    # the anisotropic, flipped grid of the test above: both maps are resampled there and back
    affine = np.array([[-3.0, 0, 0, 50.0], [0, -3.0, 0, 40.0], [0, 0, 5.0, -30.0], [0, 0, 0, 1]])
    case = _case((40, 36, 24), affine)
    paths = write_case(case, tmp_path)
    tf = eval_transforms(spacing=(2.0, 2.0, 2.0))
    mask_img, probs_img = predict_case(
        PetAboveOne(), paths, tf, SlidingWindow((32, 32, 32)), device="cpu", return_probs=True
    )
    mask = np.asarray(mask_img.dataobj)
    p = np.asarray(probs_img.dataobj)
    assert p.dtype == np.float32 and probs_img.get_data_dtype() == np.float32
    assert p.shape == case.pet.shape and np.allclose(probs_img.affine, affine)
    assert 0.0 <= p.min() and p.max() <= 1.0
    assert 0.1 < mask.mean() < 0.9  # both classes are present
    # argmax of two-class softmax: lesion exactly where p > 0.5
    assert (p[mask == 1] > 0.5).all() and (p[mask == 0] <= 0.5).all()
    # the same mask as without probabilities
    np.testing.assert_array_equal(
        mask,
        np.asarray(predict_case(PetAboveOne(), paths, tf, SlidingWindow((32, 32, 32)), device="cpu").dataobj),
    )
    # p is the network's sigmoid(PET - 1) at some voxel of the 2 mm grid (nearest neighbour): the
    # lesion (SUV > 15) is near 1
    assert p[case.label > 0].min() > 0.999
    # the viewer takes it as the L1 layers' probability map
    loaded = load_case({k: str(v) for k, v in paths.items()})
    names = [kw["name"] for _, kw, _ in build_layers(loaded, probs=p)]
    assert names[-3:] == ["Delta |g - p|", "L1 bin index", "L1 weights"]
    assert probs_path(tmp_path / "x.nii.gz") == tmp_path / "x_probs.nii.gz"


def test_cli_predict_save_probs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pcatools.cli import app

    table = tiny_cohort(tmp_path / "data", n=2, n_val=1)
    table.to_csv(tmp_path / "split.csv", index=False)
    torch.manual_seed(0)
    ckpt = _checkpoint(tmp_path / "best.pt", build_model("segresnet", init_filters=4), 4.0)
    args = ["predict", str(ckpt), str(tmp_path / "split.csv"), str(tmp_path / "pred"), "--device", "cpu"]
    out = CliRunner().invoke(app, [*args, "--no-progress", "--save-probs"])
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "pred").glob("*.nii.gz")) == [
        "c00.nii.gz",
        "c00_probs.nii.gz",
        "c01.nii.gz",
        "c01_probs.nii.gz",
    ]
    saved = pd.read_csv(tmp_path / "pred" / "predictions.csv", dtype={"case_id": str})
    assert saved["probs"].tolist() == [str(tmp_path / "pred" / f"c0{i}_probs.nii.gz") for i in range(2)]
    for case_id in ("c00", "c01"):
        mask = nib.load(tmp_path / "pred" / f"{case_id}.nii.gz")
        probs = nib.load(tmp_path / "pred" / f"{case_id}_probs.nii.gz")
        assert probs.shape == mask.shape and np.allclose(probs.affine, mask.affine)
        assert probs.get_data_dtype() == np.float32
        m, p = np.asarray(mask.dataobj), np.asarray(probs.dataobj)
        assert ((p > 0.5) == (m == 1)).all()
    # masks without a probability map are predicted again when --save-probs is asked later
    (tmp_path / "pred" / "c01_probs.nii.gz").unlink()
    again = CliRunner().invoke(app, [*args, "--no-progress", "--save-probs"])
    assert again.exit_code == 0 and (tmp_path / "pred" / "c01_probs.nii.gz").is_file()


def test_save_probs_refuses_case_ids_that_collide_with_a_map(tmp_path: Path) -> None:
    table = pd.DataFrame({"case_id": ["a", "a_probs"], "ct": ["x", "x"], "pet": ["x", "x"]})
    with pytest.raises(
        ValueError, match=r"case ids \['a_probs'\] would be overwritten by the probability maps"
    ):
        predict_manifest(tmp_path / "best.pt", table, tmp_path / "o", save_probs=True)
