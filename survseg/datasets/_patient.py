"""Painting one synthetic patient: anatomy, primary tumour, lymph nodes, scanner blur and noise."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ._anatomy import AIR_HU, node_site, paint_anatomy, tumour_site
from ._lesions import paint_lesion

__all__ = ["PatientPainter"]

_CT_NOISE_HU, _CT_BLUR_VOXELS = 12.0, 0.4
_PET_NOISE = 0.2  # PET noise SD (after the PSF blur) is _PET_NOISE * sqrt(SUV)


class PatientPainter:
    """Paints one patient: anatomy, primary tumour, nodes, then scanner blur and noise."""

    def __init__(self, grid, noise, pet_fwhm_mm):
        self.grid = grid
        self.psf_sigma = pet_fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / grid.spacing
        # white noise added before the PSF blur, scaled so its SD after the blur is as asked
        self.pet_noise = noise * _PET_NOISE / _blur_noise_gain(self.psf_sigma)
        self.ct_noise = noise * _CT_NOISE_HU

    def __call__(self, rng, p, *, cystic_nodes, out):
        """Write into ``out = (pet, ct, mask, node_mask)``; return the patient's measurements:
        tumour voxels, SUVmax, SUVmean, SUV CV, node voxels, largest node diameter (mm)."""
        grid, spacing = self.grid, self.grid.spacing
        pet, ct, mask, node_mask = out
        ct_i, act, body, bone, size, shift = paint_anatomy(grid, rng)

        def place(template, margin):  # template mm -> this patient's grid, inside the view
            return grid.clip(size * template + shift, margin)

        centre = place(tumour_site(rng, p["side"]), 0.6 * p["radius"])
        r_t = max(p["radius"], 1.6 * spacing)  # at least a few voxels on coarse grids
        box, inside = paint_lesion(
            grid, ct_i, act, body & ~bone, rng, centre=centre, radius=r_t, suv=p["suv"],
            texture=p["texture"], necrosis=p["necrosis"], lobes=p["lobes"], hu=48.0,
        )  # fmt: skip
        mask[box] = inside

        largest = 0.0
        if p["n_nodes"]:
            fractions = rng.dirichlet(np.full(p["n_nodes"], 2.0))
            radii = np.cbrt(3.0 * p["node_ml"] * 1000.0 * fractions / (4.0 * np.pi))
            largest = 2.0 * radii.max()
            allowed = body & ~bone & (mask == 0)
            for r_n in np.maximum(radii, 1.2 * spacing):
                for _ in range(30):  # away from the primary, so nodes never touch the mask
                    c_n = place(node_site(rng, p["side"]), r_n)
                    if np.linalg.norm(c_n - centre) > 1.3 * r_t + r_n + 4.0:
                        break
                box, inside = paint_lesion(
                    grid, ct_i, act, allowed, rng, centre=c_n, radius=r_n,
                    suv=5.0 * np.exp(rng.normal(0.0, 0.25)), texture=0.1,
                    necrosis=0.6 * float(cystic_nodes and rng.uniform() < 0.3), lobes=0.0, hu=38.0,
                )  # fmt: skip
                node_mask[box] |= inside
                allowed[box] &= ~inside

        act += self.pet_noise * np.sqrt(act + 0.05) * rng.standard_normal(act.shape, np.float32)
        if self.psf_sigma > 0:
            act = gaussian_filter(act, self.psf_sigma)
        np.maximum(act, 0.0, out=pet)
        ct_i = gaussian_filter(ct_i, _CT_BLUR_VOXELS)  # partial volume at the voxel scale
        ct_i += self.ct_noise * rng.standard_normal(ct_i.shape, np.float32)
        np.maximum(ct_i, AIR_HU - 24.0, out=ct)  # scanners clip near -1024 HU

        in_tumour = pet[mask.view(bool)].astype(np.float64)
        mean = in_tumour.mean()
        return (
            in_tumour.size,
            in_tumour.max(),
            mean,
            in_tumour.std() / max(mean, 1e-12),
            np.count_nonzero(node_mask),
            largest,
        )


def _blur_noise_gain(sigma: float) -> float:
    """Factor by which a Gaussian blur of ``sigma`` voxels scales white-noise SD (3D)."""
    if sigma <= 0:
        return 1.0
    delta = np.zeros(2 * int(np.ceil(4 * sigma)) + 3)
    delta[len(delta) // 2] = 1.0
    w = gaussian_filter(delta, sigma)
    return float(np.sum(w**2) ** 1.5)
