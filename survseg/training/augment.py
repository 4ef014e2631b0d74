r"""Batched on-device augmentation: one random affine transform per sample, applied with a single
``grid_sample`` call, so the GPU is not starved by a CPU-side loader.

A sample's images and masks share its transform. The transform is built in voxel units around
the volume centre and converted to ``affine_grid``'s normalised coordinates,

.. math:: \theta = S^{-1} A S, \qquad t_{\text{norm}} = S^{-1} t_{\text{vox}},
          \qquad S = \operatorname{diag}(W/2, H/2, D/2),

so rotations stay rigid on non-cubic volumes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["random_affine", "random_crop"]


def _per_axis(value, name: str) -> tuple[float, float, float]:
    """Scalar or (D, H, W) triple -> (D, H, W) floats."""
    vals = (value,) * 3 if isinstance(value, int | float) else tuple(value)
    if len(vals) != 3 or any(v < 0 for v in vals):
        raise ValueError(
            f"{name} must be a non-negative scalar or a (D, H, W) triple; got {value!r}."
        )
    return tuple(float(v) for v in vals)


def _uniform(n, bound, gen, device):
    return (torch.rand(n, generator=gen, device=device) * 2 - 1) * bound


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """(N, 3) angles in radians about the x, y, z axes -> (N, 3, 3) rotation matrices."""
    cx, cy, cz = torch.cos(angles).unbind(1)
    sx, sy, sz = torch.sin(angles).unbind(1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def random_affine(
    images: torch.Tensor,
    masks: torch.Tensor | None = None,
    *,
    max_translation=0.0,
    max_rotation=0.0,
    scale=(1.0, 1.0),
    max_shear=0.0,
    flip_axes=(),
    generator: torch.Generator | None = None,
):
    """Random rigid/affine augmentation of a batch.

    Parameters
    ----------
    images : Tensor (N, C, D, H, W)
        Interpolated trilinearly; voxels coming from outside the volume are 0 (inputs are
        expected to be normalised so that 0 is background-like).
    masks : Tensor (N, K, D, H, W), optional
        Interpolated trilinearly, then re-binarised at 0.5.
    max_translation : float or (D, H, W) triple
        Uniform shift in ``[-t, t]`` voxels per axis.
    max_rotation : float or (D, H, W) triple
        Uniform rotation in ``[-r, r]`` degrees about each axis.
    scale : (low, high)
        Isotropic zoom factor drawn uniformly.
    max_shear : float
        Shear angles in ``[-s, s]`` degrees (off-diagonal ``tan`` terms).
    flip_axes : sequence of int
        Axes of the spatial volume (``-1`` = W, the left-right/sagittal flip; ``-2`` = H;
        ``-3`` = D) each flipped with probability 1/2.
    generator : torch.Generator, optional
        On the tensors' device; makes the draw reproducible.

    Returns
    -------
    images, masks : Tensor
        Same shapes and dtypes (``masks`` is ``None`` if not given).
    """
    if images.ndim != 5:
        raise ValueError(f"images must be (N, C, D, H, W); got shape {tuple(images.shape)}.")
    if masks is not None and (
        masks.ndim != 5 or masks.shape[0] != images.shape[0] or masks.shape[2:] != images.shape[2:]
    ):
        raise ValueError(
            f"masks {tuple(masks.shape)} must be (N, K, D, H, W) matching images {tuple(images.shape)}."
        )
    t_dhw = _per_axis(max_translation, "max_translation")
    r_dhw = _per_axis(max_rotation, "max_rotation")
    lo, hi = float(scale[0]), float(scale[1])
    if not 0 < lo <= hi:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high; got {scale!r}.")
    flips = {int(a) % 3 for a in flip_axes}  # 0=D, 1=H, 2=W
    if max(t_dhw + r_dhw) == 0 and lo == hi == 1 and max_shear == 0 and not flips:
        return images, masks

    n, dev = images.shape[0], images.device
    D, H, W = images.shape[2:]
    f32 = torch.float32
    # (x, y, z) = (W, H, D) order, as affine_grid expects
    size = torch.tensor([W, H, D], dtype=f32, device=dev)
    angles = torch.stack(
        [_uniform(n, math.radians(r), generator, dev) for r in (r_dhw[2], r_dhw[1], r_dhw[0])], 1
    )
    A = _rotation(angles)
    if max_shear:
        shear = torch.tan(_uniform(n * 3, math.radians(max_shear), generator, dev)).view(n, 3)
        sh = torch.eye(3, device=dev).repeat(n, 1, 1)
        sh[:, 0, 1], sh[:, 0, 2], sh[:, 1, 2] = shear.unbind(1)
        A = A @ sh
    zoom = lo + torch.rand(n, generator=generator, device=dev) * (hi - lo)
    A = A / zoom.view(n, 1, 1)  # the grid samples input coordinates: dividing zooms in
    if flips:
        sign = torch.ones(n, 3, device=dev)
        for axis in flips:
            coin = torch.rand(n, generator=generator, device=dev) < 0.5
            sign[:, 2 - axis] = torch.where(coin, -1.0, 1.0)
        A = A * sign.view(n, 1, 3)
    shift = torch.stack([_uniform(n, t, generator, dev) for t in (t_dhw[2], t_dhw[1], t_dhw[0])], 1)
    # voxel -> normalised coordinates (align_corners=False: half-width = size / 2)
    half = size / 2
    theta_A = A * half.view(1, 1, 3) / half.view(1, 3, 1)
    theta_t = (shift / half).unsqueeze(2)
    theta = torch.cat([theta_A, theta_t], 2)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(
        images.float(), grid.to(f32), mode="bilinear", padding_mode="zeros", align_corners=False
    ).to(images.dtype)
    if masks is None:
        return out, None
    warped = F.grid_sample(
        masks.float(), grid.to(f32), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out, (warped >= 0.5).to(masks.dtype)


def random_crop(tensors, size, generator: torch.Generator | None = None):
    """Crop the same random ``size`` box (per sample) out of each ``(N, C, D, H, W)`` tensor.

    Parameters
    ----------
    tensors : tuple of Tensor
        Same batch size and spatial shape.
    size : (d, h, w)
        Crop size, at most the spatial shape.

    Returns
    -------
    tuple of Tensor
    """
    tensors = tuple(tensors)
    shape = tuple(tensors[0].shape[2:])
    size = tuple(int(s) for s in size)
    if len(size) != 3 or any(s < 1 or s > m for s, m in zip(size, shape, strict=True)):
        raise ValueError(f"crop size {size} must be 3 positive ints no larger than {shape}.")
    if any(t.shape[0] != tensors[0].shape[0] or tuple(t.shape[2:]) != shape for t in tensors):
        raise ValueError("all tensors must share the batch size and spatial shape.")
    if size == shape:
        return tensors
    n, dev = tensors[0].shape[0], tensors[0].device
    limits = torch.tensor([m - s + 1 for s, m in zip(size, shape, strict=True)], device=dev)
    starts = (torch.rand(n, 3, generator=generator, device=dev) * limits).long().tolist()
    out = []
    for t in tensors:
        out.append(
            torch.stack(
                [
                    t[i, :, a : a + size[0], b : b + size[1], c : c + size[2]]
                    for i, (a, b, c) in enumerate(starts)
                ]
            )
        )
    return tuple(out)
