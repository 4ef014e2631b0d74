"""The Cox head's ridge strength on *perfect* masks: is alpha = 100 on a plateau?

``gap.py`` and ``head_alpha.py`` sweep the ridge strength of the head on the networks'
predicted maps. This sweeps it on the same three features per region (log(1 + V),
log(1 + TLG), mean SUV; ``gap.soft_features``) of the ground-truth tumour and nodes, plus the
clinical covariates, z-scored, fold by fold, at 150 and 300 patients on the development
seeds. No network is trained, so it takes a minute or two. Large alphas shrink the
coefficients towards the score direction at beta = 0 (each feature weighted by its
univariate association), whose ranking the C-index sees unchanged by the scale.

Run: ``PYTHONPATH=. python benchmarks/heads/alpha_true_masks.py``; writes
``benchmarks/heads/results/alpha_true_masks.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
from _rows import refitted_cox_cindex  # noqa: E402
from common import DEV_SEEDS, evaluation_cohort, folds  # noqa: E402
from gap import true_mask_features  # noqa: E402

HERE = Path(__file__).resolve().parent
ALPHAS = (1.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 10000.0)
SIZES = (150, 300)


def main():
    from survseg.evaluation import concordance_index

    rows = []
    for n in SIZES:
        for seed in DEV_SEEDS:
            X, y, truth = evaluation_cohort(seed, n)
            fold = folds(y)
            features, clinical = true_mask_features(X, truth.spacing_mm)
            F = np.c_[features, clinical]
            true = float(concordance_index(y, truth.risk, groups=fold))
            row = {"patients": n, "seed": seed, "events": int(y["event"].sum()), "true_risk": true}
            row.update({f"alpha {a:g}": refitted_cox_cindex(F, y, fold, a) for a in ALPHAS})
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {
        str(n): {
            f"alpha {a:g}": float(
                np.mean([r[f"alpha {a:g}"] / r["true_risk"] for r in rows if r["patients"] == n])
            )
            for a in ALPHAS
        }
        for n in SIZES
    }
    out = {"rows": rows, "mean_fraction_of_true": summary}
    print(json.dumps(summary, indent=1))
    (HERE / "results" / "alpha_true_masks.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
