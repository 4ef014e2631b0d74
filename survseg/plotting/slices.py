"""Slices of 3D volumes for display: the three views, the tumour's largest cross-section.

Volumes follow survseg's ``(D, H, W)`` = ``(z, y, x)`` layout (SimpleITK's array order). The
three standard views fix one index: axial fixes ``z``, coronal fixes ``y``, sagittal fixes
``x``. Coronal and sagittal slices are drawn with ``z`` increasing upwards (``origin="lower"``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "VIEWS",
    "view_axis",
    "check_volume",
    "largest_cross_section",
    "take_slice",
    "slice_aspect",
    "slice_origin",
    "draw_contour",
]

#: Volume axis fixed by each view.
VIEWS = {"axial": 0, "coronal": 1, "sagittal": 2}


def view_axis(view: str) -> int:
    """Volume axis fixed by ``view``."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {sorted(VIEWS)}; got {view!r}.")
    return VIEWS[view]


def check_volume(a, name: str) -> np.ndarray:
    """``a`` as an array, or a ``ValueError`` if it is not 3D."""
    a = np.asarray(a)
    if a.ndim != 3:
        raise ValueError(f"{name} must be a 3D volume (D, H, W); got shape {a.shape}.")
    return a


def largest_cross_section(mask, view: str = "axial") -> int:
    """Index of the slice in which ``mask`` covers the most voxels.

    Parameters
    ----------
    mask : array-like of shape (D, H, W)
        Binary mask or probability map (foreground = ``> 0.5``).
    view : {"axial", "coronal", "sagittal"}

    Returns
    -------
    int
        The first such slice; the middle slice if the mask is empty.
    """
    axis = view_axis(view)
    fg = check_volume(mask, "mask") > 0.5
    area = fg.sum(axis=tuple(a for a in range(3) if a != axis))
    if not area.any():
        return fg.shape[axis] // 2
    return int(np.argmax(area))


def take_slice(volume, view: str, index: int) -> np.ndarray:
    """The 2D slice ``index`` of ``volume`` in ``view``, rows first as it will be drawn."""
    axis = view_axis(view)
    volume = check_volume(volume, "volume")
    if not 0 <= index < volume.shape[axis]:
        raise IndexError(f"slice {index} is outside the {view} range 0..{volume.shape[axis] - 1}.")
    return np.take(volume, index, axis=axis)


def slice_aspect(view: str, spacing) -> float:
    """Row spacing / column spacing of the drawn slice."""
    if spacing is None:
        return 1.0
    sz, sy, sx = (float(s) for s in spacing)
    return {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}[view]


def slice_origin(view: str) -> str:
    """``imshow`` origin that puts ``z`` upwards in coronal and sagittal slices."""
    return "upper" if view == "axial" else "lower"


def draw_contour(ax, slice2d, *, color, linestyle="-", origin="upper", lw=1.6) -> bool:
    """Contour of ``slice2d > 0.5`` on ``ax``; ``False`` (nothing drawn) if it is empty."""
    fg = np.asarray(slice2d, dtype=np.float64)
    if not (fg > 0.5).any() or (fg > 0.5).all():
        return False
    ax.contour(
        fg, levels=[0.5], colors=[color], linestyles=[linestyle], linewidths=lw, origin=origin
    )
    return True
