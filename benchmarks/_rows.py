"""Shared by the evaluation benchmarks: per-model rows of a benchmark next to the true risk.

The synthetic cohorts know each patient's true linear predictor, so every benchmark reports
its within-fold C-index on the *same* folds as the models' (the ceiling no model can pass)
and each model's C-index as a fraction of it.
"""

from __future__ import annotations

ROW_KEYS = (
    "cindex_within_fold",
    "cindex_within_fold_low",
    "cindex_within_fold_high",
    "p_value_within_fold",
    "cindex",
    "dice",
    "dice_nodes",
    "fit_seconds",
)


def write_result(out: dict, path) -> None:
    """Write a benchmark's result dict as JSON to ``path`` (folders made) and print it."""
    import json
    import os

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


def benchmark_folds(result, name):
    """Each patient's test fold in a :func:`survseg.evaluation.benchmark` result, by patient."""
    p = result.predictions
    # the test rows only: since session 9 each fold model's training risks are rows too
    p = p[(p["model"] == name) & (p["set"] == "train_cv")]
    return p.sort_values("patient")["fold"].to_numpy()


def fold_node_dice(result, name) -> list:
    """Mean node Dice of each test fold (over its patients with nodes)."""
    p = result.predictions
    p = p[(p["model"] == name) & (p["set"] == "train_cv")]
    return [float(p.loc[p["fold"] == k, "dice_nodes"].mean()) for k in sorted(p["fold"].unique())]


def rows_with_truth(result, y, true_risk, names, keys=ROW_KEYS):
    """``(true_within, true_pooled, rows)`` of a :func:`survseg.evaluation.benchmark` result.

    ``rows[name]`` holds the ``keys`` the table has for that model and
    ``fraction_of_true_within_fold``, its within-fold C-index over the true risk's on the
    benchmark's folds (read off the first model's predictions: every model has the same).
    """
    from survseg.evaluation import concordance_index

    table = result.table.set_index("model") if "model" in result.table else result.table
    folds = benchmark_folds(result, next(iter(names)))
    true_within = concordance_index(y, true_risk, groups=folds)
    true_pooled = concordance_index(y, true_risk)
    rows = {}
    for name in names:
        row = table.loc[name]
        rows[name] = {k: float(row[k]) for k in keys if k in row.index}
        rows[name]["fraction_of_true_within_fold"] = rows[name]["cindex_within_fold"] / true_within
    return true_within, true_pooled, rows


def learned_ceilings(y, truth, folds, alpha=1.0):
    """Within-fold C of Cox models fitted, fold by fold, on what a perfect model would see.

    The true risk is a ceiling no *learned* model reaches: its coefficients are known, while a
    model estimates them from two thirds of the cohort. These rows separate that estimation
    loss from the loss of seeing the images imperfectly:

    - ``Cox on the true covariates``: the generator's own covariates (including the latent
      heterogeneity score no image measures exactly), coefficients learned;
    - ``Cox on measured tumour + nodes``: log tumour volume, log SUVmax, SUV coefficient of
      variation and log(1 + nodal volume) measured on the ground-truth masks, plus the
      clinical covariates: hand-made features a perfect segmentation would give;
    - ``Cox on measured tumour``: the same without the nodes.

    Ridge Cox (``alpha``) on z-scored features, fitted on each fold's training patients
    (:func:`refitted_cox_cindex`).
    """
    import numpy as np

    m = truth.measurements
    clinical = np.c_[truth.covariates["age"], truth.covariates["hpv"]]
    tumour = np.c_[np.log(m["tumour_volume_ml"]), np.log(m["suv_max"]), m["suv_cv"], clinical]
    features = {
        "Cox on the true covariates": truth.covariates.to_numpy(float),
        "Cox on measured tumour + nodes": np.c_[tumour, np.log1p(m["node_volume_ml"])],
        "Cox on measured tumour": tumour,
    }
    return {name: refitted_cox_cindex(F, y, folds, alpha) for name, F in features.items()}


def refitted_cox_cindex(features, y, folds, alpha) -> float:
    """Within-fold C of a ridge Cox model (``alpha``, z-scored) refitted on each fold's
    training patients and applied to its test patients."""
    import numpy as np
    from sklearn.preprocessing import StandardScaler
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from survseg.evaluation import concordance_index

    folds = np.asarray(folds)
    risk = np.zeros(len(folds))
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        scaler = StandardScaler().fit(features[train])
        cox = CoxPHSurvivalAnalysis(alpha=alpha).fit(scaler.transform(features[train]), y[train])
        risk[test] = cox.predict(scaler.transform(features[test]))
    return float(concordance_index(y, risk, groups=folds))
