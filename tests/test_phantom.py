"""Tests of the synthetic PSMA PET/CT phantom (``pcatools.data.phantom``), issue 4.

Known answers: the paper's cohort statistics (section 2.1), exact moment formulas checked against
numerical integration, hand-computed calibration, lesion counts / volumes / SUVmax measured on the
rendered images with cc3d, tissue HU from the table, byte-identical files across runs and workers.
"""

from __future__ import annotations

import os
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, ndimage, stats

from pcatools.data.case import Case
from pcatools.data.phantom import PAPER, draw_lesions, lesion_count_pmf, make_case, make_cohort
from pcatools.data.phantom.anatomy import draw_anatomy
from pcatools.data.phantom.geometry import Grid
from pcatools.data.phantom.lesions import (
    fit_truncated_lognormal,
    lesion_axes_mm,
    sample_truncated_lognormal,
    truncated_lognormal_moments,
)
from pcatools.data.phantom.placement import PlacedLesion, draw_hard_negatives
from pcatools.data.phantom.render import lesion_amplitude, lesion_mask
from pcatools.data.phantom.tissues import CODE, TISSUES

# ---------------------------------------------------------------------------------------------
# fixtures: a few cases at 4 mm, and small cohorts
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    """Three 4 mm cases: five lesions, a drawn count, lesion-free."""
    return [make_case(11, n_lesions=5), make_case(12), make_case(13, lesion_free=True)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """Four cases, nnU-Net layout, two worker processes."""
    root = tmp_path_factory.mktemp("cohort")
    return root, make_cohort(4, root, seed=0, workers=2, progress=False)


def _index(case: Case, point_mm: list[float]) -> tuple[int, int, int]:
    return tuple(int(round((point_mm[i] - case.affine[i, 3]) / case.affine[i, i])) for i in range(3))  # type: ignore[return-value]


def _lesion_components(case: Case) -> tuple[np.ndarray, int, list[int]]:
    """18-connected components of the label and, per requested lesion, the component at its centre."""
    assert case.label is not None
    lab, n = cc3d.connected_components(case.label, connectivity=18, return_N=True)
    ids = [
        int(lab[_index(case, [r["center_x_mm"], r["center_y_mm"], r["center_z_mm"]])])
        for r in case.meta["lesions"]
    ]
    return lab, int(n), ids


# ---------------------------------------------------------------------------------------------
# lesion statistics (pure draws)
# ---------------------------------------------------------------------------------------------


def test_count_pmf_matches_paper_exactly() -> None:
    pmf = lesion_count_pmf()
    n = np.arange(1, PAPER.max_lesions + 1)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert pmf[0] == pytest.approx(34 / 57, abs=1e-12)
    assert (n * pmf).sum() == pytest.approx(684 / 380, abs=1e-9)
    assert np.all(np.diff(pmf[1:]) < 0)  # geometric tail


def test_truncated_lognormal_moments_against_numerical_integration() -> None:
    for mean, sd, lo, hi in [(6.68, 10.20, 0.2, 150.0), (12.65, 14.46, 2.0, 150.0)]:
        mu, sigma = fit_truncated_lognormal(mean, sd, lo, hi)
        dist = stats.lognorm(s=sigma, scale=np.exp(mu))
        z = dist.cdf(hi) - dist.cdf(lo)
        pdf = dist.pdf
        m1 = integrate.quad(lambda x, f=pdf: x * f(x), lo, hi, limit=200, epsabs=0, epsrel=1e-11)[0] / z
        m2 = integrate.quad(lambda x, f=pdf: x * x * f(x), lo, hi, limit=200, epsabs=0, epsrel=1e-11)[0] / z
        assert m1 == pytest.approx(mean, rel=1e-6)
        assert np.sqrt(m2 - m1 * m1) == pytest.approx(sd, rel=1e-6)
        assert truncated_lognormal_moments(mu, sigma, lo, hi) == pytest.approx((mean, sd), rel=1e-8)
        x = sample_truncated_lognormal(np.random.default_rng(0), mu, sigma, lo, hi, 200_000)
        assert x.min() >= lo and x.max() <= hi
        cdf = stats.truncnorm((np.log(lo) - mu) / sigma, (np.log(hi) - mu) / sigma, loc=mu, scale=sigma).cdf
        assert (
            stats.kstest(np.log(x[:5000]), cdf).pvalue > 1e-3
        )  # log of a truncated lognormal: truncated normal


def test_lesion_draws_match_paper_statistics() -> None:
    """50,000 scans (~90,000 lesions): count, P(1), volume and SUVmax within the tolerance of docs/phantom.md."""
    n_scans = 50_000
    t = draw_lesions(np.random.default_rng(2024), n_scans)
    counts = t.groupby("scan").size().reindex(range(n_scans), fill_value=0)
    assert counts.min() >= 1 and counts.max() <= PAPER.max_lesions
    assert counts.mean() == pytest.approx(1.8, abs=0.02)
    assert (counts == 1).mean() == pytest.approx(34 / 57, abs=0.01)
    assert t.volume_ml.mean() == pytest.approx(6.68, rel=0.02)
    assert t.volume_ml.std() == pytest.approx(10.20, rel=0.05)
    assert t.suvmax.mean() == pytest.approx(12.65, rel=0.02)
    assert t.suvmax.std() == pytest.approx(14.46, rel=0.05)
    assert t.volume_ml.min() >= 0.2 and t.suvmax.min() >= 2.0
    sites = t.site.value_counts(normalize=True)
    for site, p in zip(
        ("prostate_bed", "pelvic_ln", "retroperitoneal_ln", "bone"), PAPER.site_probs, strict=True
    ):
        assert sites[site] == pytest.approx(p, abs=0.01)


def test_lesion_draws_paper_sized_cohort_and_fixed_counts() -> None:
    """380 scans: the lesion total lies within 3 SD (sqrt(380 var)) of 684; explicit counts are obeyed."""
    pmf = lesion_count_pmf()
    n = np.arange(1, PAPER.max_lesions + 1)
    sd_total = np.sqrt(380 * ((n - 1.8) ** 2 * pmf).sum())
    for seed in range(5):
        total = len(draw_lesions(np.random.default_rng(seed), 380))
        assert abs(total - 684) < 3 * sd_total
    assert draw_lesions(np.random.default_rng(0), 7, n_lesions=3).groupby("scan").size().tolist() == [3] * 7
    assert len(draw_lesions(np.random.default_rng(0), 7, n_lesions=0)) == 0
    a = draw_lesions(np.random.default_rng(5), 3)
    b = draw_lesions(np.random.default_rng(5), 3)
    pd.testing.assert_frame_equal(a, b)


def test_lesion_axes_volume() -> None:
    a, b, c = lesion_axes_mm(6.68, 0.8, 0.7)
    assert 4 / 3 * np.pi * a * b * c / 1000 == pytest.approx(6.68, rel=1e-12)
    assert (b / a, c / a) == pytest.approx((0.8, 0.7))


# ---------------------------------------------------------------------------------------------
# rendering primitives
# ---------------------------------------------------------------------------------------------


def test_lesion_amplitude_hand_computed() -> None:
    # voxel 0: (10 - 1) / 1 = 9; voxel 1: (10 - 2) / 0.5 = 16 -> a = 9 and max(1 + 9, 2 + 4.5) = 10
    a = lesion_amplitude(10.0, np.array([1.0, 2.0]), np.array([1.0, 0.5]))
    assert a == 9.0
    assert max(1.0 + a * 1.0, 2.0 + a * 0.5) == 10.0
    with pytest.raises(ValueError, match="positive"):
        lesion_amplitude(1.0, np.array([0.0]), np.array([0.0]))


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (4.0, 4.0, 4.0), (4.0, 4.0, 2.0)])
def test_lesion_mask_volume_within_half_voxel_and_connected(spacing: tuple[float, float, float]) -> None:
    grid = Grid.from_fov((160, 160, 160), spacing)
    rng = np.random.default_rng(1)
    for volume in (0.2, 0.35, 1.0, 6.68, 40.0):
        semi = lesion_axes_mm(volume, 0.8, 0.65)
        q = rng.standard_normal(4)
        from pcatools.data.phantom.geometry import quaternion_matrix

        les = PlacedLesion(np.array([1.3, -0.7, 80.2]), semi, quaternion_matrix(q), {"volume_ml": volume})
        box, m, rho = lesion_mask(grid, les)
        n = int(m.sum())
        assert n == max(1, round(volume / grid.voxel_ml))
        assert abs(n * grid.voxel_ml - volume) <= grid.voxel_ml / 2 + 1e-12
        assert cc3d.connected_components(m.astype(np.uint8), connectivity=18, return_N=True)[1] == 1
        assert rho[m].max() == pytest.approx(1.0) and rho[~m].min() >= 1.0 - 1e-12


# ---------------------------------------------------------------------------------------------
# generated cases
# ---------------------------------------------------------------------------------------------


def test_case_types_and_grid(cases: list[Case]) -> None:
    case = cases[0]
    assert case.pet.dtype == np.float32 and case.ct.dtype == np.float32
    assert case.label is not None and case.label.dtype == np.uint8
    assert case.pet.shape == (125, 88, 240) and case.spacing == (4.0, 4.0, 4.0)
    assert set(np.unique(case.label)) == {0, 1}
    assert np.isfinite(case.pet).all() and case.pet.min() >= 0
    assert np.allclose(case.affine[:3, :3], np.diag([4.0, 4.0, 4.0]))


def test_same_seed_identical_bytes_different_seed_differs(cases: list[Case]) -> None:
    again = make_case(11, n_lesions=5)
    for key in ("pet", "ct", "label"):
        assert getattr(again, key).tobytes() == getattr(cases[0], key).tobytes()
    assert again.meta["lesions"] == cases[0].meta["lesions"]
    assert cases[1].pet.tobytes() != cases[0].pet.tobytes()


def test_lesion_parameters_do_not_depend_on_spacing(cases: list[Case]) -> None:
    coarse = make_case(11, n_lesions=5, spacing=(6.0, 6.0, 6.0))
    keys = ["site", "volume_ml", "suvmax", "center_x_mm", "center_y_mm", "center_z_mm", "profile_width"]
    for a, b in zip(coarse.meta["lesions"], cases[0].meta["lesions"], strict=True):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert coarse.meta["anatomy"] == cases[0].meta["anatomy"]


def test_components_equal_requested_count(cases: list[Case], cohort: tuple[Path, pd.DataFrame]) -> None:
    expected = [5, len(cases[1].meta["lesions"]), 0]
    for case, n_req in zip(cases, expected, strict=True):
        lab, n, ids = _lesion_components(case)
        assert n == n_req == len(case.meta["lesions"])
        assert sorted(ids) == list(range(1, n + 1))  # one component per lesion, found at its centre
    _, manifest = cohort
    for _, row in manifest.iterrows():
        import nibabel as nib

        label = np.asarray(nib.load(row["label"]).dataobj)
        assert cc3d.connected_components(label, connectivity=18, return_N=True)[1] == row["n_lesions"]


def test_suvmax_and_volume_measured_on_image_and_mask(cases: list[Case]) -> None:
    """Measured with cc3d on the final PET and label: SUVmax equals the drawn value (float32), the
    volume is within half a voxel of it; SUVmean is reported, below SUVmax and above background."""
    n_checked = 0
    for case in cases:
        lab, _, ids = _lesion_components(case)
        for rec, cid in zip(case.meta["lesions"], ids, strict=True):
            comp = lab == cid
            vol = comp.sum() * case.voxel_volume_ml
            assert abs(vol - rec["volume_ml"]) <= case.voxel_volume_ml / 2 + 1e-9
            assert case.pet[comp].max() == pytest.approx(rec["suvmax"], rel=2e-6)
            assert 0.2 * rec["suvmax"] < case.pet[comp].mean() < rec["suvmax"]
            assert rec["own_fraction"] > 0.5  # the lesion's own uptake makes its SUVmax
            n_checked += 1
    assert n_checked >= 6


def test_lesions_inside_body_not_touching(cases: list[Case]) -> None:
    for case in cases[:2]:
        body = ndimage.binary_fill_holes(case.meta["tissue"] != CODE["air"])
        depth = ndimage.distance_transform_edt(body, sampling=case.spacing)
        assert depth[case.label > 0].min() >= 8.0  # >= 10 mm margin of the bounding sphere, minus a voxel
        lab, n, _ = _lesion_components(case)
        for k in range(1, n + 1):  # dilating one lesion by a voxel (26-neighbourhood) never meets another
            grown = ndimage.binary_dilation(lab == k, structure=np.ones((3, 3, 3)))
            assert set(np.unique(lab[grown])) <= {0, k}


def test_ct_hu_per_tissue_and_organ_centres(cases: list[Case]) -> None:
    case = cases[1]
    tissue = case.meta["tissue"]
    for name in ("fat", "muscle", "lung", "liver", "spleen", "kidney", "bladder", "brain", "blood", "bone"):
        t = TISSUES[name]
        vals = case.ct[tissue == t.code]
        assert vals.size > 50, name
        assert vals.mean() == pytest.approx(t.hu, abs=4 * t.hu_sd / np.sqrt(vals.size) + 0.5), name
        assert vals.std() == pytest.approx(t.hu_sd, rel=0.1), name
    ranges = {  # organ centres (mean of the organ's voxels among the 3 x 3 x 3 around it), unenhanced CT
        "liver": (45, 70, "liver"),
        "spleen": (35, 55, "spleen"),
        "lung_r": (-900, -780, "lung"),
        "brain": (25, 45, "brain"),
        "bladder": (-10, 20, "bladder"),
        "vertebra_L3": (150, 400, "bone"),
        "heart": (30, 50, "blood"),
        "aorta": (30, 50, "blood"),
        "submandibular_r": (25, 55, "submandibular"),
    }
    for organ, (lo, hi, tname) in ranges.items():
        i, j, k = _index(case, case.meta["landmarks"][organ])
        assert tissue[i, j, k] == CODE[tname], organ
        nbh = (slice(i - 1, i + 2), slice(j - 1, j + 2), slice(k - 1, k + 2))
        assert lo <= case.ct[nbh][tissue[nbh] == CODE[tname]].mean() <= hi, organ


def test_pet_psma_uptake_pattern(cases: list[Case]) -> None:
    """SUV at organ centres: kidneys, salivary glands, bladder high; liver, spleen moderate; blood, bone, brain low."""
    case = cases[1]
    suv = {}
    for organ in (
        "kidney_r",
        "kidney_l",
        "parotid_r",
        "submandibular_r",
        "bladder",
        "liver",
        "spleen",
        "heart",
        "vertebra_L3",
        "brain",
    ):
        i, j, k = _index(case, case.meta["landmarks"][organ])
        suv[organ] = float(case.pet[i - 1 : i + 2, j - 1 : j + 2, k - 1 : k + 2].mean())
    assert min(suv["kidney_r"], suv["kidney_l"], suv["bladder"]) > 8
    assert min(suv["parotid_r"], suv["submandibular_r"]) > 3
    assert 2 < suv["liver"] < 9 and 1.5 < suv["spleen"] < 8
    assert max(suv["heart"], suv["vertebra_L3"]) < 2.5 and suv["brain"] < 0.5
    assert suv["liver"] > 2 * suv["heart"]


def test_lesion_free_case_keeps_hard_negatives(cases: list[Case]) -> None:
    case = cases[2]
    assert case.label is not None and not case.label.any() and case.meta["lesions"] == []
    assert case.meta["lesion_free"] is True
    # hard negatives of all three cases: not labelled, and hotter than the surrounding soft tissue
    n = 0
    for c in cases:
        for neg in c.meta["hard_negatives"]:
            i, j, k = _index(c, [neg["center_x_mm"], neg["center_y_mm"], neg["center_z_mm"]])
            assert c.label[i - 1 : i + 2, j - 1 : j + 2, k - 1 : k + 2].sum() == 0
            assert c.pet[i - 1 : i + 2, j - 1 : j + 2, k - 1 : k + 2].max() > 1.5
            n += 1
    assert n >= 3


def test_hard_negative_frequencies() -> None:
    """Per-scan frequencies over 400 patients match the documented probabilities (4 binomial SD)."""
    kinds: dict[str, int] = {}
    n = 400
    for s in range(n):
        rng = np.random.default_rng([7, s])
        anatomy = draw_anatomy(rng)
        present = {h.kind for h in draw_hard_negatives(rng, anatomy)}
        for k in present:
            kinds[k] = kinds.get(k, 0) + 1
    expected = {
        "coeliac_ganglion": 0.6,
        "cervical_ganglion": 1 - 0.5**2,
        "sacral_ganglion": 1 - 0.7**2,
        "ureter_focus": 1 - 0.6**2,
        "bowel_focus": 0.6,
        "bladder_edge": 0.15,
    }
    for kind, p in expected.items():
        assert abs(kinds.get(kind, 0) / n - p) < 4 * np.sqrt(p * (1 - p) / n), kind


def test_bad_inputs_name_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spacing.*positive"):
        make_case(0, spacing=(4.0, -1.0, 4.0))
    with pytest.raises(ValueError, match="fwhm_mm"):
        make_case(0, fwhm_mm=-2.0)
    with pytest.raises(ValueError, match="n_lesions"):
        make_case(0, n_lesions=-1)
    with pytest.raises(ValueError, match="seed"):
        make_case(-3)
    with pytest.raises(ValueError, match="layout"):
        make_cohort(1, tmp_path, layout="bids")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lesion_free_fraction"):
        make_cohort(1, tmp_path, lesion_free_fraction=1.5)
    with pytest.raises(TypeError, match="unexpected case arguments"):
        make_cohort(1, tmp_path, spacingg=2)


# ---------------------------------------------------------------------------------------------
# cohorts on disk
# ---------------------------------------------------------------------------------------------


def _file_bytes(paths: dict[str, str]) -> dict[str, bytes]:
    return {k: Path(p).read_bytes() for k, p in paths.items()}


def test_cohort_bytes_do_not_depend_on_workers_or_n(
    cohort: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    """Two cases written serially equal (file bytes) the first two of the 4-case, 2-process cohort,
    and the in-memory make_case((0, i)) arrays equal the files' data."""
    import nibabel as nib

    _, par = cohort
    ser = make_cohort(2, tmp_path, seed=0, workers=1, progress=False)
    for i in range(2):
        a = _file_bytes(par.loc[i, ["ct", "pet", "label"]].to_dict())
        b = _file_bytes(ser.loc[i, ["ct", "pet", "label"]].to_dict())
        assert a == b
    case = make_case((0, 1), case_id="PSMA_0001")
    for key in ("ct", "pet", "label"):
        data = np.asanyarray(nib.load(ser.loc[1, key]).dataobj)
        assert data.dtype == getattr(case, key).dtype
        assert data.tobytes() == getattr(case, key).tobytes()


def test_cohort_rerun_skips_and_regenerates(tmp_path: Path) -> None:
    first = make_cohort(2, tmp_path, seed=3, workers=1, progress=False, lesion_free_fraction=0.0)
    assert first.attrs["generated"] == 2
    original = {i: _file_bytes(first.loc[i, ["ct", "pet", "label"]].to_dict()) for i in range(2)}
    mtimes = {p: os.stat(p).st_mtime_ns for p in first[["ct", "pet", "label"]].to_numpy().ravel()}

    again = make_cohort(2, tmp_path, seed=3, workers=1, progress=False)
    assert (again.attrs["generated"], again.attrs["skipped"]) == (0, 2)
    assert {p: os.stat(p).st_mtime_ns for p in mtimes} == mtimes
    pd.testing.assert_frame_equal(again, first)

    pet0 = Path(first.loc[0, "pet"])
    pet0.write_bytes(pet0.read_bytes()[: pet0.stat().st_size // 2])  # truncated gzip
    Path(first.loc[1, "label"]).unlink()  # partial case
    stale = pet0.parent / f".{pet0.name}.abc123.part.nii.gz"  # left by an interrupted write
    stale.write_bytes(b"partial")
    fixed = make_cohort(2, tmp_path, seed=3, workers=1, progress=False)
    assert fixed.attrs["generated"] == 2 and fixed.attrs["skipped"] == 0
    assert not stale.exists()
    for i in range(2):
        assert _file_bytes(fixed.loc[i, ["ct", "pet", "label"]].to_dict()) == original[i]

    changed = make_cohort(2, tmp_path, seed=3, workers=1, progress=False, fwhm_mm=8.0)  # other parameters
    assert changed.attrs["generated"] == 2


def test_cohort_tables(cohort: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = cohort
    assert list(manifest.columns) == [
        "case_id",
        "patient_id",
        "ct",
        "pet",
        "label",
        "shape",
        "spacing",
        "n_lesions",
        "tmtv_ml",
    ]
    assert manifest.case_id.tolist() == ["PSMA_0000", "PSMA_0001", "PSMA_0002", "PSMA_0003"]
    lesions = pd.read_csv(root / "lesions.csv")
    assert (
        lesions.groupby("case_id").size().reindex(manifest.case_id, fill_value=0).tolist()
        == manifest.n_lesions.tolist()
    )
    tmtv = lesions.groupby("case_id").mask_volume_ml.sum().reindex(manifest.case_id, fill_value=0.0)
    assert np.allclose(tmtv.to_numpy(), manifest.tmtv_ml.to_numpy())
    assert np.allclose(lesions.measured_suvmax, lesions.suvmax, rtol=2e-6)
    assert (root / "hard_negatives.csv").is_file()


def test_foundation_loaders_and_transforms_read_the_cohort(
    cohort: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    from pcatools.data.discovery import discover_cases
    from pcatools.data.io import load_case
    from pcatools.data.manifest import read_manifest
    from pcatools.data.transforms import eval_transforms

    root, manifest = cohort
    found = discover_cases(root, progress=False)
    pd.testing.assert_frame_equal(found, manifest)
    pd.testing.assert_frame_equal(read_manifest(root / "manifest.csv"), manifest)
    row = manifest.iloc[0]
    case = load_case(row)
    out = eval_transforms(spacing=(4.0, 4.0, 4.0))(row[["ct", "pet", "label"]].to_dict())
    image, label = out["image"], out["label"]
    assert tuple(image.shape) == (2, *row["shape"]) and tuple(label.shape) == (1, *row["shape"])
    assert float(image[0].min()) >= 0.0 and float(image[0].max()) <= 1.0
    assert float(image[1].max()) == pytest.approx(float(case.pet.max()), rel=1e-6)
    assert int(label.sum()) == int(case.label.sum())

    auto = make_cohort(1, tmp_path, seed=0, layout="autopet", workers=1, progress=False)
    assert (tmp_path / "PSMA_0000" / "PSMA_0000" / "SUV.nii.gz").is_file()
    pd.testing.assert_frame_equal(discover_cases(tmp_path, progress=False), auto)


def test_cli_phantom(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pcatools.cli import app

    res = CliRunner().invoke(
        app,
        [
            "phantom",
            str(tmp_path / "d"),
            "--n",
            "1",
            "--seed",
            "5",
            "--workers",
            "1",
            "--layout",
            "flat",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "1 cases" in res.output and (tmp_path / "d" / "PSMA_0000_pet.nii.gz").is_file()
    bad = CliRunner().invoke(app, ["phantom", str(tmp_path / "e"), "--layout", "bids"])
    assert bad.exit_code != 0


# ---------------------------------------------------------------------------------------------
# overview figure and the cohort-vs-paper table (notebook 01)
# ---------------------------------------------------------------------------------------------


def _hand_case(label: np.ndarray, pet: np.ndarray | None = None, spacing: float = 2.0) -> Case:
    """A case with a hand-made label and no ``meta``, as ``load_case`` returns one."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = (-10.0, 100.0, 0.0)
    pet = np.zeros(label.shape, np.float32) if pet is None else pet
    return Case("hand", pet, np.zeros(label.shape, np.float32), label, affine)


def test_largest_lesion_slice_counts_18_connected_components() -> None:
    from pcatools.data.phantom.figure import largest_lesion_slice

    label = np.zeros((6, 8, 6), np.uint8)
    label[0, 0, 0] = 1
    label[1, 1, 1] = 1  # touches the first only at a corner: its own lesion under 18-connectivity
    label[3:5, 5:7, 3] = 1  # 4 voxels on y = 5, 6
    label[3, 6, 4] = 1  # 5th voxel, on y = 6: the largest lesion's fullest coronal slice is 6
    assert largest_lesion_slice(label) == (3, 6)
    assert largest_lesion_slice(np.zeros((3, 3, 3), np.uint8)) == (0, None)
    assert largest_lesion_slice(None) == (0, None)


def test_plot_cases_titles_lesions_of_the_label_and_is_shown_once(cases: list[Case]) -> None:
    import matplotlib.pyplot as plt

    from pcatools.data.phantom.figure import plot_cases

    label = np.zeros((6, 8, 6), np.uint8)
    label[0, 0, 0] = label[1, 1, 1] = 1
    label[3:5, 5:7, 3] = 1
    label[3, 6, 4] = 1
    five = cases[0]  # make_case(11, n_lesions=5), without the generator's meta as if loaded
    loaded = Case(five.case_id, five.pet, five.ct, five.label, five.affine)
    free = cases[2]
    fig = plot_cases([_hand_case(label), loaded, free])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "hand\nPET MIP, 3 lesions"
    assert titles[1] == "CT, coronal\ny = 112 mm"  # 100 mm + slice 6 x 2 mm
    assert titles[2].endswith("PET MIP, 5 lesions")
    assert titles[4].endswith("PET MIP, 0 lesions")
    j_free = free.ct.shape[1] // 2  # no lesion: the body centre
    assert titles[5] == f"CT, coronal\ny = {free.affine[1, 3] + j_free * free.affine[1, 1]:.0f} mm"
    assert not plt.fignum_exists(fig.number), "plot_cases leaves its figure open (shown twice in notebooks)"


def test_cohort_lesions_and_cohort_vs_paper_known_answers() -> None:
    from pcatools.data.phantom.summary import QUANTITIES, cohort_lesions, cohort_vs_paper

    label = np.zeros((6, 6, 6), np.uint8)
    label[0:2, 0, 0] = 1  # 2 voxels x 8 mm^3 = 0.016 ml
    label[4, 4, 4] = 1  # 0.008 ml
    pet = np.ones(label.shape, np.float32)
    pet[0, 0, 0], pet[1, 0, 0], pet[4, 4, 4] = 3.0, 5.0, 7.0
    a = _hand_case(label, pet)
    b = _hand_case(np.zeros_like(label))  # lesion-free: a scan, no lesions
    c = Case("nolabel", pet, pet, None, a.affine)  # no label: ignored
    lesions = cohort_lesions([a, b, c])
    assert list(lesions["case_id"]) == ["hand", "hand"]
    np.testing.assert_allclose(lesions["volume_ml"], [0.016, 0.008])
    np.testing.assert_allclose(lesions["suvmax"], [5.0, 7.0])
    np.testing.assert_allclose(lesions["suvmean"], [4.0, 7.0])

    table = cohort_vs_paper(lesions, n_scans=2)
    assert list(table.index) == list(QUANTITIES)
    assert list(table.columns) == ["cohort_mean", "cohort_sd", "paper_mean", "paper_sd"]
    np.testing.assert_allclose(table["cohort_mean"], [1.0, 0.012, 6.0, 5.5])
    # sample SDs of two values: |a - b| / sqrt(2)
    np.testing.assert_allclose(table["cohort_sd"].iloc[1:], np.array([0.008, 2.0, 3.0]) / np.sqrt(2))
    assert np.isnan(table.loc["lesions per scan", "cohort_sd"])
    np.testing.assert_allclose(table["paper_mean"], [684 / 380, 6.68, 12.65, 4.62])
    np.testing.assert_allclose(table["paper_sd"].iloc[1:], [10.20, 14.46, 3.88])

    with pytest.raises(ValueError, match="n_scans counts every scan"):
        cohort_vs_paper(lesions.assign(case_id=["x", "y"]), n_scans=1)
    with pytest.raises(ValueError, match=r"lacks columns \['suvmean'\]"):
        cohort_vs_paper(lesions.drop(columns="suvmean"), n_scans=2)
    assert cohort_lesions([b, c]).empty
