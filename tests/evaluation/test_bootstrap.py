"""The paired bootstrap's C-indices equal scikit-survival's on the resampled patients."""

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored

from survseg.evaluation import compare
from survseg.evaluation.metrics import group_members


def _reference(event, time, risks, n_bootstrap, seed, groups):
    """Each replicate scored by scikit-survival on its resampled arrays, group by group."""
    rng = np.random.RandomState(seed)
    members = group_members(groups)
    rows = []
    for _ in range(n_bootstrap):
        draw = [m[rng.randint(0, len(m), len(m))] for m in members]
        row = []
        for risk in risks:
            conc = comp = 0.0
            for d in draw:
                if not event[d].any():
                    continue
                try:
                    _, c, dis, tie, _ = concordance_index_censored(event[d], time[d], risk[d])
                except ValueError:  # no comparable pair in this group
                    continue
                conc, comp = conc + c + 0.5 * tie, comp + c + dis + tie
            row.append(conc / comp if comp else np.nan)
        rows.append(row)
    rows = np.asarray(rows)
    return rows[np.isfinite(rows).all(axis=1)]


@pytest.mark.parametrize("max_pair_matrix", [4000, 0])  # pair matrices / replicate by replicate
def test_bootstrap_matches_sksurv_on_the_resampled_patients(monkeypatch, max_pair_matrix):
    monkeypatch.setattr(compare, "_MAX_PAIR_MATRIX", max_pair_matrix)
    rng = np.random.RandomState(3)
    n = 60
    time = rng.randint(1, 12, n).astype(float)  # many tied times, events and censored among them
    event = rng.rand(n) < 0.4
    tied_risk = np.round(rng.randn(n), 0)  # many tied risks
    risk = rng.randn(n)
    groups = np.repeat([0, 1, 2], 20)
    event[20:40] = False  # a group without events adds no pair
    got = compare._bootstrap_cindex(
        event, time, [tied_risk, risk], 50, np.random.RandomState(7), groups
    )
    want = _reference(event, time, [tied_risk, risk], 50, 7, groups)
    assert got.shape == want.shape and len(got) > 40
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_replicates_without_a_comparable_pair_are_skipped():
    event = np.array([True, False, False, False])
    time = np.array([1.0, 2.0, 3.0, 4.0])
    risk = np.array([0.4, 0.3, 0.2, 0.1])
    boot = compare._bootstrap_cindex(
        event, time, [risk], 200, np.random.RandomState(0), np.zeros(4, int)
    )
    # the only event is in about 1 - (3/4)^4 = 68 % of resamples; there C is 1 (concordant)
    assert 100 < len(boot) < 175
    np.testing.assert_array_equal(boot, 1.0)
