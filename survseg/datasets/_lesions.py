"""Primary tumour and lymph-node lesions of the synthetic PET/CT cohort.

A lesion is an irregular blob painted inside a small box around its centre: a randomly rotated
ellipsoid whose surface is pushed out by a few von Mises-Fisher lobes (lobulated growth) and by
a smooth random field (surface roughness). Inside it, the FDG uptake falls from a peak with a
random texture and, optionally, a cold necrotic core.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ._anatomy import Grid

__all__ = ["paint_lesion"]

_KAPPA = 4.0  # lobe concentration: each lobe bulges a cap of about 30 degrees half-width
_LOBE_MEAN = float((1.0 - np.exp(-2.0 * _KAPPA)) / (2.0 * _KAPPA))  # mean of exp(kappa (cos - 1))
_TEXTURE_MM = 4.0  # correlation length of the uptake texture


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _unit_field(shape, sigma, rng) -> np.ndarray:
    """Smooth Gaussian random field with (approximately) zero mean and unit variance."""
    g = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    return (g - g.mean()) / max(float(g.std()), 1e-6)


def paint_lesion(
    grid: Grid,
    ct: np.ndarray,
    pet: np.ndarray,
    allowed: np.ndarray,
    rng: np.random.Generator,
    *,
    centre,
    radius: float,
    suv: float,
    texture: float,
    necrosis: float,
    lobes: float,
    hu: float,
):
    """Paint one lesion into ``ct`` and ``pet`` (in place) and return its voxels.

    Parameters
    ----------
    grid : Grid
    ct, pet : ndarray of float32
        Volumes painted in place.
    allowed : ndarray of bool
        Voxels the lesion may occupy (inside the body, not bone, not another lesion).
    rng : numpy.random.Generator
    centre : sequence of 3 float
        Lesion centre (mm, grid frame).
    radius : float
        Mean radius (mm) before lobulation.
    suv : float
        Peak SUV of viable tissue.
    texture : float
        Relative amplitude of the uptake texture (0 = smooth).
    necrosis : float in [0, 1)
        Depth of the cold core: uptake at the centre is ``1 - necrosis`` of the rim.
    lobes : float
        Amplitude of surface lobulation (0 = ellipsoid).
    hu : float
        CT density of viable tissue.

    Returns
    -------
    box : tuple of slice
        The box the lesion was painted in.
    inside : ndarray of bool
        The lesion's voxels within ``box`` (never empty: the centre voxel at least).

    Notes
    -----
    With ``r`` the ellipsoidal radius divided by ``radius``, ``u`` the unit direction from the
    centre, lobe directions ``v_j`` with amplitudes ``c_j`` and a unit smooth field ``g``, the
    lesion is ``{r < b}`` with

    .. math:: b = 1 + \\sum_j c_j \\left(e^{\\kappa (u \\cdot v_j - 1)} - m_\\kappa\\right)
              + 0.1\\, g,

    where ``m_kappa`` is the mean of the lobe over the sphere (so lobes keep the mean radius).
    With ``q = r / b`` (0 at the centre, 1 on the surface) and a unit texture field ``t``, the
    activity is

    .. math:: A = \\mathrm{suv}\\,(0.75 + 0.25 (1 - q^2))
              \\,(1 - \\mathrm{necrosis}\\; e^{-(q / 0.5)^2})\\,\\max(1 + \\mathrm{texture}\\; t, 0.2).
    """
    spacing, radius, suv, texture, necrosis, lobes, hu = map(
        float, (grid.spacing, radius, suv, texture, necrosis, lobes, hu)
    )
    idx = grid.index(centre)
    half = np.ceil(1.6 * radius / spacing) + 1
    lo = np.clip(np.floor(idx - half), 0, grid.shape).astype(int)
    hi = np.clip(np.ceil(idx + half) + 1, 0, grid.shape).astype(int)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    dz = grid.z[box[0]] - np.float32(centre[0])
    dy = grid.y[:, box[1]] - np.float32(centre[1])
    dx = grid.x[:, :, box[2]] - np.float32(centre[2])
    shape = (dz.shape[0], dy.shape[1], dx.shape[2])

    # python floats below keep every array float32 (numpy scalars would promote to float64)
    rot = _rotation(rng).tolist()
    axes = np.exp(rng.normal(0.0, 0.18, 3))
    axes = (axes / np.cbrt(axes.prod()) * radius).tolist()  # volume-preserving elongation
    r2 = np.zeros(shape, dtype=np.float32)
    for k in range(3):
        u = rot[k][0] * dz + rot[k][1] * dy + rot[k][2] * dx
        r2 += (u * (1.0 / axes[k])) ** 2
    r = np.sqrt(r2)

    norm = np.sqrt(dz**2 + dy**2 + dx**2) + np.float32(1e-6)
    boundary = np.ones(shape, dtype=np.float32)
    if lobes > 0:
        dirs = rng.standard_normal((5, 3))
        dirs = (dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).tolist()
        amps = (lobes * rng.uniform(0.0, 1.0, 5)).tolist()
        for v, c in zip(dirs, amps, strict=True):
            cos = (v[0] * dz + v[1] * dy + v[2] * dx) / norm
            boundary += c * (np.exp(_KAPPA * (cos - 1.0)) - _LOBE_MEAN)
        boundary += 0.1 * _unit_field(shape, max(radius / (2.5 * spacing), 0.7), rng)
    inside = (r < boundary) & allowed[box]
    if not inside.any():  # tiny grids: keep at least the voxel nearest the centre
        c = tuple(
            int(np.clip(np.rint(i - a), 0, n - 1)) for i, a, n in zip(idx, lo, shape, strict=True)
        )
        inside[c] = True
    q = np.minimum(r / np.maximum(boundary, 1e-3), 1.0)

    tex = _unit_field(shape, max(_TEXTURE_MM / spacing, 0.6), rng)
    core = necrosis * np.exp(-((q / 0.5) ** 2))
    activity = (
        suv * (0.75 + 0.25 * (1.0 - q**2)) * (1.0 - core) * np.maximum(1.0 + texture * tex, 0.2)
    )
    density = hu + 8.0 * tex - 30.0 * core
    pet[box][inside] = activity[inside]
    ct[box][inside] = density[inside]
    return box, inside
