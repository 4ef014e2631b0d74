"""Where DeepMTS-nodes loses C-index against hand-made features of the true masks (issue 14).

On evaluation seed 37, DeepMTS-nodes (the small-data Cox head on its own segmentation's
features) reached 0.697 within folds while a Cox model on log tumour volume, log SUVmax, SUV
CV and log(1 + nodal volume) measured on the *ground-truth* masks reached 0.747. This script
splits that gap on development cohorts only. Per fold it fits the same DeepMTS-nodes as
``nodes_evaluation.py`` (``make_model("DeepMTS", SMALL_DATA_HEAD, settings="cpu")``), then
fits ridge Cox models (alpha 1, z-scored, + clinical) on the training patients and scores
the test patients with:

- ``estimator``: the fitted estimator's own ``predict`` (its Cox head);
- ``soft3 pred``: the head's three features per region (log(1 + V), log(1 + TLG), mean SUV)
  recomputed in numpy on the predicted probabilities (should match ``estimator``);
- ``soft5 pred``: the same plus log(1 + SUVmax) and the SUV coefficient of variation, i.e.
  the standard PET set MTV, TLG, SUVmean, SUVmax, COV;
- ``soft3 hard`` / ``soft5 hard``: the same on the predicted masks (probability > 0.5);
- ``soft3 gt`` / ``soft5 gt``: the same features on the ground-truth masks (a perfect
  segmentation: the ceiling of the head's feature choice);
- ``soft3 gt->pred``: the head fitted on ground-truth features, applied to predicted ones
  (is it the training patients' masks that mislead the head?).

Each feature set of the predicted maps and of the true masks is also refitted at ridge
strengths ``ALPHAS`` (``... alpha <a>`` rows; added after seeds 1 and 11 had run).

It also reports train and test Dice per region (do the training patients' masks look like
the test patients'?).

Run: ``PYTHONPATH=. python benchmarks/heads/gap.py --seed 1``; writes
``benchmarks/heads/results/gap_seed<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from common import DEV_SEEDS, evaluation_cohort, folds  # noqa: E402

HERE = Path(__file__).resolve().parent
CLINICAL = ("age", "hpv", "tnm_stage")
ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0)


def soft_features(prob, suv, voxel_ml, extended):
    """Per-region PET features of probability maps ``(n, R, D, H, W)``, ``(n, k R)``."""
    out = []
    for r in range(prob.shape[1]):
        p = prob[:, r].reshape(len(prob), -1).astype(np.float64)
        s = suv.reshape(len(suv), -1).astype(np.float64)
        vol = p.sum(1) * voxel_ml
        tlg = (p * s).sum(1) * voxel_ml
        mean = tlg / np.maximum(vol, voxel_ml)
        cols = [np.log1p(vol), np.log1p(tlg), mean]
        if extended:
            w = p.sum(1)
            m = (p * s).sum(1) / np.maximum(w, 1.0)
            var = (p * (s - m[:, None]) ** 2).sum(1) / np.maximum(w, 1.0)
            cols += [np.log1p((p * s).max(1)), np.sqrt(var) / np.maximum(m, 1e-3)]
        out += cols
    return np.stack(out, axis=1)


def true_mask_features(X, spacing_mm):
    """The head's three features per region on the *ground-truth* tumour and node masks.

    Returns ``(features, clinical)``: ``soft_features`` of ``X``'s ``'mask'`` and ``'nodes'``
    (``(n, 6)``: tumour, then nodes) and the ``CLINICAL`` covariates (``(n, 3)``).
    """
    voxel_ml = float(spacing_mm) ** 3 / 1000.0
    masks = np.stack([X["mask"], X["nodes"]], axis=1).astype(np.float32)
    clinical = np.stack([X[c].astype(float) for c in CLINICAL], axis=1)
    return soft_features(masks, X["pet"], voxel_ml, False), clinical


def dice(pred, gt):
    inter = (pred & gt).sum()
    den = pred.sum() + gt.sum()
    return float(2 * inter / den) if den else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.seed not in DEV_SEEDS:
        raise SystemExit(f"development seeds only: {DEV_SEEDS}")

    import torch
    from sklearn.preprocessing import StandardScaler
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from survseg.evaluation import concordance_index
    from survseg.registry import SMALL_DATA_HEAD, make_model

    torch.set_num_threads(args.threads)
    X, y, truth = evaluation_cohort(args.seed)
    fold = folds(y)
    voxel_ml = float(truth.spacing_mm) ** 3 / 1000.0
    clinical = np.stack([X[c].astype(float) for c in CLINICAL], axis=1)
    gt = np.stack([X["mask"], X["nodes"]], axis=1).astype(np.float32)
    suv = X["pet"]
    names = ["estimator", "soft3 pred", "soft5 pred", "soft3 hard", "soft5 hard", "soft3 gt"]
    names += ["soft5 gt", "soft3 gt->pred"]
    names += [f"soft{k} {w} alpha {a:g}" for k in (3, 5) for w in ("pred", "gt") for a in ALPHAS]
    risk = {k: np.zeros(len(y)) for k in names}
    dices, start = [], time.perf_counter()
    for k in np.unique(fold):
        tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        model = make_model(
            "DeepMTS",
            dict(SMALL_DATA_HEAD),
            settings="cpu",
            units="physical",
            clinical=CLINICAL,
            max_iter=args.iterations,
            random_state=0,
        )
        model.fit(X[tr], y[tr])
        risk["estimator"][te] = model.predict(X[te])
        prob = np.concatenate(
            [model._region_probabilities(X[tr]), model._region_probabilities(X[te])]
        )
        order = np.concatenate([tr, te])
        pred = np.empty_like(prob)
        pred[order] = prob
        row = {"fold": int(k), "seconds": time.perf_counter() - start}
        for r, region in enumerate(("tumour", "nodes")):
            for part, idx in (("train", tr), ("test", te)):
                row[f"dice_{region}_{part}"] = dice(pred[idx, r] > 0.5, gt[idx, r] > 0.5)
        dices.append(row)
        print(row, flush=True)
        hard = (pred > 0.5).astype(np.float32)
        feats = {
            "soft3 pred": soft_features(pred, suv, voxel_ml, False),
            "soft5 pred": soft_features(pred, suv, voxel_ml, True),
            "soft3 hard": soft_features(hard, suv, voxel_ml, False),
            "soft5 hard": soft_features(hard, suv, voxel_ml, True),
            "soft3 gt": soft_features(gt, suv, voxel_ml, False),
            "soft5 gt": soft_features(gt, suv, voxel_ml, True),
        }
        for name, F in feats.items():
            F = np.c_[F, clinical]
            scaler = StandardScaler().fit(F[tr])
            cox = CoxPHSurvivalAnalysis(alpha=1.0).fit(scaler.transform(F[tr]), y[tr])
            risk[name][te] = cox.predict(scaler.transform(F[te]))
            for a in ALPHAS:  # the ridge strength (the estimator's cox_alpha is 10)
                if f"{name} alpha {a:g}" not in risk:  # swept for maps and true masks only
                    continue
                cox_a = CoxPHSurvivalAnalysis(alpha=a).fit(scaler.transform(F[tr]), y[tr])
                risk[f"{name} alpha {a:g}"][te] = cox_a.predict(scaler.transform(F[te]))
            if name == "soft3 gt":
                P = np.c_[feats["soft3 pred"], clinical]
                risk["soft3 gt->pred"][te] = cox.predict(scaler.transform(P[te]))
    out = {
        "seed": args.seed,
        "iterations": args.iterations,
        "true_risk": float(concordance_index(y, truth.risk, groups=fold)),
        "cindex_within_fold": {
            k: float(concordance_index(y, v, groups=fold)) for k, v in risk.items()
        },
        "folds": dices,
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(out, indent=1))
    path = HERE / "results" / f"gap_seed{args.seed}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
