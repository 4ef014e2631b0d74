"""Head-and-neck background anatomy of the synthetic PET/CT cohort.

Coordinates are millimetres in a patient-centred template frame: ``z`` runs inferior to
superior, ``y`` anterior to posterior, ``x`` right to left, and the origin is the centre of the
field of view, about 1 cm below the palatine tonsils. Array axes are ``(z, y, x)`` = ``(D, H, W)``,
the order SimpleITK's ``GetArrayFromImage`` gives for an axial series.

Every structure is an analytic shape (ellipsoid, elliptic tube, ring) evaluated on broadcast
1D coordinate vectors, so painting one patient costs a few dozen whole-array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Grid", "make_grid", "paint_anatomy", "tumour_site", "node_site", "AIR_HU"]

AIR_HU = -1000.0
_SOFT_HU, _FAT_HU, _MARROW_HU, _CORTEX_HU = 40.0, -90.0, 250.0, 1100.0
_SOFT_SUV, _FAT_SUV, _BONE_SUV = 0.9, 0.35, 0.5


@dataclass(frozen=True)
class Grid:
    """Voxel-centre coordinates (mm) of a ``(D, H, W)`` volume, as broadcastable vectors."""

    shape: tuple[int, int, int]
    spacing: float
    z: np.ndarray  # (D, 1, 1)
    y: np.ndarray  # (1, H, 1)
    x: np.ndarray  # (1, 1, W)

    def index(self, point_mm) -> np.ndarray:
        """Fractional voxel index of a point given in mm."""
        centre = (np.asarray(self.shape) - 1) / 2.0
        return np.asarray(point_mm, dtype=float) / self.spacing + centre

    def clip(self, point_mm, margin: float) -> np.ndarray:
        """Move a point so that a ball of ``margin`` mm around it lies in the field of view
        (to the centre line along an axis too short for the ball)."""
        half = (np.asarray(self.shape) - 1) / 2.0 * self.spacing - margin
        return np.clip(np.asarray(point_mm, dtype=float), -np.maximum(half, 0), np.maximum(half, 0))


def make_grid(shape, spacing: float) -> Grid:
    """Isotropic grid of ``shape`` voxels of ``spacing`` mm centred on the origin."""
    axes = [((np.arange(n) - (n - 1) / 2.0) * spacing).astype(np.float32) for n in shape]
    return Grid(
        tuple(int(n) for n in shape),
        float(spacing),
        axes[0][:, None, None],
        axes[1][None, :, None],
        axes[2][None, None, :],
    )


def _sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def _ellipsoid(z, y, x, centre, semi):
    cz, cy, cx = centre
    az, ay, ax = semi
    return ((z - cz) / az) ** 2 + ((y - cy) / ay) ** 2 + ((x - cx) / ax) ** 2 < 1.0


def _bilateral(z, y, x, centre, semi):
    cz, cy, cx = centre
    return _ellipsoid(z, y, np.abs(x), (cz, cy, cx), semi)


def paint_anatomy(grid: Grid, rng: np.random.Generator):
    """Paint one patient's CT (HU) and PET activity (SUV) background.

    The template is scaled by a patient size factor, shifted by a few millimetres, and its
    physiological uptake levels are varied log-normally.

    Returns
    -------
    ct, pet : ndarray of float32, shape ``grid.shape``
        Noise-free, unblurred Hounsfield units and SUV.
    body, bone : ndarray of bool
        Inside the skin outline; cortical or cancellous bone.
    size : float
        The patient's size factor: template point ``p`` lies at ``size * p + shift`` (mm).
    shift : ndarray of shape (3,)
    """
    size = float(rng.normal(1.0, 0.05))
    shift = rng.normal(0.0, 3.0, 3)
    # patient frame: template coordinates of each voxel (python floats keep float32 arrays)
    z = (grid.z - float(shift[0])) / size
    y = (grid.y - float(shift[1])) / size
    x = (grid.x - float(shift[2])) / size
    uptake = np.exp(rng.normal(0.0, 0.15, 8)).tolist()  # per-organ physiological variation

    # skin outline: neck, widening into the head above and the shoulders below
    head, shoulder = _sigmoid((z - 35.0) / 8.0), _sigmoid((-55.0 - z) / 8.0)
    rx = 60.0 + 12.0 * head + 110.0 * shoulder
    ry = 58.0 + 30.0 * head + 17.0 * shoulder
    yc = 5.0 + 8.0 * head
    ellipse = (x / rx) ** 2 + ((y - yc) / ry) ** 2
    body = ellipse < 1.0
    inner = (x / (rx - 7.0)) ** 2 + ((y - yc) / (ry - 7.0)) ** 2 < 1.0

    # low-frequency tissue texture (muscle/fat mixture): two random plane waves, built as
    # outer products of 1D complex exponentials (much cheaper than a 3D cosine)
    k = rng.normal(0.0, 2 * np.pi / 45.0, (2, 3))
    phase = rng.uniform(0, 2 * np.pi, 2)
    wave = np.zeros(grid.shape, dtype=np.complex64)
    for i in range(2):
        ez = np.exp(1j * (k[i, 0] * z + phase[i])).astype(np.complex64)
        ey = np.exp(1j * k[i, 1] * y).astype(np.complex64)
        wave += ez * ey * np.exp(1j * k[i, 2] * x).astype(np.complex64)
    wave = wave.real / 2

    ct = np.full(grid.shape, AIR_HU, dtype=np.float32)
    pet = np.zeros(grid.shape, dtype=np.float32)
    soft_suv = _SOFT_SUV * uptake[0]
    np.copyto(ct, (_SOFT_HU + 12.0 * wave).astype(np.float32), where=body)
    np.copyto(pet, (soft_suv * (1.0 + 0.1 * wave)).astype(np.float32), where=body)

    def organ(where, hu, suv):
        where = where & body
        np.copyto(ct, hu, where=where)
        np.copyto(pet, suv, where=where)

    organ(~inner, _FAT_HU, _FAT_SUV)

    # glands, lymphoid tissue, vessels (blood pool), thyroid
    organ(_bilateral(z, y, x, (12.0, -2.0, 17.0), (10.0, 7.0, 7.0)), 45.0, 2.8 * uptake[1])
    organ(_ellipsoid(z, y, x, (0.0, -18.0, 0.0), (8.0, 6.0, 14.0)), 45.0, 1.8 * uptake[1])
    organ(_bilateral(z, y, x, (25.0, 12.0, 48.0), (22.0, 18.0, 11.0)), -25.0, 1.6 * uptake[2])
    organ(_bilateral(z, y, x, (-8.0, -22.0, 33.0), (10.0, 11.0, 9.0)), 35.0, 1.9 * uptake[2])
    organ(_bilateral(z, y, x, (-55.0, -28.0, 15.0), (18.0, 8.0, 7.0)), 90.0, 1.2 * uptake[3])
    ax_ = np.abs(x)
    below_skull = z < 40.0
    organ(((ax_ - 23.0) ** 2 + (y - 2.0) ** 2 < 16.0) & below_skull, 40.0, 1.7 * uptake[4])
    organ(((ax_ - 31.0) ** 2 + (y - 7.0) ** 2 < 25.0) & below_skull, 40.0, 1.7 * uptake[4])

    # brain (the brightest FDG organ) inside the skull, at the top of the field of view
    brain = _ellipsoid(z, y, x, (95.0, 12.0, 0.0), (50.0, 75.0, 62.0))
    skull = _ellipsoid(z, y, x, (95.0, 12.0, 0.0), (57.0, 82.0, 69.0)) & ~brain
    organ(brain, 35.0, 7.0 * uptake[5])

    # airway: oropharynx behind the tongue, moving forward into larynx and trachea
    t = np.clip((z + 25.0) / 15.0, 0.0, 1.0)  # 0 below the larynx, 1 in the oropharynx
    calibre = rng.uniform(0.8, 1.2)
    ay_c = -22.0 + 20.0 * t
    a_rx, a_ry = calibre * (9.0 + 4.0 * t), calibre * (8.0 - 1.0 * t)
    airway = (x / a_rx) ** 2 + ((y - ay_c) / a_ry) ** 2 < 1.0
    organ(airway & (z < 40.0), AIR_HU, 0.0)

    # cervical spine: vertebral bodies (marrow in a cortical shell) with discs, neural arch, cord
    r2 = x**2 + (y - 25.0) ** 2
    vbody = (r2 < 14.0**2) & (z < 50.0)
    cortex = vbody & (r2 > 11.5**2)
    level = np.mod(z - rng.uniform(0, 17.0), 17.0)  # position within a 17 mm vertebral level
    disc = vbody & (level < 4.0) & ~cortex
    c2 = x**2 + (y - 44.0) ** 2
    canal = (c2 < 7.5**2) & (z < 50.0)
    lamina = (level > 3.0) & (level < 14.0) & (z < 50.0)  # gaps between neural arches
    arch = ((c2 < 12.0**2) & ~canal | (ax_ < 3.0) & (y > 44.0) & (y < 62.0)) & lamina
    organ(vbody, _MARROW_HU, 1.6 * uptake[6])
    organ(disc, 90.0, soft_suv)
    organ(canal, 35.0, 0.8 * uptake[0])
    organ(cortex | arch, 800.0, _BONE_SUV)

    # mandible: a U-shaped cortical ring (body in front, rami rising behind)
    rho = np.sqrt((x / 44.0) ** 2 + ((y - 8.0) / 52.0) ** 2)
    ring = np.abs(rho - 1.0) < 4.0 / 44.0
    in_z = (z > -10.0) & (z < 8.0)
    mandible = ring & ((y < 8.0) & in_z | (y >= 8.0) & (y < 24.0) & (z > -10.0) & (z < 38.0))
    organ(mandible, _CORTEX_HU, _BONE_SUV)
    organ(skull, _CORTEX_HU, _BONE_SUV)

    bone = (vbody & ~disc) | arch | mandible | skull
    bone &= body
    return ct, pet, body, bone, size, shift


# Primary sites (template mm; x is the lateral offset, signed by the tumour's side):
# palatine tonsil and base of tongue, the two commonest oropharyngeal subsites.
_TUMOUR_SITES = np.array([[12.0, -2.0, 15.0], [0.0, -14.0, 6.0]])


def tumour_site(rng: np.random.Generator, side: float) -> np.ndarray:
    """Template centre of a primary tumour on ``side`` (+1 or -1)."""
    site = _TUMOUR_SITES[rng.integers(0, len(_TUMOUR_SITES))]
    return site * [1.0, 1.0, side] + rng.normal(0.0, [4.0, 3.0, 3.0])


def node_site(rng: np.random.Generator, side: float) -> np.ndarray:
    """Template centre of a cervical node along the jugular chain (levels II-IV),
    ipsilateral to the primary with probability 0.8."""
    s = side if rng.uniform() < 0.8 else -side
    return np.array(
        [rng.uniform(-50.0, 10.0), rng.uniform(-14.0, 10.0), s * rng.uniform(28.0, 42.0)]
    )
