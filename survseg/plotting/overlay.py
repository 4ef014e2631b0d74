"""PET/CT slices with the true and predicted tumour masks drawn as contours."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._mpl import new_figure
from .slices import (
    VIEWS,
    check_volume,
    draw_contour,
    largest_cross_section,
    slice_aspect,
    slice_origin,
    take_slice,
    view_axis,
)

__all__ = ["CT_WINDOW_HU", "plot_overlay"]


def _images_from(images) -> tuple[dict, np.ndarray | None]:
    """``(name -> volume, mask from a cohort record or None)``."""
    if isinstance(images, np.void) and images.dtype.names is not None:  # one record of X
        vols, mask = {}, None
        for name in images.dtype.names:
            value = np.asarray(images[name])
            if value.ndim == 3 and np.issubdtype(value.dtype, np.floating):
                vols[name] = value
            elif value.ndim == 3 and name == "mask":
                mask = value
        if not vols:
            raise ValueError("the cohort record has no image field.")
        return vols, mask
    if isinstance(images, Mapping):
        if not images:
            raise ValueError("images is empty.")
        return {str(k): check_volume(v, f"image {k!r}") for k, v in images.items()}, None
    return {"image": check_volume(images, "image")}, None


def _default_cmap(name: str) -> str:
    return "hot" if name.lower() in ("pet", "pt", "suv") else "gray"


#: Soft-tissue CT window (level 40 HU, width 400 HU), used for CT volumes in Hounsfield units.
CT_WINDOW_HU = (-160.0, 240.0)


def _window(name: str, volume: np.ndarray) -> tuple[float, float]:
    """Display range: a soft-tissue window for a CT in HU, else the 1st-99.5th percentiles."""
    if name.lower() == "ct" and volume.min() < -500 and volume.max() > 100:
        return CT_WINDOW_HU
    lo, hi = np.percentile(volume, [1.0, 99.5])
    return (float(lo), float(hi)) if hi > lo else (float(volume.min()), float(volume.max()) + 1e-6)


def plot_overlay(
    images,
    mask=None,
    predicted=None,
    *,
    view: str = "axial",
    index: int | None = None,
    spacing=None,
    cmaps: Mapping | None = None,
    windows: Mapping | None = None,
    colors=("lime", "deepskyblue"),
    title: str | None = None,
    fig=None,
):
    """Draw one slice of each image with the true and predicted tumour contours.

    Parameters
    ----------
    images : ndarray (D, H, W), mapping of name -> ndarray, or one record of a cohort
        The volumes to show side by side. A cohort record (``X[i]``) contributes its image
        fields and, when ``mask`` is not given, its ``'mask'`` field.
    mask : array-like (D, H, W), optional
        Ground-truth mask (drawn as a solid contour).
    predicted : array-like (D, H, W), optional
        Predicted mask or tumour probability map (contour at 0.5, dashed).
    view : {"axial", "coronal", "sagittal"}
    index : int, optional
        Slice to show. By default the slice with the largest tumour cross-section: of
        ``mask`` if given, else of ``predicted``, else the middle slice.
    spacing : (sz, sy, sx), optional
        Voxel spacing, so that slices are drawn with the right aspect ratio.
    cmaps : mapping of name -> colormap, optional
        Per-image colormaps; defaults to ``"hot"`` for PET and ``"gray"`` otherwise.
    windows : mapping of name -> (low, high), optional
        Per-image display ranges. By default a CT in Hounsfield units gets the soft-tissue
        window :data:`CT_WINDOW_HU` and every other image its 1st to 99.5th percentile.
    colors : pair of colours
        Contour colours of the true and the predicted mask.
    title : str, optional
        Figure title.
    fig : matplotlib Figure, optional
        Figure to draw into (its contents are kept; the panels are added to it).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per image, titled with the view and the slice index.

    Examples
    --------
    >>> fig = plot_overlay(X[0], predicted=model.predict_mask(X[:1])[0])  # doctest: +SKIP
    """
    from matplotlib.lines import Line2D

    vols, record_mask = _images_from(images)
    mask = record_mask if mask is None else mask
    shape = next(iter(vols.values())).shape
    for name, v in [*vols.items(), ("mask", mask), ("predicted", predicted)]:
        if v is not None and check_volume(v, name).shape != shape:
            raise ValueError(f"{name} has shape {np.shape(v)}, the images {shape}.")
    view_axis(view)
    if index is None:
        guide = mask if mask is not None else predicted
        index = largest_cross_section(guide, view) if guide is not None else shape[VIEWS[view]] // 2
    cmaps, windows = dict(cmaps or {}), dict(windows or {})
    origin, aspect = slice_origin(view), slice_aspect(view, spacing)

    fig = new_figure(fig, figsize=(3.2 * len(vols), 3.6))
    axes = fig.subplots(1, len(vols), squeeze=False)[0]
    for ax, (name, vol) in zip(axes, vols.items()):
        lo, hi = windows.get(name) or _window(name, vol)
        ax.imshow(
            take_slice(vol, view, index),
            cmap=cmaps.get(name, _default_cmap(name)),
            vmin=lo,
            vmax=hi,
            origin=origin,
            aspect=aspect,
            interpolation="nearest",
        )
        if mask is not None:
            draw_contour(ax, take_slice(mask, view, index), color=colors[0], origin=origin)
        if predicted is not None:
            draw_contour(
                ax,
                take_slice(predicted, view, index),
                color=colors[1],
                linestyle="--",
                origin=origin,
            )
        ax.set_title(
            f"{name.upper() if len(name) <= 3 else name} — {view} {index}", fontsize="medium"
        )
        ax.set_axis_off()
    handles = []
    if mask is not None:
        handles.append(Line2D([], [], color=colors[0], lw=1.6, label="true mask"))
    if predicted is not None:
        handles.append(Line2D([], [], color=colors[1], lw=1.6, ls="--", label="predicted"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    if title is not None:
        fig.suptitle(title)
    return fig
