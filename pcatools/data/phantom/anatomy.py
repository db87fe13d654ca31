"""The phantom's body: a reference male anatomy from head to upper thighs, varied per patient.

:func:`draw_anatomy` draws one patient (a pure function of a numpy Generator): body scaling,
subcutaneous fat, organ uptake factors, bladder filling, bowel loops. :func:`paint_tissues` turns
it into a tissue map (``uint8`` codes of :mod:`pcatools.data.phantom.tissues`) on any grid.

Structures (reference coordinates, mm; ``h`` = height above the floor of a 1750 mm man): body
outline (elliptic cross-sections interpolated along ``h``, two legs below the crotch) with a
subcutaneous fat layer; abdominal cavity (visceral fat); lungs, heart, mediastinal fat, trachea;
aorta, iliac arteries, IVC; liver, spleen, stomach, kidneys with renal pelvis, ureters, bladder,
colon with gas, small-bowel loops; psoas and paraspinal muscles; skeleton: skull, mandible,
cervical / thoracic / lumbar vertebrae (body, arch, spinous process; spinal canal), sacrum,
iliac wings, acetabula, pubic rami, ischia, femoral heads, necks, trochanters and shafts, 12 rib
pairs, sternum, clavicles, scapulae (trabecular bone with a cortical shell); brain, eyes; parotid,
submandibular and lacrimal glands. Positions follow standard adult anatomy, rounded.

Painting order matters: later structures overwrite earlier ones, restricted to the tissues they
may replace (``within``), e.g. lungs only replace muscle and visceral fat inside the chest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcatools.data.phantom.geometry import (
    H0,
    Capsule,
    Ellipsoid,
    Frame,
    Grid,
    Primitive,
    Vec3,
    polyline,
    rotation,
)
from pcatools.data.phantom.tissues import CODE, N_TISSUES, SUV_CV, SUV_MEAN

# ---- body outline tables (reference mm) ---------------------------------------------------------

H_CROTCH = 845.0
"""Reference height (mm above the floor) of the crotch: legs below, trunk above."""
_H = np.array(
    [880, 900, 960, 1030, 1080, 1150, 1250, 1350, 1420, 1445, 1470, 1530, 1555, 1600, 1680, 1730, 1758.0]
)
_A = np.array([150, 158, 162, 147, 132, 137, 147, 153, 160, 110, 48, 46, 60, 70, 73, 52, 8.0])
_B = np.array([95, 97, 100, 92, 88, 92, 98, 96, 84, 62, 46, 48, 75, 88, 91, 64, 8.0])
_YC = np.array([-5, -5, -8, -2, 0, 0, 0, 0, -5, -10, -22, -18, -5, -5, -5, -5, -5.0])
_FAT_FACTOR_H = np.array([1420, 1470, 1560.0])
_FAT_FACTOR = np.array([1.0, 0.4, 0.15])
H_TOP = 1758.0
"""Reference height (mm above the floor) of the vertex, the top of the body outline."""

# abdominal / pelvic cavity (visceral fat)
_HC = np.array([872, 900, 940, 1000, 1100, 1180, 1215.0])
_AC = np.array([55, 75, 100, 118, 115, 118, 110.0])
_BC = np.array([45, 55, 65, 70, 72, 75, 70.0])
_YCC = np.array([8, 10, 10, 8, 8, 8, 8.0])

# spine: centre of the vertebral bodies along y
_HS = np.array([985, 1055, 1125, 1250, 1330, 1425, 1450, 1540.0])
_YS = np.array([-45, -38, -42, -52, -55, -48, -22, -18.0])


def spine_y(h: float | np.ndarray) -> np.ndarray:
    """y (reference mm) of the vertebral-body centre line at height ``h``."""
    return np.interp(h, _HS, _YS)


class Outline(Primitive):
    """Body outline (skin) grown by ``offset`` mm over the lean contour; ``rnorm <= 1`` inside.

    Above the crotch each slice is an ellipse ``(x / a)^2 + ((y - yc) / b)^2 <= 1`` with
    ``a = a_lean(h) + offset f(h)``; below it, two legs. ``f`` thins the fat over neck and head.
    """

    def __init__(self, offset: float) -> None:
        self.offset = float(offset)

    def _ab(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = self.offset * np.interp(h, _FAT_FACTOR_H, _FAT_FACTOR)
        return np.interp(h, _H, _A) + f, np.interp(h, _H, _B) + f, np.interp(h, _H, _YC)

    def rnorm(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        a, b, yc = self._ab(z)
        a, b = np.maximum(a, 1e-3), np.maximum(b, 1e-3)
        trunk = np.sqrt((x / a) ** 2 + ((y - yc) / b) ** 2)
        la = np.interp(z, [H0, H_CROTCH], [68.0, 76.0]) + self.offset
        lb = np.interp(z, [H0, H_CROTCH], [72.0, 80.0]) + self.offset
        legs = np.sqrt(((np.abs(x) - 88.0) / la) ** 2 + ((y + 2.0) / lb) ** 2)
        r = np.where(z >= H_CROTCH, trunk, legs)
        return np.where(z <= H_TOP, r, np.inf)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([-400.0, -300.0, H0 - 200.0]), np.array([400.0, 300.0, H_TOP])

    @property
    def thickness_scale(self) -> float:
        return 100.0


class Cavity(Primitive):
    """Abdominopelvic cavity: elliptic slices between ``h = 872`` and ``1215`` mm."""

    def rnorm(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        a, b, yc = np.interp(z, _HC, _AC), np.interp(z, _HC, _BC), np.interp(z, _HC, _YCC)
        r = np.sqrt((x / a) ** 2 + ((y - yc) / b) ** 2)
        return np.where((z >= _HC[0]) & (z <= _HC[-1]), r, np.inf)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([-130.0, -80.0, _HC[0]]), np.array([130.0, 90.0, _HC[-1]])

    @property
    def thickness_scale(self) -> float:
        return 60.0


@dataclass
class Structure:
    """Primitives painted with one tissue: ``tissue`` inside, optional ``shell`` (thickness mm, tissue)."""

    name: str
    prims: Sequence[Primitive]
    tissue: int | None
    within: tuple[int, ...] | None = None
    shell: tuple[float, int] | None = None
    hmin: float = -np.inf


@dataclass
class Anatomy:
    """One patient's anatomy (reference coordinates) and uptake.

    Attributes
    ----------
    frame : Frame
        Reference -> world scaling.
    fat_mm : float
        Subcutaneous fat thickness over the trunk.
    structures : list of Structure
        Painting order.
    suv : ndarray (N_TISSUES,)
        This patient's SUV per tissue class.
    landmarks : dict
        Reference-coordinate centres of organs (``"liver"``, ``"kidney_r"`` ...), for tests and docs.
    hot : list of Primitive
        High-uptake structures that lesions keep a margin from.
    sites : dict
        Geometry used to place lesions and hard negatives (vessel chains, bones, bladder, ...).
    params : dict
        The drawn patient parameters (scales, fat, bladder fill, uptake factors).
    """

    frame: Frame
    fat_mm: float
    structures: list[Structure]
    suv: np.ndarray
    landmarks: dict[str, Vec3]
    hot: list[Primitive]
    sites: dict[str, Any] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)

    def outline(self, margin: float = 0.0) -> Outline:
        """The skin surface moved ``margin`` mm inwards (reference coordinates)."""
        return Outline(self.fat_mm - margin)

    def inside_body(self, points_world: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether world points ``(N, 3)`` lie inside the body at least ``margin`` mm (about) from the skin."""
        p = self.frame.to_ref(np.atleast_2d(points_world))
        return self.outline(margin / self.frame.s_w).rnorm(p[:, 0], p[:, 1], p[:, 2]) <= 1.0

    def near_hot(self, points_world: np.ndarray, margin: float) -> np.ndarray:
        """Whether world points lie within (about) ``margin`` mm of a high-uptake structure."""
        p = self.frame.to_ref(np.atleast_2d(points_world))
        out = np.zeros(len(p), dtype=bool)
        for prim in self.hot:
            out |= prim.contains(p, margin / self.frame.s_w)
        return out


_SOFT = (CODE["muscle"], CODE["visceral_fat"], CODE["fat"])
_INNER = (CODE["muscle"], CODE["visceral_fat"])


def _sym(x: float, side: int) -> float:
    return x * side


def _vertebrae() -> list[tuple[str, float, Vec3]]:
    """(name, h, semi-axes) of C2..L5 vertebral bodies."""
    out: list[tuple[str, float, Vec3]] = []
    for i, h in enumerate([1125, 1090, 1055, 1020, 985]):
        out.append((f"L{i + 1}", float(h), (22.0, 17.0, 13.0)))
    th = np.linspace(1158, 1425, 12)
    for i, h in enumerate(th):  # T12 .. T1
        f = i / 11
        semi = (20 - 6 * f, 16 - 4 * f, 11 - 2 * f)
        out.append((f"T{12 - i}", float(h), (float(semi[0]), float(semi[1]), float(semi[2]))))
    for i, h in enumerate([1447, 1463, 1479, 1495, 1511, 1527]):
        out.append((f"C{7 - i}", float(h), (10.0, 8.0, 6.0)))
    return out


def _rib_path(k: int, side: int) -> list[Vec3]:
    """Centre line of rib ``k`` (1..12) on ``side`` (+1 right, -1 left)."""
    h0 = float(np.interp(k, [1, 12], [1425, 1158]))
    a_lean = float(np.interp(h0, _H, _A))
    b_lean = float(np.interp(h0, _H, _B))
    yc = float(np.interp(h0, _H, _YC))
    ar = min(a_lean - 14, float(np.interp(h0, [1160, 1300, 1380, 1425], [125, 128, 110, 75])))
    br = min(b_lean - 12, float(np.interp(h0, [1160, 1300, 1380, 1425], [88, 90, 82, 62])))
    ys = float(spine_y(h0))
    phi0 = float(np.arcsin(min(0.95, 32.0 / ar)))
    phi1 = np.pi * float(np.interp(k, [1, 7, 8, 10, 11, 12], [0.86, 0.86, 0.78, 0.7, 0.55, 0.42]))
    drop = float(np.interp(k, [1, 6, 12], [30, 60, 35]))
    pts: list[Vec3] = []
    for phi in np.linspace(phi0, phi1, 14):
        y = yc - br * np.cos(phi)
        y = max(y, ys - 8.0) if phi < 0.6 else y
        pts.append((side * ar * float(np.sin(phi)), float(y), h0 - drop * float(phi / np.pi)))
    return pts


def _bowel_loops(
    rng: np.random.Generator, n_loops: int = 6, steps: int = 12, step_mm: float = 15.0
) -> list[list[Vec3]]:
    """Random-walk centre lines of small-bowel loops in the mid-abdomen (reflecting at the box)."""
    lo = np.array([-75.0, -5.0, 955.0])
    hi = np.array([75.0, 65.0, 1105.0])
    loops = []
    for _ in range(n_loops):
        p = lo + (hi - lo) * rng.random(3)
        d = rng.standard_normal(3)
        d /= np.linalg.norm(d)
        pts = [tuple(float(v) for v in p)]
        for _ in range(steps):
            d = d + 0.9 * rng.standard_normal(3)
            d /= np.linalg.norm(d)
            q = p + step_mm * d
            for i in range(3):
                if q[i] < lo[i] or q[i] > hi[i]:
                    d[i] = -d[i]
                    q[i] = np.clip(q[i], lo[i], hi[i])
            p = q
            pts.append(tuple(float(v) for v in p))
        loops.append(pts)  # type: ignore[arg-type]
    return loops  # type: ignore[return-value]


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's anatomy (a pure function of ``rng``).

    Patient variation: width scale ``s_w ~ U(0.88, 1.08)``, height scale ``s_z ~ U(0.9, 0.985)``,
    subcutaneous fat ``U(6, 32)`` mm, organ centres jittered by ``N(0, 4 mm)``, liver / spleen /
    kidney size ``x U(0.9, 1.1)``, bladder volume ``x U(0.5, 1.6)``, six random small-bowel loops,
    colon gas pockets, and per-tissue SUV factors ``lognormal(0, CV)`` (CVs of
    :mod:`pcatools.data.phantom.tissues`).
    """
    s_w = float(rng.uniform(0.88, 1.08))
    s_z = float(rng.uniform(0.9, 0.985))
    fat = float(rng.uniform(6.0, 32.0))
    organ_scale = rng.uniform(0.9, 1.1, size=3)
    jitter = rng.normal(0.0, 4.0, size=(8, 3))
    fill = float(rng.uniform(0.5, 1.6))
    suv = SUV_MEAN * np.exp(rng.standard_normal(N_TISSUES) * np.log1p(SUV_CV) - np.log1p(SUV_CV) ** 2 / 2)
    loops = _bowel_loops(rng)
    gas_t = rng.uniform(0.05, 0.95, size=5)
    gas_r = rng.uniform(8.0, 14.0, size=5)
    frame = Frame(s_w, s_z)

    def jit(p: Sequence[float], i: int) -> Vec3:
        return (float(p[0] + jitter[i, 0]), float(p[1] + jitter[i, 1]), float(p[2] + jitter[i, 2]))

    c = CODE
    S: list[Structure] = []
    landmarks: dict[str, Vec3] = {}
    hot: list[Primitive] = []
    sites: dict[str, Any] = {}

    S.append(Structure("body", [Outline(fat)], c["fat"]))
    S.append(Structure("lean", [Outline(0.0)], c["muscle"], within=(c["fat"],)))
    S.append(Structure("cavity", [Cavity()], c["visceral_fat"], within=(c["muscle"],)))
    S.append(
        Structure(
            "mediastinal_fat",
            [Ellipsoid((0.0, 15.0, 1350.0), (35.0, 40.0, 90.0))],
            c["visceral_fat"],
            within=(c["muscle"],),
        )
    )
    # muscles
    paraspinal = []
    psoas = []
    for side in (1, -1):
        paraspinal += polyline(
            [(side * 38.0, float(spine_y(h)) - 42.0, h) for h in (960.0, 1100.0, 1250.0, 1400.0, 1445.0)],
            24.0,
        )
        psoas += polyline(
            [(side * 34.0, -44.0, 1125.0), (side * 48.0, -35.0, 1010.0), (side * 62.0, -12.0, 930.0)], 18.0
        )
    S.append(Structure("paraspinal", paraspinal, c["muscle"], within=(c["visceral_fat"], c["fat"])))
    S.append(Structure("psoas", psoas, c["muscle"], within=(c["visceral_fat"],)))
    glutes = [Ellipsoid((side * 95.0, -62.0, 935.0), (60.0, 40.0, 65.0)) for side in (1, -1)]
    S.append(Structure("glutes", glutes, c["muscle"], within=(c["visceral_fat"],)))
    # chest
    lungs = [
        Ellipsoid((72.0, -8.0, 1320.0), (60.0, 78.0, 150.0)),
        Ellipsoid((-75.0, -8.0, 1325.0), (55.0, 78.0, 145.0)),
    ]
    S.append(Structure("lungs", lungs, c["lung"], within=_INNER))
    landmarks["lung_r"] = (72.0, -8.0, 1330.0)
    landmarks["lung_l"] = (-80.0, -8.0, 1335.0)
    S.append(
        Structure(
            "trachea",
            [Capsule((0.0, 12.0, 1330.0), (0.0, 8.0, 1530.0), 9.0)],
            c["airway"],
            within=_SOFT + (c["lung"],),
        )
    )
    # abdominal organs
    ks = organ_scale
    liver_c = jit((58.0, 2.0, 1168.0), 0)
    liver = [
        Ellipsoid(liver_c, (72.0 * ks[0], 80.0 * ks[0], 70.0 * ks[0])),
        Ellipsoid((liver_c[0] - 70.0, liver_c[1] + 36.0, liver_c[2] + 15.0), (55.0 * ks[0], 38.0, 38.0)),
    ]
    S.append(Structure("liver", liver, c["liver"], within=_INNER + (c["lung"],)))
    landmarks["liver"] = liver_c
    spleen_c = jit((-88.0, -42.0, 1168.0), 1)
    spleen = [Ellipsoid(spleen_c, (26.0 * ks[1], 48.0 * ks[1], 50.0 * ks[1]), rotation("z", 35.0))]
    S.append(Structure("spleen", spleen, c["spleen"], within=_INNER + (c["lung"],)))
    landmarks["spleen"] = spleen_c
    stomach_c = (-45.0, 30.0, 1185.0)
    S.append(
        Structure(
            "stomach", [Ellipsoid(stomach_c, (40.0, 30.0, 45.0))], c["stomach"], within=_INNER + (c["lung"],)
        )
    )
    S.append(
        Structure(
            "stomach_gas",
            [Ellipsoid((-50.0, 42.0, 1212.0), (22.0, 16.0, 14.0))],
            c["bowel_gas"],
            within=(c["stomach"],),
        )
    )
    kidneys, pelves, ureters = [], [], []
    for i, side in enumerate((1, -1)):
        kc = jit((side * 62.0, -38.0, 1048.0 + 20.0 * (side < 0)), 2 + i)
        rot = rotation("z", side * 25.0) @ rotation("y", -side * 12.0)
        kidneys.append(Ellipsoid(kc, (27.0 * ks[2], 24.0 * ks[2], 55.0 * ks[2]), rot))
        pc = (kc[0] - side * 9.0, kc[1] + 3.0, kc[2] - 3.0)
        pelves.append(Ellipsoid(pc, (10.0, 9.0, 26.0), rot))
        path = [
            (pc[0] - side * 4.0, pc[1] + 4.0, pc[2] - 18.0),
            (side * 45.0, -22.0, 1000.0),
            (side * 42.0, -16.0, 960.0),
            (side * 52.0, -12.0, 925.0),
            (side * 40.0, 6.0, 905.0),
            (side * 22.0, 20.0, 912.0),
        ]
        ureters.append(path)
        landmarks["kidney_r" if side > 0 else "kidney_l"] = kc
    S.append(Structure("kidneys", kidneys, c["kidney"], within=_INNER))
    S.append(Structure("renal_pelvis", pelves, c["renal_pelvis"], within=(c["kidney"],)))
    ureter_prims = [p for path in ureters for p in polyline(path, 4.0)]
    S.append(Structure("ureters", ureter_prims, c["ureter"], within=_INNER))
    colon_path = [
        (95.0, 5.0, 965.0),
        (100.0, 0.0, 1110.0),
        (82.0, 45.0, 1150.0),
        (0.0, 58.0, 1115.0),
        (-78.0, 42.0, 1160.0),
        (-100.0, -5.0, 1175.0),
        (-105.0, -10.0, 1000.0),
        (-70.0, 10.0, 950.0),
        (-22.0, -12.0, 930.0),
        (0.0, -42.0, 905.0),
        (0.0, -45.0, 868.0),
    ]
    colon = polyline(colon_path, 19.0)
    S.append(Structure("colon", colon, c["colon"], within=(c["visceral_fat"], c["muscle"])))
    seg_len = np.cumsum(
        [0.0]
        + [
            float(np.linalg.norm(np.subtract(colon_path[i + 1], colon_path[i])))
            for i in range(len(colon_path) - 1)
        ]
    )
    gas = []
    for t, r in zip(gas_t, gas_r, strict=True):
        s = t * seg_len[-1]
        i = int(np.searchsorted(seg_len, s, side="right") - 1)
        i = min(i, len(colon_path) - 2)
        f = (s - seg_len[i]) / (seg_len[i + 1] - seg_len[i])
        p = np.add(colon_path[i], f * np.subtract(colon_path[i + 1], colon_path[i]))
        gas.append(Ellipsoid((float(p[0]), float(p[1]) + 5.0, float(p[2])), (r, r * 0.8, r)))
    S.append(Structure("colon_gas", gas, c["bowel_gas"], within=(c["colon"],)))
    bowel = [p for loop in loops for p in polyline(loop, 10.0)]
    S.append(Structure("small_bowel", bowel, c["small_bowel"], within=(c["visceral_fat"],)))
    bl_s = fill ** (1 / 3)
    bladder = Ellipsoid((0.0, 28.0, 935.0), (45.0 * bl_s, 40.0 * bl_s, 35.0 * bl_s))
    S.append(
        Structure(
            "bladder", [bladder], c["bladder"], within=_INNER + (c["small_bowel"], c["colon"], c["bowel_gas"])
        )
    )
    landmarks["bladder"] = bladder.center
    # vessels and heart
    aorta_path = [
        (-5.0, 25.0, 1300.0),
        (-5.0, 15.0, 1370.0),
        (-15.0, -10.0, 1385.0),
        (-25.0, -45.0, 1365.0),
        (-25.0, -45.0, 1250.0),
        (-15.0, -10.0, 1150.0),
        (-10.0, -4.0, 1020.0),
    ]
    ivc_path = [(20.0, 0.0, 1020.0), (22.0, -3.0, 1150.0), (25.0, -8.0, 1235.0)]
    vessels = polyline(aorta_path, 11.0) + polyline(ivc_path, 11.0)
    iliac_chains = {}
    for side in (1, -1):
        common = [(-10.0, -4.0, 1020.0), (side * 45.0, -25.0, 965.0)]
        external = [(side * 45.0, -25.0, 965.0), (side * 68.0, 0.0, 920.0), (side * 75.0, 20.0, 885.0)]
        internal = [(side * 45.0, -25.0, 965.0), (side * 52.0, -45.0, 930.0)]
        obturator = [(side * 58.0, 0.0, 930.0), (side * 52.0, 14.0, 895.0)]
        vessels += polyline(common, 7.0) + polyline(external, 6.0) + polyline(internal, 5.0)
        iliac_chains[side] = [(common, 7.0), (external, 6.0), (internal, 5.0), (obturator, 3.0)]
    S.append(
        Structure(
            "vessels",
            vessels,
            c["blood"],
            within=_INNER + (c["liver"], c["lung"], c["small_bowel"], c["colon"]),
        )
    )
    heart_c = (-20.0, 25.0, 1268.0)
    S.append(
        Structure(
            "heart",
            [Ellipsoid(heart_c, (55.0, 46.0, 58.0), rotation("z", 30.0))],
            c["blood"],
            within=_INNER + (c["lung"], c["liver"], c["stomach"]),
        )
    )
    landmarks["heart"] = heart_c
    landmarks["aorta"] = (-12.0, -6.0, 1070.0)
    # skeleton
    verts = _vertebrae()
    bodies, arches, canal_pts = [], [], []
    vert_prims: dict[str, Ellipsoid] = {}
    for name, h, semi in verts:
        ys = float(spine_y(h))
        e = Ellipsoid((0.0, ys, h), semi)
        bodies.append(e)
        vert_prims[name] = e
        arches.append(Ellipsoid((0.0, ys - semi[1] - 16.0, h), (semi[0] * 0.9, 6.0, semi[2])))
        arches.append(Ellipsoid((0.0, ys - semi[1] - 28.0, h - semi[2] * 0.3), (4.0, 12.0, semi[2] * 0.7)))
        if name.startswith("L"):
            arches.append(Ellipsoid((0.0, ys - semi[1] - 10.0, h), (semi[0] + 18.0, 5.0, 5.0)))
        canal_pts.append((0.0, ys - semi[1] - 7.0, h))
    landmarks["vertebra_L3"] = vert_prims["L3"].center
    sacrum = Ellipsoid((0.0, -58.0, 935.0), (48.0, 16.0, 50.0), rotation("x", -20.0))
    pelvis: dict[str, list[Primitive]] = {
        "femur": [],
        "iliac": [],
        "acetabulum": [],
        "pubis": [],
    }  # paint order
    femur_shafts, femur_marrow = [], []
    for side in (1, -1):
        pelvis["iliac"].append(
            Ellipsoid((side * 80.0, -30.0, 1000.0), (8.0, 55.0, 50.0), rotation("z", -side * 35.0))
        )
        pelvis["acetabulum"].append(Ellipsoid((side * 78.0, -5.0, 945.0), (22.0, 28.0, 28.0)))
        pelvis["pubis"] += [
            Capsule((side * 75.0, 10.0, 925.0), (side * 4.0, 55.0, 893.0), 10.0),
            Capsule((side * 8.0, 52.0, 882.0), (side * 55.0, 5.0, 862.0), 8.0),
            Capsule((side * 75.0, -10.0, 930.0), (side * 60.0, -25.0, 868.0), 13.0),
            Ellipsoid((side * 58.0, -25.0, 865.0), (14.0, 20.0, 18.0)),
        ]
        pelvis["femur"] += [
            Ellipsoid((side * 88.0, 0.0, 925.0), (24.0, 24.0, 24.0)),
            Capsule((side * 88.0, 0.0, 925.0), (side * 120.0, -5.0, 895.0), 15.0),
            Ellipsoid((side * 128.0, -12.0, 898.0), (17.0, 20.0, 24.0)),
        ]
        femur_shafts.append(Capsule((side * 125.0, -5.0, 890.0), (side * 100.0, 5.0, 740.0), 14.0))
        femur_marrow.append(Capsule((side * 125.0, -5.0, 880.0), (side * 100.0, 5.0, 740.0), 8.0))
    landmarks["femoral_head_r"] = (88.0, 0.0, 925.0)
    ribs: dict[str, list[Capsule]] = {}
    for k in range(1, 13):
        for side in (1, -1):
            ribs[f"rib{k}{'R' if side > 0 else 'L'}"] = polyline(_rib_path(k, side), 5.5)
    sternum = [Capsule((0.0, 74.0, 1405.0), (0.0, 86.0, 1255.0), 9.0)]
    clavicles = [
        p
        for side in (1, -1)
        for p in polyline(
            [(side * 15.0, 62.0, 1432.0), (side * 80.0, 38.0, 1448.0), (side * 140.0, 5.0, 1440.0)], 7.0
        )
    ]
    scapulae = [
        Ellipsoid((side * 105.0, -70.0, 1370.0), (45.0, 7.0, 62.0), rotation("z", side * 25.0))
        for side in (1, -1)
    ]
    skull = Ellipsoid((0.0, -5.0, 1652.0), (69.0, 86.0, 100.0))
    mandible = [
        p
        for side in (1, -1)
        for p in polyline(
            [
                (side * 44.0, 4.0, 1592.0),
                (side * 44.0, 10.0, 1545.0),
                (side * 30.0, 55.0, 1525.0),
                (0.0, 72.0, 1522.0),
            ],
            8.0,
        )
    ]
    bone_within = _SOFT + (c["visceral_fat"], c["lung"], c["blood"], c["colon"], c["small_bowel"], c["liver"])
    shell = (2.5, c["cortical_bone"])
    S.append(Structure("vertebrae", bodies + arches, c["bone"], within=bone_within, shell=shell))
    S.append(Structure("sacrum", [sacrum], c["bone"], within=bone_within, shell=shell))
    S.append(
        Structure(
            "pelvis", [p for v in pelvis.values() for p in v], c["bone"], within=bone_within, shell=shell
        )
    )
    S.append(Structure("femur_shaft", femur_shafts, c["cortical_bone"], within=bone_within))
    S.append(Structure("femur_marrow", femur_marrow, c["fatty_marrow"], within=(c["cortical_bone"],)))
    S.append(
        Structure(
            "ribs",
            [p for v in ribs.values() for p in v] + sternum + clavicles,
            c["bone"],
            within=bone_within,
            shell=(1.5, c["cortical_bone"]),
        )
    )
    S.append(Structure("scapulae", scapulae, c["bone"], within=bone_within, shell=shell))
    S.append(Structure("skull", [skull], None, within=_SOFT, shell=(7.0, c["cortical_bone"]), hmin=1585.0))
    S.append(Structure("mandible", mandible, c["bone"], within=_SOFT, shell=shell))
    S.append(
        Structure(
            "canal",
            polyline(sorted(canal_pts, key=lambda p: p[2]), 7.0),
            c["csf"],
            within=(c["bone"], c["cortical_bone"], c["muscle"], c["visceral_fat"]),
        )
    )
    brain_c = (0.0, -8.0, 1675.0)
    S.append(
        Structure(
            "brain", [Ellipsoid(brain_c, (61.0, 78.0, 70.0))], c["brain"], within=(c["muscle"],), hmin=1605.0
        )
    )
    landmarks["brain"] = brain_c
    eyes = [Ellipsoid((side * 32.0, 62.0, 1650.0), (12.0, 12.0, 12.0)) for side in (1, -1)]
    S.append(Structure("eyes", eyes, c["csf"], within=_SOFT + (c["brain"],)))
    parotid = [Ellipsoid((side * 55.0, -14.0, 1585.0), (12.0, 20.0, 26.0)) for side in (1, -1)]
    subm = [Ellipsoid((side * 28.0, 22.0, 1545.0), (11.0, 13.0, 10.0)) for side in (1, -1)]
    lacrimal = [Ellipsoid((side * 30.0, 64.0, 1668.0), (8.0, 5.0, 5.0)) for side in (1, -1)]
    gl_within = _SOFT + (c["brain"], c["csf"])
    S.append(Structure("parotid", parotid, c["parotid"], within=gl_within))
    S.append(Structure("submandibular", subm, c["submandibular"], within=gl_within))
    S.append(Structure("lacrimal", lacrimal, c["lacrimal"], within=gl_within))
    landmarks["parotid_r"] = parotid[0].center
    landmarks["submandibular_r"] = subm[0].center

    hot += [*kidneys, bladder, *ureter_prims, *bowel, *liver, *spleen, *parotid, *subm]
    sites["bladder"] = bladder
    sites["iliac_chains"] = iliac_chains
    sites["aorta"] = ((-10.0, -4.0, 1020.0), (-15.0, -10.0, 1150.0), 11.0)
    sites["ivc"] = ((20.0, 0.0, 1020.0), (22.0, -3.0, 1150.0), 11.0)
    sites["bones"] = {
        "spine": [vert_prims[n] for n in vert_prims if n[0] in "TL"],
        "sacrum": [sacrum],
        "iliac": pelvis["iliac"],
        "acetabulum": pelvis["acetabulum"],
        "pubis": pelvis["pubis"],
        "femur": pelvis["femur"][0::3],
        "rib": [p for v in ribs.values() for p in v[2:-3]],
    }
    sites["ureters"] = ureters
    sites["bowel_loops"] = loops
    sites["vert_prims"] = vert_prims
    params = {
        "s_w": s_w,
        "s_z": s_z,
        "fat_mm": fat,
        "bladder_fill": fill,
        **{f"suv_{k}": float(suv[v]) for k, v in CODE.items() if SUV_MEAN[v] > 0},
    }
    return Anatomy(frame, fat, S, suv, landmarks, hot, sites, params)


_CHUNK_VOXELS = 2_000_000


def paint_tissues(anatomy: Anatomy, grid: Grid) -> np.ndarray:
    """Tissue map (``uint8`` codes, shape ``grid.shape``) of ``anatomy`` on ``grid``.

    Each primitive is evaluated only in its bounding box (large ones in chunks of slices).
    """
    tmap = np.zeros(grid.shape, dtype=np.uint8)
    for st in anatomy.structures:
        allowed = None
        if st.within is not None:
            allowed = np.zeros(256, dtype=bool)
            allowed[list(st.within)] = True
        for prim in st.prims:
            paint_primitive(tmap, grid, anatomy.frame, prim, st.tissue, allowed, st.shell, st.hmin)
    return tmap


def paint_primitive(
    tmap: np.ndarray,
    grid: Grid,
    frame: Frame,
    prim: Primitive,
    tissue: int | None,
    allowed: np.ndarray | None = None,
    shell: tuple[float, int] | None = None,
    hmin: float = -np.inf,
) -> None:
    """Paint one primitive into ``tmap`` (in place), inside its bounding box only."""
    lo, hi = prim.bounds()
    lo = lo.copy()
    lo[2] = max(lo[2], hmin)
    if lo[2] > hi[2]:
        return
    box = grid.box(frame.to_world(lo), frame.to_world(hi))
    if box is None:
        return
    nx, ny = box[0].stop - box[0].start, box[1].stop - box[1].start
    step = max(1, _CHUNK_VOXELS // max(1, nx * ny))
    for z0 in range(box[2].start, box[2].stop, step):
        sub_box = (box[0], box[1], slice(z0, min(z0 + step, box[2].stop)))
        x, y, h = frame.ref_axes(grid, sub_box)
        r = prim.rnorm(x, y, h)
        inside = r <= 1.0
        if hmin > -np.inf:
            inside = inside & (h >= hmin)
        sub = tmap[sub_box]
        if allowed is not None:
            inside &= allowed[sub]
        if shell is None:
            if tissue is not None:
                sub[inside] = tissue
            continue
        core = r <= 1.0 - shell[0] / (prim.thickness_scale * frame.s_w)
        sub[inside & ~core] = shell[1]
        if tissue is not None:
            sub[inside & core] = tissue
