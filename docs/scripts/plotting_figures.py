"""Render the figures of docs/plotting.md into docs/img/ (run from the repository root).

    python docs/scripts/plotting_figures.py

Real data and real models throughout: scikit-survival's WHAS500 data with a Cox model for the
risk groups and the forest plot; the synthetic PET/CT cohort with a briefly trained AdaMSS
trained on a CPU for a few minutes (the settings of examples/adamss_attention_maps.py) for the
image figures.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sksurv.datasets import load_whas500  # noqa: E402
from sksurv.ensemble import RandomSurvivalForest  # noqa: E402
from sksurv.linear_model import CoxPHSurvivalAnalysis  # noqa: E402

from survseg.datasets import make_petct_cohort  # noqa: E402
from survseg.estimators.adamss import AdaMSSRegressor  # noqa: E402
from survseg.evaluation import compare_concordance, concordance_ci  # noqa: E402
from survseg.plotting import (  # noqa: E402
    plot_attention,
    plot_cindex_comparison,
    plot_fusion_weights,
    plot_history,
    plot_overlay,
    plot_risk_groups,
    save_figure,
)

OUT = Path("docs/img")


def whas_figures():
    X, y = load_whas500()
    X = X[["age", "bmi", "hr", "sysbp", "diasbp", "chf"]].astype(float)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.5, random_state=0, stratify=y["fstat"]
    )
    models = {
        "Cox (6 covariates)": CoxPHSurvivalAnalysis().fit(X_tr, y_tr),
        "RSF": RandomSurvivalForest(n_estimators=200, min_samples_leaf=15, random_state=0).fit(
            X_tr, y_tr
        ),
        "Cox (age only)": CoxPHSurvivalAnalysis().fit(X_tr[["age"]], y_tr),
    }
    risks = {
        name: m.predict(X_te[["age"]] if "age only" in name else X_te) for name, m in models.items()
    }
    cox = models["Cox (6 covariates)"]
    fig = plot_risk_groups(
        y_te,
        risks["Cox (6 covariates)"],
        np.median(cox.predict(X_tr)),
        time_label="Days",
        title="WHAS500 test half: Cox model risk groups",
    )
    save_figure(fig, OUT / "km.png", dpi=90)
    rows = []
    for name, risk in risks.items():
        c, lo, hi = concordance_ci(y_te, risk, n_bootstrap=1000, random_state=0)
        p = (
            np.nan
            if name == "Cox (6 covariates)"
            else compare_concordance(
                y_te, risk, risks["Cox (6 covariates)"], n_bootstrap=1000, random_state=0
            ).p_value
        )
        rows.append({"model": name, "cindex": c, "cindex_low": lo, "cindex_high": hi, "p_value": p})
    fig = plot_cindex_comparison(
        pd.DataFrame(rows), reference="Cox (6 covariates)", title="WHAS500 test half"
    )
    save_figure(fig, OUT / "cindex.png", dpi=90)


def normalise(X):
    """The papers' intensities: PET z-scored per patient, CT clipped to [-1024, 1024] HU and
    mapped to [-1, 1] (what survseg.preprocess.preprocess produces from real scans)."""
    from survseg.preprocess import window, zscore

    X = X.copy()
    for i in range(len(X)):
        X["pet"][i] = zscore(X["pet"][i])
        X["ct"][i] = window(X["ct"][i], -1024.0, 1024.0)
    return X


def petct_figures():
    # the settings of examples/adamss_attention_maps.py: a narrower network than the paper's
    # and ten times its learning rates, since the run is 40 times shorter
    torch.set_num_threads(1)
    X_raw, y = make_petct_cohort(60, shape=(32, 32, 32), random_state=0, event_rate=0.5)
    X = normalise(X_raw)
    train, test = np.arange(45), np.arange(45, 60)
    model = AdaMSSRegressor(
        network_params=dict(
            single_channels=(4, 8, 16, 32),
            fuse_channels=(8, 16, 32, 64),
            n_convs=(1, 2, 2, 2),
            hidden_features=32,
        ),
        max_iter=250,
        lr=(1e-3, 5e-4),  # stage I 1e-3 -> 5e-4 -> 1e-4, stage II 5e-4 -> 1e-4 -> 1e-5
        radiomics=False,
        clinical=["age", "hpv"],
        random_state=0,
        device="cpu",
    )
    model.fit(X[train], y[train])
    print(f"AdaMSS test C-index {model.score(X[test], y[test]):.3f}")
    i = test[int(np.argmax(X["mask"][test].reshape(len(test), -1).sum(axis=1)))]
    pred = model.predict_mask(X[i : i + 1])[0]
    dice = 2 * (pred & X["mask"][i]).sum() / (pred.sum() + X["mask"][i].sum())
    print(f"patient {i}: Dice {dice:.3f}")
    fig = plot_overlay(
        X_raw[i],
        predicted=pred,
        view="coronal",
        title=f"Held-out synthetic patient (Dice {dice:.2f})",
    )
    save_figure(fig, OUT / "overlay.png", dpi=90)
    maps = model.attention_maps(X[i : i + 1], stage="segmentation")
    fig = plot_attention(
        X_raw["pet"][i],
        [m[0] for m in maps],
        mask=X["mask"][i],
        image_name="PET (SUV)",
        view="coronal",
    )
    save_figure(fig, OUT / "attention.png", dpi=90)
    weights = {
        "Stage I (segmentation)": model.fusion_weights(
            X[test], stage="segmentation", per_patient=True
        ),
        "Stage II (survival)": model.fusion_weights(X[test], stage="survival", per_patient=True),
    }
    save_figure(plot_fusion_weights(weights), OUT / "fusion.png", dpi=90)
    save_figure(plot_history(model.history_), OUT / "history.png", dpi=90)


if __name__ == "__main__":
    import sys

    OUT.mkdir(parents=True, exist_ok=True)
    parts = sys.argv[1:] or ["whas", "petct"]
    if "whas" in parts:
        whas_figures()
    if "petct" in parts:
        petct_figures()
