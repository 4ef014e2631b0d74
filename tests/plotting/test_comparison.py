"""Forest plot of C-indices from a benchmark-style table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.datasets import load_whas500
from sksurv.metrics import concordance_index_censored

from survseg.evaluation import compare_concordance, concordance_ci
from survseg.plotting import plot_cindex_comparison


def _top_to_bottom(ax):
    """Model names in the order they appear from the top of the plot."""
    pairs = zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()])
    return [name for _, name in sorted(pairs, reverse=True)]


@pytest.fixture(scope="module")
def table():
    """C-index, bootstrap CI and paired p-values of three simple risk scores on whas500."""
    X, y = load_whas500()
    risks = {
        "age + chf": X["age"].to_numpy(float) + 10 * X["chf"].astype(float).to_numpy(),
        "age": X["age"].to_numpy(float),
        "bmi": -X["bmi"].to_numpy(float),
    }
    rows = []
    for name, risk in risks.items():
        c, lo, hi = concordance_ci(y, risk, n_bootstrap=50, random_state=0)
        p = (
            np.nan
            if name == "age + chf"
            else compare_concordance(
                y, risk, risks["age + chf"], n_bootstrap=50, random_state=0
            ).p_value
        )
        rows.append({"model": name, "cindex": c, "cindex_low": lo, "cindex_high": hi, "p_value": p})
        assert c == pytest.approx(concordance_index_censored(y["fstat"], y["lenfol"], risk)[0])
    return pd.DataFrame(rows)


def test_forest_plot_positions_and_labels(table, check_png):
    fig = plot_cindex_comparison(table, reference="age + chf", title="whas500")
    ax = fig.axes[0]
    assert _top_to_bottom(ax) == list(table["model"])
    markers = [line for line in ax.lines if line.get_marker() == "s"]
    assert len(markers) == 3
    for k, line in enumerate(markers):  # first model at the top
        assert line.get_xdata()[0] == pytest.approx(table["cindex"][k])
        assert line.get_ydata()[0] == 2 - k
    texts = [t.get_text() for t in ax.texts]
    for k, row in table.iterrows():
        assert texts[k].startswith(
            f"{row.cindex:.3f} [{row.cindex_low:.3f}, {row.cindex_high:.3f}]"
        )
    assert "p" not in texts[0]  # the reference has no p-value
    p = table["p_value"][2]
    assert texts[2].endswith("p < 0.001" if p < 1e-3 else f"p = {p:.3f}")
    check_png(fig, "cindex_forest")


def test_test_prefix_and_index_as_model(table):
    t = table.set_index("model").add_prefix("test_")
    fig = plot_cindex_comparison(t, prefix="test_", sort=True)
    order = _top_to_bottom(fig.axes[0])
    assert order == list(table.sort_values("cindex", ascending=False)["model"])


def test_comparison_errors(table):
    with pytest.raises(ValueError, match="lacks column"):
        plot_cindex_comparison(table.drop(columns="cindex_low"))
    with pytest.raises(ValueError, match="reference 'x'"):
        plot_cindex_comparison(table, reference="x")
    bad = table.assign(cindex_high=table["cindex"] - 0.1)
    with pytest.raises(ValueError, match="inside its interval"):
        plot_cindex_comparison(bad)
    with pytest.raises(TypeError, match="DataFrame"):
        plot_cindex_comparison(table.to_dict())
