r"""AdaMSS interpretation plots: decoder attention maps and fusion-gate weights.

The functions take plain arrays, as returned by the AdaMSS estimator's ``attention_maps(X)``
and ``fusion_weights(X)`` (or computed any other way):

* an attention map :math:`\alpha \in [0, 1]` per decoder level, at that level's resolution
  (the image size divided by :math:`2^{i}`); maps are resampled linearly onto the image grid
  and drawn over one slice of it, as in Fig. 3 of Meng et al. (2024);
* the mean fusion-gate weight :math:`\bar w^{i}_{fuse}` of each gate :math:`\mathcal F_i`
  (:math:`\bar w^{i}_{pc} = 1 - \bar w^{i}_{fuse}`), drawn as bars as in their Table IV;
  0.5 is the initial value, and a bar below it means the gate takes less than half of its
  information from the fused branch :math:`B_{Fuse}`.

References
----------
Meng M, Gu B, Fulham M, Song S, Feng D, Bi L, Kim J. Adaptive segmentation-to-survival
learning for survival prediction from multi-modality medical images. npj Precision
Oncology 8, 232 (2024).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._mpl import new_axes, new_figure
from .slices import (
    draw_contour,
    largest_cross_section,
    slice_aspect,
    slice_origin,
    take_slice,
    view_axis,
)

__all__ = ["resample_to", "plot_attention", "plot_fusion_weights"]


def resample_to(volume, shape) -> np.ndarray:
    """Linearly resample a 3D ``volume`` onto a grid of ``shape`` covering the same extent.

    Voxel centres are aligned as in ``torch.nn.functional.interpolate(...,
    align_corners=False)``: a coarse voxel covers ``shape / volume.shape`` fine voxels.
    """
    from scipy.ndimage import zoom

    volume = np.asarray(volume, dtype=np.float64)
    if volume.shape == tuple(shape):
        return volume
    factors = [s / v for s, v in zip(shape, volume.shape)]
    return zoom(volume, factors, order=1, mode="nearest", grid_mode=True)


def _squeeze3d(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    while a.ndim > 3 and a.shape[0] == 1:  # (1, 1, D, H, W) as a network gives it
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"{name} must be a 3D map (D, H, W) of one patient; got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf.")
    return a


def _named_maps(maps) -> dict:
    if isinstance(maps, Mapping):
        items = list(maps.items())
    elif isinstance(maps, np.ndarray) and maps.ndim == 3:
        items = [("attention", maps)]
    else:
        items = [(f"level {i + 1}", m) for i, m in enumerate(maps)]
    if not items:
        raise ValueError("no attention map given.")
    return {str(k): _squeeze3d(v, f"attention map {k!r}") for k, v in items}


def plot_attention(
    image,
    maps,
    *,
    mask=None,
    view: str = "axial",
    index: int | None = None,
    spacing=None,
    alpha: float = 0.5,
    cmap: str = "jet",
    image_name: str = "image",
    fig=None,
):
    """Draw attention maps over one slice of an image, one panel per map.

    Parameters
    ----------
    image : array-like of shape (D, H, W)
        Background image of one patient (e.g. its PET or CT).
    maps : array (D', H', W'), sequence of arrays, or mapping of label -> array
        Attention maps of that patient, each at any resolution covering the image's extent
        (resampled onto it). Leading singleton axes, as in ``(1, 1, D', H', W')``, are
        dropped. A sequence is labelled ``level 1, 2, ...`` in order.
    mask : array-like of shape (D, H, W), optional
        Tumour mask, drawn as a contour on every panel.
    view : {"axial", "coronal", "sagittal"}
    index : int, optional
        Slice to show. Defaults to the mask's largest cross-section, or, without a mask, to
        the slice where the first map has the most attention.
    spacing : (sz, sy, sx), optional
        Voxel spacing, for the aspect ratio.
    alpha : float
        Opacity of the maps over the image.
    cmap : str
        Colormap of the maps. Maps inside [0, 1] share the fixed range [0, 1]; others are
        shown over their own range.
    image_name : str
        Title of the image panel.
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> maps = model.attention_maps(X[:1])              # doctest: +SKIP
    >>> fig = plot_attention(X["pet"][0], [m[0] for m in maps], mask=X["mask"][0])  # doctest: +SKIP
    """
    axis = view_axis(view)
    image = _squeeze3d(image, "image")
    named = {k: resample_to(v, image.shape) for k, v in _named_maps(maps).items()}
    if mask is not None and np.shape(mask) != image.shape:
        raise ValueError(f"mask has shape {np.shape(mask)}, the image {image.shape}.")
    if index is None:
        if mask is not None:
            index = largest_cross_section(mask, view)
        else:
            first = next(iter(named.values()))
            index = int(np.argmax(first.sum(axis=tuple(a for a in range(3) if a != axis))))
    origin, aspect = slice_origin(view), slice_aspect(view, spacing)
    unit = all(0.0 <= m.min() and m.max() <= 1.0 for m in named.values())

    fig = new_figure(fig, figsize=(2.8 * (len(named) + 1) + 0.6, 3.4))
    axes = fig.subplots(1, len(named) + 1, squeeze=False)[0]
    background = take_slice(image, view, index)
    lo, hi = np.percentile(image, [1.0, 99.5])
    for ax, (label, vol) in zip(axes, [(image_name, None), *named.items()]):
        ax.imshow(
            background,
            cmap="gray",
            vmin=lo,
            vmax=hi,
            origin=origin,
            aspect=aspect,
            interpolation="nearest",
        )
        if vol is not None:
            sl = take_slice(vol, view, index)
            vmin, vmax = (0.0, 1.0) if unit else (vol.min(), vol.max())
            shown = ax.imshow(
                sl,
                cmap=cmap,
                alpha=alpha,
                vmin=vmin,
                vmax=vmax,
                origin=origin,
                aspect=aspect,
                interpolation="bilinear",
            )
        if mask is not None:
            draw_contour(ax, take_slice(mask, view, index), color="white", origin=origin, lw=1.2)
        ax.set_title(label, fontsize="medium")
        ax.set_axis_off()
    fig.colorbar(shown, ax=list(axes[1:]), shrink=0.8, label="attention")
    fig.suptitle(f"{view} slice {index}", fontsize="medium")
    return fig


def plot_fusion_weights(weights, *, labels=None, ax=None):
    """Bar chart of the mean fusion-gate weight :math:`\\bar w_{fuse}` per gate.

    Parameters
    ----------
    weights : array-like or mapping of label -> array-like
        Per gate ``i = 1..G``, the mean :math:`w^{i}_{fuse}`: shape ``(G,)``, or
        ``(n_patients, G)`` to show the mean over patients with a standard-deviation error
        bar. A mapping (e.g. ``{"Stage I": w1, "Stage II": w2}``) draws grouped bars, one
        group per gate, as in Table IV of the AdaMSS paper.
    labels : sequence of str, optional
        Gate names; default ``F1 .. FG`` (finest level first).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    series = weights if isinstance(weights, Mapping) else {"": weights}
    if not series:
        raise ValueError("no fusion weights given.")
    stats = {}
    for name, w in series.items():
        w = np.asarray(w, dtype=np.float64)
        if w.ndim not in (1, 2) or w.shape[-1] == 0:
            raise ValueError(
                f"fusion weights {name!r} must have shape (n_gates,) or (n_patients, n_gates); "
                f"got {w.shape}."
            )
        if not np.isfinite(w).all() or w.min() < 0 or w.max() > 1:
            raise ValueError(f"fusion weights {name!r} must be finite and in [0, 1].")
        stats[name] = (w, None) if w.ndim == 1 else (w.mean(axis=0), w.std(axis=0))
    n_gates = {len(m) for m, _ in stats.values()}
    if len(n_gates) != 1:
        raise ValueError(f"every series needs the same number of gates; got {sorted(n_gates)}.")
    (n_gates,) = n_gates
    labels = [f"F{i + 1}" for i in range(n_gates)] if labels is None else list(labels)
    if len(labels) != n_gates:
        raise ValueError(f"{len(labels)} labels for {n_gates} gates.")

    fig, ax = new_axes(ax, figsize=(1.0 + 0.9 * n_gates * max(1, len(stats) / 2), 3.6))
    x = np.arange(n_gates)
    width = 0.8 / len(stats)
    for k, (name, (mean, sd)) in enumerate(stats.items()):
        offset = (k - (len(stats) - 1) / 2) * width
        bars = ax.bar(x + offset, mean, width * 0.9, yerr=sd, capsize=3, label=name or None)
        ax.bar_label(bars, fmt="%.3f", fontsize="x-small", padding=2)
    ax.axhline(0.5, color="0.4", lw=1, ls="--")
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1)
    ax.set_xlabel("fusion gate (finest level first)")
    ax.set_ylabel(r"mean $w_{fuse}$  ($w_{pc} = 1 - w_{fuse}$)")
    if len(stats) > 1:
        ax.legend(frameon=False, fontsize="small")
    return fig
