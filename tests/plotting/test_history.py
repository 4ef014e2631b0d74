"""Training curves from a history produced by survseg's own training loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from survseg.plotting import plot_history, split_history_columns
from survseg.training import train


def _run(max_iter, lr, seed, stage=None):
    """A real history: a linear model trained by the shared loop, validated every 5 steps."""
    torch.manual_seed(seed)
    x = torch.randn(64, 3)
    target = x @ torch.tensor([1.0, -2.0, 0.5])
    net = torch.nn.Linear(3, 1)

    def batches():
        while True:
            idx = torch.randint(0, 64, (8,))
            yield x[idx], target[idx]

    def compute_loss(module, batch):
        xb, yb = batch
        mse = torch.mean((module(xb)[:, 0] - yb) ** 2)
        l1 = 0.01 * module.weight.abs().sum()
        return {"loss": mse + l1, "mse": mse, "l1": l1}

    def validate(module):
        return {"val_mse": float(torch.mean((module(x)[:, 0] - target) ** 2))}

    opt = torch.optim.SGD(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max_iter // 2, gamma=0.5)
    result = train(
        net,
        batches(),
        compute_loss,
        opt,
        max_iter=max_iter,
        device=torch.device("cpu"),
        scheduler=sched,
        validate=validate,
        validate_every=5,
        monitor="val_mse",
        mode="min",
    )
    history = result.history
    if stage is not None:
        history.insert(1, "stage", stage)
    return history


def test_columns_split_on_loop_history():
    history = _run(40, 0.05, 0)
    assert split_history_columns(history) == (["loss", "mse", "l1"], ["val_mse"])


def test_plot_history_from_loop(check_png):
    history = _run(40, 0.05, 0)
    fig = plot_history(history)
    loss_ax, metric_ax, lr_ax = fig.axes
    labelled = {
        line.get_label(): line for line in loss_ax.lines if not line.get_label().startswith("_")
    }
    assert set(labelled) == {"loss", "mse", "l1"}
    # the bold line is the running mean of the raw curve (window 40 // 50 -> raw only)
    np.testing.assert_allclose(labelled["mse"].get_ydata(), history["mse"])
    (val,) = metric_ax.lines
    ok = history["val_mse"].notna()
    np.testing.assert_array_equal(val.get_xdata(), history.loc[ok, "iteration"])
    np.testing.assert_allclose(val.get_ydata(), history.loc[ok, "val_mse"])
    assert lr_ax.get_yscale() == "log"
    check_png(fig, "history")


def test_two_stage_history_laid_end_to_end(check_png):
    # AdaMSS's layout: stage I logs dice_loss and val_dice, stage II nll and val_c_index
    first = _run(30, 0.05, 0, stage="segmentation").rename(
        columns={"mse": "dice_loss", "val_mse": "val_dice"}
    )
    second = _run(20, 0.02, 1, stage="survival").rename(
        columns={"mse": "nll", "val_mse": "val_c_index"}
    )
    history = pd.concat([first, second], ignore_index=True)  # iterations restart at 1
    losses, metrics = split_history_columns(history)
    assert losses == ["loss", "dice_loss", "l1", "nll"] and metrics == ["val_dice", "val_c_index"]
    fig = plot_history(history, smooth=5)
    loss_ax = fig.axes[0]
    # curves only (the stage marker is an axvline with two points)
    xs = [np.asarray(line.get_xdata()) for line in loss_ax.lines if len(line.get_xdata()) > 2]
    assert len(xs) == 2 * 3 + 2 * 3  # raw + smoothed: loss/dice_loss/l1, then loss/l1/nll
    # stage II is drawn after stage I, and no line crosses the boundary at x = 30
    assert max(x.max() for x in xs) == 50
    assert all(x.max() <= 30 or x.min() > 30 for x in xs)
    assert [t.get_text() for t in loss_ax.texts] == ["segmentation", "survival"]
    check_png(fig, "history_two_stage")


def test_validation_loss_drawn_with_its_training_loss():
    # DeepMTS's layout: cox_loss / val_cox_loss, and val_c_index as a metric
    history = _run(40, 0.05, 0).rename(columns={"mse": "cox_loss", "val_mse": "val_cox_loss"})
    history["val_c_index"] = np.where(history["val_cox_loss"].notna(), 0.6, np.nan)
    fig = plot_history(history, smooth=1)
    loss_ax, metric_ax, _ = fig.axes
    by_label = {line.get_label(): line for line in loss_ax.lines}
    assert by_label["val_cox_loss"].get_color() == by_label["cox_loss"].get_color()
    assert by_label["val_cox_loss"].get_linestyle() == "--"
    assert [line.get_label() for line in metric_ax.lines] == ["val_c_index"]


def test_smoothing_is_running_mean():
    history = pd.DataFrame({"iteration": np.arange(1, 11), "loss": np.arange(10.0) ** 2})
    fig = plot_history(history, smooth=3)
    bold = [line for line in fig.axes[0].lines if line.get_label() == "loss"][0]
    v = history["loss"].to_numpy()
    expected = [np.mean(v[max(0, i - 1) : i + 2]) for i in range(10)]
    np.testing.assert_allclose(bold.get_ydata(), expected)


def test_history_errors():
    with pytest.raises(ValueError, match="iteration"):
        plot_history(pd.DataFrame({"loss": [1.0]}))
    with pytest.raises(ValueError, match="empty"):
        plot_history(pd.DataFrame({"iteration": [], "loss": []}))
    with pytest.raises(ValueError, match=r"\['dice'\] are not in the history"):
        plot_history(pd.DataFrame({"iteration": [1], "loss": [1.0]}), losses=["dice"])
