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


def rows_with_truth(result, y, true_risk, names, keys=ROW_KEYS):
    """``(true_within, true_pooled, rows)`` of a :func:`survseg.evaluation.benchmark` result.

    ``rows[name]`` holds the ``keys`` the table has for that model and
    ``fraction_of_true_within_fold``, its within-fold C-index over the true risk's on the
    benchmark's folds (read off the first model's predictions: every model has the same).
    """
    from survseg.evaluation import concordance_index

    table = result.table.set_index("model") if "model" in result.table else result.table
    predictions = result.predictions
    first = predictions[predictions["model"] == next(iter(names))].sort_values("patient")
    folds = first["fold"].to_numpy()
    true_within = concordance_index(y, true_risk, groups=folds)
    true_pooled = concordance_index(y, true_risk)
    rows = {}
    for name in names:
        row = table.loc[name]
        rows[name] = {k: float(row[k]) for k in keys if k in row.index}
        rows[name]["fraction_of_true_within_fold"] = rows[name]["cindex_within_fold"] / true_within
    return true_within, true_pooled, rows
