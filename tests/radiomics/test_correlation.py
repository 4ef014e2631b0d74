"""CorrelationFilter against hand-built rank correlations and scipy.stats.spearmanr."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.utils.estimator_checks import parametrize_with_checks
from sksurv.util import Surv

from survseg.radiomics import CorrelationFilter
from survseg.radiomics.correlation import spearman_matrix


def swapped(n, swaps):
    """0..n-1 with disjoint pairs swapped; each swap (i, j) adds 2 (i - j)^2 to sum d^2."""
    x = np.arange(n, dtype=float)
    for i, j in swaps:
        x[[i, j]] = x[[j, i]]
    return x


def test_hand_built_spearman_values():
    # Spearman without ties: rho = 1 - 6 sum(d^2) / (n (n^2 - 1)); n = 10 -> n (n^2 - 1) = 990.
    a = np.arange(10, dtype=float)
    rho_06 = swapped(10, [(0, 5), (1, 3), (6, 8)])  # sum d^2 = 50 + 8 + 8 = 66 -> rho = 0.6
    rho_079 = swapped(10, [(0, 4), (5, 6)])  # sum d^2 = 32 + 2 = 34 -> rho = 1 - 204/990
    X = np.column_stack([a, rho_06, rho_079, -(a**3), 2 * a + 1])
    corr = spearman_matrix(X)
    assert corr[0, 1] == pytest.approx(0.6)
    assert corr[0, 2] == pytest.approx(1 - 204 / 990)
    assert corr[0, 3] == pytest.approx(-1.0)
    assert corr[0, 4] == pytest.approx(1.0)

    f = CorrelationFilter(threshold=0.7).fit(X)
    # a kept; rho 0.6 kept; rho 0.794 dropped for a; -a^3 and 2a+1 dropped (|rho| = 1 with a)
    assert f.get_support().tolist() == [True, True, False, False, False]
    assert f.redundant_with_.tolist() == [-1, -1, 0, 0, 0]
    assert CorrelationFilter(threshold=0.5).fit(X).get_support().tolist() == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert CorrelationFilter(threshold=1.0).fit(X).get_support().all()


def test_only_kept_features_count():
    # x1 ~ x0 (0.79 > 0.7, dropped); x2 ~ x1 (0.79) but x2 ~ x0 only 0.6 -> x2 is kept,
    # because x1, its correlated partner, was already dropped.
    x0 = np.arange(10, dtype=float)
    x1 = swapped(10, [(0, 4), (5, 6)])
    x2 = swapped(10, [(0, 5), (1, 3), (6, 8)])
    X = np.column_stack([x0, x1, x2])
    corr = spearman_matrix(X)
    assert abs(corr[0, 1]) > 0.7 and abs(corr[0, 2]) <= 0.7
    assert CorrelationFilter().fit(X).get_support().tolist() == [True, False, True]


def test_matrix_equals_scipy_with_ties_and_constants():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(40, 6)).astype(float)  # many ties
    X[:, 3] = X[:, 0] * 2 + rng.normal(0, 0.1, 40)
    ref = spearmanr(X).statistic
    np.testing.assert_allclose(spearman_matrix(X), ref, atol=1e-12)
    X[:, 5] = 3.0  # constant: scipy gives NaN; here it is uncorrelated with everything
    corr = spearman_matrix(X)
    assert np.all(corr[5, :5] == 0) and corr[5, 5] == 1
    assert CorrelationFilter().fit(X).get_support()[5]


def test_concordance_order_keeps_the_prognostic_feature():
    rng = np.random.default_rng(1)
    n = 80
    risk = rng.normal(size=n)
    time = np.exp(-risk) * rng.uniform(0.9, 1.1, n)
    y = Surv.from_arrays(np.ones(n, dtype=bool), time)
    noisy = risk + rng.normal(0, 0.4, n)
    X = np.column_stack([noisy, risk, rng.normal(size=n)])
    assert abs(spearmanr(noisy, risk).statistic) > 0.7
    assert CorrelationFilter().fit(X, y).get_support().tolist() == [True, False, True]
    f = CorrelationFilter(order="concordance").fit(X, y)
    assert f.get_support().tolist() == [False, True, True]
    assert f.order_[0] == 1
    with pytest.raises(ValueError, match="needs the survival outcomes"):
        CorrelationFilter(order="concordance").fit(X)


def test_dataframe_names_and_transform():
    a = np.arange(10, dtype=float)
    df = pd.DataFrame({"a": a, "b": a**2, "c": swapped(10, [(0, 9)])})
    f = CorrelationFilter().fit(df)
    assert list(f.get_feature_names_out()) == ["a", "c"]
    out = f.set_output(transform="pandas").transform(df)
    pd.testing.assert_frame_equal(out, df[["a", "c"]])


@pytest.mark.parametrize(
    "X, params, error, match",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [3.0, 1.0]]), {}, ValueError, "NaN"),
        (np.ones((3, 2)), {"threshold": 1.5}, ValueError, "threshold"),
        (np.ones((3, 2)), {"order": "random"}, ValueError, "order"),
        (np.ones((1, 2)), {}, ValueError, "minimum of 2"),
    ],
)
def test_bad_input(X, params, error, match):
    with pytest.raises(error, match=match):
        CorrelationFilter(**params).fit(X)


@parametrize_with_checks([CorrelationFilter()])
def test_sklearn_compatible(estimator, check):
    check(estimator)
