r"""The papers' evaluation protocol as one function.

k-fold cross-validation on a training cohort with risks collected out of fold, an optional
external test cohort scored by the fold ensemble (one model per fold, risks z-scored and
averaged, DeepMTS Sec. 4.7), and a table like DeepMTS Table II / AdaMSS Table I: C-index with a
bootstrap 95 % CI, Dice where a model segments, time-dependent AUC and integrated Brier score
where a model gives survival functions, and paired two-sided bootstrap p-values against a
reference model.

Every fold of every model is saved as it finishes (``output_dir/folds/<model>__fold<k>.npz``),
so an interrupted run resumes without retraining finished folds. A fold file is reused only
when its *resume key* matches: a hash of the estimator's class and parameters
(:func:`~survseg.data.fingerprint.estimator_key`), of the data (:func:`~survseg.data.fingerprint.data_fingerprint`: ``X``, ``y`` and the test
cohort) and of the fold's train and test indices. Anything else retrains the fold (with a
warning) and overwrites the stale file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time as time_module
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import delayed
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold, check_cv

from .._parallel import parallel_run
from ..data.errors import rows_of
from ..data.fingerprint import data_fingerprint, estimator_key
from ..data.store import atomic_path
from ..data.validation import check_survival
from .calibration import calibration_at_horizon, d_calibration, survival_at
from .compare import compare_concordance, concordance_ci
from .metrics import (
    concordance_index,
    concordance_index_uno,
    dice_score,
    evaluation_times,
    integrated_brier_score,
    time_dependent_auc,
)

__all__ = ["benchmark", "BenchmarkResult", "estimator_key", "data_fingerprint"]


@dataclass
class BenchmarkResult:
    """What :func:`benchmark` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model: C-index and CI on the pooled out-of-fold risks, the mean and SD of
        the per-fold C-indices, the C-index over pairs within folds with its CI, Dice, AUC,
        IBS, p-values against the reference (and the same on the external test cohort when
        given, columns prefixed ``test_``).
    predictions : pandas.DataFrame
        Per patient and model: fold, out-of-fold risk (and the Dice of the tumour, ``dice``,
        and of the nodes, ``dice_nodes``: NaN for a patient without nodes), the out-of-fold
        predicted survival at the calibration horizon (``surv_horizon``) and at the patient's
        own time (``surv_own``; both NaN without survival functions): ``set == "train_cv"``.
        The test cohort's ensemble risks: ``set == "test"``. Each fold model's risks on the
        patients it was fitted on (resubstitution, e.g. the training median that splits
        risk groups): ``set == "fold_train"``, one row per (fold, training patient), absent
        for folds restored from fold files of older versions.
    models : dict
        ``{name: [fitted estimator per fold]}`` (empty for folds restored from disk unless
        ``keep_models``).
    """

    table: pd.DataFrame
    predictions: pd.DataFrame
    models: dict = field(default_factory=dict)


def _fold_key(est_key: str, data_key: str, train, test) -> str:
    h = hashlib.sha256(f"{est_key}:{data_key}".encode())
    h.update(np.asarray(train, dtype=np.int64).tobytes() + b"|")
    h.update(np.asarray(test, dtype=np.int64).tobytes())
    return h.hexdigest()


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _assign_device(estimator, slot: int):
    """Give each job its own GPU on a multi-GPU machine (estimators with ``device="auto"``).

    Jobs are numbered in dispatch order, so ``n_jobs`` equal to the number of GPUs keeps one
    fit per GPU at a time (for folds of similar length).
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return estimator
    params = estimator.get_params(deep=True)
    n_gpu = torch.cuda.device_count()
    if n_gpu > 1:
        updates = {
            k: f"cuda:{slot % n_gpu}"
            for k, v in params.items()
            if (k == "device" or k.endswith("__device")) and v == "auto"
        }
        if updates:
            estimator.set_params(**updates)
    return estimator


def _fit_fold(
    name, estimator, X, y, train, test, fold, times, X_test, verbose=0, slot=0, horizon=None
):
    """Fit one clone on one fold and collect everything the table needs.

    Bad-input errors (:class:`~survseg.data.PatientError`) name the model, the fold and the
    patients as rows of the cohort, not of the fold.
    """
    where = f"{name}, fold {fold + 1}"
    with rows_of(train, where):
        model = _assign_device(clone(estimator), slot)
        start = time_module.perf_counter()
        model.fit(X[train], y[train])
        fit_seconds = time_module.perf_counter() - start
    with rows_of(test, where):
        out = _held_out(name, model, X, y, test, fold, times, horizon)
    with rows_of(train, where):
        # in the worker, where a radiomics model's training features are still in memory:
        # the figures split each fold at its training patients' median risk, and the main
        # process would otherwise have to extract them again (or keep every fold model)
        out["train_risk"] = np.asarray(model.predict(X[train]), dtype=np.float64)
    out["fit_seconds"] = np.float64(fit_seconds)
    if X_test is not None:
        with rows_of(None, f"{where}, external test cohort", cohort="test"):
            out["test_risk"] = np.asarray(model.predict(X_test), dtype=np.float64)
            if hasattr(model, "predict_mask") and "mask" in (X_test.dtype.names or ()):
                out["test_dice"] = dice_score(X_test["mask"], model.predict_mask(X_test))
    if verbose:
        held_out = y[test]
        c = (
            f"C-index {concordance_index(held_out, out['risk']):.3f}"
            if held_out[held_out.dtype.names[0]].any()
            else "no event"
        )
        print(
            f"[benchmark] {name}, fold {fold + 1}: {c}, fitted in {out['fit_seconds']:.0f} s",
            flush=True,
        )
    return out, model


def _held_out(name, model, X, y, test, fold, times, horizon) -> dict:
    """A fitted fold model's risks, Dice and survival curves on its held-out patients."""
    out = {"risk": np.asarray(model.predict(X[test]), dtype=np.float64)}
    if hasattr(model, "predict_mask") and "mask" in (X.dtype.names or ()):
        out["dice"] = dice_score(X["mask"][test], model.predict_mask(X[test]))
    if "nodes" in getattr(model, "regions_", ()) and "nodes" in (X.dtype.names or ()):
        # NaN for a patient without nodes (dice_score's ignore_empty): averaged over the rest
        pred = model.predict_mask(X[test], region="nodes")
        out["dice_nodes"] = dice_score(X["nodes"][test], pred)
    if hasattr(model, "predict_survival_function") and times is not None and len(times) > 1:
        try:
            fns = model.predict_survival_function(X[test])
            # a fold's curves end at its last training time, which can fall before the cohort's
            # grid ends; the survival function is constant after its last step, so clip
            out["surv"] = np.vstack([fn(np.clip(times, fn.x[0], fn.x[-1])) for fn in fns])
            # for calibration: S_i(T_i) at each patient's own time, and S_i at the horizon
            out["surv_own"] = survival_at(fns, y[test][y.dtype.names[1]])
            if horizon is not None:
                out["surv_horizon"] = survival_at(fns, horizon)
        except (ValueError, AttributeError, NotImplementedError) as exc:
            warnings.warn(f"{name}: no survival functions on fold {fold} ({exc}).", stacklevel=2)
    return out


def _zscore(risk):
    sd = risk.std()
    return (risk - risk.mean()) / (sd if sd > 0 else 1.0)


def _fold_ibs_auc(y, train, test, times, fold_out):
    """AUC and IBS of one fold on the cohort's time grid.

    scikit-survival's IPCW estimators are defined only inside the training follow-up: test
    patients followed beyond the last training time are left out of these two metrics (not of
    the C-index), and only grid times inside both follow-ups are used. NaN with a warning
    where the estimators still refuse.
    """
    if times is None:
        return np.nan, np.nan
    t_train = y[train][y.dtype.names[1]]
    inside = test[y[test][y.dtype.names[1]] < t_train.max()]
    t_test = y[inside][y.dtype.names[1]]
    if len(inside) < 2:
        return np.nan, np.nan
    keep = (times > max(t_train.min(), t_test.min())) & (times < t_test.max())
    if keep.sum() < 2:
        return np.nan, np.nan
    rows = np.isin(test, inside)
    auc = ibs = np.nan
    try:
        _, auc, _ = time_dependent_auc(y[train], y[inside], fold_out["risk"][rows], times[keep])
        if "surv" in fold_out:
            ibs = integrated_brier_score(
                y[train], y[inside], fold_out["surv"][rows][:, keep], times[keep]
            )
    except ValueError as exc:
        warnings.warn(f"time-dependent AUC/IBS skipped on a fold: {exc}", stacklevel=2)
    return auc, ibs


def _calibration_metrics(y, surv_own, surv_horizon, horizon):
    """D-calibration p-value, ECE and calibration slope at the horizon of pooled curves.

    The out-of-fold survival probabilities are absolute (not a per-fold risk scale), so they
    are pooled over folds. NaN where a model gives no survival functions.
    """
    row = {"dcal_p": np.nan, "ece": np.nan, "calibration_slope": np.nan}
    if surv_own is not None:
        row["dcal_p"] = d_calibration(y, surv_own).p_value
    if surv_horizon is not None and horizon is not None:
        cal = calibration_at_horizon(y, surv_horizon, horizon)
        row["ece"], row["calibration_slope"] = cal.ece, cal.slope
    return row


def _uno(y_train, y_test, risk, times):
    """Uno's C truncated at the last time of the evaluation grid; NaN where undefined."""
    if times is None:
        return np.nan
    try:
        return concordance_index_uno(y_train, y_test, risk, tau=float(times[-1]))
    except ValueError as exc:
        warnings.warn(f"Uno's C-index skipped: {exc}", stacklevel=2)
        return np.nan


def benchmark(
    estimators,
    X,
    y,
    *,
    cv=5,
    X_test=None,
    y_test=None,
    reference: str | None = None,
    n_bootstrap: int = 1000,
    random_state=0,
    n_jobs=None,
    output_dir: str | os.PathLike | None = None,
    resume: bool = True,
    keep_models: bool = False,
    verbose: int = 0,
    calibration_horizon: float | None = None,
) -> BenchmarkResult:
    """Cross-validated comparison of survival models, as in the papers' results tables.

    Parameters
    ----------
    estimators : dict ``{name: estimator}`` or list of estimators
        Any survseg or scikit-survival estimator (or ``Pipeline``) accepting ``X``.
    X : cohort (structured ndarray)
        Training cohort.
    y : structured ndarray
        Survival outcomes.
    cv : int or CV splitter
        An int gives ``StratifiedKFold`` on the event indicator, shuffled with
        ``random_state``, so every fold has events.
    X_test, y_test : optional
        External test cohort, scored by the fold ensemble of each model.
    reference : str, optional
        Model the others are compared with (paired bootstrap p-values); default: the first.
    n_bootstrap : int
        Resamples for confidence intervals and p-values.
    random_state : int
        Seeds the folds and the bootstrap.
    n_jobs : int, optional
        Folds run in parallel through joblib, so any joblib backend (``loky``, Dask, Ray)
        applies: ``with joblib.parallel_backend("dask"): benchmark(...)``.
    output_dir : path, optional
        Where ``results.csv``, ``predictions.csv``, ``folds/`` and a ``run.json`` go.
    resume : bool
        Reuse fold files already in ``output_dir`` (a finished fold is not retrained) whose
        resume key matches: same estimator class and parameters, same data fingerprint, same
        train and test indices. A fold file with another key is retrained (with a warning)
        and overwritten. ``False`` retrains every fold.
    keep_models : bool
        Return the fitted fold models (memory!).
    verbose : int
        If non-zero, one line per finished fold (held-out C-index, fit time).
    calibration_horizon : float, optional
        Time :math:`t^*` of the calibration columns ``ece`` and ``calibration_slope``;
        default: the median event time of ``y``. Recorded in ``table.attrs``.

    Returns
    -------
    BenchmarkResult
        ``table`` has one row per model: ``cindex`` (pooled out-of-fold) with its bootstrap
        ``cindex_low``/``cindex_high``, ``cindex_fold_mean``/``cindex_fold_sd``,
        ``cindex_within_fold`` with ``_low``/``_high`` (only pairs of patients of the same
        test fold count, so the folds' models need not share a risk scale), ``dice``
        (tumour, out of fold), ``dice_nodes`` (lymph nodes, over the patients that have
        nodes, for models fitted to segment them; NaN otherwise),
        ``auc``, ``ibs``, ``fit_seconds`` (mean per fold), ``p_value`` against the reference
        on the pooled risks and ``p_value_within_fold`` on pairs within folds, and, with a
        test cohort, the ``test_*`` columns. Next to Harrell's C, ``cindex_uno`` is Uno's
        IPCW C-index of the pooled risks (censoring distribution from ``y``, truncated at
        the 80th percentile of the event times); from the pooled out-of-fold survival curves,
        ``dcal_p`` is the D-calibration p-value (10 bins), ``ece`` the expected calibration
        error and ``calibration_slope`` the calibration slope at ``calibration_horizon``
        (quintiles of predicted survival); see :mod:`survseg.evaluation.calibration`. The
        three are NaN for a model without ``predict_survival_function``.
    """
    if isinstance(estimators, dict):
        named = dict(estimators)
    else:
        named = {type(e).__name__: e for e in estimators}
        if len(named) != len(estimators):
            raise ValueError("estimator names clash; pass a dict {name: estimator}.")
    if not named:
        raise ValueError("no estimators given.")
    event, time = check_survival(y, len(X))
    reference = reference or next(iter(named))
    if reference not in named:
        raise ValueError(f"reference {reference!r} is not one of {list(named)}.")
    if isinstance(cv, int | np.integer):
        n_min = min(event.sum(), (~event).sum())
        splitter = (
            StratifiedKFold(cv, shuffle=True, random_state=random_state)
            if n_min >= cv
            else KFold(cv, shuffle=True, random_state=random_state)
        )
    else:
        splitter = check_cv(cv)
    splits = list(splitter.split(np.zeros(len(X)), event))
    for k, (train, _) in enumerate(splits):
        if not event[train].any():
            raise ValueError(
                f"training fold {k} of the cross-validation has no events ({len(train)} "
                "patients, all censored): no survival model can be fitted on it; use fewer "
                "folds or a splitter stratified on the event (an int cv does this)."
            )
    if X_test is not None:
        e_test, _ = check_survival(y_test, len(X_test), require_events=False)
    try:
        times = evaluation_times(y, y)
    except ValueError:
        times = None
    horizon = float(np.median(time[event])) if calibration_horizon is None else calibration_horizon

    out_dir = Path(output_dir) if output_dir is not None else None
    if out_dir is not None:
        (out_dir / "folds").mkdir(parents=True, exist_ok=True)

    def fold_path(name, k):
        return None if out_dir is None else out_dir / "folds" / f"{_safe_name(name)}__fold{k}.npz"

    jobs, done, keys, stale = [], {}, {}, []
    data_key = data_fingerprint(X, y, X_test, y_test) if out_dir is not None else ""
    for name, est in named.items():
        est_key = estimator_key(est) if data_key else ""
        for k, (train, test) in enumerate(splits):
            path = fold_path(name, k)
            keys[(name, k)] = _fold_key(est_key, data_key, train, test) if data_key else ""
            if resume and path is not None and path.exists():
                with np.load(path, allow_pickle=False) as f:
                    saved = str(f["resume_key"]) if "resume_key" in f.files else None
                    if saved == keys[(name, k)]:
                        done[(name, k)] = (
                            {
                                key: f[key]
                                for key in f.files
                                if key not in ("test_index", "resume_key")
                            },
                            None,
                        )
                        continue
                stale.append(path.name)
            jobs.append((name, k, est, train, test))
    if stale:
        warnings.warn(
            f"{len(stale)} fold file(s) in {out_dir / 'folds'} were made by another model, "
            f"other parameters, other data or other folds ({', '.join(stale[:5])}"
            f"{', ...' if len(stale) > 5 else ''}): retraining them.",
            UserWarning,
            stacklevel=2,
        )

    # results come back in order as the folds finish, and each is saved at once, so an
    # interrupted run keeps every fold finished before the interruption
    results = parallel_run(
        (
            delayed(_fit_fold)(
                name, est, X, y, train, test, k, times, X_test, verbose, slot, horizon=horizon
            )
            for slot, (name, k, est, train, test) in enumerate(jobs)
        ),
        n_jobs=n_jobs,
        return_as="generator",
    )
    for (name, k, _, _, test), (out, model) in zip(jobs, results, strict=True):
        done[(name, k)] = (out, model)
        path = fold_path(name, k)
        if path is not None:
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, test_index=test, resume_key=np.str_(keys[(name, k)]), **out)

    rows, pred_rows, train_rows, models = [], [], [], {}
    pooled = {}
    fold_of = np.empty(len(X), dtype=np.int64)  # test fold of each patient
    for k, (_, test) in enumerate(splits):
        fold_of[test] = k
    for name in named:
        risk = np.empty(len(X))
        dice = np.full(len(X), np.nan)
        dice_nodes = np.full(len(X), np.nan)
        fold_c, aucs, ibss, test_risks, test_dice, seconds = [], [], [], [], [], []
        surv_own = np.full(len(X), np.nan)
        surv_horizon = np.full(len(X), np.nan)
        for k, (train, test) in enumerate(splits):
            out, model = done[(name, k)]
            risk[test] = out["risk"]
            if "fit_seconds" in out:  # absent from fold files of older runs
                seconds.append(float(out["fit_seconds"]))
            if "dice" in out:
                dice[test] = out["dice"]
            if "dice_nodes" in out:
                dice_nodes[test] = out["dice_nodes"]
            if "surv_own" in out:  # absent for models without survival functions
                surv_own[test] = out["surv_own"]
            if "surv_horizon" in out:
                surv_horizon[test] = out["surv_horizon"]
            if event[test].any():
                fold_c.append(concordance_index(y[test], out["risk"]))
            auc, ibs = _fold_ibs_auc(y, train, test, times, out)
            aucs.append(auc)
            ibss.append(ibs)
            if "test_risk" in out:
                test_risks.append(_zscore(out["test_risk"]))
            if "test_dice" in out:
                test_dice.append(out["test_dice"])
            if keep_models and model is not None:
                models.setdefault(name, []).append(model)
            if "train_risk" in out:
                train_rows.append(
                    pd.DataFrame(
                        {
                            "model": name,
                            "set": "fold_train",
                            "fold": k,
                            "patient": train,
                            "risk": out["train_risk"],
                        }
                    )
                )
            pred_rows.append(
                pd.DataFrame(
                    {
                        "model": name,
                        "set": "train_cv",
                        "fold": k,
                        "patient": test,
                        "risk": out["risk"],
                        "dice": out.get("dice", np.full(len(test), np.nan)),
                        "dice_nodes": out.get("dice_nodes", np.full(len(test), np.nan)),
                        "surv_horizon": out.get("surv_horizon", np.full(len(test), np.nan)),
                        "surv_own": out.get("surv_own", np.full(len(test), np.nan)),
                    }
                )
            )
        pooled[name] = risk
        c, lo, hi = concordance_ci(y, risk, n_bootstrap=n_bootstrap, random_state=random_state)
        cw, lo_w, hi_w = concordance_ci(
            y, risk, groups=fold_of, n_bootstrap=n_bootstrap, random_state=random_state
        )
        row = {
            "model": name,
            "cindex": c,
            "cindex_low": lo,
            "cindex_high": hi,
            "cindex_fold_mean": np.mean(fold_c),
            "cindex_fold_sd": np.std(fold_c),
            "cindex_within_fold": cw,
            "cindex_within_fold_low": lo_w,
            "cindex_within_fold_high": hi_w,
            "dice": np.nanmean(dice) if np.isfinite(dice).any() else np.nan,
            "dice_nodes": np.nanmean(dice_nodes) if np.isfinite(dice_nodes).any() else np.nan,
            "auc": np.nanmean(aucs) if np.isfinite(aucs).any() else np.nan,
            "ibs": np.nanmean(ibss) if np.isfinite(ibss).any() else np.nan,
            "fit_seconds": np.mean(seconds) if seconds else np.nan,
            "cindex_uno": _uno(y, y, risk, times),
        }
        row.update(
            _calibration_metrics(
                y,
                surv_own if np.isfinite(surv_own).all() else None,
                surv_horizon if np.isfinite(surv_horizon).all() else None,
                horizon,
            )
        )
        if test_dice:
            row["test_dice"] = float(np.nanmean(test_dice))  # NaN: no true tumour
        if test_risks:
            ens = np.mean(test_risks, axis=0)
            pred_rows.append(
                pd.DataFrame(
                    {
                        "model": name,
                        "set": "test",
                        "fold": -1,
                        "patient": np.arange(len(ens)),
                        "risk": ens,
                        "dice": np.nan,
                    }
                )
            )
            if y_test is not None and e_test.any():
                row["test_cindex"], row["test_cindex_low"], row["test_cindex_high"] = (
                    concordance_ci(y_test, ens, n_bootstrap=n_bootstrap, random_state=random_state)
                )
                row["test_cindex_uno"] = _uno(y, y_test, ens, times)
            pooled[name + "\0test"] = ens
        rows.append(row)
    ref_risk = pooled[reference]
    for row in rows:
        name = row["model"]
        if name == reference:
            row["p_value"] = row["p_value_within_fold"] = np.nan
        else:
            row["p_value"] = compare_concordance(
                y, pooled[name], ref_risk, n_bootstrap=n_bootstrap, random_state=random_state
            ).p_value
            row["p_value_within_fold"] = compare_concordance(
                y,
                pooled[name],
                ref_risk,
                groups=fold_of,
                n_bootstrap=n_bootstrap,
                random_state=random_state,
            ).p_value
        if y_test is not None and name + "\0test" in pooled and reference + "\0test" in pooled:
            row["test_p_value"] = (
                np.nan
                if name == reference
                else compare_concordance(
                    y_test,
                    pooled[name + "\0test"],
                    pooled[reference + "\0test"],
                    n_bootstrap=n_bootstrap,
                    random_state=random_state,
                ).p_value
            )
    table = pd.DataFrame(rows)
    table.attrs["reference"] = reference
    table.attrs["calibration_horizon"] = horizon
    predictions = pd.concat(pred_rows + train_rows, ignore_index=True)
    if out_dir is not None:
        table.to_csv(out_dir / "results.csv", index=False)
        predictions.to_csv(out_dir / "predictions.csv", index=False)
        (out_dir / "run.json").write_text(
            json.dumps(
                {
                    "models": list(named),
                    "reference": reference,
                    "n_folds": len(splits),
                    "n_patients": int(len(X)),
                    "n_events": int(event.sum()),
                    "n_test": None if X_test is None else int(len(X_test)),
                    "n_bootstrap": n_bootstrap,
                    "random_state": random_state,
                    "calibration_horizon": horizon,
                },
                indent=2,
            )
        )
    return BenchmarkResult(table=table, predictions=predictions, models=models)
