"""Figures 1-7 (pcatools.figures): known content of every figure and a non-blank static export."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcatools import figures

# The paper's Figure 1, panels (d) D and (e) w, as printed (section 2.6).
PAPER_D = np.array([[80, 80, 10, 20], [80, 80, 10, 50], [20, 50, 80, 80], [50, 50, 80, 80]], dtype=float)
PAPER_W = np.array(
    [[0.2, 0.2, 1.6, 0.8], [0.2, 0.2, 1.6, 0.32], [0.8, 0.32, 0.2, 0.2], [0.32, 0.32, 0.2, 0.2]], dtype=float
)
PAPER_DELTA = np.array(
    [[0.21, 0.24, 0.9, 0.65], [0.2, 0.15, 0.82, 0.55], [0.74, 0.61, 0.16, 0.18], [0.58, 0.62, 0.2, 0.21]]
)

NETWORKS = ("attention_unet", "segresnet")
LOSSES = ("dice", "dice_focal", "l1dfl")


def _cases(seed: int = 0, n: int = 24) -> pd.DataFrame:
    """A made-up per-case results table (docs/api.md columns) with known, seeded DSCs."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        n_les = 1 if i % 3 == 0 else int(rng.integers(2, 6))
        tmtv = float(rng.uniform(0.5, 30))
        for net in NETWORKS:
            for loss in LOSSES:
                rows.append(
                    {
                        "case_id": f"case{i:03d}",
                        "patient_id": f"p{i:03d}",
                        "network": net,
                        "loss": loss,
                        "dice": float(rng.uniform(0, 1)),
                        "n_gt_lesions": n_les,
                        "tmtv_ml": tmtv,
                        "tla": tmtv * 6.0,
                        "dmax_mm": float(50 + 10 * i) if n_les > 1 else np.nan,
                        "scenario": "S" if n_les == 1 else "M",
                    }
                )
    return pd.DataFrame(rows)


def _groups_from_box_traces(fig) -> dict[tuple[str, str, str], list[float]]:
    out: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for tr in fig.data:
        if tr.type != "box":
            continue
        for x, y in zip(tr.x, tr.y, strict=True):
            out[(tr.meta["network"], tr.meta["loss"], x)].append(y)
    return out


# --------------------------------------------------------------------------- figure 1


def test_figure1_reproduces_the_papers_matrices() -> None:
    fig = figures.figure1()
    z = {tr.meta["panel"]: np.array(tr.z, dtype=float) for tr in fig.data}
    np.testing.assert_array_equal(z["G"], figures.PAPER_FIGURE1_G)
    np.testing.assert_allclose(z["P"], figures.PAPER_FIGURE1_P)
    np.testing.assert_allclose(z["Delta"], PAPER_DELTA, atol=1e-12)
    np.testing.assert_allclose(z["D"], PAPER_D, rtol=1e-9)
    np.testing.assert_allclose(z["w"], PAPER_W, rtol=1e-9)
    w_trace = next(tr for tr in fig.data if tr.meta["panel"] == "w")
    assert [list(r) for r in w_trace.text][1] == ["0.2", "0.2", "1.6", "0.32"]
    assert [a.text for a in fig.layout.annotations] == ["(a) G", "(b) P(G)", "(c) \u0394", "(d) D", "(e) w"]


def test_figure1_uniform_delta_gives_equal_weights() -> None:
    # Limit: every Delta in one bin -> D = N / Gamma and w = Gamma for every element (eq. 9-10).
    g = np.zeros((3, 3))
    p = np.full((3, 3), 0.42)
    d = figures.figure1_data(g, p, bin_width=0.1)
    np.testing.assert_allclose(d["D"], 9 / 0.1)
    np.testing.assert_allclose(d["w"], 0.1)


def test_figure1_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        figures.figure1(g=np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="one shape"):
        figures.figure1(g=np.zeros((4, 4)), p=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        figures.figure1(p=np.full((4, 4), 1.5))


# --------------------------------------------------------------------------- figure 2


def _detection_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three lesions: A detected (SUVmax covered), B overlapped but SUVmax missed, C missed; one FP."""
    gt = np.zeros((30, 20, 40), np.uint8)
    suv = np.ones(gt.shape, np.float32)
    pred = np.zeros_like(gt)
    gt[3:8, 5:10, 5:10] = 1  # A
    suv[5, 7, 7] = 15.0
    pred[4:7, 6:9, 6:9] = 1
    gt[15:20, 5:10, 20:25] = 1  # B: SUVmax at a corner the prediction misses
    suv[19, 9, 24] = 12.0
    pred[15:17, 5:7, 20:22] = 1
    gt[25:28, 12:15, 30:33] = 1  # C: nothing predicted
    suv[26, 13, 31] = 9.0
    pred[10:12, 15:17, 35:37] = 1  # FP, far from every lesion
    suv[11, 16, 36] = 4.0
    return gt, pred, suv


def test_figure2_applies_the_suvmax_rule() -> None:
    gt, pred, suv = _detection_case()
    spacing = (4.0, 4.0, 2.0)
    d = figures.figure2_data(gt, pred, suv, axis=1, spacing=spacing)
    assert d.counts == {"TP": 1, "FN": 2, "FP": 1}
    les = d.lesions.set_index("lesion_id")
    assert les["status"].tolist() == ["TP", "FN", "FN"]
    assert les[["i", "j", "k"]].values.tolist() == [[5, 7, 7], [19, 9, 24], [26, 13, 31]]
    assert les["suvmax"].tolist() == [15.0, 12.0, 9.0]
    # display position: axis 1 dropped, (u, v) = (x, z) voxel centres in mm
    assert les[["u_mm", "v_mm"]].values.tolist() == [[22.0, 15.0], [78.0, 49.0], [106.0, 63.0]]
    assert d.false_positives[["i", "j", "k"]].values.tolist() == [[11, 16, 36]]
    np.testing.assert_array_equal(d.image, suv.max(axis=1))
    np.testing.assert_array_equal(d.gt, gt.any(axis=1))

    fig = figures.figure2(gt, pred, suv, spacing=spacing)
    texts = [t for tr in fig.data if tr.type == "scatter" for t in (tr.text or ())]
    assert sorted(texts) == ["FN (G2)", "FN (G3)", "FP", "TP (G1)"]
    assert "TP = 1, FP = 1, FN = 2" in fig.layout.title.text


def test_figure2_slice_annotates_only_what_the_slice_shows() -> None:
    gt, pred, suv = _detection_case()
    d = figures.figure2_data(gt, pred, suv, axis=0, slice=5)  # x = 5 crosses lesion A only
    assert d.lesions.loc[d.lesions["in_view"], "lesion_id"].tolist() == [1]
    assert not d.false_positives["in_view"].any()
    np.testing.assert_array_equal(d.image, suv[5])
    with pytest.raises(ValueError, match="slice"):
        figures.figure2_data(gt, pred, suv, axis=0, slice=30)
    with pytest.raises(ValueError, match="shape"):
        figures.figure2_data(gt, pred[:, :, :10], suv)


def test_figure2_counts_equal_metrics_on_the_real_autopet_sample(shared_data: Path) -> None:
    import nibabel as nib

    from pcatools.metrics import evaluate_case

    folder = shared_data / "autopet-psma-sample"
    img = nib.load(str(folder / "orig_label.nii.gz"))
    gt = np.asarray(img.dataobj).astype(np.uint8)
    pred = np.asarray(nib.load(str(folder / "pred_nnunet.nii.gz")).dataobj).astype(np.uint8)
    spacing = tuple(float(s) for s in img.header.get_zooms()[:3])
    suv = np.random.default_rng(0).random(gt.shape, dtype=np.float32)  # a made-up SUV with unique maxima
    d = figures.figure2_data(gt, pred, suv, axis=1, spacing=spacing)
    ref = evaluate_case(gt, pred, suv=suv, spacing=spacing)
    assert d.counts["TP"] + d.counts["FN"] == 112  # the sample's lesion count (18-connectivity)
    assert (d.counts["TP"], d.counts["FP"], d.counts["FN"]) == (ref["tp"], ref["fp"], ref["fn"])


# --------------------------------------------------------------------------- figure 3


def test_figure3_panels_and_dice() -> None:
    gt = np.zeros((20, 10, 30), np.uint8)
    gt[5:9, 3:6, 10:14] = 1  # 48 voxels
    half = gt.copy()
    half[5:7] = 0  # 24 voxels inside the lesion
    fp = gt.copy()
    fp[15:17, 1:3, 20:23] = 1  # + 12 voxels outside
    preds = {
        ("segresnet", "dice"): half,
        ("segresnet", "l1dfl"): gt,
        ("attention_unet", "dice"): fp,
        ("attention_unet", "dice_focal"): np.zeros_like(gt),
        ("attention_unet", "l1dfl"): gt,
    }
    pet = np.random.default_rng(1).random(gt.shape).astype(np.float32)
    d = figures.figure3_data(pet, gt, preds)
    assert d["networks"] == ["attention_unet", "segresnet"]
    assert d["losses"] == ["dice", "dice_focal", "l1dfl"]
    assert d["dice"][("segresnet", "dice")] == pytest.approx(2 * 24 / (48 + 24))
    assert d["dice"][("attention_unet", "dice")] == pytest.approx(2 * 48 / (48 + 60))
    assert d["dice"][("attention_unet", "dice_focal")] == 0.0
    assert d["dice"][("segresnet", "l1dfl")] == 1.0

    fig = figures.figure3(pet, gt, preds, spacing=(2.0, 2.0, 3.0))
    masks = {(tr.meta["network"], tr.meta["loss"]): np.array(tr.z) for tr in fig.data if tr.meta}
    assert len(masks) == 2 + len(preds)  # one GT panel per row + every prediction
    np.testing.assert_array_equal(masks[("attention_unet", "dice")], fp.any(axis=1).T)
    np.testing.assert_array_equal(masks[("segresnet", "GT")], gt.any(axis=1).T)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:4] == ["Attention U-Net: GT", "DL (DSC 0.89)", "DFL (DSC 0.00)", "L1DFL (DSC 1.00)"]
    assert titles[4:] == ["SegResNet: GT", "DL (DSC 0.67)", "DFL", "L1DFL (DSC 1.00)"]  # DFL missing there
    assert len(fig.layout.shapes) == 6  # one GT box in each prediction panel


def test_figure3_on_real_predictions(shared_data: Path) -> None:
    import nibabel as nib

    from pcatools.metrics import dice

    folder = shared_data / "autopet-psma-sample"
    gt = np.asarray(nib.load(str(folder / "orig_label.nii.gz")).dataobj).astype(np.uint8)
    preds = {
        ("segresnet", "dice"): np.asarray(nib.load(str(folder / "pred_dc.nii.gz")).dataobj).astype(np.uint8),
        ("segresnet", "l1dfl"): np.asarray(nib.load(str(folder / "pred_nnunet.nii.gz")).dataobj).astype(
            np.uint8
        ),
    }
    d = figures.figure3_data(gt.astype(np.float32), gt, preds)
    for key, mask in preds.items():
        assert d["dice"][key] == pytest.approx(dice(gt, mask))
        np.testing.assert_array_equal(d["panels"][key], mask.any(axis=1))


# --------------------------------------------------------------------------- figures 4-7


def test_figure4_boxes_hold_exactly_the_input_dsc() -> None:
    cases = _cases()
    fig = figures.figure4(cases)
    got = _groups_from_box_traces(fig)
    expected = cases.groupby(["network", "loss", "scenario"])["dice"].apply(sorted).to_dict()
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert sorted(got[key]) == values
    names = {(tr.meta["loss"], tr.name, tr.marker.color) for tr in fig.data}
    assert names == {
        ("dice", "DL", "#0072B2"),
        ("dice_focal", "DFL", "#E69F00"),
        ("l1dfl", "L1DFL", "#009E73"),
    }
    assert [a.text for a in fig.layout.annotations] == ["(a) Attention U-Net", "(b) SegResNet"]
    with pytest.raises(ValueError, match="dice"):
        figures.figure4(cases.drop(columns="dice"))
    # cases without lesions (scenario "none") are outside the paper's S/M comparison
    negatives = cases.head(6).assign(case_id="neg", scenario="none", n_gt_lesions=0, dice=1.0)
    assert set(_groups_from_box_traces(figures.figure4(pd.concat([cases, negatives])))) == set(expected)


def test_figure5_lines_equal_the_input_medians() -> None:
    from pcatools.stats import threshold_curve

    cases = _cases()
    # two lesions per case; a lesion's volume is a ground-truth property, the same for every network/loss
    volumes = pd.DataFrame({"case_id": np.repeat(cases["case_id"].unique(), 2)})
    volumes["volume_ml"] = np.random.default_rng(2).uniform(0.1, 10, len(volumes))
    lesions = (
        cases.drop(columns="tla").merge(volumes, on="case_id").assign(tla=lambda df: 5.0 * df["volume_ml"])
    )
    patient = threshold_curve(cases, "tmtv_ml")
    lesion = threshold_curve(lesions, "volume_ml")
    fig = figures.figure5(patient, lesion)
    checked = 0
    for tr in fig.data:
        m = tr.meta
        src = patient if m["level"] == "patient" else lesion
        sel = src[(src["network"] == m["network"]) & (src["scenario"] == m["scenario"])]
        if m["kind"] == "median_dice":
            sel = sel[sel["loss"] == m["loss"]].sort_values("threshold_q")
            np.testing.assert_allclose(tr.y, sel["median_dice"].to_numpy(), equal_nan=True)
        else:  # TLA area: the median TLA above each threshold (equal for every loss)
            sel = sel[sel["loss"] == "dice"].sort_values("threshold_q")
            np.testing.assert_allclose(tr.y, sel["median_tla"].to_numpy())
        np.testing.assert_allclose(tr.x, sel["threshold"].to_numpy())
        checked += 1
    # 2 levels x 2 scenarios x (2 networks x 3 losses lines + 2 TLA areas)
    assert checked == 2 * 2 * (6 + 2)
    with pytest.raises(ValueError, match="median_dice"):
        figures.figure5(patient.drop(columns="median_dice"), lesion)


def test_figure6_groups_and_tla_bars() -> None:
    from pcatools.stats import dmax_groups

    cases = dmax_groups(_cases()[lambda df: df["scenario"] == "M"])
    fig = figures.figure6(cases)
    got = _groups_from_box_traces(fig)
    expected = cases.groupby(["network", "loss", "dmax_group"], observed=True)["dice"].apply(sorted).to_dict()
    assert {k[2] for k in got} == {"G0", "G1", "G2", "G3"}
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert sorted(got[key]) == values
    bars = [tr for tr in fig.data if tr.type == "bar"]
    assert [b.meta["loss"] for b in bars] == list(LOSSES)
    by_group = cases[cases["loss"] == "dice"].groupby("dmax_group", observed=True)["tla"].median()
    assert list(bars[0].x) == ["G0", "G1", "G2", "G3"]
    np.testing.assert_allclose(bars[0].y, by_group.loc[["G0", "G1", "G2", "G3"]].to_numpy())
    # rows without a group (single-lesion cases) are dropped
    mixed = pd.concat([cases, _cases().query("scenario == 'S'").assign(dmax_group=np.nan)])
    assert sum(len(v) for v in _groups_from_box_traces(figures.figure6(mixed)).values()) == len(cases)


def test_figure7_draws_loss_vs_probability() -> None:
    from pcatools.losses import loss_vs_probability

    curves = loss_vs_probability(p=[0.1, 0.3, 0.5, 0.7, 0.9])
    fig = figures.figure7(curves)
    assert [tr.name for tr in fig.data] == ["DL", "DFL", "L1DFL"]
    for tr in fig.data:
        np.testing.assert_allclose(tr.x, curves["p"])
        np.testing.assert_allclose(tr.y, curves[tr.meta["loss"]])
    long = curves.melt(id_vars="p", var_name="loss", value_name="value")
    as_dict = {k: (curves["p"], curves[k]) for k in LOSSES}
    for other in (long, as_dict):
        pd.testing.assert_frame_equal(figures.figure7_data(other), figures.figure7_data(curves))
    with pytest.raises(ValueError, match="probability column"):
        figures.figure7(curves.drop(columns="p"))


def test_figure7_default_is_the_per_sample_construction() -> None:
    from pcatools.losses import loss_vs_probability

    fig = figures.figure7(loss_vs_probability())  # the call of pcatools.analysis.draw_figures
    assert fig.layout.title.text == "Figure 7: loss vs probability (ground truth = 1, per sample)"
    by_name = {tr.name: np.asarray(tr.y) for tr in fig.data}
    p = np.asarray(fig.data[0].x)
    # per sample: DFL unbounded for small P (6.24 at P = 0.005), L1DFL below DL from P = 0.54 on
    assert by_name["DFL"][0] == pytest.approx(6.2355, abs=1e-3) and by_name["DL"][0] < 1
    assert bool(np.all(by_name["L1DFL"][p >= 0.54] < by_name["DL"][p >= 0.54]))
    patch = figures.figure7(loss_vs_probability(construction="patch"))
    assert patch.layout.title.text.endswith("patch construction)")
    assert figures.figure7({"dice": ([0.1, 0.9], [0.8, 0.1])}).layout.title.text.endswith(
        "(ground truth = 1)"
    )


# --------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def all_figures() -> dict[str, object]:
    from pcatools.losses import loss_vs_probability
    from pcatools.stats import dmax_groups, threshold_curve

    cases = _cases()
    gt, pred, suv = _detection_case()
    preds = {(n, loss): pred for n in NETWORKS for loss in LOSSES}
    curve = threshold_curve(cases, "tmtv_ml")
    return {
        "figure1": figures.figure1(),
        "figure2": figures.figure2(gt, pred, suv, spacing=(4, 4, 2)),
        "figure3": figures.figure3(suv, gt, preds, spacing=(4, 4, 2)),
        "figure4": figures.figure4(cases),
        "figure5": figures.figure5(curve, curve),
        "figure6": figures.figure6(dmax_groups(cases[cases["scenario"] == "M"])),
        "figure7": figures.figure7(loss_vs_probability(p=np.linspace(0.01, 0.99, 25))),
    }


@pytest.mark.parametrize("name", [f"figure{i}" for i in range(1, 8)])
def test_save_figure_writes_html_and_a_non_blank_png(name: str, all_figures: dict, tmp_path: Path) -> None:
    import matplotlib.image

    out = figures.save_figure(all_figures[name], tmp_path / name)
    assert out == {"html": tmp_path / f"{name}.html", "png": tmp_path / f"{name}.png"}
    assert "plotly" in out["html"].read_text()[:200000].lower()
    img = matplotlib.image.imread(out["png"])
    assert img.ndim == 3 and min(img.shape[:2]) > 200
    assert float(img[..., :3].var()) > 1e-3  # not a blank page
    assert not list(tmp_path.glob(".*part*"))  # atomic writes left no temporary file


@pytest.mark.parametrize("name", ["figure3", "figure6"])
def test_a_library_restyling_matplotlib_does_not_change_the_png(
    name: str, all_figures: dict, tmp_path: Path
) -> None:
    """nnU-Net's progress plot calls ``seaborn.set(font_scale=2.5)`` for the whole process; a PNG
    saved after it must equal the one saved in matplotlib's defaults, pixel for pixel (an nnU-Net
    test before the evaluation once made the CI's Figure 3 differ from the gallery's)."""
    import matplotlib
    import matplotlib.image

    seaborn = pytest.importorskip("seaborn")
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        plain = figures.save_figure(all_figures[name], tmp_path / "plain", formats=("png",))["png"]
    with matplotlib.rc_context():  # restores the process's rcParams afterwards
        seaborn.set(font_scale=2.5)
        assert matplotlib.rcParams["axes.titlesize"] != matplotlib.rcParamsDefault["axes.titlesize"]
        restyled = figures.save_figure(all_figures[name], tmp_path / "restyled", formats=("png",))["png"]
        from_twin = figures.static_figure(all_figures[name])
        assert from_twin.axes[0].title.get_fontsize() == pytest.approx(9.0 if name == "figure3" else 10.0)
    np.testing.assert_array_equal(matplotlib.image.imread(restyled), matplotlib.image.imread(plain))


def test_save_figure_rejects_unknown_formats(all_figures: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        figures.save_figure(all_figures["figure7"], tmp_path / "f", formats=("jpeg2000",))
    with pytest.raises(TypeError, match="not made by pcatools.figures"):
        import plotly.graph_objects as go

        figures.static_figure(go.Figure(all_figures["figure7"]))


def test_dmax_groups_are_quartiles_of_the_multiple_lesion_cases_and_figure6_names_their_edges() -> None:
    """Paper 3.4 / Figure 6: G0-G3 are the quartiles of the M cases' Dmax; S cases are left out."""
    from pcatools.analysis import dmax_grouped

    m = pd.DataFrame(
        {
            "case_id": [f"m{i}" for i in range(8)],
            "scenario": "M",
            "dmax_mm": [100.0 + 50 * i for i in range(8)],
        }
    )
    s = pd.DataFrame({"case_id": ["s0", "s1"], "scenario": "S", "dmax_mm": [20.0, 30.0]})
    cases = pd.concat([m, s], ignore_index=True).assign(network="segresnet", loss="dice", dice=0.5, tla=1.0)
    grouped = dmax_grouped(cases)
    assert grouped["dmax_group"].notna().sum() == 8 and set(grouped["case_id"]) == set(m["case_id"])
    # quartiles of 100..450 by 50: edges 100, 187.5, 275, 362.5, 450 -> two cases per group
    assert grouped.groupby("dmax_group", observed=True).size().tolist() == [2, 2, 2, 2]
    every = dmax_grouped(cases, scenario="all")
    assert every.loc[every["case_id"] == "s0", "dmax_group"].item() == "G0"
    ticks = list(figures.figure6(grouped).layout.xaxis.ticktext)
    assert ticks == [  # the cut points, as the paper prints its groups (issue 25)
        "G0 (10-18.8 cm, N = 2)", "G1 (18.8-27.5 cm, N = 2)",
        "G2 (27.5-36.2 cm, N = 2)", "G3 (36.2-45 cm, N = 2)",
    ]  # fmt: skip
    # N counts the group's cases; the PNG puts each label under its group name (no overlap)
    one = grouped[grouped["case_id"] != "m7"]
    assert list(figures.figure6(one).layout.xaxis.ticktext)[-1] == "G3 (36.2-45 cm, N = 1)"
    # without cut points (a table grouped elsewhere) the labels give the cases' own range
    bare = grouped.drop(columns=["dmax_low_mm", "dmax_high_mm"])
    assert list(figures.figure6(bare).layout.xaxis.ticktext)[0] == "G0 (10.0-15.0 cm, N = 2)"
    png = figures.static_figure(figures.figure6(grouped))
    assert [t.get_text() for t in png.axes[0].get_xticklabels()][0] == "G0\n(10-18.8 cm, N = 2)"
