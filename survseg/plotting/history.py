"""Training curves from a fitted deep estimator's ``history_``.

``history_`` is a DataFrame with one row per iteration: ``iteration``, ``lr``, the total
``loss`` and its parts, and validation results at the iterations where validation ran (NaN
elsewhere). A two-stage model (AdaMSS) adds a ``stage`` column; if its iterations restart at
each stage, the stages are laid end to end on one axis.

Validation columns are those named ``val_*``. Validation *losses* (e.g. ``val_dice_loss``) are drawn with the training losses, in
the colour of their training counterpart, so over-fitting shows as the two curves parting;
other validation metrics (C-index, Dice) get their own panel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._mpl import new_figure

__all__ = ["split_history_columns", "plot_history"]

_BOOKKEEPING = ("iteration", "lr", "stage", "epoch", "time")
#: Validation results are the columns with this prefix (the deep estimators' one rule).
VALIDATION_PREFIX = "val_"


def split_history_columns(history: pd.DataFrame) -> tuple[list[str], list[str]]:
    """``(training loss columns, validation columns)`` of a training history.

    A numeric column is a validation result if and only if its name starts with ``val_``
    (``val_c_index``, ``val_dice``, ``val_loss``, ...), the rule every survseg estimator's
    ``history_`` follows; every other numeric column except the bookkeeping ones
    (``iteration``, ``lr``, ``stage``, ``epoch``, ``time``) is a training loss.
    """
    losses, metrics = [], []
    for col in history.columns:
        if col in _BOOKKEEPING or not pd.api.types.is_numeric_dtype(history[col]):
            continue
        if not history[col].notna().any():
            continue
        (metrics if str(col).startswith(VALIDATION_PREFIX) else losses).append(col)
    return losses, metrics


def _is_loss(name: str) -> bool:
    return "loss" in name or "nll" in name


def _training_name(name: str) -> str:
    """``val_cox_loss`` -> ``cox_loss``: the training column a validation loss matches."""
    return name[len(VALIDATION_PREFIX) :] if name.startswith(VALIDATION_PREFIX) else name


def _global_steps(history: pd.DataFrame) -> np.ndarray:
    """x-axis: ``iteration``, offset per stage where iterations restart at a new stage."""
    it = history["iteration"].to_numpy(dtype=np.float64)
    if "stage" not in history or (np.diff(it) > 0).all():
        return it
    x, offset = it.copy(), 0.0
    stages = history["stage"].to_numpy()
    for stage in pd.unique(stages):
        rows = stages == stage
        x[rows] = it[rows] + offset
        offset = x[rows].max()
    return x


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running mean over the finite values (NaN gaps kept)."""
    s = pd.Series(values)
    return s.rolling(window, center=True, min_periods=1).mean().where(s.notna()).to_numpy()


def plot_history(
    history: pd.DataFrame,
    *,
    losses=None,
    metrics=None,
    smooth: int | None = None,
    log_loss: bool = False,
    fig=None,
):
    """Plot losses, validation results and the learning rate against the iteration.

    Parameters
    ----------
    history : pandas.DataFrame
        A fitted model's ``history_`` (at least an ``iteration`` column).
    losses, metrics : list of str, optional
        Columns to draw as training losses and as validation results; by default chosen by
        :func:`split_history_columns`. Validation columns whose name contains ``loss`` or
        ``nll`` are drawn in the loss panel (dashed, with markers).
    smooth : int, optional
        Window of the running mean drawn over each raw training-loss curve; default
        ``max(1, n_iterations // 50)``. ``1`` draws the raw curves only.
    log_loss : bool
        Logarithmic loss axis (only sensible for positive losses).
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        Panels, top to bottom: losses; validation metrics (if any besides losses); learning
        rate (if an ``lr`` column exists). Stage boundaries are marked with vertical lines.

    Examples
    --------
    >>> fig = plot_history(model.history_)  # doctest: +SKIP
    """
    if not isinstance(history, pd.DataFrame) or "iteration" not in history:
        raise ValueError("history must be a DataFrame with an 'iteration' column (a history_).")
    if len(history) == 0:
        raise ValueError("history is empty: the model has not been trained.")
    auto_losses, auto_metrics = split_history_columns(history)
    losses = auto_losses if losses is None else list(losses)
    metrics = auto_metrics if metrics is None else list(metrics)
    missing = [c for c in [*losses, *metrics] if c not in history]
    if missing:
        raise ValueError(f"columns {missing} are not in the history; it has {list(history)}.")
    if not losses and not metrics:
        raise ValueError("the history has no loss or metric column to plot.")
    val_losses = [c for c in metrics if _is_loss(str(c))]
    metrics = [c for c in metrics if c not in val_losses]
    x = _global_steps(history)
    stages = history["stage"].to_numpy() if "stage" in history else np.zeros(len(history))
    segments = [stages == st for st in pd.unique(stages)]
    window = max(1, len(history) // 50) if smooth is None else int(smooth)

    panels = [
        p
        for p, show in (
            ("loss", bool(losses or val_losses)),
            ("metric", bool(metrics)),
            ("lr", "lr" in history),
        )
        if show
    ]
    fig = new_figure(fig, figsize=(7.0, 2.4 * len(panels) + 0.4))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    ax_of = dict(zip(panels, axes))
    palette = iter(f"C{i % 10}" for i in range(1000))
    color_of = {}

    def sparse_line(ax, col, style, label):
        c = color_of.get(_training_name(str(col))) or next(palette)
        v = history[col].to_numpy(dtype=np.float64)
        drawn = [rows & np.isfinite(v) for rows in segments]
        for k, ok in enumerate([ok for ok in drawn if ok.any()]):
            ax.plot(x[ok], v[ok], style, ms=3, lw=1.2, color=c, label=label if k == 0 else None)

    if "loss" in ax_of:
        ax = ax_of["loss"]
        for col in losses:
            c = color_of[str(col)] = next(palette)
            v = history[col].to_numpy(dtype=np.float64)
            drawn = [rows for rows in segments if np.isfinite(v[rows]).any()]
            for k, rows in enumerate(drawn):  # one line per stage: no jump across stages
                label = col if k == 0 else None
                if window > 1:
                    ax.plot(x[rows], v[rows], color=c, alpha=0.25, lw=0.8)
                    ax.plot(x[rows], _smooth(v[rows], window), color=c, lw=1.6, label=label)
                else:
                    ax.plot(x[rows], v[rows], color=c, lw=1.4, label=label)
        for col in val_losses:
            sparse_line(ax, col, "o--", col)
        ax.set_ylabel("loss")
        if log_loss:
            ax.set_yscale("log")
        ax.legend(frameon=False, fontsize="small", ncols=min(4, len(losses) + len(val_losses)))
    if "metric" in ax_of:
        ax = ax_of["metric"]
        for col in metrics:
            sparse_line(ax, col, "o-", col)
        ax.set_ylabel("validation")
        ax.legend(frameon=False, fontsize="small", ncols=min(4, len(metrics)))
    if "lr" in ax_of:
        ax = ax_of["lr"]
        lr = history["lr"].to_numpy(dtype=np.float64)
        for rows in segments:
            ax.plot(x[rows], lr[rows], color="0.3", lw=1.4, drawstyle="steps-post")
        ax.set_ylabel("learning rate")
        if (history["lr"] > 0).all():
            ax.set_yscale("log")
    axes[-1].set_xlabel("iteration")
    if "stage" in history:
        _mark_stages(axes, x, history["stage"].to_numpy())
    return fig


def _mark_stages(axes, x, stages) -> None:
    """Vertical line at each stage change; stage names along the top panel."""
    for stage in pd.unique(stages):
        rows = stages == stage
        start = x[rows].min()
        for ax in axes:
            if start > x.min():
                ax.axvline(start, color="0.5", lw=1, ls=":")
        label = str(stage) if isinstance(stage, str) else f"stage {stage}"
        axes[0].text(
            start,
            1.01,
            label,
            transform=axes[0].get_xaxis_transform(),
            fontsize="small",
            va="bottom",
        )
