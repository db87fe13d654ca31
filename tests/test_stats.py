"""pcatools.stats: hand-computed summaries, thresholds, groups, scipy-equal Wilcoxon, Table 1, mixed model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from pcatools import stats

# --------------------------------------------------------------------------- formatting


def test_formatting_by_hand():
    assert stats.fmt_mean_sd([0.5, 0.7, 0.9]) == "0.70 ± 0.20"  # sample SD: sqrt(0.08 / 2)
    assert stats.fmt_mean_sd([1.0, np.nan, 3.0], digits=1) == "2.0 ± 1.4"
    assert stats.fmt_median_iqr([1, 2, 3, 4]) == "2.50 [1.75, 3.25]"  # linear quantiles
    assert stats.fmt_median_iqr([]) == "n/a"
    assert [stats.fmt_p(p) for p in (0.001, 0.015, 0.05, 0.24)] == ["< 0.01*", "0.015*", "0.05", "0.24"]


def test_add_scenario():
    df = stats.add_scenario(pd.DataFrame({"n_gt_lesions": [0, 1, 2, 10]}))
    assert df["scenario"].tolist() == ["none", "S", "M", "M"]
    with pytest.raises(KeyError, match="n_gt_lesions"):
        stats.add_scenario(pd.DataFrame({"x": [1]}))


def test_summarize_by_hand():
    df = pd.DataFrame({"loss": ["a", "a", "a", "b", "b"], "dice": [0.5, 0.7, 0.9, 0.2, np.nan]})
    s = stats.summarize(df, metrics=["dice"], by=["loss"])
    a = s[s["loss"] == "a"].iloc[0]
    assert (a["n"], a["mean"], a["median"], a["q1"], a["q3"]) == (3, pytest.approx(0.7), 0.7, 0.6, 0.8)
    assert a["sd"] == pytest.approx(0.2)
    assert s[s["loss"] == "b"].iloc[0]["n"] == 1


# --------------------------------------------------------------------------- thresholds


def test_threshold_curve_by_hand():
    df = pd.DataFrame(
        {
            "network": "n",
            "loss": "l",
            "scenario": "S",
            "tmtv_ml": [1.0, 2.0, 3.0, 4.0, 5.0],
            "dice": [0.1, 0.2, 0.3, 0.4, 0.5],
            "tla": [10.0, 20.0, 30.0, 40.0, 50.0],
        }
    )
    out = stats.threshold_curve(df, "tmtv_ml")
    assert list(out.columns) == [
        "network",
        "loss",
        "scenario",
        "threshold_q",
        "threshold",
        "n",
        "median_dice",
        "median_tla",
    ]
    # thresholds: 0, Q1=2, Q2=3, Q3=4, P85=4.4 ; rows with value > t
    assert out["threshold"].tolist() == pytest.approx([0.0, 2.0, 3.0, 4.0, 4.4])
    assert out["n"].tolist() == [5, 3, 2, 1, 1]
    assert out["median_dice"].tolist() == pytest.approx([0.3, 0.4, 0.45, 0.5, 0.5])
    assert out["median_tla"].tolist() == pytest.approx([30.0, 40.0, 45.0, 50.0, 50.0])
    # the other reading: q = 0 is the minimum, which drops the smallest value
    alt = stats.threshold_curve(df, "tmtv_ml", q0="min")
    assert (alt["threshold"].iloc[0], alt["n"].iloc[0]) == (1.0, 4)


def test_threshold_curve_groups_separately():
    df = pd.DataFrame(
        {
            "network": ["n"] * 4,
            "loss": ["a", "a", "b", "b"],
            "scenario": ["S", "S", "S", "S"],
            "volume_ml": [1.0, 3.0, 1.0, 3.0],
            "dice": [0.2, 0.6, 0.1, 0.9],
        }
    )
    out = stats.threshold_curve(df, "volume_ml", quantiles=(0.5,))
    assert out["loss"].tolist() == ["a", "b"]
    assert out["threshold"].tolist() == [2.0, 2.0]
    assert out["median_dice"].tolist() == [0.6, 0.9]
    assert out["median_tla"].isna().all()  # no tla column
    with pytest.raises(KeyError, match="scenario"):
        stats.threshold_curve(df.drop(columns="scenario"), "volume_ml")


# --------------------------------------------------------------------------- Dmax groups


def test_dmax_groups_quartiles_over_distinct_cases():
    base = pd.DataFrame({"case_id": [f"c{i}" for i in range(5)], "dmax_mm": [10.0, 20.0, 30.0, 40.0, 50.0]})
    # every case repeated for two losses: the quartiles must not change
    df = pd.concat([base.assign(loss="dice"), base.assign(loss="l1dfl"), base.iloc[[0]].assign(loss="x")])
    out = stats.dmax_groups(df)
    # quartile edges 10, 20, 30, 40, 50: [10, 20], (20, 30], (30, 40], (40, 50]
    assert out["dmax_group"].astype(str).tolist()[:5] == ["G0", "G0", "G1", "G2", "G3"]


def test_dmax_groups_paper_edges_and_errors():
    df = pd.DataFrame({"dmax_mm": [0.0, 90.0, 90.5, 110.0, 139.0, 140.1, 600.0, 700.0, np.nan]})
    g = stats.dmax_groups(df, edges=stats.PAPER_DMAX_EDGES_MM)["dmax_group"]
    assert g.astype(object).where(g.notna(), None).tolist() == [
        "G0",
        "G0",
        "G1",
        "G1",
        "G2",
        "G3",
        "G3",
        None,
        None,
    ]
    with pytest.raises(ValueError, match="strictly"):
        stats.dmax_groups(pd.DataFrame({"dmax_mm": [5.0] * 8}))
    with pytest.raises(ValueError, match="5 edges"):
        stats.dmax_groups(df, edges=(0, 1, 2))


# --------------------------------------------------------------------------- tests


def _results(seed=0, n=12):
    """A made-up per-case results table: 2 networks x 3 losses x n cases, shuffled rows."""
    rng = np.random.default_rng(seed)
    rows = []
    shift = {"dice": 0.0, "dice_focal": -0.03, "l1dfl": 0.06}
    for net in ("segresnet", "attention_unet"):
        base = rng.uniform(0.3, 0.8, n)
        for loss in ("l1dfl", "dice", "dice_focal"):
            dsc = np.clip(base + shift[loss] + rng.normal(0, 0.05, n), 0, 1)
            for i in range(n):
                tp = int(rng.integers(0, 3))
                fn = int(rng.integers(0, 2)) if tp else 1
                rows.append(
                    {
                        "case_id": f"c{i}",
                        "patient_id": f"p{i}",
                        "network": net,
                        "loss": loss,
                        "dice": dsc[i],
                        "tp": tp,
                        "fp": int(rng.integers(0, 4)),
                        "fn": fn,
                        "f1": rng.uniform(),
                    }
                )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_wilcoxon_equals_scipy():
    df = _results()
    out = stats.wilcoxon_vs(df)
    assert list(out.columns) == ["network", "reference", "loss", "n", "statistic", "p_value", "p_holm"]
    assert len(out) == 4
    for row in out.itertuples():
        sub = df[df["network"] == row.network]
        ref = sub[sub["loss"] == "l1dfl"].set_index("case_id")["dice"]
        oth = sub[sub["loss"] == row.loss].set_index("case_id")["dice"].reindex(ref.index)
        expected = sps.wilcoxon(ref.to_numpy(), oth.to_numpy(), alternative="greater")
        assert row.p_value == expected.pvalue and row.statistic == expected.statistic
        assert row.n == 12
    assert np.allclose(out["p_holm"], stats.holm(out["p_value"]))


def test_holm_by_hand():
    # sorted p: 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06
    assert stats.holm([0.04, 0.01, 0.03]).tolist() == pytest.approx([0.06, 0.03, 0.06])
    out = stats.holm([0.2, np.nan, 0.01])
    assert np.isnan(out[1]) and out[[0, 2]].tolist() == pytest.approx([0.2, 0.02])


def test_bootstrap_median_ci_seeded_and_sane():
    x = np.random.default_rng(1).normal(0.0, 1.0, 400)
    lo, hi = stats.bootstrap_median_ci(x, seed=0)
    assert (lo, hi) == stats.bootstrap_median_ci(x, seed=0)
    assert (lo, hi) != stats.bootstrap_median_ci(x, seed=1)
    assert lo < np.median(x) < hi
    # large-sample width of a 95% CI of the median: 2 * 1.96 * sqrt(pi / 2) / sqrt(n)
    assert hi - lo == pytest.approx(2 * 1.96 * np.sqrt(np.pi / 2) / 20, rel=0.3)
    assert stats.bootstrap_median_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert all(np.isnan(stats.bootstrap_median_ci([1.0])))


# --------------------------------------------------------------------------- Table 1


def test_table1_layout_on_made_up_results():
    df = _results()
    t = stats.table1(df, n_resamples=500)
    assert list(t.columns) == [
        "Network",
        "Loss",
        "DSC mean",
        "DSC median [IQR]",
        "TP",
        "FP",
        "FN",
        "F1",
        "P value",
        "DSC median 95% CI",
        "P value (Holm)",
    ]
    assert t["Network"].tolist() == ["Attention U-Net"] * 3 + ["SegResNet"] * 3
    assert t["Loss"].tolist() == ["DL", "DFL", "L1DFL"] * 2
    g = df[(df["network"] == "segresnet") & (df["loss"] == "dice")]
    row = t.iloc[3]
    assert row["DSC mean"] == f"{g['dice'].mean():.2f} ± {g['dice'].std(ddof=1):.2f}"
    q1, med, q3 = np.quantile(g["dice"], [0.25, 0.5, 0.75])
    assert row["DSC median [IQR]"] == f"{med:.2f} [{q1:.2f}, {q3:.2f}]"
    rate_tp = g["tp"] / (g["tp"] + g["fn"])
    rate_fn = g["fn"] / (g["tp"] + g["fn"])
    assert row["TP"] == f"{rate_tp.mean():.2f} ± {rate_tp.std(ddof=1):.2f}"
    assert row["FN"] == f"{rate_fn.mean():.2f} ± {rate_fn.std(ddof=1):.2f}"
    assert row["FP"] == f"{g['fp'].mean():.2f} ± {g['fp'].std(ddof=1):.2f}"
    tests = stats.wilcoxon_vs(df)
    p = tests[(tests["network"] == "segresnet") & (tests["loss"] == "dice")]["p_value"].iloc[0]
    assert row["P value"] == stats.fmt_p(p)
    assert t.iloc[5]["P value"] == "" and t.iloc[2]["P value"] == ""  # L1DFL rows
    counts = stats.table1(df, detection="count", ci=False)
    assert "DSC median 95% CI" not in counts.columns
    assert counts.iloc[3]["TP"] == f"{g['tp'].mean():.2f} ± {g['tp'].std(ddof=1):.2f}"

    md = stats.table1_markdown(t)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| Network | Loss | DSC mean | DSC median [IQR] | TP | FP | FN | F1 | P value")
    assert lines[2].startswith("| Attention U-Net | DL |") and lines[3].startswith("|  | DFL |")
    assert len(lines) == 8
    tex = stats.table1_latex(t)
    assert r"\multirow{3}{*}{Attention U-Net}" in tex and r"\multirow{3}{*}{SegResNet}" in tex
    assert r"$\pm$" in tex and tex.count(r"\\") == 7 and r"\begin{tabular}{llccccccccc}" in tex


# --------------------------------------------------------------------------- mixed model


def test_mixed_model_recovers_known_effects():
    rng = np.random.default_rng(7)
    truth = {
        "loss[dice_focal]": -0.04,
        "loss[l1dfl]": 0.08,
        "network[segresnet]": -0.03,
        "log_volume_ml": 0.05,
        "suvmax": 0.01,
    }
    rows = []
    for pid in range(60):
        u = rng.normal(0, 0.10)  # random intercept per patient
        for les in range(int(rng.integers(1, 5))):
            vol, suvmax = float(np.exp(rng.normal(0.5, 1.0))), float(rng.uniform(2, 20))
            for net in ("attention_unet", "segresnet"):
                for loss in ("dice", "dice_focal", "l1dfl"):
                    y = (
                        0.4
                        + u
                        + truth["log_volume_ml"] * np.log(vol)
                        + truth["suvmax"] * suvmax
                        + truth.get(f"loss[{loss}]", 0.0)
                        + truth.get(f"network[{net}]", 0.0)
                        + rng.normal(0, 0.05)
                    )
                    rows.append(
                        {
                            "patient_id": f"p{pid}",
                            "lesion_id": les,
                            "network": net,
                            "loss": loss,
                            "volume_ml": vol,
                            "suvmax": suvmax,
                            "dice": y,
                        }
                    )
    out = stats.lesion_mixed_model(pd.DataFrame(rows)).set_index("term")
    assert list(out.index) == [
        "Intercept",
        "loss[dice_focal]",
        "loss[l1dfl]",
        "network[segresnet]",
        "log_volume_ml",
        "suvmax",
        "patient_var",
    ]
    for term, value in truth.items():
        assert out.loc[term, "estimate"] == pytest.approx(value, abs=0.01), term
        assert out.loc[term, "ci_low"] < value < out.loc[term, "ci_high"], term
    assert out.loc["Intercept", "estimate"] == pytest.approx(0.4, abs=0.05)
    assert out.loc["patient_var", "estimate"] == pytest.approx(0.01, rel=0.5)
    assert out["n_groups"].iloc[0] == 60


def test_table1_keeps_the_paper_order_for_display_labels_and_appearance_order_for_others():
    rng = np.random.default_rng(0)
    rows = []
    for loss in ("L1DFL", "DL", "DFL", "zeta", "alpha"):  # display labels, then unknown names
        for case in range(6):
            rows.append({"network": "SegResNet", "loss": loss, "case_id": f"c{case}", "dice": rng.random(),
                         "tp": 1, "fp": 0, "fn": 0, "f1": 1.0})  # fmt: skip
    table = stats.table1(pd.DataFrame(rows), reference="L1DFL", ci=False)
    assert table["Loss"].tolist() == ["DL", "DFL", "L1DFL", "zeta", "alpha"]


def test_wilcoxon_one_group_compares_the_reference_model_with_every_other():
    cases = pd.DataFrame(
        {"case_id": ["a", "b", "c", "d"] * 3, "model": ["m1"] * 4 + ["m2"] * 4 + ["m3"] * 4,
         "dice": [0.9, 0.8, 0.7, 0.95, 0.1, 0.2, 0.3, 0.15, 0.5, 0.9, 0.6, 0.99]}
    )  # fmt: skip
    out = stats.wilcoxon_vs(cases, reference="m1", by=None, loss_col="model")
    assert list(out.columns) == ["reference", "model", "n", "statistic", "p_value", "p_holm"]
    expected = sps.wilcoxon([0.9, 0.8, 0.7, 0.95], [0.1, 0.2, 0.3, 0.15], alternative="greater")
    assert out["model"].tolist() == ["m2", "m3"]
    assert out["p_value"].iloc[0] == pytest.approx(expected.pvalue)
