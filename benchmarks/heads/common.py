"""Shared pieces of the survival-head experiments (issue 14 item 4).

Development cohorts only: seeds 1, 11 and 21 of :func:`survseg.datasets.make_petct_cohort`
(the evaluation seeds 2, 3, 7, 13, 37, 58 and 2026 are refused here).
Every C-index is Harrell's C within folds (pairs of the same test fold only), 3-fold
stratified on the event, ``StratifiedKFold(shuffle=True, random_state=0)``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's survseg

import numpy as np  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sksurv.linear_model import CoxPHSurvivalAnalysis  # noqa: E402

from survseg.datasets import make_petct_cohort  # noqa: E402
from survseg.evaluation.metrics import concordance_index  # noqa: E402

DEV_SEEDS = (1, 11, 21)
RESERVED = (2, 3, 7, 13, 37, 58, 2026)
N_PATIENTS, SHAPE, EVENT_RATE = 150, (32, 32, 32), 0.35

HERE = Path(__file__).resolve().parent


def cohort(seed: int, n: int = N_PATIENTS, shape=SHAPE):
    """``X, y, truth`` of a development seed (cached as .npz under ``CACHE``)."""
    if seed in RESERVED or seed not in DEV_SEEDS:
        raise ValueError(f"seed {seed} is not a development seed {DEV_SEEDS}.")
    return make_petct_cohort(n, shape, random_state=seed, event_rate=EVENT_RATE, return_truth=True)


def evaluation_cohort(seed: int, n: int = N_PATIENTS, shape=SHAPE):
    """``X, y, truth`` of a development seed drawn as ``nodes_evaluation.py`` draws its cohorts.

    The generator's default event rate (about a third), not :func:`cohort`'s 0.35, so that the
    numbers compare with the evaluation seeds' JSONs.
    """
    if seed in RESERVED or seed not in DEV_SEEDS:
        raise ValueError(f"seed {seed} is not a development seed {DEV_SEEDS}.")
    return make_petct_cohort(n, shape, random_state=seed, return_truth=True)


def folds(y, n_folds: int = 3, random_state: int = 0) -> np.ndarray:
    """Test-fold label of each patient, as :func:`survseg.evaluation.benchmark` splits with
    ``random_state`` (0: the evaluation scripts' folds; ``survseg demo --seed s`` uses ``s``)."""
    fold = np.empty(len(y), dtype=int)
    skf = StratifiedKFold(n_folds, shuffle=True, random_state=random_state)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(y)), y["event"])):
        fold[test] = k
    return fold


def cindex(y, risk, fold) -> float:
    return float(concordance_index(y, np.asarray(risk, dtype=float), groups=fold))


def per_fold(y, risk, fold) -> list:
    return [
        round(float(concordance_index(y[fold == k], np.asarray(risk)[fold == k])), 3)
        for k in np.unique(fold)
    ]


def region_features(pet, prob, spacing_mm):
    """Soft volume (log ml) and total uptake (log SUV.ml) of a probability (or 0/1) map.

    ``pet``, ``prob``: arrays (n, D, H, W). Also the probability-weighted mean SUV. These are
    the "segmentation-derived features" of the experiments.
    """
    ml = spacing_mm**3 / 1000.0
    p = prob.reshape(len(prob), -1).astype(np.float64)
    s = pet.reshape(len(pet), -1).astype(np.float64)
    vol = p.sum(1) * ml
    tlg = (p * s).sum(1) * ml
    mean = tlg / np.maximum(vol, 1e-6)
    return np.column_stack([np.log1p(vol), np.log1p(tlg), mean])


def clinical(X):
    return np.column_stack([X["age"].astype(float), X["hpv"].astype(float)])


def cox_oof(features, y, fold, alpha=1e-2):
    """Out-of-fold risks of a (lightly ridge-penalised) Cox model on z-scored features."""
    risk = np.zeros(len(y))
    for k in np.unique(fold):
        tr, te = fold != k, fold == k
        mu, sd = features[tr].mean(0), features[tr].std(0) + 1e-9
        model = CoxPHSurvivalAnalysis(alpha=alpha).fit((features[tr] - mu) / sd, y[tr])
        risk[te] = model.predict((features[te] - mu) / sd)
    return risk


def references(X, y, truth, fold, radiomics=True) -> dict:
    """True-risk C, Cox on ground-truth tumour (+ node) features, RadiomicsCox (tumour mask)."""
    out = {"true_risk": cindex(y, truth.risk, fold)}
    out["true_risk_tumour_clinical"] = cindex(y, truth.risk_tumour + truth.risk_clinical, fold)
    m = truth.measurements
    gt_tumour = np.column_stack(
        [np.log(m.tumour_volume_ml), np.log(m.suv_max), m.suv_cv, clinical(X)]
    )
    out["cox_gt_tumour"] = cindex(y, cox_oof(gt_tumour, y, fold), fold)
    nodes = region_features(X["pet"], truth.node_mask, truth.spacing_mm)[:, :2]
    out["cox_gt_tumour_nodes"] = cindex(
        y, cox_oof(np.column_stack([gt_tumour, nodes]), y, fold), fold
    )
    tum = region_features(X["pet"], X["mask"], truth.spacing_mm)
    out["cox_gt_mask_features"] = cindex(
        y, cox_oof(np.column_stack([tum, clinical(X)]), y, fold), fold
    )
    out["cox_gt_mask_node_features"] = cindex(
        y, cox_oof(np.column_stack([tum, nodes, clinical(X)]), y, fold), fold
    )
    out["cox_clinical"] = cindex(y, cox_oof(clinical(X), y, fold), fold)
    if radiomics:
        from survseg.estimators import RadiomicsCox
        from survseg.radiomics import RadiomicsExtractor

        risk = np.zeros(len(y))
        t = time.time()
        for k in np.unique(fold):
            tr, te = fold != k, fold == k
            model = RadiomicsCox(
                extractor=RadiomicsExtractor(
                    image_types=("original",),
                    bin_width={"pet": 0.25, "ct": 25.0},
                    spacing=truth.spacing_mm,
                ),
                clinical=["age", "hpv"],
                random_state=0,
            ).fit(X[tr], y[tr])
            risk[te] = model.predict(X[te])
        out["radiomics_cox"] = cindex(y, risk, fold)
        out["radiomics_cox_per_fold"] = per_fold(y, risk, fold)
        out["radiomics_seconds"] = round(time.time() - t, 1)
    return out


def normalise(X):
    """(n, 2, D, H, W) float32: PET and CT z-scored per patient (the demo's intensity)."""
    vols = []
    for name in ("pet", "ct"):
        v = X[name].astype(np.float32)
        mu = v.reshape(len(v), -1).mean(1)[:, None, None, None]
        sd = v.reshape(len(v), -1).std(1)[:, None, None, None] + 1e-6
        vols.append((v - mu) / sd)
    return np.stack(vols, 1)


def save_json(name: str, payload) -> Path:
    path = HERE / "results" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=float))
    return path
