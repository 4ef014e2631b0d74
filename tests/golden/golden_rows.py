"""The golden rows: every ablation row of the DeepMTS and AdaMSS papers' tables (and DeepSurv),
at tiny sizes on the CPU with fixed seeds.

``record_golden.py`` fits each row and writes its predictions to ``<family>.npz``;
``test_golden.py`` fits the same rows and compares. The predictions were recorded from the code
before the redesign of issue 13 (commit fec2767); where a parameter was renamed on purpose, the
row below uses the new name that gives the old behaviour (the mapping is in ``RENAMED``).

One row was re-recorded on purpose (``RERECORDED``): DeepSurv's validation split now comes
back sorted, as every deep estimator's does, so the training patients of a full batch are in
cohort order and each gets a different dropout draw than before (risks moved by <= 0.019).
"""

from __future__ import annotations

import numpy as np

from tests.tiny_models import (
    ADAMSS_FAST,
    DEEPMTS_ABLATIONS,
    DEEPMTS_FAST,
    FAST_RADIOMICS,
    PAPER_HEAD,
    deepmts_cohort,
)

# Old parameter -> the new parameter (and value) that reproduces it, for the CHANGELOG.
RENAMED = {
    "DeepMTSRegressor(learning_rate=a)": "DeepMTSRegressor(lr=a)",
    "DeepMTSRegressor(lr_milestones=(m1, ...)) in iterations of 15,000": "lr_milestones=(m1 / 15000, ...)",
    "DeepMTSRegressor(weight_decay=w)": "DeepMTSRegressor(head_l2=w / 2)",
    "DeepMTSRegressor(monitor='cox_loss')": "DeepMTSRegressor(monitor='loss')",
    "DeepMTSRegressor(validation_fraction=None)": "DeepMTSRegressor(validation_fraction=0)",
    "DeepMTSRegressor(validation_fraction=f): ceil(f * n) patients": "round(f * n) patients (0.34 of 12 = 5 -> 0.4)",
    "AdaMSSRegressor(single_channels=, fuse_channels=, n_convs=, hidden_features=, dropout=)": "network_params={...}",
    "AdaMSSRegressor(radiomics_params=p)": "AdaMSSRegressor(extractor=RadiomicsExtractor(**p))",
    "AdaMSSRegressor(stage1_lr=(a, a*f1, a*f2), stage2_lr=(b, b*g1, b*g2))": "lr=(a, b), lr_factors=((f1, f2), (g1, g2))",
    "AdaMSSRegressor(l2=x)": "AdaMSSRegressor(head_l2=x)",
    "AdaMSSRegressor(monitor='nll')": "AdaMSSRegressor(monitor='loss')",
    "DeepMTSRegressor() before issue 14 (pooled features, unscaled)": "DeepMTSRegressor(survival_inputs='pooled', feature_scaling=None)",
    "AdaMSSRegressor() before issue 14 on a cohort with a 'nodes' field (tumour only)": "AdaMSSRegressor(nodes_field=None)",
    "DeepSurv(early_stopping=True, validation_interval=k)": "validation_fraction=0.2, validate_every=k",
}

RERECORDED = {("deepsurv", "early stopping"): "sorted validation split (dropout draw order)"}

DEEPMTS_BASE = {**DEEPMTS_FAST, **PAPER_HEAD}

# Meng et al. 2022, Tables II-V, plus the training options.
DEEPMTS_ROWS = {
    **DEEPMTS_ABLATIONS,
    "clinical + validation": dict(
        clinical=["age"], validation_fraction=0.4, validate_every=2, max_iter=4
    ),
    "validation, cox loss monitor": dict(
        validation_fraction=0.4, validate_every=1, max_iter=4, monitor="loss"
    ),
    "validation, dice monitor": dict(
        validation_fraction=0.4, validate_every=1, max_iter=4, monitor="dice"
    ),
    "intensity z-score": dict(intensity={"pet": "zscore", "ct": "zscore"}),
    "unbalanced batches": dict(balanced=False),
    "schedule": dict(
        lr=1e-3,
        lr_milestones=(1 / 3,),
        lr_factors=(0.1,),
        max_iter=6,
        head_l2=0.25,
    ),
}

ADAMSS_BASE = {
    **ADAMSS_FAST,
    "intensity": {"pet": "zscore", "ct": "window"},
    # the cohort has HECKTOR-style node labels; the recorded rows segment the tumour only
    "nodes_field": None,
}


def _fast_extractor():
    from survseg.radiomics import RadiomicsExtractor

    return RadiomicsExtractor(**FAST_RADIOMICS)


# Meng et al. 2024, Tables I-III (docs/papers/adamss.md), plus the training options.
ADAMSS_ROWS = {
    "AdaMSS": dict(radiomics=True, extractor=_fast_extractor(), clinical=["age", "hpv"]),
    "No-radio": dict(clinical=["age", "hpv"]),
    "No-clinic": dict(radiomics=True, extractor=_fast_extractor()),
    "No-both / SSL / Data-driven fusion": {},
    "STL": dict(learning_strategy="stl"),
    "MTL": dict(learning_strategy="mtl"),
    "Only PET": dict(modalities=("pet",), fusion="early", intensity={"pet": "zscore"}),
    "Only CT": dict(modalities=("ct",), fusion="early", intensity={"ct": "window"}),
    "Early fusion": dict(fusion="early"),
    "Late fusion": dict(fusion="late"),
    "Intermediate fusion": dict(fusion="intermediate"),
    "monitor nll": dict(max_iter=6, validate_every=1, monitor="loss"),
    "MTL, monitor nll": dict(max_iter=6, validate_every=1, monitor="loss", learning_strategy="mtl"),
    "monitor None": dict(monitor=None),
    "no augmentation, no crop, no validation": dict(
        augmentation=False, crop_size=None, validation_fraction=0
    ),
    "stage iterations and rates": dict(
        max_iter_segmentation=3,
        max_iter_survival=5,
        lr=(1e-3, 5e-4),
        lr_factors=(0.1, 0.01),
        lr_milestones=(0.5, 0.75),
        head_l2=0.3,
    ),
}

DEEPSURV_BASE = dict(random_state=0, max_iter=40)
DEEPSURV_ROWS = {
    "full batch": {},
    "mini-batch": dict(batch_size=64, hidden_layer_sizes=(8, 4), activation="selu"),
    "early stopping": dict(validation_fraction=0.2, validate_every=5, batch_norm=True),
}


def adamss_cohort():
    from survseg.datasets import make_petct_cohort

    return make_petct_cohort(12, shape=(16, 16, 16), random_state=0)


def deepsurv_data():
    from sksurv.datasets import load_whas500

    X, y = load_whas500()
    X = X[["age", "bmi", "hr", "sysbp", "diasbp"]].to_numpy(np.float64)
    return (X - X.mean(0)) / X.std(0), y


def outputs(est, X) -> dict:
    """Every prediction a row's estimator offers for the first patients of ``X``.

    Tumour probabilities are float32 (what the networks give) of the first 4 patients; the
    rest float64, of at most 40 patients (so the recordings stay small).
    """
    X = X[:40]
    out = {}
    methods = {
        "risk": lambda: est.predict(X),
        "survival": lambda: est.predict_survival_function(X, return_array=True),
        "mask_probability": lambda: est.predict_proba_mask(X),
        "features": lambda: est.transform(X),
    }
    for name, method in methods.items():
        try:
            out[name] = method()
        except AttributeError:  # the row's model has no such output (available_if)
            pass
    if getattr(est, "fusion", None) == "adaptive":
        out["fusion_weights"] = est.fusion_weights(X, stage="survival", per_patient=True)
    if "mask_probability" in out:
        out["mask_probability"] = np.asarray(out["mask_probability"][:4], dtype=np.float32)
    return {
        k: np.asarray(v, dtype=v.dtype if k == "mask_probability" else np.float64)
        for k, v in out.items()
    }


def families():
    """(family, estimator class, base parameters, rows, data function)."""
    from survseg.estimators import AdaMSSRegressor, DeepMTSRegressor, DeepSurv

    return [
        ("deepmts", DeepMTSRegressor, DEEPMTS_BASE, DEEPMTS_ROWS, deepmts_cohort),
        ("adamss", AdaMSSRegressor, ADAMSS_BASE, ADAMSS_ROWS, adamss_cohort),
        ("deepsurv", DeepSurv, DEEPSURV_BASE, DEEPSURV_ROWS, deepsurv_data),
    ]


def fit_row(cls, base, params, X, y):
    return cls(**{**base, **params}).fit(X, y)
