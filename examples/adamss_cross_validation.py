# %% [markdown]
# # AdaMSS in cross-validation on 240 synthetic patients
#
# Does AdaMSS rank patients better than chance when it is trained on the CPU, at a small scale?
# This script answers it with a protocol fixed before the run: a new synthetic cohort (seed 2,
# not used to develop survseg), 3-fold cross-validation, a narrow AdaMSS trained for 150
# segmentation and 400 survival iterations, and two references on the same folds:
#
# * **RadiomicsCox** - pyradiomics features of the ground-truth tumour masks, Spearman filter,
#   Lasso-Cox (the papers' baseline);
# * **clinical Cox** - a Cox model on age and HPV status only, the covariates AdaMSS also gets.
#
# and, as the ceilings of the simulation, the C-index of the true linear predictor and of its
# clinical part. Each fold's C-index gets a 95 % bootstrap interval.
#
# AdaMSS keeps its last iteration and trains on all of each fold's training patients
# (``validation_fraction=0``, ``monitor=None``): with a few dozen validation patients, the
# kept-iteration choice is mostly noise (see the learning-strategy example). About 7 minutes
# on 2 cores; ``SURVSEG_ADAMSS_ITER=10`` gives a quick smoke run. Results go to
# ``survseg_demo_output/``.

# %%
import os

import pandas as pd
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.linear_model import CoxPHSurvivalAnalysis

from survseg import RadiomicsCox
from survseg.datasets import make_petct_cohort
from survseg.estimators.adamss import AdaMSSRegressor
from survseg.estimators.pipelines import ClinicalColumns
from survseg.evaluation.benchmark import benchmark
from survseg.evaluation.compare import concordance_ci

torch.set_num_threads(1)  # one fold per core
OUT = "survseg_demo_output"
os.makedirs(OUT, exist_ok=True)
N_ITER = int(os.environ.get("SURVSEG_ADAMSS_ITER", 400))

# %%
X, y, truth = make_petct_cohort(
    240, shape=(32, 32, 32), random_state=2, event_rate=0.5, return_truth=True
)
print(f"{len(y)} patients, {y['event'].sum()} events")

models = {
    "AdaMSS": AdaMSSRegressor(
        network_params=dict(
            single_channels=(4, 8, 16, 32),
            fuse_channels=(8, 16, 32, 64),
            n_convs=(1, 2, 2, 2),
            hidden_features=32,
        ),
        max_iter=N_ITER,
        max_iter_segmentation=min(150, N_ITER),
        # ten times the paper's rates: the run is 25-70 times shorter than its 10,000 iterations
        lr=(1e-3, 5e-4),  # stage I 1e-3 -> 5e-4 -> 1e-4, stage II 5e-4 -> 1e-4 -> 1e-5
        intensity={"pet": "zscore", "ct": "window"},
        clinical=["age", "hpv"],
        radiomics=False,
        validation_fraction=0.0,
        monitor=None,
        random_state=0,
        device="cpu",
    ),
    "RadiomicsCox": RadiomicsCox(random_state=0),
    "clinical Cox": make_pipeline(
        ClinicalColumns(["age", "hpv"]), StandardScaler(), CoxPHSurvivalAnalysis()
    ),
}
result = benchmark(models, X, y, cv=3, n_jobs=2, random_state=0, verbose=1)

# %% [markdown]
# Per fold: the held-out C-index of each model with its bootstrap interval, next to the
# simulation's ceilings on the same patients.

# %%
pred = result.predictions
rows = []
for fold, part in pred[pred.set == "train_cv"].groupby("fold"):
    patients = part.loc[part.model == "AdaMSS", "patient"].to_numpy()
    row = {"fold": fold, "patients": len(patients), "events": int(y["event"][patients].sum())}
    for name in models:
        risk = part.loc[part.model == name].set_index("patient").loc[patients, "risk"]
        c, lo, hi = concordance_ci(y[patients], risk.to_numpy(), random_state=0)
        row[name] = f"{c:.3f} ({lo:.2f}-{hi:.2f})"
    for name, risk in [("true risk", truth.risk), ("true clinical", truth.risk_clinical)]:
        row[name] = f"{concordance_ci(y[patients], risk[patients], random_state=0)[0]:.3f}"
    rows.append(row)
folds = pd.DataFrame(rows)
print(folds.to_string(index=False))
# the within-fold C-index counts pairs of patients of the same test fold only: each fold's
# model is judged on its own risk scale (see docs/evaluation.md, "Pooled or within folds?");
# p_value_within_fold: paired bootstrap test against AdaMSS (the first model) on those pairs
cols = [
    "model",
    "cindex_within_fold",
    "cindex_within_fold_low",
    "cindex_within_fold_high",
    "cindex_fold_mean",
    "cindex",
    "cindex_low",
    "cindex_high",
    "dice",
    "p_value_within_fold",
]
with pd.option_context("display.width", 200):
    print(result.table[cols].round(3).to_string(index=False))
folds.to_csv(os.path.join(OUT, "adamss_cross_validation_folds.csv"), index=False)
result.table.to_csv(os.path.join(OUT, "adamss_cross_validation.csv"), index=False)
