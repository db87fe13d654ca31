"""Detection criteria, Dice (eq. 13/16), F1 (eq. 14) and the lesion table on hand-built cases.

Known answers are worked out by hand in the comments; random cases are checked against slow,
literal loop implementations of the paper's definitions and of Ahamed et al.'s public code.
"""

from __future__ import annotations

import warnings

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from pcatools.metrics import (
    components,
    detect,
    dice,
    dice_from_counts,
    evaluate_case,
    f1_score,
    label_components,
    lesion_table,
)

SPACING = (10.0, 10.0, 10.0)  # 1 ml voxels: volumes equal voxel counts


def line(length: int, *runs: tuple[int, int]) -> np.ndarray:
    """A (length, 1, 1) mask with voxels [a, b) set for each run."""
    m = np.zeros((length, 1, 1), np.uint8)
    for a, b in runs:
        m[a:b] = 1
    return m


def suv_peaks(length: int, *peaks: int) -> np.ndarray:
    s = np.ones((length, 1, 1), np.float32)
    for k, x in enumerate(peaks):
        s[x] = 10.0 + k
    return s


def counts(gt, pred, suv, criterion):
    r = evaluate_case(gt, pred, suv, SPACING, criterion=criterion)
    return r["tp"], r["fp"], r["fn"]


# --- a predicted component covering two lesions ---------------------------------------------
# GT lesions L1 = x0-1 (SUVmax at x1), L2 = x3-4 (SUVmax at x4); one predicted component x0-4.
MERGE = (line(6, (0, 2), (3, 5)), line(6, (0, 5)), suv_peaks(6, 1, 4))


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ("suvmax", (2, 0, 0)),  # both SUVmax voxels covered: two TPs, no FP
        ("overlap", (1, 0, 0)),  # Ahamed 1 counts components: one TP
        ("iou", (0, 1, 2)),  # IoU 2/5 with each lesion < 0.5
        ("suvmax_iou", (1, 0, 1)),  # best-IoU tie -> L1 (lowest label), its SUVmax covered; L2 unused
    ],
)
def test_component_over_two_lesions(criterion, expected):
    assert counts(*MERGE, criterion) == expected


def test_component_over_two_lesions_dice_values():
    gt, pred, suv = MERGE
    r = evaluate_case(gt, pred, suv, SPACING)
    assert r["dice"] == 2 * 4 / (4 + 5)
    assert r["f1"] == 1.0
    les = lesion_table(gt, pred, suv, SPACING)
    # each lesion against the whole merged component: 2*2 / (2 + 5)
    assert les["dice"].tolist() == [4 / 7, 4 / 7]
    assert les["matched"].tolist() == [True, True]


# --- a lesion split over two components -----------------------------------------------------
# GT lesion x0-5 (SUVmax at x4); components P1 = x0-1, P2 = x4-5.
SPLIT = (line(7, (0, 6)), line(7, (0, 2), (4, 6)), suv_peaks(7, 4))


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ("suvmax", (1, 0, 0)),  # one TP; P1 overlaps the lesion so it is no FP
        ("overlap", (2, 0, 0)),  # Ahamed 1: two overlapping components, two TPs
        ("iou", (0, 2, 1)),  # IoU 2/6 each
        ("suvmax_iou", (1, 1, 0)),  # P1 misses the SUVmax voxel -> FP, P2 covers it -> TP
    ],
)
def test_lesion_split_in_two(criterion, expected):
    assert counts(*SPLIT, criterion) == expected


def test_lesion_split_in_two_lesion_dice():
    gt, pred, suv = SPLIT
    les = lesion_table(gt, pred, suv, SPACING)
    assert les["dice"].tolist() == [2 * 4 / (6 + 4)]  # against the union of both pieces
    assert les["n_voxels"].tolist() == [6]
    assert les["suvmax"].tolist() == [10.0]
    assert les["suvmean"].tolist() == [pytest.approx((5 * 1 + 10) / 6)]
    assert les["tla"].tolist() == [pytest.approx(15.0)]  # sum SUV x 1 ml


# --- SUVmax voxel outside the overlap --------------------------------------------------------
# GT lesion x0-3 with SUVmax at x3; prediction x0-1 overlaps but misses x3.
MISS = (line(5, (0, 4)), line(5, (0, 2)), suv_peaks(5, 3))


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ("suvmax", (0, 0, 1)),  # FN; the overlapping component is not an FP
        ("overlap", (1, 0, 0)),
        ("iou", (1, 0, 0)),  # IoU = 2/4 = 0.5 >= 0.5
        ("suvmax_iou", (0, 1, 1)),  # public code: the component is an FP
    ],
)
def test_suvmax_voxel_outside_overlap(criterion, expected):
    assert counts(*MISS, criterion) == expected


def test_suvmax_voxel_outside_overlap_values():
    gt, pred, suv = MISS
    r = evaluate_case(gt, pred, suv, SPACING)
    assert r["f1"] == 0.0 and r["dice"] == 2 * 2 / (4 + 2)
    les = lesion_table(gt, pred, suv, SPACING)
    assert les["matched"].tolist() == [True] and les["detected"].tolist() == [False]
    assert les["dice"].tolist() == [2 * 2 / 6]


def test_suvmax_ties_go_to_first_voxel_in_c_order():
    gt = line(4, (0, 3))
    suv = np.ones((4, 1, 1), np.float32)
    suv[0] = suv[2] = 5.0  # tie between x0 and x2: x0 is the SUVmax voxel
    assert counts(gt, line(4, (2, 3)), suv, "suvmax") == (0, 0, 1)
    assert counts(gt, line(4, (0, 1)), suv, "suvmax") == (1, 0, 0)


# --- empty ground truth / empty prediction ----------------------------------------------------


def test_empty_ground_truth():
    gt = line(8)
    pred = line(8, (0, 2), (5, 6))
    r = evaluate_case(gt, pred, suv_peaks(8), SPACING)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 2, 0)
    assert r["dice"] == 0.0 and r["f1"] == 0.0
    assert r["fpv_ml"] == 3.0 and r["fnv_ml"] == 0.0
    assert r["tmtv_ml"] == 0.0 and r["tla"] == 0.0 and np.isnan(r["dmax_mm"])
    assert r["n_gt_lesions"] == 0 and r["n_pred_lesions"] == 2 and r["scenario"] == "none"
    assert len(lesion_table(gt, pred, suv_peaks(8), SPACING)) == 0
    for criterion in ("overlap", "iou", "suvmax_iou"):
        assert counts(gt, pred, suv_peaks(8), criterion) == (0, 2, 0)


def test_empty_prediction():
    gt = line(8, (0, 2), (4, 7))
    pred = line(8)
    suv = suv_peaks(8, 1, 5)
    r = evaluate_case(gt, pred, suv, SPACING)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 0, 2)
    assert r["dice"] == 0.0 and r["f1"] == 0.0
    assert r["fpv_ml"] == 0.0 and r["fnv_ml"] == 5.0 and r["tmtv_ml"] == 5.0
    assert r["tla"] == pytest.approx(3 * 1 + 10 + 11)
    assert r["dmax_mm"] == 60.0 and r["scenario"] == "M"
    les = lesion_table(gt, pred, suv, SPACING)
    assert les["dice"].tolist() == [0.0, 0.0] and not les["matched"].any()
    for criterion in ("overlap", "iou", "suvmax_iou"):
        assert counts(gt, pred, suv, criterion) == (0, 0, 2)


def test_both_empty():
    z = line(5)
    r = evaluate_case(z, z, suv_peaks(5), SPACING)
    assert r["dice"] == 1.0 and r["f1"] == 1.0  # documented choice: perfect agreement
    assert (r["tp"], r["fp"], r["fn"], r["fpv_ml"], r["fnv_ml"], r["tmtv_ml"]) == (0, 0, 0, 0.0, 0.0, 0.0)
    assert np.isnan(r["dmax_mm"]) and np.isnan(r["suvmax"])


def test_formulas_by_hand():
    assert dice_from_counts(3, 4, 5) == 6 / 9
    assert f1_score(3, 2, 1) == 3 / (3 + 1.5)
    g = line(6, (0, 3))
    p = line(6, (2, 6))
    assert dice(g, p) == 2 * 1 / (3 + 4)


def test_no_suv_falls_back_to_overlap_with_warning():
    gt, pred, _ = MERGE
    with pytest.warns(UserWarning, match="needs a SUV image"):
        r = evaluate_case(gt, pred, None, SPACING)
    assert r["criterion"] == "overlap" and (r["tp"], r["fp"], r["fn"]) == (1, 0, 0)
    assert np.isnan(r["tla"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate_case(gt, pred, None, SPACING, criterion="iou")["criterion"] == "iou"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gt": np.zeros((3, 3, 3)), "pred": np.zeros((3, 3, 4))}, "same grid|share one grid"),
        ({"gt": np.full((3, 3, 3), 2), "pred": np.zeros((3, 3, 3))}, "binary mask"),
        ({"gt": np.zeros((3, 3)), "pred": np.zeros((3, 3))}, "3-D"),
        ({"gt": np.zeros((3, 3, 3)), "pred": np.zeros((3, 3, 3)), "spacing": (1, 1)}, "spacing"),
        ({"gt": np.zeros((3, 3, 3)), "pred": np.zeros((3, 3, 3)), "spacing": (1, -1, 1)}, "spacing"),
        ({"gt": np.zeros((3, 3, 3)), "pred": np.zeros((3, 3, 3)), "suv": np.zeros((2, 3, 3))}, "suv"),
        ({"gt": np.zeros((3, 3, 3)), "pred": np.zeros((3, 3, 3)), "criterion": "nope"}, "criterion"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate_case(**kwargs)


def test_nan_suv_inside_lesion_raises():
    suv = suv_peaks(6, 1)
    suv[0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_case(*MERGE[:2], suv, SPACING)


def test_iou_threshold_below_half_refused():
    c = components(*SPLIT[:2])
    with pytest.raises(ValueError, match="iou_threshold"):
        detect(c, criterion="iou", iou_threshold=0.3)


@pytest.mark.parametrize("order", ["C", "F"])
def test_labels_equal_scipy_ndimage_18_connectivity(order):
    """Independent reference: scipy.ndimage.label with the 18-neighbourhood numbers in C raster order."""
    rng = np.random.default_rng(11)
    m = np.asarray(rng.random((20, 17, 13)) < 0.15, order=order)
    expected, n = ndimage.label(m, structure=ndimage.generate_binary_structure(3, 2))
    labels, n_ours = label_components(m)
    assert n_ours == n and np.array_equal(labels, expected)


def test_eighteen_connectivity():
    m = np.zeros((3, 3, 3), np.uint8)
    m[0, 0, 0] = m[1, 1, 0] = 1  # edge neighbours: connected with 18
    m[2, 2, 1] = 1  # corner neighbour of (1,1,0): separate with 18, joined with 26
    assert label_components(m)[1] == 2


# --- random cases against slow literal implementations ---------------------------------------


def _slow_paper(gt, pred, suv):
    """Paper 2.7.1, one full-volume scan per component."""
    gl, ng = cc3d.connected_components(gt, connectivity=18, return_N=True)
    pl, npred = cc3d.connected_components(pred, connectivity=18, return_N=True)
    tp = fn = fp = 0
    for j in range(1, ng + 1):
        lesion = gl == j
        voxel = np.unravel_index(np.argmax(np.where(lesion, suv, -np.inf)), gt.shape)
        if pred[voxel]:
            tp += 1
        else:
            fn += 1
    for i in range(1, npred + 1):
        if not np.any((pl == i) & (gt > 0)):
            fp += 1
    return tp, fp, fn


def _iou(a, b):
    inter = np.sum(a * b)
    return inter / (np.sum(a) + np.sum(b) - inter)


def _slow_ahamed(gt, pred, suv, criterion):
    """Literal port of Ahamed et al.'s calculate_patient_level_tp_fp_fn (criteria 1-3).

    One deviation: in criterion 3 a component that overlaps no lesion is an FP outright (the
    public code then looks up voxel (0, 0, 0) through an empty lesion mask).
    """
    gl, ng = cc3d.connected_components(gt, connectivity=18, return_N=True)
    pl, npred = cc3d.connected_components(pred, connectivity=18, return_N=True)
    remaining = list(range(1, ng + 1))
    tp = fp = 0
    if criterion == "overlap":
        fn = 0
        for i in range(1, npred + 1):
            if np.any((pl == i) & (gl > 0)):
                tp += 1
            else:
                fp += 1
        for j in range(1, ng + 1):
            if not np.any((gl == j) & (pl > 0)):
                fn += 1
        return tp, fp, fn
    for i in range(1, npred + 1):
        pm = np.where(pl == i, 1, 0)
        max_iou, match = 0.0, None
        for j in range(1, ng + 1):
            iou = _iou(np.where(gl == j, 1, 0), pm)
            if iou > max_iou:
                max_iou, match = iou, j
        if criterion == "iou":
            ok = max_iou >= 0.5
        elif match is None:
            ok = False
        else:
            prod = np.where(gl == match, 1, 0) * suv
            ok = pm[np.unravel_index(np.argmax(prod), prod.shape)] == 1
        if ok:
            tp += 1
            remaining.remove(match)
        else:
            fp += 1
    return tp, fp, len(remaining)


def _slow_lesion_dice(gt, pred):
    gl, ng = cc3d.connected_components(gt, connectivity=18, return_N=True)
    pl, npred = cc3d.connected_components(pred, connectivity=18, return_N=True)
    out = []
    for j in range(1, ng + 1):
        lesion = gl == j
        union = np.zeros_like(lesion)
        for i in range(1, npred + 1):
            comp = pl == i
            if np.any(comp & lesion):
                union |= comp
        out.append(2 * np.sum(lesion & union) / (np.sum(lesion) + np.sum(union)))
    return out


def _random_case(seed):
    rng = np.random.default_rng(seed)
    shape = (14, 12, 10)
    gt = (rng.random(shape) < 0.12).astype(np.uint8)
    pred = gt.copy()
    flip = rng.random(shape) < 0.08
    pred[flip] = 1 - pred[flip]
    suv = rng.gamma(2.0, 2.0, shape).astype(np.float32) + 0.01
    return gt, pred, suv


@pytest.mark.parametrize("seed", range(4))
def test_random_cases_equal_slow_references(seed):
    gt, pred, suv = _random_case(seed)
    r = evaluate_case(gt, pred, suv, (2.0, 3.0, 4.0))
    assert (r["tp"], r["fp"], r["fn"]) == _slow_paper(gt, pred, suv)
    for criterion in ("overlap", "iou", "suvmax_iou"):
        assert counts(gt, pred, suv, criterion) == _slow_ahamed(gt, pred, suv, criterion), criterion
    les = lesion_table(gt, pred, suv, (2.0, 3.0, 4.0))
    assert np.allclose(sorted(les["dice"]), sorted(_slow_lesion_dice(gt, pred)), rtol=0, atol=1e-15)
    # lesion SUV statistics against direct per-lesion masks (labels numbered in C order)
    labels, n = label_components(gt)
    assert n == r["n_gt_lesions"] == len(les)
    for row in les.itertuples():
        vals = suv[labels == row.lesion_id].astype(np.float64)
        assert row.n_voxels == vals.size
        assert row.suvmax == vals.max()
        assert row.suvmean == pytest.approx(vals.mean(), rel=1e-12)
        assert row.tla == pytest.approx(vals.sum() * 0.024, rel=1e-12)
