"""Putting drawn lesions into a body, and drawing hard negatives (focal physiological uptake).

Everything here works in millimetres, independent of the voxel grid, so a seed gives the same
lesions and anatomy at 2 mm and at 4 mm.

**Lesions** (:func:`place_lesions`), largest first, by rejection sampling (up to 200 candidates
per site, then the other sites in turn). A candidate centre is drawn in the lesion's site:

- ``prostate_bed``: below the bladder base, behind the symphysis (the vesico-urethral anastomosis);
- ``pelvic_ln``: beside the common, external and internal iliac vessels or on the obturator line;
- ``retroperitoneal_ln``: left para-aortic, interaortocaval or paracaval, renal hilum to bifurcation;
- ``bone``: inside a vertebral body (T1-L5), the sacrum, an iliac wing, acetabulum, pubis / ischium,
  a proximal femur (head / neck) or a rib (lesions up to 12 mm in radius only).

and accepted when (1) the lesion's bounding sphere plus 10 mm lies inside the skin, (2) it keeps
``R_i + R_j + gap`` from every other lesion (``gap = max(10, 2 FWHM)`` mm, so masks never touch
and a lesion's blurred uptake does not reach another's), and (3) no high-uptake structure
(kidney, bladder, ureter, small bowel, liver, spleen, salivary glands) lies within
``max(8, 1.5 FWHM)`` mm of the lesion, so that the lesion's SUVmax is its own.

**Hard negatives** (:func:`draw_hard_negatives`): PSMA-avid normal structures that look like small
lesions and are *not* in the label. Per-scan frequencies are our approximations of the pitfalls
described by Hofman et al., RadioGraphics 2018, and Rischpler et al., J Nucl Med 59 (2018)
1406-1411 (ganglia: coeliac, cervical, sacral), with activities chosen so that their blurred
peaks (SUV ~2-10) overlap the lesions' low SUVmax range:

==================  ===========================  ===========================================
kind                probability per scan         focus (activity before blur, size)
==================  ===========================  ===========================================
coeliac ganglion    0.6 (one; sometimes two)     SUV 4-8, 7 x 4 x 4 mm semi-axes
cervical ganglion   0.5 per side                 SUV 4-7, 4 x 4 x 8 mm
sacral ganglion     0.3 per side                 SUV 3-6, 4 x 4 x 6 mm
ureter focus        0.4 per side                 urine stasis, SUV 8-30, 5 x 5 x 12 mm
bowel focus         0.6 (1-2 foci)               intense bowel segment, SUV 8-16, 9 mm tube
bladder edge        0.15                         diverticulum / pooling, SUV = bladder, r 8-12 mm
==================  ===========================  ===========================================

A hard negative closer than ``R + 15`` mm to a lesion is dropped (recorded as not placed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pcatools.data.phantom.anatomy import Anatomy
from pcatools.data.phantom.geometry import Capsule, Ellipsoid, Primitive, quaternion_matrix
from pcatools.data.phantom.lesions import SITES, lesion_axes_mm

BODY_MARGIN_MM = 10.0
"""Minimum distance (mm) between a lesion's bounding sphere and the skin."""

_BONE_SUBSITES = ("spine", "sacrum", "iliac", "acetabulum", "pubis", "femur", "rib")
_BONE_WEIGHTS = np.array([0.42, 0.1, 0.14, 0.08, 0.06, 0.05, 0.15])
_BONE_CAPACITY = {
    "spine": 40.0,
    "sacrum": 40.0,
    "iliac": 40.0,
    "acetabulum": 35.0,
    "pubis": 25.0,
    "femur": 30.0,
    "rib": 12.0,
}


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


_DIRS = _fibonacci_sphere(96)


class PlacementError(RuntimeError):
    """A lesion could not be placed in any site (the anatomy has no room for it)."""


def _point_on_polyline(
    rng: np.random.Generator, pts: list[tuple[float, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random point on a polyline and the unit direction there."""
    p = np.asarray(pts, dtype=np.float64)
    seg = np.diff(p, axis=0)
    ln = np.linalg.norm(seg, axis=1)
    s = rng.random() * ln.sum()
    i = int(min(np.searchsorted(np.cumsum(ln), s), len(ln) - 1))
    f = (s - (np.cumsum(ln)[i] - ln[i])) / ln[i]
    return p[i] + f * seg[i], seg[i] / ln[i]


def _perpendicular(rng: np.random.Generator, d: np.ndarray) -> np.ndarray:
    v = rng.standard_normal(3)
    v -= (v @ d) * d
    return v / np.linalg.norm(v)


def _sample_in(rng: np.random.Generator, prim: Primitive, rmax: float = 0.7) -> np.ndarray:
    lo, hi = prim.bounds()
    for _ in range(200):
        p = lo + (hi - lo) * rng.random(3)
        if prim.rnorm(p[0:1], p[1:2], p[2:3])[0] <= rmax:
            return p
    return (lo + hi) / 2


def _candidate(
    rng: np.random.Generator, anatomy: Anatomy, site: str, radius_ref: float, hot_margin: float = 8.0
) -> np.ndarray | None:
    """A candidate lesion centre (reference coordinates) in ``site``; None if the site cannot hold it."""
    s = anatomy.sites
    if site == "prostate_bed":
        bl = s["bladder"]
        assert isinstance(bl, Ellipsoid)
        base = bl.center[2] - bl.semi[2]
        return np.array(
            [
                rng.uniform(-10, 10),
                22.0 + rng.uniform(-8, 8),
                base - radius_ref - hot_margin - rng.uniform(2.0, 10.0),
            ]
        )
    if site == "pelvic_ln":
        chains = s["iliac_chains"]
        assert isinstance(chains, dict)
        side = 1 if rng.random() < 0.5 else -1
        options = chains[side]
        k = rng.choice(len(options), p=[0.25, 0.35, 0.2, 0.2])
        pts, vr = options[k]
        p, d = _point_on_polyline(rng, pts)
        return p + _perpendicular(rng, d) * (vr + radius_ref + 2.0)
    if site == "retroperitoneal_ln":
        a0, a1, ar = s["aorta"]
        v0, v1, vr = s["ivc"]
        t = rng.random()
        a = np.add(a0, t * np.subtract(a1, a0))
        v = np.add(v0, t * np.subtract(v1, v0))
        kind = rng.choice(3, p=[0.5, 0.2, 0.3])
        y = a[1] + rng.uniform(-8, 8)
        if kind == 0:  # left para-aortic
            x = a[0] - ar - radius_ref - 2.0
        elif kind == 1:  # interaortocaval
            if 2 * radius_ref > (v[0] - vr) - (a[0] + ar) + 8:
                x = a[0] - ar - radius_ref - 2.0
            else:
                x = (a[0] + v[0]) / 2
                y = a[1] + rng.uniform(-4, 4)
        else:  # paracaval
            x = v[0] + vr + radius_ref + 2.0
        return np.array([x, y, a[2]])
    if site == "bone":
        bones = s["bones"]
        assert isinstance(bones, dict)
        ok = np.array([_BONE_CAPACITY[b] >= radius_ref for b in _BONE_SUBSITES])
        if not ok.any():
            return None
        w = _BONE_WEIGHTS * ok
        sub = _BONE_SUBSITES[int(rng.choice(len(w), p=w / w.sum()))]
        prims = bones[sub]
        prim = prims[int(rng.integers(len(prims)))]
        return _sample_in(rng, prim)
    raise ValueError(f"unknown lesion site {site!r}; expected one of {SITES}")


@dataclass
class PlacedLesion:
    """A lesion in world mm: centre, semi-axes, rotation, plus its drawn parameters."""

    center: np.ndarray
    semi: tuple[float, float, float]
    rot: np.ndarray
    params: dict[str, Any]

    @property
    def radius(self) -> float:
        return float(max(self.semi))


def place_lesions(
    rng: np.random.Generator,
    anatomy: Anatomy,
    lesions: pd.DataFrame,
    fwhm_mm: float = 6.0,
    max_tries: int = 200,
) -> list[PlacedLesion]:
    """Place the lesions of one scan (rows of :func:`draw_lesions`) in ``anatomy``.

    Returns the lesions in the input order, each with its world centre and its final ``site``
    (which differs from the drawn one when the drawn site had no room). Raises
    :class:`PlacementError` when a lesion fits nowhere.
    """
    gap = max(10.0, 2.0 * fwhm_mm)
    hot_margin = max(8.0, 1.5 * fwhm_mm)
    frame = anatomy.frame
    placed: dict[int, PlacedLesion] = {}
    order = np.argsort(-lesions["volume_ml"].to_numpy(), kind="stable")
    for idx in order:
        row: dict[str, Any] = {str(k): v for k, v in lesions.iloc[int(idx)].to_dict().items()}
        semi = lesion_axes_mm(float(row["volume_ml"]), float(row["ratio_b"]), float(row["ratio_c"]))
        rot = quaternion_matrix([row["q0"], row["q1"], row["q2"], row["q3"]])
        radius = max(semi)
        sites = [str(row["site"])] + [s for s in SITES if s != row["site"]]
        done = False
        for site in sites:
            for _ in range(max_tries):
                c_ref = _candidate(rng, anatomy, site, radius / frame.s_w, hot_margin / frame.s_w)
                if c_ref is None:
                    break
                c = frame.to_world(c_ref)
                if any(np.linalg.norm(c - o.center) < radius + o.radius + gap for o in placed.values()):
                    continue
                shell = c + _DIRS * (radius + BODY_MARGIN_MM)
                if not anatomy.inside_body(shell).all():
                    continue
                inner = np.concatenate([c[None], c + _DIRS * radius, c + _DIRS[::3] * radius * 0.5])
                if anatomy.near_hot(inner, hot_margin).any():
                    continue
                row = {**row, "drawn_site": row["site"], "site": site}
                placed[int(idx)] = PlacedLesion(c, semi, rot, row)
                done = True
                break
            if done:
                break
        if not done:
            raise PlacementError(
                f"could not place a {row['volume_ml']:.1f} ml lesion (radius {radius:.1f} mm) "
                f"in any site {SITES}"
            )
    return [placed[i] for i in range(len(lesions))]


@dataclass
class HardNegative:
    """A focus of physiological uptake (world mm), not a lesion: ``prim`` in world coordinates."""

    kind: str
    prim: Primitive
    activity: float
    tissue: str | None  # CT appearance painted with it (None: unchanged)

    @property
    def center(self) -> np.ndarray:
        lo, hi = self.prim.bounds()
        return (lo + hi) / 2

    @property
    def radius(self) -> float:
        lo, hi = self.prim.bounds()
        return float(np.max(hi - lo) / 2)


def _world_ellipsoid(
    anatomy: Anatomy, c_ref: np.ndarray, semi: tuple[float, float, float], rot: np.ndarray | None = None
) -> Ellipsoid:
    c = anatomy.frame.to_world(c_ref)
    return Ellipsoid((float(c[0]), float(c[1]), float(c[2])), semi, rot)


def _axis_rotation(d: np.ndarray) -> np.ndarray:
    """Rotation whose third column is the unit vector ``d``."""
    d = d / np.linalg.norm(d)
    a = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(d, a)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    return np.stack([u, v, d], axis=1)


# Paired ganglia, drawn per side (x mirrored): name, probability, centre (x for side +1, y, z; mm),
# uniform jitter per axis (mm), ellipsoid radii (mm), SUV range.
_PAIRED_GANGLIA = (
    ("cervical_ganglion", 0.5, (30.0, -18.0, 1500.0), (4.0, 4.0, 25.0), (4.0, 4.0, 8.0), (4.0, 7.0)),
    ("sacral_ganglion", 0.3, (28.0, -40.0, 945.0), (4.0, 5.0, 20.0), (4.0, 4.0, 6.0), (3.0, 6.0)),
)


def draw_hard_negatives(rng: np.random.Generator, anatomy: Anatomy) -> list[HardNegative]:
    """Draw one scan's hard negatives (frequencies and activities in the module docstring)."""
    s = anatomy.sites
    bl = s["bladder"]
    assert isinstance(bl, Ellipsoid)
    out: list[HardNegative] = []
    a0 = np.asarray(s["aorta"][0])  # type: ignore[index]
    if rng.random() < 0.6:
        for _ in range(1 + int(rng.random() < 0.3)):
            c = np.array(
                [
                    a0[0] + rng.uniform(-14, 10),
                    a0[1] + 18.0 + rng.uniform(-4, 4),
                    1125.0 + rng.uniform(-15, 15),
                ]
            )
            out.append(
                HardNegative(
                    "coeliac_ganglion",
                    _world_ellipsoid(anatomy, c, (7.0, 4.0, 4.0)),
                    float(rng.uniform(4, 8)),
                    "muscle",
                )
            )
    for side in (1, -1):
        for name, prob, centre, jitter, radii, uptake in _PAIRED_GANGLIA:
            if rng.random() < prob:
                c = np.array([side * centre[0], centre[1], centre[2]]) + rng.uniform(
                    -np.asarray(jitter), jitter
                )
                out.append(
                    HardNegative(
                        name, _world_ellipsoid(anatomy, c, radii), float(rng.uniform(*uptake)), "muscle"
                    )
                )
    ureters = s["ureters"]
    assert isinstance(ureters, list)
    for path in ureters:
        if rng.random() < 0.4:
            p, d = _point_on_polyline(rng, path[1:-1])
            out.append(
                HardNegative(
                    "ureter_focus",
                    _world_ellipsoid(anatomy, p, (5.0, 5.0, 12.0), _axis_rotation(d)),
                    float(rng.uniform(8, 30)),
                    "ureter",
                )
            )
    if rng.random() < 0.6:
        loops = s["bowel_loops"]
        assert isinstance(loops, list)
        for _ in range(1 + int(rng.random() < 0.4)):
            loop = loops[int(rng.integers(len(loops)))]
            i = int(rng.integers(len(loop) - 1))
            p0 = anatomy.frame.to_world(np.asarray(loop[i]))
            p1 = anatomy.frame.to_world(np.asarray(loop[i + 1]))
            out.append(
                HardNegative(
                    "bowel_focus",
                    Capsule(tuple(p0), tuple(p1), 9.0),  # type: ignore[arg-type]
                    float(rng.uniform(8, 16)),
                    None,
                )
            )
    if rng.random() < 0.15:
        ang = rng.uniform(-np.pi * 0.8, -np.pi * 0.2)  # posterolateral wall
        u = np.array(
            [np.cos(ang) * bl.semi[0], np.sin(ang) * bl.semi[1], rng.uniform(-0.3, 0.3) * bl.semi[2]]
        )
        r = float(rng.uniform(8, 12))
        c = np.asarray(bl.center) + u * (1 + 0.6 * r / np.linalg.norm(u))
        out.append(
            HardNegative(
                "bladder_edge", _world_ellipsoid(anatomy, c, (r, r, r)), float(anatomy.suv[12]), "bladder"
            )
        )
    return out


def drop_near_lesions(
    negatives: list[HardNegative], lesions: list[PlacedLesion], margin: float = 15.0
) -> tuple[list[HardNegative], list[HardNegative]]:
    """Split hard negatives into (kept, dropped): dropped ones lie within ``R + r + margin`` mm of a lesion."""
    kept: list[HardNegative] = []
    dropped: list[HardNegative] = []
    for hn in negatives:
        near = any(
            np.linalg.norm(hn.center - les.center) < hn.radius + les.radius + margin for les in lesions
        )
        (dropped if near else kept).append(hn)
    return kept, dropped
