"""Lazy matplotlib access shared by the plotting modules.

matplotlib is an optional dependency (the ``plot`` extra): it is imported when a plot is drawn,
never when :mod:`survseg` is imported.
"""

from __future__ import annotations

import os

__all__ = ["pyplot", "new_axes", "new_figure", "save_figure"]

_HINT = (
    "survseg's plots need matplotlib, which is not installed. Install the plotting extra with "
    "`pip install survseg[plot]` (or `pip install matplotlib`)."
)


def pyplot():
    """Return :mod:`matplotlib.pyplot`, or raise an ``ImportError`` saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(_HINT) from exc
    return plt


def new_axes(ax=None, *, figsize=(6.0, 4.5)):
    """``(fig, ax)``: the given axes and their figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig = pyplot().figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def new_figure(fig=None, *, figsize=(6.0, 4.5)):
    """The given figure, or a new constrained-layout figure."""
    if fig is not None:
        return fig
    return pyplot().figure(figsize=figsize, layout="constrained")


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 120, close: bool = True) -> None:
    """Write ``fig`` to ``path`` (format from the suffix) and, by default, close it.

    Closing releases the figure from pyplot, so that loops writing many plots (as the
    benchmark does) do not accumulate open figures.
    """
    fig.savefig(os.fspath(path), dpi=dpi, bbox_inches="tight")
    if close:
        pyplot().close(fig)
