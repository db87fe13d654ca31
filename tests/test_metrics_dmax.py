"""Dmax (eq. 15): the convex-hull computation equals brute force over all voxel pairs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from pcatools.metrics import dmax, dmax_points, voxel_distance
from pcatools.metrics.dmax import dmax_bruteforce, max_pairwise_distance

ANISO = (0.7, 1.3, 2.9)


def brute(mask: np.ndarray, spacing) -> float:
    """Independent reference: every pair of voxel centres, eq. 15, via scipy pdist."""
    pts = np.argwhere(mask) * np.asarray(spacing, dtype=np.float64)
    return float(pdist(pts).max())


def _mask(shape, coords):
    m = np.zeros(shape, bool)
    for c in coords:
        m[c] = True
    return m


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("density", [0.002, 0.02, 0.3])
def test_random_masks_equal_brute_force(seed, density):
    rng = np.random.default_rng(seed)
    m = rng.random((17, 13, 11)) < density
    if m.sum() < 2:
        m[0, 0, 0] = m[5, 7, 3] = True
    spacing = tuple(rng.uniform(0.5, 5.0, 3))
    assert dmax(m, spacing) == brute(m, spacing)


@pytest.mark.parametrize("seed", range(3))
def test_blobs_equal_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    x, y, z = np.indices((30, 25, 20))
    m = np.zeros((30, 25, 20), bool)
    for _ in range(4):
        c = rng.uniform(3, 17, 3)
        r = rng.uniform(2, 5)
        m |= (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r
    assert dmax(m, ANISO) == brute(m, ANISO)


@pytest.mark.parametrize(
    ("coords", "name"),
    [
        ([(3, 4, 5), (3, 4, 9)], "two voxels"),
        ([(1, 2, 3), (1, 2, 4), (1, 2, 8)], "collinear along z"),
        ([(0, 0, 0), (1, 1, 1), (2, 2, 2), (5, 5, 5)], "collinear diagonal"),
        ([(0, 0, 0), (2, 1, 0), (4, 2, 0), (8, 4, 0)], "collinear oblique in a plane"),
        ([(0, 0, 2), (5, 0, 2), (0, 6, 2), (3, 3, 2), (5, 6, 2)], "coplanar axis-aligned"),
        ([(0, 0, 0), (1, 0, 1), (0, 2, 0), (3, 1, 3), (2, 5, 2)], "coplanar tilted (x = z)"),
        ([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], "tetrahedron"),
    ],
)
def test_degenerate_sets_equal_brute_force(coords, name):
    m = _mask((10, 10, 10), coords)
    assert dmax(m, ANISO) == brute(m, ANISO), name


def test_plane_and_line_masks():
    m = np.zeros((12, 9, 7), bool)
    m[:, :, 3] = True  # a full plane
    assert dmax(m, ANISO) == brute(m, ANISO)
    m = np.zeros((12, 9, 7), bool)
    m[2, :, 5] = True  # a full line
    assert dmax(m, ANISO) == 8 * 1.3
    m = np.zeros((6, 6, 6), bool)
    m[1:5, 1:5, 1:5] = True  # a cube: many coplanar points
    assert dmax(m, ANISO) == brute(m, ANISO)
    assert dmax(m, (1.0, 1.0, 1.0)) == pytest.approx(3 * np.sqrt(3), rel=1e-15)


def test_limits():
    m = np.zeros((4, 4, 4), bool)
    assert np.isnan(dmax(m, ANISO))  # no voxel
    m[2, 1, 3] = True
    assert dmax(m, ANISO) == 0.0  # one voxel
    m[2, 1, 0] = True
    assert dmax(m, (1.0, 1.0, 2.5)) == 7.5


def test_eq15_by_hand():
    assert voxel_distance((0, 0, 0), (1, 2, 2), (2.0, 1.0, 0.5)) == 3.0
    assert dmax_points(np.array([[0, 0, 0], [4, 0, 0], [0, 3, 0]]), (1.0, 1.0, 1.0)) == 5.0
    # the paper's 4.07 x 4.07 x 2 mm autoPET grid
    assert dmax_points(np.array([[0, 0, 0], [10, 0, 20]]), (4.07, 4.07, 2.0)) == pytest.approx(
        np.hypot(40.7, 40.0)
    )


def test_chunked_brute_force_matches_pdist():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(5000, 3))
    assert max_pairwise_distance(pts, chunk=700) == float(pdist(pts).max())


def test_bad_input():
    with pytest.raises(ValueError, match="spacing"):
        dmax(np.ones((2, 2, 2), bool), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="binary"):
        dmax(np.full((2, 2, 2), 3), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        dmax_points(np.zeros((4, 2), int), (1.0, 1.0, 1.0))


def _ball(radius: int) -> np.ndarray:
    g = np.indices((2 * radius + 1,) * 3) - radius
    return (g**2).sum(axis=0) <= radius**2


@pytest.mark.parametrize(
    ("name", "expect_hull"),
    [
        ("two far clusters", False),
        ("ball", True),
        ("disc", True),
        ("ball and far voxel", False),
        ("line", False),
    ],
)
def test_pruning_and_hull_paths_equal_brute_force(monkeypatch, name, expect_hull):
    """Spread lesions are settled by the exact radius pruning alone; round sets fall back to Qhull."""
    import importlib

    dm = importlib.import_module("pcatools.metrics.dmax")  # the package re-exports the function dmax

    rng = np.random.default_rng(3)
    mask = np.zeros((70, 60, 90), bool)
    if name == "two far clusters":
        mask[2:9, 3:8, 1:7] = rng.random((7, 5, 6)) < 0.6
        mask[60:68, 50:57, 80:88] = rng.random((8, 7, 8)) < 0.6
        mask[30:35, 30:33, 40:46] = True  # a middle lesion that pruning drops
    elif name == "ball":  # a ball with a ragged rim: many voxels near the largest radius
        g = ((np.indices((41,) * 3) - 20) ** 2).sum(axis=0)
        mask[10:51, 10:51, 20:61] = (g <= 400) & ((g <= 225) | (rng.random(g.shape) < 0.5))
    elif name == "disc":  # a ragged disc in an oblique plane, pruning switched off: Qhull in 2-D
        x, y = np.indices((61, 60))
        rad = np.sqrt(2 * (x - 30) ** 2 + (y - 30) ** 2)
        keep = (rad <= 28) & ((rad <= 22) | (rng.random(rad.shape) < 0.5))
        mask[x[keep], y[keep], 60 - x[keep]] = True
        monkeypatch.setattr(dm, "_PRUNED_PDIST_MAX", 0)
    elif name == "line":  # collinear, pruning switched off: the rank-1 path
        i = np.arange(0, 60, 3)
        mask[i, i // 3, 2 * i // 3] = True
        monkeypatch.setattr(dm, "_PRUNED_PDIST_MAX", 0)
    else:
        mask[10:51, 10:51, 20:61] = _ball(20)
        mask[69, 59, 89] = True
    calls = []
    real = dm._hull_candidates
    monkeypatch.setattr(dm, "_hull_candidates", lambda p: calls.append(len(p)) or real(p))
    # anisotropic spacing turns a ball into an ellipsoid, which pruning settles: keep round ones round
    spacing = (1.1, 1.1, 1.1) if expect_hull else (1.3, 0.9, 2.1)
    assert dmax(mask, spacing) == pytest.approx(dm.dmax_bruteforce(mask, spacing), rel=1e-12)
    assert bool(calls) is expect_hull


def test_memory_layouts_and_dtypes_give_the_same_dmax():
    """The byte-mask shortcut (C or F order) and the general path agree with brute force."""
    rng = np.random.default_rng(11)
    mask = np.zeros((23, 17, 29), bool)
    mask[rng.random(mask.shape) < 0.01] = True
    spacing = (0.8, 1.7, 2.5)
    expected = dmax_bruteforce(mask, spacing)
    big = np.zeros((46, 17, 29), bool)
    big[::2] = mask
    assert not big[::2].flags.c_contiguous and not big[::2].flags.f_contiguous
    variants = {
        "bool C": mask,
        "uint8 F": np.asfortranarray(mask.astype(np.uint8)),
        "uint8 C": mask.astype(np.uint8),
        "strided view": big[::2],
        "float64": mask.astype(np.float64),
        "int16": mask.astype(np.int16),
    }
    for name, m in variants.items():
        assert dmax(m, spacing) == pytest.approx(expected, rel=1e-12), name
    with pytest.raises(ValueError, match="0/1|binary|values"):
        dmax(np.where(mask, 2, 0).astype(np.uint8), spacing)
