r"""The figures :func:`survseg.evaluation.benchmark` results come with, written next to the table.

For a :class:`~survseg.evaluation.benchmark.BenchmarkResult` this writes

* ``cindex.png`` — forest plot of the cross-validated C-indices with 95 % CIs and p-values
  against the reference model (``cindex_test.png`` for an external test cohort);
* ``km_<model>.png`` — Kaplan–Meier curves of the out-of-fold high- and low-risk groups. Each
  patient is split at the median risk of *its fold's training patients* (the papers' protocol),
  which the benchmark records (or, for results of older versions, the kept fold models
  predict); otherwise at the median of its fold's out-of-fold risks, and the title says so;
* ``overlay_<model>.png`` — for models that segment: the patient with the largest tumour, its
  true and out-of-fold predicted masks on PET and CT;
* ``calibration.png`` — for the models that give survival functions: observed (Kaplan–Meier)
  against mean predicted out-of-fold survival at the benchmark's calibration horizon, by
  quintile of predicted survival (:func:`~survseg.plotting.plot_calibration`);
* ``dcal_<model>.png`` — D-calibration histogram of each such model's out-of-fold
  :math:`\hat S_i(T_i)` with its test (:func:`~survseg.plotting.plot_d_calibration`);
* ``history_<model>.png`` — training curves of the first fold's model (deep models);
* ``attention_<model>.png``, ``fusion_<model>.png`` — for AdaMSS: decoder attention maps of the
  same patient and the mean fusion-gate weights of each stage on the fold's test patients.

Figures that need fitted models are skipped when the models were not kept.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ._mpl import save_figure
from .attention import plot_attention, plot_fusion_weights
from .calibration import plot_calibration, plot_d_calibration
from .comparison import plot_cindex_comparison
from .history import plot_history
from .overlay import plot_overlay
from .survival import plot_risk_groups

__all__ = ["figures_for_benchmark", "fold_thresholds"]


def _file_name(kind: str, model: str) -> str:
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', model)}.png"


def fold_thresholds(result, model: str, X=None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Out-of-fold risks of ``model`` and, per patient, the risk threshold of its fold.

    Returns
    -------
    risk : ndarray (n_patients,)
        Out-of-fold risks, in patient order.
    threshold : ndarray (n_patients,)
        Median risk of the fold's training patients, predicted by the fold's model: from
        the benchmark's ``"fold_train"`` predictions, or else by the kept fold models on
        ``X``; otherwise the median of the fold's out-of-fold risks.
    from_training : bool
        Whether the thresholds come from the training patients.
    """
    pred = result.predictions
    mine = pred[pred["model"] == model]
    rows = mine[mine["set"] == "train_cv"]
    if rows.empty:
        raise ValueError(f"no out-of-fold predictions for model {model!r}.")
    n = int(rows["patient"].max()) + 1
    risk, threshold = np.full(n, np.nan), np.full(n, np.nan)
    fold_models = result.models.get(model) or []
    folds = sorted(rows["fold"].unique())
    fitted = mine[mine["set"] == "fold_train"]
    recorded = set(fitted["fold"].unique()) >= set(folds)
    from_training = recorded or (X is not None and len(fold_models) == len(folds))
    for fold in folds:
        part = rows[rows["fold"] == fold]
        test = part["patient"].to_numpy()
        risk[test] = part["risk"].to_numpy()
        if recorded:
            threshold[test] = np.median(fitted.loc[fitted["fold"] == fold, "risk"])
        elif from_training:
            train = np.setdiff1d(rows["patient"].to_numpy(), test)
            threshold[test] = np.median(fold_models[fold].predict(X[train]))
        else:
            threshold[test] = np.median(part["risk"])
    return risk, threshold, from_training


def _largest_tumour(X) -> int:
    return int(np.argmax(np.asarray(X["mask"]).reshape(len(X), -1).sum(axis=1)))


def _fold_of(result, model: str, patient: int) -> int:
    pred = result.predictions
    row = pred[
        (pred["model"] == model) & (pred["set"] == "train_cv") & (pred["patient"] == patient)
    ]
    return int(row["fold"].iloc[0])


def figures_for_benchmark(
    result, X, y, output_dir, *, patient: int | None = None, dpi: int = 120
) -> dict:
    """Write the benchmark's figures as PNG files in ``output_dir``.

    Parameters
    ----------
    result : BenchmarkResult
        What :func:`survseg.evaluation.benchmark` returned (``keep_models=True`` for the
        figures that need fitted models).
    X : cohort
        The training cohort given to the benchmark.
    y : structured ndarray
        Its survival outcomes.
    output_dir : path
        Folder for the PNG files (created if needed).
    patient : int, optional
        Patient shown in the overlays and attention maps; default: the largest tumour.
    dpi : int

    Returns
    -------
    dict
        ``{figure name: path}`` of the files written. A figure that fails is skipped with a
        warning naming it, so that a finished benchmark is never lost to a plotting error.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}

    def attempt(name, make):
        try:
            fig = make()
        except Exception as exc:  # noqa: BLE001 - reported, never silent
            warnings.warn(f"figure {name} skipped: {type(exc).__name__}: {exc}", stacklevel=3)
            return
        if fig is not None:
            path = out / name
            save_figure(fig, path, dpi=dpi)
            written[name] = path

    table = result.table
    reference = table.attrs.get("reference")
    attempt(
        "cindex.png",
        lambda: plot_cindex_comparison(
            table, reference=reference, title="Cross-validated C-index (out of fold)"
        ),
    )
    if "test_cindex" in table and table["test_cindex"].notna().any():
        attempt(
            "cindex_test.png",
            lambda: plot_cindex_comparison(
                table, prefix="test_", reference=reference, title="External test cohort"
            ),
        )

    calibrated = _calibrated_models(result)
    if calibrated:
        attempt("calibration.png", lambda: _calibration(result, calibrated, y))
    for model in calibrated:
        attempt(_file_name("dcal", model), lambda m=model: _d_calibration(result, m, y))

    has_mask = "mask" in (X.dtype.names or ())
    shown = (_largest_tumour(X) if has_mask else 0) if patient is None else int(patient)
    for model in table["model"]:
        attempt(_file_name("km", model), lambda m=model: _km(result, m, X, y))
        fold_models = result.models.get(model) or []
        if not fold_models:
            continue
        if hasattr(fold_models[0], "history_"):
            attempt(_file_name("history", model), lambda f=fold_models[0]: plot_history(f.history_))
        held_out_by = fold_models[_fold_of(result, model, shown)]
        if hasattr(held_out_by, "predict_mask") and has_mask:
            attempt(
                _file_name("overlay", model),
                lambda m=model, f=held_out_by: _overlay(m, f, X, shown),
            )
        if hasattr(held_out_by, "attention_maps"):
            attempt(
                _file_name("attention", model),
                lambda m=model, f=held_out_by: _attention(m, f, X, shown),
            )
        if hasattr(held_out_by, "fusion_weights") and getattr(held_out_by, "fusion", None) in (
            None,
            "adaptive",
        ):
            attempt(
                _file_name("fusion", model),
                lambda m=model, f=held_out_by: _fusion(result, m, f, X, shown),
            )
    return written


def _out_of_fold(result, model, column):
    pred = result.predictions
    rows = pred[(pred["model"] == model) & (pred["set"] == "train_cv")].sort_values("patient")
    return rows[column].to_numpy(float) if column in rows else np.full(len(rows), np.nan)


def _calibrated_models(result) -> list:
    """Models whose out-of-fold survival at the horizon is known for every patient."""
    if result.table.attrs.get("calibration_horizon") is None:
        return []
    return [
        m
        for m in result.table["model"]
        if np.isfinite(_out_of_fold(result, m, "surv_horizon")).all()
        and len(_out_of_fold(result, m, "surv_horizon"))
    ]


def _calibration(result, models, y):
    from ..evaluation.calibration import calibration_at_horizon

    horizon = float(result.table.attrs["calibration_horizon"])
    cals = [
        calibration_at_horizon(y, _out_of_fold(result, m, "surv_horizon"), horizon) for m in models
    ]
    fig = plot_calibration(cals, label=list(models), color=[f"C{i}" for i in range(len(models))])
    fig.axes[0].set_title(f"Out-of-fold calibration at t = {horizon:g}")
    return fig


def _d_calibration(result, model, y):
    from ..evaluation.calibration import d_calibration

    own = _out_of_fold(result, model, "surv_own")
    return plot_d_calibration(d_calibration(y, own), title=f"{model}: D-calibration (out of fold)")


def _km(result, model, X, y):
    risk, threshold, from_training = fold_thresholds(result, model, X)
    cut = "each fold's training median" if from_training else "each fold's own median"
    # a per-patient threshold is the same split as comparing risk - threshold with 0
    return plot_risk_groups(
        y, risk - threshold, 0.0, title=f"{model}: out-of-fold risk groups (cut at {cut})"
    )


def _overlay(model, fitted, X, i):
    from ..evaluation.metrics import dice_score

    pred = np.asarray(fitted.predict_mask(X[i : i + 1]))[0]
    dice = float(dice_score(X["mask"][i : i + 1], pred[None])[0])
    return plot_overlay(
        X[i], predicted=pred, title=f"{model}: patient {i} (held out), Dice {dice:.2f}"
    )


def _attention(model, fitted, X, i):
    maps = fitted.attention_maps(X[i : i + 1])
    image = (
        "pet"
        if "pet" in X.dtype.names
        else next(n for n in X.dtype.names if np.asarray(X[n][0]).ndim == 3)
    )
    mask = X["mask"][i] if "mask" in X.dtype.names else None
    fig = plot_attention(X[image][i], [m[0] for m in maps], mask=mask, image_name=image.upper())
    fig.suptitle(f"{model}: attention maps, patient {i} — {fig.get_suptitle()}", fontsize="medium")
    return fig


def _fusion(result, model, fitted, X, i):
    pred = result.predictions
    fold = _fold_of(result, model, i)
    rows = pred[(pred["model"] == model) & (pred["set"] == "train_cv") & (pred["fold"] == fold)]
    Xf = X[np.sort(rows["patient"].to_numpy())]
    weights = {}
    for stage, label in (
        ("segmentation", "Stage I (segmentation)"),
        ("survival", "Stage II (survival)"),
    ):
        weights[label] = fitted.fusion_weights(Xf, stage=stage, per_patient=True)
    if getattr(fitted, "learning_strategy", None) == "mtl":  # one network for both
        weights = {"multi-task": weights["Stage II (survival)"]}
    fig = plot_fusion_weights(weights)
    fig.axes[0].set_title(
        f"{model}: mean fusion-gate weights (fold {fold} test patients)", fontsize="medium"
    )
    return fig
