r"""The scikit-learn contract for survival estimators on cohorts, as runnable checks.

scikit-learn's ``check_estimator`` cannot run on survival models (it fits them on numeric
``y``) nor on survseg's cohorts (structured arrays of volumes). These checks are what it
checks, for a cohort ``X`` (or a feature matrix) and a structured survival ``y``:

=====================================  =============================================================
check                                  what must hold
=====================================  =============================================================
``check_init_stores_params``           ``__init__`` stores each argument as given, and nothing else
``check_get_set_params``               every (nested) parameter of ``get_params(deep=True)`` sets back
``check_clone``                        ``clone`` gives an unfitted copy with equal parameters
``check_not_fitted``                   every ``predict*`` / ``transform`` / ``score`` raises
                                       ``NotFittedError`` before ``fit``
``check_fit``                          ``fit`` returns ``self``, leaves ``X``, ``y`` and the
                                       parameters unchanged; fitted attributes end in ``_``
``check_predict``                      ``predict`` is one finite risk per patient; ``score`` is
                                       Harrell's C of it (``sksurv.metrics``)
``check_survival_curves``              survival curves in [0, 1], non-increasing in time; cumulative
                                       hazards non-negative and non-decreasing; the
                                       ``StepFunction`` and the array forms agree
``check_pickle``                       ``pickle`` and ``joblib`` round trips predict the same
``check_random_state``                 the same ``random_state`` gives the same predictions (CPU)
``check_few_events``                   a training fold with two events fits, or fails with a
                                       ``ValueError`` that says so (names the events)
=====================================  =============================================================

Examples
--------
Check a third-party cohort estimator on the default tiny synthetic cohort, or on your own:

>>> from survseg.utils import check_estimator                      # doctest: +SKIP
>>> check_estimator(MyCohortModel(max_iter=2))                     # doctest: +SKIP
>>> for name, check in estimator_checks(MyCohortModel(), X, y):    # doctest: +SKIP
...     check()
"""

from __future__ import annotations

import functools
import io
import pickle

import joblib
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError

__all__ = [
    "all_estimators",
    "check_estimator",
    "estimator_checks",
    "make_check_cohort",
    "make_check_tabular",
]

#: Methods that need a fitted estimator and take a cohort (``score`` also takes ``y``).
PREDICT_METHODS = (
    "predict",
    "predict_survival_function",
    "predict_cumulative_hazard_function",
    "predict_time",
    "predict_interval_probabilities",
    "predict_proba_mask",
    "predict_mask",
    "transform",
    "fusion_weights",
    "attention_maps",
    "score",
)


def all_estimators(type_filter: str | None = None) -> list[tuple[str, type]]:
    """The public estimators of :mod:`survseg.estimators`, like sksurv's
    ``all_survival_estimators``.

    Parameters
    ----------
    type_filter : {"survival", "transformer"} or None
        ``"survival"``: estimators whose ``predict`` is a risk (``_estimator_type ==
        "survival"``); ``"transformer"``: those with ``transform``; ``None``: all.

    Returns
    -------
    list of (name, class)
        Sorted by name.
    """
    from .. import estimators

    if type_filter not in (None, "survival", "transformer"):
        raise ValueError(
            f"type_filter must be None, 'survival' or 'transformer'; got {type_filter!r}."
        )
    found = []
    for name in estimators.__all__:
        obj = getattr(estimators, name)
        if not (isinstance(obj, type) and issubclass(obj, BaseEstimator)):
            continue
        if type_filter == "survival" and getattr(obj, "_estimator_type", None) != "survival":
            continue
        if type_filter == "transformer" and not issubclass(obj, TransformerMixin):
            continue
        found.append((name, obj))
    return sorted(found)


def make_check_cohort(n_patients=12, shape=(20, 20, 20), random_state=0):
    """A tiny synthetic PET/CT cohort (SUV / HU, tumour masks, clinical fields) and its ``y``.

    :func:`survseg.datasets.make_petct_cohort`; 20 voxels per axis suit the networks' tiny
    settings (divisible by 4; DeepMTS's cascade needs at least 19).
    """
    from ..datasets import make_petct_cohort

    return make_petct_cohort(n_patients, shape=shape, random_state=random_state)


def make_check_tabular(n_samples=40, n_features=4, random_state=0):
    r"""Standardised features and Cox-model survival times: :math:`T \sim
    \text{Exp}(e^{x^\top \beta})`, about a third censored uniformly."""
    from sksurv.util import Surv

    rng = np.random.default_rng(random_state)
    X = rng.standard_normal((n_samples, n_features))
    beta = np.linspace(1.0, -0.5, n_features)
    t = rng.exponential(np.exp(-X @ beta))
    c = rng.uniform(0, np.quantile(t, 0.95) * 2, n_samples)
    return X, Surv.from_arrays(t <= c, np.minimum(t, c))


def _takes_cohort(estimator) -> bool:
    """Whether ``estimator`` reads a cohort (structured ``X``) rather than a feature matrix."""
    params = estimator.get_params(deep=False)
    if "estimator" in params and isinstance(params["estimator"], BaseEstimator):
        return _takes_cohort(params["estimator"])
    return bool({"modalities", "extractor", "columns", "mask_field"} & set(params))


def _same(a, b) -> bool:
    """Parameter values equal (estimators by their parameters)."""
    if isinstance(a, BaseEstimator) and isinstance(b, BaseEstimator):
        return type(a) is type(b) and _same(a.get_params(deep=False), b.get_params(deep=False))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - objects without a boolean ==
        return a is b


def _available(est, name) -> bool:
    try:
        return callable(getattr(est, name))
    except AttributeError:  # available_if: the method does not apply to this setting
        return False


def _outputs(est, X) -> dict:
    """Every numeric prediction a fitted estimator gives, as arrays."""
    out = {}
    for name in ("predict", "predict_proba_mask", "transform", "predict_time"):
        if _available(est, name):
            try:
                out[name] = np.asarray(getattr(est, name)(X), dtype=np.float64)
            except AttributeError:  # hidden by a wrapper (set_output) that ignores available_if
                continue
    for name in ("predict_survival_function", "predict_cumulative_hazard_function"):
        if _available(est, name):
            out[name] = np.asarray(getattr(est, name)(X, return_array=True), dtype=np.float64)
    return out


def _assert_same_outputs(a: dict, b: dict, what: str, rtol=1e-6, atol=1e-8):
    assert a.keys() == b.keys(), f"{what}: outputs {sorted(a)} vs {sorted(b)}"
    for name in a:
        np.testing.assert_allclose(
            a[name], b[name], rtol=rtol, atol=atol, err_msg=f"{what}: {name}"
        )


class _Context:
    """The estimator under check, its data and (built once) a fitted copy."""

    def __init__(self, estimator, X, y):
        self.estimator = estimator
        if X is None:
            X, y = make_check_cohort() if _takes_cohort(estimator) else make_check_tabular()
        self.X, self.y = X, y
        self.seeded = "random_state" in estimator.get_params(deep=False)

    def fresh(self):
        est = clone(self.estimator)
        if self.seeded:
            est.set_params(random_state=0)
        return est

    @functools.cached_property
    def fitted(self):
        est = self.fresh()
        assert est.fit(self.X, self.y) is est, "fit did not return self"
        return est


def check_init_stores_params(ctx):
    """``__init__`` stores every argument unchanged and sets no other attribute."""
    est = ctx.estimator
    params = est.get_params(deep=False)
    new = type(est)(**params)
    extra = sorted(set(vars(new)) - set(params))
    assert not extra, f"{type(est).__name__}.__init__ sets {extra}, which are not parameters"
    for name, value in params.items():
        assert getattr(new, name) is value, f"__init__ changed parameter {name!r}"


def check_get_set_params(ctx):
    """Every parameter of ``get_params(deep=True)``, nested ones included, sets back."""
    est = clone(ctx.estimator)
    deep = est.get_params(deep=True)
    for name, value in deep.items():
        est.set_params(**{name: value})
        assert _same(est.get_params(deep=True)[name], value), f"set_params({name}=...) lost"
    try:
        est.set_params(this_is_not_a_parameter=1)
    except ValueError:
        pass
    else:
        raise AssertionError("set_params accepted an unknown parameter")


def check_clone(ctx):
    """``clone`` gives an unfitted estimator with equal parameters."""
    copy = clone(ctx.fitted)
    assert type(copy) is type(ctx.estimator)
    assert _same(copy.get_params(deep=False), ctx.fitted.get_params(deep=False))
    fitted_attrs = [k for k in vars(copy) if k.endswith("_") and not k.startswith("_")]
    assert not fitted_attrs, f"clone kept fitted attributes {fitted_attrs}"


def check_not_fitted(ctx):
    """Every prediction method raises ``NotFittedError`` before ``fit``."""
    est = ctx.fresh()
    for name in PREDICT_METHODS:
        if not _available(est, name):
            continue
        args = (ctx.X, ctx.y) if name == "score" else (ctx.X,)
        try:
            getattr(est, name)(*args)
        except NotFittedError:
            continue
        except AttributeError:  # hidden by a wrapper that ignores available_if
            continue
        raise AssertionError(f"{name} did not raise NotFittedError on an unfitted estimator")


def check_fit(ctx):
    """``fit`` returns self, leaves ``X``, ``y`` and the parameters alone; fitted attributes
    end in ``_``."""
    est = ctx.fresh()
    before = set(vars(est))
    params = joblib.hash(est.get_params(deep=False))
    hashes = joblib.hash(ctx.X), joblib.hash(ctx.y)
    assert est.fit(ctx.X, ctx.y) is est, "fit did not return self"
    assert (joblib.hash(ctx.X), joblib.hash(ctx.y)) == hashes, "fit modified X or y"
    assert joblib.hash(est.get_params(deep=False)) == params, "fit changed a parameter"
    new = sorted(k for k in set(vars(est)) - before if not k.startswith("_"))
    bad = [k for k in new if not k.endswith("_")]
    assert not bad, f"fit set public attributes {bad} that do not end in '_'"
    assert new, "fit set no fitted attribute (ending in '_')"


def check_predict(ctx):
    """One finite risk per patient; ``score`` is Harrell's C of ``predict``."""
    est = ctx.fitted
    if not _available(est, "predict"):
        return
    from sksurv.metrics import concordance_index_censored

    risk = np.asarray(est.predict(ctx.X))
    assert risk.shape == (len(ctx.X),), f"predict gave shape {risk.shape}"
    assert np.isfinite(risk).all(), "predict gave non-finite risks"
    if _available(est, "score"):
        c = concordance_index_censored(ctx.y["event"], ctx.y["time"], risk)[0]
        np.testing.assert_allclose(est.score(ctx.X, ctx.y), c, err_msg="score is not Harrell's C")


def check_survival_curves(ctx):
    """Survival in [0, 1] and non-increasing; cumulative hazard >= 0 and non-decreasing; the
    StepFunctions agree with the arrays."""
    est = ctx.fitted
    n = min(len(ctx.X), 4)
    X = ctx.X[:n]
    if _available(est, "predict_survival_function"):
        surv = est.predict_survival_function(X, return_array=True)
        assert surv.shape[0] == n
        assert np.isfinite(surv).all() and surv.min() >= 0 and surv.max() <= 1, "S(t) not in [0,1]"
        assert (np.diff(surv, axis=1) <= 1e-12).all(), "S(t) increases"
        fns = est.predict_survival_function(X)
        assert len(fns) == n
        times = getattr(est, "unique_times_", None)
        if times is None:
            times = getattr(est, "time_bins_", None)
        if times is not None:
            np.testing.assert_allclose(np.vstack([f(times) for f in fns]), surv, atol=1e-12)
    if _available(est, "predict_cumulative_hazard_function"):
        chf = est.predict_cumulative_hazard_function(X, return_array=True)
        assert np.isfinite(chf).all() and chf.min() >= 0, "H(t) negative"
        assert (np.diff(chf, axis=1) >= -1e-12).all(), "H(t) decreases"


def check_pickle(ctx):
    """Pickle and joblib round trips give the same predictions."""
    est = ctx.fitted
    expected = _outputs(est, ctx.X)
    _assert_same_outputs(_outputs(pickle.loads(pickle.dumps(est)), ctx.X), expected, "pickle")
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    _assert_same_outputs(_outputs(joblib.load(buf), ctx.X), expected, "joblib")


def check_random_state(ctx):
    """The same ``random_state`` gives the same predictions (on the CPU)."""
    if not ctx.seeded:
        return
    again = ctx.fresh().fit(ctx.X, ctx.y)
    _assert_same_outputs(_outputs(again, ctx.X), _outputs(ctx.fitted, ctx.X), "random_state=0")


def check_few_events(ctx):
    """A training set with two events fits, or fails with a ValueError about the events."""
    y = ctx.y.copy()
    names = y.dtype.names
    event = np.zeros(len(y), dtype=bool)
    event[np.argsort(y[names[1]])[[1, len(y) // 2]]] = True
    y[names[0]] = event
    est = ctx.fresh()
    try:
        est.fit(ctx.X, y)
    except ValueError as exc:
        assert "event" in str(exc), f"fit with two events failed with an unclear error: {exc}"
        return
    if _available(est, "predict"):
        assert np.isfinite(est.predict(ctx.X)).all(), "two events: non-finite risks"


_CHECKS = (
    check_init_stores_params,
    check_get_set_params,
    check_clone,
    check_not_fitted,
    check_fit,
    check_predict,
    check_survival_curves,
    check_pickle,
    check_random_state,
    check_few_events,
)
#: Names of the checks, in the order they run.
CHECK_NAMES = tuple(c.__name__ for c in _CHECKS)


def estimator_checks(estimator, X=None, y=None):
    """Yield ``(name, check)`` pairs; ``check()`` runs one contract check on ``estimator``.

    Parameters
    ----------
    estimator : estimator instance
        Unfitted; it is cloned (with ``random_state=0`` where it has one) before fitting,
        and fitted once for all the checks that need a fitted model.
    X : cohort or array-like, optional
        Default: :func:`make_check_cohort` for estimators with cohort parameters
        (``modalities``, ``extractor``, ``mask_field``, ``columns``), else
        :func:`make_check_tabular`.
    y : structured ndarray, optional
        Survival outcomes of ``X`` (``sksurv.util.Surv``).

    Yields
    ------
    name : str
    check : callable
        Raises ``AssertionError`` (or the estimator's own error) when the contract is broken.
    """
    if (X is None) != (y is None):
        raise ValueError("give both X and y, or neither.")
    ctx = _Context(estimator, X, y)
    for check in _CHECKS:
        yield check.__name__, functools.partial(check, ctx)


def check_estimator(estimator, X=None, y=None) -> None:
    """Run every check of :func:`estimator_checks`; the first failure is raised, named.

    Raises
    ------
    AssertionError
        ``"<check name>: <what failed>"``.
    """
    for name, check in estimator_checks(estimator, X, y):
        try:
            check()
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
