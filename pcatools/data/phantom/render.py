"""Rendering one phantom case: tissue map -> CT (HU) and PET (SUVbw) with lesions, blur and noise.

:func:`make_case` is the public entry point. Steps, all seeded from one :class:`numpy.random.SeedSequence`
(independent child streams for anatomy, lesions, placement, hard negatives, CT noise, PET texture and
PET noise, so changing the spacing changes none of the drawn parameters):

1. draw the patient (:func:`~pcatools.data.phantom.anatomy.draw_anatomy`) and the lesion
   parameters (:func:`~pcatools.data.phantom.lesions.draw_lesions`), place the lesions and the hard
   negatives (:mod:`~pcatools.data.phantom.placement`), all in mm;
2. paint the tissue map on the grid; CT = tissue HU + Gaussian noise (tissue SD);
3. PET activity = tissue SUV x a smooth texture (+-8 %), hard negatives painted in; inside each
   lesion mask the tissue activity is *replaced* by the lesion's uptake profile
   ``exp(-rho^2 / (2 w^2))`` (``rho`` = normalised ellipsoidal radius, ``w`` = ``profile_width``);
4. blur with the scanner PSF, a Gaussian of ``fwhm_mm`` (``sigma = FWHM / (2 sqrt(2 ln 2))``);
5. noise: ``sd = noise * sqrt(S + 0.02)`` (Poisson-like; ``S`` the blurred image) times a
   unit-variance Gaussian field correlated over ``sigma = 2.5`` mm;
6. calibrate each lesion's amplitude so that the **SUVmax measured inside its mask on the final
   (blurred, noisy) image equals the drawn SUVmax**, exactly (see :func:`lesion_amplitude`).

**Lesion masks.** The mask is the lesion's true extent before blurring: the ``N`` voxels with the
smallest normalised ellipsoidal radius, ``N = round(V / v_voxel)``, so the mask volume equals the
drawn volume to within half a voxel (0.032 ml at 4 mm, 0.004 ml at 2 mm); the drawn volumes are
>= 0.2 ml, i.e. >= 3 voxels at 4 mm, and the mask keeps the ellipsoid's shape. Lesions are placed
so that masks never touch (18-connected components = requested lesions) and lie inside the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from pcatools.data.case import Case
from pcatools.data.phantom.anatomy import Anatomy, draw_anatomy, paint_tissues
from pcatools.data.phantom.geometry import Ellipsoid, Grid, Primitive
from pcatools.data.phantom.lesions import PAPER, CohortStats, draw_lesions
from pcatools.data.phantom.placement import (
    HardNegative,
    PlacedLesion,
    draw_hard_negatives,
    drop_near_lesions,
    place_lesions,
)
from pcatools.data.phantom.tissues import CODE, HU_MEAN, HU_SD

FOV_MM = (500.0, 352.0, 960.0)
"""Default field of view (x, y, z) in mm: vertex to upper thighs."""

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
"""Gaussian sigma per unit FWHM, ``1 / (2 sqrt(2 ln 2))``: the PET blur's sigma is ``fwhm_mm * FWHM_TO_SIGMA``."""
NOISE_CORRELATION_MM = 2.5
"""Correlation length (mm) of the PET noise field."""
TEXTURE_AMPLITUDE = 0.08
"""Relative amplitude of the PET uptake texture (a factor ``1 + 0.08 f`` on each voxel)."""
_STREAMS = ("anatomy", "lesions", "placement", "negatives", "ct_noise", "pet_texture", "pet_noise")
GENERATOR_VERSION = "1"
"""Version of the phantom generator, recorded in each case's ``meta`` and in the parameters its sidecar records."""


def seed_sequence(seed: int | Sequence[int] | np.random.SeedSequence) -> np.random.SeedSequence:
    """The seed as a SeedSequence: an int, a sequence of ints (e.g. ``(cohort_seed, i)``) or a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (int, np.integer)):
        if seed < 0:
            raise ValueError(f"seed: expected a non-negative integer, found {seed}")
        return np.random.SeedSequence(int(seed))
    try:
        values = [int(s) for s in seed]
    except TypeError as err:
        raise ValueError(f"seed: expected an int or a sequence of ints, found {seed!r}") from err
    if any(v < 0 for v in values):
        raise ValueError(f"seed: expected non-negative integers, found {values}")
    return np.random.SeedSequence(values)


def streams(seed: int | Sequence[int] | np.random.SeedSequence) -> dict[str, np.random.Generator]:
    """Independent generators, one per generation step, spawned from ``seed``."""
    children = seed_sequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(_STREAMS, children, strict=True)}


def world_eval(
    grid: Grid, prim: Primitive, pad_mm: float = 0.0
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Normalised radius of a world-coordinate primitive over its bounding box (grown by ``pad_mm``)."""
    lo, hi = prim.bounds()
    box = grid.box(lo - pad_mm, hi + pad_mm)
    if box is None:
        return None
    x = grid.axis(0, box[0])[:, None, None]
    y = grid.axis(1, box[1])[None, :, None]
    z = grid.axis(2, box[2])[None, None, :]
    return box, prim.rnorm(x, y, z)


def lesion_mask(
    grid: Grid, lesion: PlacedLesion
) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray]:
    """Voxel mask of a lesion (``N = max(1, round(V / v_voxel))`` voxels nearest its centre, in the
    ellipsoidal metric) in a bounding box; returns ``(box, mask, rho)`` with ``rho`` the normalised
    radius rescaled so that the outermost mask voxel has ``rho = 1``."""
    volume_ml = float(lesion.params["volume_ml"])  # type: ignore[arg-type]
    n = max(1, int(round(volume_ml / grid.voxel_ml)))
    ell = Ellipsoid(tuple(float(v) for v in lesion.center), lesion.semi, lesion.rot)  # type: ignore[arg-type]
    pad = 0.3 * lesion.radius + 2.0 * max(grid.spacing)
    out = world_eval(grid, ell, pad)
    if out is None:
        raise ValueError(f"lesion at {lesion.center} mm lies outside the grid")
    box, r = out
    for i in range(3):
        if box[i].start == 0 or box[i].stop == grid.shape[i]:
            raise ValueError(
                f"lesion at {lesion.center} mm (radius {lesion.radius:.1f} mm) touches the grid edge"
            )
    flat = r.ravel()
    if n > flat.size:
        raise ValueError(f"lesion of {volume_ml} ml does not fit its bounding box")
    order = np.argsort(flat, kind="stable")[:n]
    mask = np.zeros(flat.size, dtype=bool)
    mask[order] = True
    r_edge = float(flat[order[-1]])
    rho = r / r_edge if r_edge > 0 else np.zeros_like(r)
    return box, mask.reshape(r.shape), rho


def lesion_amplitude(target: float, background: np.ndarray, profile: np.ndarray) -> float:
    """Amplitude ``a`` such that ``max_i (background_i + a profile_i) = target`` over a lesion's mask voxels.

    ``g(a) = max_i (b_i + a p_i)`` is increasing in ``a`` (all ``p_i > 0``) and ``g(a) >= T`` iff some
    ``b_i + a p_i >= T``, so the smallest solution is ``a = min_i (T - b_i) / p_i``. The image's
    maximum inside the mask is then exactly ``T``.

    Examples
    --------
    >>> lesion_amplitude(10.0, np.array([1.0, 2.0]), np.array([1.0, 0.5]))
    9.0
    """
    p = np.asarray(profile, dtype=np.float64)
    if np.any(p <= 0):
        raise ValueError("lesion_amplitude: the blurred profile must be positive on every mask voxel")
    return float(np.min((target - np.asarray(background, dtype=np.float64)) / p))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: Sequence[float]) -> np.ndarray:
    """Unit-variance Gaussian noise correlated by a Gaussian kernel of ``sigma_vox`` (float32)."""
    z = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(z, sigma_vox, output=z, mode="wrap")
    var = 1.0
    for s in sigma_vox:  # variance of filtered white noise = product of sum(w^2) per axis
        if s > 0:
            imp = np.zeros(2 * int(4 * s + 0.5) + 1)
            imp[len(imp) // 2] = 1.0
            var *= float((ndimage.gaussian_filter1d(imp, s, mode="constant") ** 2).sum())
    z *= np.float32(1.0 / np.sqrt(var))
    return z


def _texture(rng: np.random.Generator, grid: Grid, cell_mm: float = 24.0) -> np.ndarray:
    """Smooth multiplicative field ``1 + A u`` (u ~ unit variance, correlated over ~ cell_mm)."""
    coarse_shape = tuple(
        max(2, int(np.ceil(n * s / cell_mm)) + 1) for n, s in zip(grid.shape, grid.spacing, strict=True)
    )
    c = rng.standard_normal(coarse_shape)
    c = ndimage.gaussian_filter(c, 0.8, mode="wrap")
    c /= c.std() + 1e-12
    zoom = [n / m for n, m in zip(grid.shape, coarse_shape, strict=True)]
    f = ndimage.zoom(c.astype(np.float32), zoom, order=1, mode="nearest", grid_mode=True)
    f = f[: grid.shape[0], : grid.shape[1], : grid.shape[2]]
    return np.float32(1.0) + np.float32(TEXTURE_AMPLITUDE) * f


def _paint_negatives(
    grid: Grid, negatives: list[HardNegative], activity: np.ndarray, tissue: np.ndarray
) -> None:
    soft = np.zeros(256, dtype=bool)
    soft[
        [
            CODE["visceral_fat"],
            CODE["fat"],
            CODE["muscle"],
            CODE["ureter"],
            CODE["bladder"],
            CODE["small_bowel"],
        ]
    ] = True
    for hn in negatives:
        out = world_eval(grid, hn.prim)
        if out is None:
            continue
        box, r = out
        inside = r <= 1.0
        if not inside.any():  # smaller than a voxel: its nearest voxel
            inside = r <= r.min()
        sub = activity[box]
        sub[inside] = np.maximum(sub[inside], hn.activity)
        if hn.tissue is not None:
            t = tissue[box]
            t[inside & soft[t]] = CODE[hn.tissue]


def make_case(
    seed: int | Sequence[int] | np.random.SeedSequence,
    spacing: Sequence[float] = (4.0, 4.0, 4.0),
    n_lesions: int | None = None,
    fwhm_mm: float = 6.0,
    lesion_free: bool = False,
    case_id: str | None = None,
    patient_id: str | None = None,
    hard_negatives: bool = True,
    noise: float = 0.2,
    fov_mm: Sequence[float] = FOV_MM,
    stats: CohortStats = PAPER,
) -> Case:
    """One synthetic whole-body PSMA PET/CT case (vertex to upper thighs).

    Parameters
    ----------
    seed : int, sequence of int or SeedSequence
        Everything random derives from it; the same seed gives the same bytes. The anatomy and
        the lesion parameters do not depend on ``spacing`` or ``fwhm_mm``.
    spacing : (3,) float
        Voxel size in mm (the paper's 2 mm, or 4 mm for fast CPU work).
    n_lesions : int or None
        Number of lesions; None draws it (P(1) = 34/57, mean 1.8; see
        :func:`~pcatools.data.phantom.lesions.lesion_count_pmf`).
    fwhm_mm : float
        Scanner point-spread function (Gaussian FWHM, mm).
    lesion_free : bool
        No lesions (the label is all zero); hard negatives stay.
    case_id, patient_id : str
        Ids (default ``"PSMA_<seed>"``; patient id defaults to the case id).
    hard_negatives : bool
        Add focal physiological uptake that is not in the label (ganglia, ureter, bowel, bladder edge).
    noise : float
        PET noise level ``k`` in ``sd = k sqrt(S + 0.02)`` (0 for a noise-free PET; CT noise stays).
    fov_mm : (3,) float
        Field of view (x, y, z) in mm.
    stats : CohortStats
        Lesion statistics to draw from (default: the paper's).

    Returns
    -------
    Case
        PET float32 SUVbw, CT float32 HU, label uint8, RAS affine. ``meta`` holds ``lesions`` (one
        dict per lesion: drawn parameters, centre in mm, measured ``mask_volume_ml``, ``suvmax``,
        ``suvmean``), ``hard_negatives``, ``anatomy`` (patient parameters), ``tissue`` (the tissue
        map, uint8 codes of :data:`~pcatools.data.phantom.tissues.TISSUES`), ``landmarks`` (organ
        centres in world mm) and the generation arguments.

    Examples
    --------
    >>> case = make_case(0)  # doctest: +SKIP
    >>> case.pet.shape, case.spacing  # doctest: +SKIP
    ((125, 88, 240), (4.0, 4.0, 4.0))
    """
    spacing_t = tuple(float(s) for s in spacing)
    if len(spacing_t) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing_t):
        raise ValueError(f"spacing: expected three positive numbers in mm (x, y, z), found {spacing!r}")
    if max(spacing_t) > 8.0:
        raise ValueError(
            f"spacing: expected at most 8 mm (lesions of 0.2 ml must keep >= 1 voxel), found {spacing_t}"
        )
    if not (np.isfinite(fwhm_mm) and 0 <= fwhm_mm <= 20):
        raise ValueError(f"fwhm_mm: expected a PSF FWHM in mm between 0 and 20, found {fwhm_mm!r}")
    if noise < 0:
        raise ValueError(f"noise: expected >= 0, found {noise}")
    ss = seed_sequence(seed)
    rng = streams(ss)
    if case_id is None:
        case_id = "PSMA_" + "_".join(str(v) for v in np.atleast_1d(ss.entropy))  # type: ignore[arg-type]
    grid = Grid.from_fov(fov_mm, spacing_t)

    anatomy = draw_anatomy(rng["anatomy"])
    table = draw_lesions(rng["lesions"], 1, n_lesions=0 if lesion_free else n_lesions, stats=stats)
    lesions = place_lesions(rng["placement"], anatomy, table, fwhm_mm=fwhm_mm)
    negatives = draw_hard_negatives(rng["negatives"], anatomy) if hard_negatives else []
    negatives, dropped = drop_near_lesions(negatives, lesions)

    tissue = paint_tissues(anatomy, grid)
    activity = (anatomy.suv.astype(np.float32)[tissue] * _texture(rng["pet_texture"], grid)).astype(
        np.float32
    )
    _paint_negatives(grid, negatives, activity, tissue)

    # lesion masks; CT and tissue of the lesion voxels
    ct_base = tissue.copy()
    label = np.zeros(grid.shape, dtype=np.uint8)
    masks = []
    for les in lesions:
        box, m, rho = lesion_mask(grid, les)
        if (label[box][m] > 0).any():
            raise RuntimeError("internal error: lesion masks overlap")
        label[box][m] = 1
        activity[box][m] = 0.0
        masks.append((box, m, rho))
    ct = HU_MEAN[ct_base] + HU_SD[ct_base] * rng["ct_noise"].standard_normal(grid.shape, dtype=np.float32)
    for les, (box, m, _) in zip(lesions, masks, strict=True):
        hu = float(les.params["ct_hu"])  # type: ignore[arg-type]
        if np.isfinite(hu):
            sub = ct[box]
            sub[m] = hu + HU_SD[CODE["lesion"]] * rng["ct_noise"].standard_normal(
                int(m.sum()), dtype=np.float32
            )
        tissue[box][m] = CODE["lesion"]

    # PET: blur, lesion profiles, noise, calibration
    sigma_vox = [fwhm_mm * FWHM_TO_SIGMA / s for s in spacing_t]
    blurred = ndimage.gaussian_filter(activity, sigma_vox, mode="nearest") if fwhm_mm > 0 else activity
    profiles = []
    pad = [int(4.0 * s + 0.5) + 1 for s in sigma_vox]
    for les, (box, m, rho) in zip(lesions, masks, strict=True):
        w = float(les.params["profile_width"])  # type: ignore[arg-type]
        prof = np.where(m, np.exp(-(rho**2) / (2 * w * w)), 0.0)
        pbox = tuple(
            slice(max(b.start - p, 0), min(b.stop + p, n))
            for b, p, n in zip(box, pad, grid.shape, strict=True)
        )
        full = np.zeros(tuple(b.stop - b.start for b in pbox))
        inner = tuple(slice(b.start - q.start, b.stop - q.start) for b, q in zip(box, pbox, strict=True))
        full[inner] = prof
        pb = ndimage.gaussian_filter(full, sigma_vox, mode="constant") if fwhm_mm > 0 else full
        mfull = np.zeros(full.shape, dtype=bool)
        mfull[inner] = m
        profiles.append((pbox, pb, mfull))

    amps = np.zeros(len(lesions))
    image = blurred.astype(np.float32, copy=True)  # blurred background + lesions, noise-free

    def calibrate(base: np.ndarray) -> None:
        for _ in range(3):  # Gauss-Seidel over lesions (cross-talk is tiny by the placement gap)
            for k, ((pbox, pb, mfull), les) in enumerate(zip(profiles, lesions, strict=True)):
                sub = base[pbox]
                sub -= amps[k] * pb
                amps[k] = lesion_amplitude(float(les.params["suvmax"]), sub[mfull], pb[mfull])  # type: ignore[arg-type]
                sub += amps[k] * pb

    calibrate(image)
    if noise > 0:
        field = _smooth_noise(rng["pet_noise"], grid.shape, [NOISE_CORRELATION_MM / s for s in spacing_t])
        sd = np.sqrt(np.maximum(image, np.float32(0.0)) + np.float32(0.02))
        sd *= np.float32(noise)
        field *= sd
        image += field
        del sd, field
        calibrate(image)
    pet = np.maximum(image, np.float32(0.0))

    records = []
    for les, (box, m, _), (_pbox, pb, mfull), a in zip(lesions, masks, profiles, amps, strict=True):
        vals = pet[box][m]
        own = a * float(pb[mfull].max())
        target = float(les.params["suvmax"])  # type: ignore[arg-type]
        if not a > 0 or own < 0.5 * target:
            raise RuntimeError(
                f"lesion at {les.center.round(1)} mm: its own uptake gives {own:.2f} of SUVmax "
                f"{target:.2f} (background too high); please report this seed"
            )
        records.append(
            {
                **{
                    k: (v.item() if isinstance(v, np.generic) else v)
                    for k, v in les.params.items()
                    if k not in ("scan", "lesion")
                },
                "center_x_mm": float(les.center[0]),
                "center_y_mm": float(les.center[1]),
                "center_z_mm": float(les.center[2]),
                "semi_a_mm": les.semi[0],
                "semi_b_mm": les.semi[1],
                "semi_c_mm": les.semi[2],
                "amplitude": float(a),
                "own_fraction": own / target,
                "mask_voxels": int(m.sum()),
                "mask_volume_ml": float(m.sum()) * grid.voxel_ml,
                "measured_suvmax": float(vals.max()),
                "measured_suvmean": float(vals.mean()),
            }
        )
    meta: dict[str, Any] = {
        "generator": f"pcatools.data.phantom v{GENERATOR_VERSION}",
        "seed": [int(v) for v in np.atleast_1d(ss.entropy)],  # type: ignore[arg-type]
        "spacing": spacing_t,
        "fwhm_mm": float(fwhm_mm),
        "noise": float(noise),
        "fov_mm": tuple(fov_mm),
        "lesion_free": bool(lesion_free),
        "lesions": records,
        "hard_negatives": [
            {
                "kind": h.kind,
                "center_x_mm": float(h.center[0]),
                "center_y_mm": float(h.center[1]),
                "center_z_mm": float(h.center[2]),
                "activity": float(h.activity),
            }
            for h in negatives
        ],
        "hard_negatives_dropped": [h.kind for h in dropped],
        "anatomy": anatomy.params,
        "landmarks": {
            k: [float(v) for v in anatomy.frame.to_world(np.asarray(p))] for k, p in anatomy.landmarks.items()
        },
        "tissue": tissue,
    }
    return Case(
        case_id=case_id,
        pet=pet,
        ct=ct.astype(np.float32),
        label=label,
        affine=grid.affine,
        patient_id=patient_id or case_id,
        meta=meta,
    )


def anatomy_of(seed: int | Sequence[int] | np.random.SeedSequence) -> Anatomy:
    """The anatomy :func:`make_case` draws for ``seed`` (no rendering)."""
    return draw_anatomy(streams(seed)["anatomy"])
