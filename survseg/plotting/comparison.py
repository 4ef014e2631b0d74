"""Forest plot of the C-index of several models, with 95 % confidence intervals.

Reads a results table such as :func:`survseg.benchmark`'s: one row per model with columns
``model``, ``cindex``, ``cindex_low``, ``cindex_high`` and, optionally, ``p_value`` (paired
test against a reference model). Columns of an external test cohort, prefixed ``test_``, are
drawn with ``prefix="test_"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._mpl import new_axes

__all__ = ["plot_cindex_comparison"]


def _format_p(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "p < 0.001" if p < 1e-3 else f"p = {p:.3f}"


def plot_cindex_comparison(
    results: pd.DataFrame,
    *,
    prefix: str = "",
    reference: str | None = None,
    sort: bool = False,
    chance: bool = True,
    title: str | None = None,
    ax=None,
):
    """C-index and 95 % CI per model as a forest plot, first model at the top.

    Parameters
    ----------
    results : pandas.DataFrame
        One row per model; a ``model`` column (or the index) names it; ``{prefix}cindex``,
        ``{prefix}cindex_low`` and ``{prefix}cindex_high`` give the estimate and interval;
        ``{prefix}p_value``, if present, is written next to each model.
    prefix : str
        Column prefix, e.g. ``"test_"`` for the external test cohort.
    reference : str, optional
        Model to highlight (the one the p-values compare against); its C-index is drawn as a
        vertical dotted line.
    sort : bool
        Order models by C-index, best at the top, instead of table order.
    chance : bool
        Draw the chance level C = 0.5.
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> result = survseg.benchmark(models, X, y)               # doctest: +SKIP
    >>> fig = plot_cindex_comparison(result.table, reference="DeepMTS")  # doctest: +SKIP
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame; got {type(results).__name__}.")
    table = results if "model" in results else results.rename_axis("model").reset_index()
    cols = [f"{prefix}cindex", f"{prefix}cindex_low", f"{prefix}cindex_high"]
    missing = [c for c in cols if c not in table]
    if missing:
        raise ValueError(f"results lacks column(s) {missing}; it has {list(results.columns)}.")
    table = table.dropna(subset=[cols[0]])
    if table.empty:
        raise ValueError(f"no model has a {cols[0]} value.")
    if sort:
        table = table.sort_values(cols[0], ascending=False)
    names = table["model"].astype(str).tolist()
    if reference is not None and reference not in names:
        raise ValueError(f"reference {reference!r} is not among the models {names}.")
    c, lo, hi = (table[k].to_numpy(dtype=np.float64) for k in cols)
    if ((lo > c + 1e-12) | (hi < c - 1e-12)).any():
        raise ValueError("each C-index must lie inside its interval [cindex_low, cindex_high].")
    p = (
        table[f"{prefix}p_value"].to_numpy(dtype=np.float64)
        if f"{prefix}p_value" in table
        else None
    )

    fig, ax = new_axes(ax, figsize=(6.5, 0.45 * len(names) + 1.4))
    pos = np.arange(len(names))[::-1]  # first row on top
    colors = ["tab:red" if n == reference else "tab:blue" for n in names]
    for k in range(len(names)):
        ax.errorbar(
            c[k],
            pos[k],
            xerr=[[c[k] - lo[k]], [hi[k] - c[k]]],
            fmt="s",
            ms=6,
            color=colors[k],
            elinewidth=1.6,
            capsize=3,
        )
    if chance:
        ax.axvline(0.5, color="0.5", lw=1, ls="--")
    if reference is not None:
        ax.axvline(c[names.index(reference)], color="tab:red", lw=1, ls=":")
    ax.set_yticks(pos, names)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_xlabel("C-index (95 % CI)")
    # estimate, interval and p-value as a text column right of the axes
    trans = ax.get_yaxis_transform()  # x in axes fraction, y in data units
    for k, y in enumerate(pos):
        text = f"{c[k]:.3f} [{lo[k]:.3f}, {hi[k]:.3f}]"
        if p is not None and names[k] != reference and _format_p(p[k]):
            text += f"   {_format_p(p[k])}"
        ax.text(1.02, y, text, transform=trans, va="center", fontsize="small")
    if title is not None:
        ax.set_title(title)
    return fig
