# %% [markdown]
# # AdaMSS: segmentation-to-survival vs multi-task vs single-task learning
#
# The learning-strategy ablation of Meng et al. (2024), Table II, on the synthetic PET/CT cohort:
#
# * **STL** - a segmentation network and, separately, a survival network from random weights;
# * **MTL** - one network trained on segmentation and survival losses at once;
# * **SSL** - stage I segmentation, then stage II survival starting from the stage-I weights;
#
# all without radiomics (as in the paper's ablation), with the clinical covariates age and HPV
# status; plus the full AdaMSS (SSL with radiomics from its own predicted masks).
#
# This is a small CPU run (32^3 volumes, a narrower network, 250 iterations per stage, 50
# training patients): the numbers say whether each variant learns, not which strategy is best.
# Run it as a script (about 10 minutes on one core; ``SURVSEG_ADAMSS_ITER=20`` for a quick
# smoke run). Results go to ``survseg_demo_output/``.

# %%
import os
import time

import numpy as np
import pandas as pd
import torch

from survseg.datasets import make_petct_cohort
from survseg.estimators.adamss import AdaMSSRegressor
from survseg.evaluation.compare import concordance_ci
from survseg.evaluation.metrics import dice_score
from survseg.radiomics import RadiomicsExtractor

torch.set_num_threads(1)
OUT = "survseg_demo_output"
os.makedirs(OUT, exist_ok=True)
N_ITER = int(os.environ.get("SURVSEG_ADAMSS_ITER", 250))


# %% [markdown]
# 80 patients: 50 to train (10 of them held out inside ``fit`` to pick each stage's best
# iteration), 30 to test. Half the patients have an observed event.

# %%
X, y, truth = make_petct_cohort(
    80, shape=(32, 32, 32), random_state=0, event_rate=0.5, return_truth=True
)
train, test = np.arange(50), np.arange(50, 80)
print(
    f"events: {y['event'][train].sum()} of {len(train)} training, "
    f"{y['event'][test].sum()} of {len(test)} test patients"
)

COMMON = dict(
    network_params=dict(
        single_channels=(4, 8, 16, 32),
        fuse_channels=(8, 16, 32, 64),
        n_convs=(1, 2, 2, 2),
        hidden_features=32,
    ),
    max_iter=N_ITER,
    # ten times the paper's rates: the run is 40 times shorter than its 10,000 iterations
    lr=(1e-3, 5e-4),  # stage I 1e-3 -> 5e-4 -> 1e-4, stage II 5e-4 -> 1e-4 -> 1e-5
    clinical=["age", "hpv"],
    intensity={"pet": "zscore", "ct": "window"},  # the paper's normalisation
    radiomics=False,
    # the kept iteration of each survival stage is the one of least validation NLL: with 10
    # validation patients their C-index is too coarse to pick it (see docs/examples.md)
    monitor="loss",
    random_state=0,
)
VARIANTS = {
    "STL": dict(learning_strategy="stl"),
    "MTL": dict(learning_strategy="mtl"),
    "SSL": dict(learning_strategy="ssl"),
    "SSL + radiomics (AdaMSS)": dict(
        learning_strategy="ssl",
        radiomics=True,
        # a reduced pyradiomics set (original images only) keeps extraction fast on a CPU
        extractor=RadiomicsExtractor(
            feature_classes=["firstorder", "glcm", "shape"],
            image_types=["original"],
            settings={"binCount": 32},
        ),
    ),
}

# %%
rows = []
for name, params in VARIANTS.items():
    start = time.perf_counter()
    model = AdaMSSRegressor(**{**COMMON, **params}).fit(X[train], y[train])
    seconds = time.perf_counter() - start
    dice = dice_score(X["mask"][test], model.predict_mask(X[test]))
    c, low, high = concordance_ci(y[test], model.predict(X[test]), random_state=0)
    rows.append(
        {
            "variant": name,
            "test C-index": c,
            "95% CI low": low,
            "95% CI high": high,
            "test Dice": float(np.mean(dice)),
            "train C-index": model.score(X[train], y[train]),
            "radiomics kept": len(model.radiomics_features_),
            "fit minutes": seconds / 60,
        }
    )
    print(rows[-1])

# Reference points on the same test patients: the true linear predictor of the simulation
# (the best any model can do) and its clinical part alone (age and HPV).
for name, risk in [
    ("true risk (ceiling)", truth.risk),
    ("true clinical risk", truth.risk_clinical),
]:
    c, low, high = concordance_ci(y[test], risk[test], random_state=0)
    rows.append({"variant": name, "test C-index": c, "95% CI low": low, "95% CI high": high})
results = pd.DataFrame(rows).set_index("variant")
print(results.round(3).to_string())
results.to_csv(os.path.join(OUT, "adamss_learning_strategies.csv"))

# %%
try:
    from survseg.plotting import save_figure
    from survseg.plotting._mpl import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    models = results.dropna(subset=["test Dice"])
    r = results[::-1]
    err = [r["test C-index"] - r["95% CI low"], r["95% CI high"] - r["test C-index"]]
    axes[0].barh(r.index, r["test C-index"], xerr=err, capsize=3, color="tab:blue")
    axes[0].axvline(0.5, color="k", ls="--", lw=1)
    axes[0].set_xlabel("test C-index, 95% bootstrap CI (0.5 = chance)")
    axes[1].barh(models.index[::-1], models["test Dice"][::-1], color="tab:orange")
    axes[1].set_xlabel("test Dice")
    fig.tight_layout()
    save_figure(fig, os.path.join(OUT, "adamss_learning_strategies.png"))
except ImportError:  # matplotlib is optional
    pass
