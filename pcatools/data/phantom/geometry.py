"""Voxel grid, patient reference frame and the solid primitives the phantom is built from.

Two coordinate systems:

- **world** (RAS+ mm, the NIfTI affine's output): ``x`` toward the patient's right, ``y``
  anterior, ``z`` superior; ``z = 0`` at the lower edge of the field of view (upper thighs).
- **reference** (``xr, yr, h``): the body of a reference man 1750 mm tall, standing; ``h`` is the
  height above the floor in mm. A patient is the reference body scaled: ``x = s_w xr``,
  ``y = s_w yr``, ``z = s_z (h - H0)``. Anatomy is written once in reference coordinates and each
  voxel is evaluated there, which keeps every primitive exact under the patient's scaling.

Primitives (:class:`Ellipsoid`, :class:`Capsule`) give a *normalised radius* ``r`` for points
(``r <= 1`` inside, ``r == 1`` on the surface), evaluated on broadcast 1-D coordinate vectors
restricted to the primitive's bounding box, so that painting ~150 primitives into a 2.6 M voxel
grid touches only the voxels they cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

H0 = 790.0
"""Reference height (mm above the floor) of the lower edge of the field of view (upper thighs)."""

Vec3 = tuple[float, float, float]
"""A point or vector (x, y, z) in mm."""


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid: ``shape`` voxels of ``spacing`` mm, voxel (0, 0, 0) at ``origin`` (world mm)."""

    shape: tuple[int, int, int]
    spacing: Vec3
    origin: Vec3

    @classmethod
    def from_fov(cls, fov_mm: Sequence[float], spacing: Sequence[float]) -> Grid:
        """Grid covering ``fov_mm`` (x, y, z), centred on ``x = y = 0``, starting at ``z = 0``.

        Examples
        --------
        >>> g = Grid.from_fov((500, 352, 960), (4, 4, 4))
        >>> g.shape, g.origin
        ((125, 88, 240), (-248.0, -174.0, 2.0))
        """
        sp = _check_vec(spacing, "spacing")
        fov = _check_vec(fov_mm, "fov_mm")
        shape = tuple(max(1, round(f / s)) for f, s in zip(fov, sp, strict=True))
        origin = (-(shape[0] - 1) * sp[0] / 2, -(shape[1] - 1) * sp[1] / 2, sp[2] / 2)
        return cls(shape, sp, origin)  # type: ignore[arg-type]

    @property
    def affine(self) -> np.ndarray:
        """Voxel index -> world (RAS+ mm) 4 x 4 affine."""
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in ml."""
        return float(np.prod(self.spacing)) / 1000.0

    def axis(self, i: int, sl: slice = slice(None)) -> np.ndarray:
        """World coordinates (mm, float64) of the voxel centres along axis ``i`` (optionally a slice)."""
        idx = np.arange(self.shape[i], dtype=np.float64)[sl]
        return self.origin[i] + idx * self.spacing[i]

    def box(
        self, lo: Sequence[float] | np.ndarray, hi: Sequence[float] | np.ndarray
    ) -> tuple[slice, slice, slice] | None:
        """Index slices of the voxels whose centres lie in the world box ``[lo, hi]``; None if empty."""
        out = []
        for i in range(3):
            a = int(np.ceil((lo[i] - self.origin[i]) / self.spacing[i] - 1e-9))
            b = int(np.floor((hi[i] - self.origin[i]) / self.spacing[i] + 1e-9)) + 1
            a, b = max(a, 0), min(b, self.shape[i])
            if b <= a:
                return None
            out.append(slice(a, b))
        return out[0], out[1], out[2]

    def index(self, point: Sequence[float]) -> tuple[int, int, int]:
        """Nearest voxel index of a world point (clipped to the grid)."""
        return tuple(  # type: ignore[return-value]
            int(np.clip(round((point[i] - self.origin[i]) / self.spacing[i]), 0, self.shape[i] - 1))
            for i in range(3)
        )


@dataclass(frozen=True)
class Frame:
    """Patient scaling between reference coordinates and world mm: ``x = s_w xr``, ``z = s_z (h - H0)``."""

    s_w: float = 1.0
    s_z: float = 1.0

    def to_world(self, p: np.ndarray) -> np.ndarray:
        """Reference points ``(..., 3)`` -> world mm."""
        p = np.asarray(p, dtype=np.float64)
        return np.stack([p[..., 0] * self.s_w, p[..., 1] * self.s_w, (p[..., 2] - H0) * self.s_z], axis=-1)

    def to_ref(self, p: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` -> reference coordinates."""
        p = np.asarray(p, dtype=np.float64)
        return np.stack([p[..., 0] / self.s_w, p[..., 1] / self.s_w, p[..., 2] / self.s_z + H0], axis=-1)

    def ref_axes(
        self, grid: Grid, box: tuple[slice, slice, slice]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reference coordinates of the voxels in ``box``, as broadcastable ``(X,1,1), (1,Y,1), (1,1,Z)``."""
        x = grid.axis(0, box[0]) / self.s_w
        y = grid.axis(1, box[1]) / self.s_w
        h = grid.axis(2, box[2]) / self.s_z + H0
        return x[:, None, None], y[None, :, None], h[None, None, :]


def rotation(axis: str, degrees: float) -> np.ndarray:
    """3 x 3 rotation matrix about ``x``, ``y`` or ``z`` (right-handed)."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    raise ValueError(f"rotation axis: expected 'x', 'y' or 'z', found {axis!r}")


def quaternion_matrix(q: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a (not necessarily normalised) quaternion ``(w, x, y, z)``."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


class Primitive:
    """A solid with a normalised radius ``r`` (<= 1 inside) and an axis-aligned bounding box."""

    def rnorm(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    @property
    def thickness_scale(self) -> float:
        """mm per unit of ``r`` at the surface (for shells of a given thickness)."""
        raise NotImplementedError  # pragma: no cover

    def contains(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether points ``(N, 3)`` lie inside the solid grown by ``margin`` mm (approximately)."""
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        return self.rnorm(p[:, 0], p[:, 1], p[:, 2]) <= 1.0 + margin / self.thickness_scale


@dataclass(frozen=True, eq=False)
class Ellipsoid(Primitive):
    """Ellipsoid with ``center``, semi-axes ``semi`` (mm) and optional rotation ``rot`` (3 x 3).

    ``r = sqrt(sum_k (u_k / a_k)^2)`` with ``u = rot^T (p - center)``.
    """

    center: Vec3
    semi: Vec3
    rot: np.ndarray | None = None

    def rnorm(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        dx, dy, dz = x - self.center[0], y - self.center[1], z - self.center[2]
        if self.rot is None:
            return np.sqrt((dx / self.semi[0]) ** 2 + (dy / self.semi[1]) ** 2 + (dz / self.semi[2]) ** 2)
        r2 = 0.0
        for k in range(3):
            u = self.rot[0, k] * dx + self.rot[1, k] * dy + self.rot[2, k] * dz
            r2 = r2 + (u / self.semi[k]) ** 2
        return np.sqrt(r2)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(self.center, dtype=np.float64)
        if self.rot is None:
            half = np.asarray(self.semi, dtype=np.float64)
        else:  # exact half-widths of a rotated ellipsoid
            half = np.sqrt(((self.rot * np.asarray(self.semi)[None, :]) ** 2).sum(axis=1))
        return c - half, c + half

    @property
    def thickness_scale(self) -> float:
        return float(min(self.semi))


@dataclass(frozen=True, eq=False)
class Capsule(Primitive):
    """Segment ``p0``-``p1`` swept by a sphere of ``radius`` mm; ``r = distance / radius``."""

    p0: Vec3
    p1: Vec3
    radius: float

    def rnorm(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        a = np.asarray(self.p0, dtype=np.float64)
        d = np.asarray(self.p1, dtype=np.float64) - a
        dd = float(d @ d)
        px, py, pz = x - a[0], y - a[1], z - a[2]
        t = (px * d[0] + py * d[1] + pz * d[2]) / dd if dd > 0 else 0.0 * px
        t = np.clip(t, 0.0, 1.0)
        return np.sqrt((px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (pz - t * d[2]) ** 2) / self.radius

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.asarray(self.p0, dtype=np.float64), np.asarray(self.p1, dtype=np.float64)
        return np.minimum(a, b) - self.radius, np.maximum(a, b) + self.radius

    @property
    def thickness_scale(self) -> float:
        return float(self.radius)


def polyline(points: Sequence[Sequence[float]], radius: float) -> list[Capsule]:
    """A tube through ``points`` as a chain of capsules."""
    pts = [tuple(float(v) for v in p) for p in points]
    return [Capsule(pts[i], pts[i + 1], radius) for i in range(len(pts) - 1)]  # type: ignore[arg-type]


def _check_vec(v: Sequence[float], name: str) -> Vec3:
    try:
        out = tuple(float(a) for a in v)
    except TypeError as err:
        raise ValueError(f"{name}: expected three positive numbers (x, y, z) in mm, found {v!r}") from err
    if len(out) != 3 or not all(np.isfinite(a) and a > 0 for a in out):
        raise ValueError(f"{name}: expected three positive numbers (x, y, z) in mm, found {v!r}")
    return out  # type: ignore[return-value]
