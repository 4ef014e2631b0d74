"""After the fact: what a *perfect* segmentation would give the deep models' head on the opened
evaluation seeds.

The evaluation JSONs (``nodes_evaluation.py``) carry ``learned_ceilings`` at a ridge penalty
of 1, kept for comparability between seeds. The deep rows' head is now a ridge Cox model at
``cox_alpha=100`` on three features per segmented region (``gap.soft_features``) plus the
clinical covariates. This refits exactly that head, fold by fold, on the same features of the
*ground-truth* tumour and node masks of each evaluation cohort (the benchmark's folds), so
that a deep row's shortfall splits into what its segmentation loses (head on true masks minus
the row) and what learning from about 100 patients loses (true risk minus head on true masks).

Only seeds whose evaluation has been run and published are read, and nothing is chosen from
the result: it is a diagnosis, not a setting. No network is trained; about a minute.

Run: ``PYTHONPATH=. python benchmarks/heads/evaluation_ceilings.py``; writes
``benchmarks/heads/results/evaluation_ceilings.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import numpy as np  # noqa: E402
from _rows import learned_ceilings  # noqa: E402
from common import folds  # noqa: E402
from demo_resolution import COX_ALPHA, head_cindex  # noqa: E402
from gap import true_mask_features  # noqa: E402

#: evaluation seeds already opened, with the JSON of their current-settings node rows
OPENED = {
    58: "nodes_evaluation_seed58.json",
    37: "nodes_evaluation_seed37_cox_alpha100.json",
    13: "nodes_evaluation_seed13_cox_alpha100.json",
    3: "nodes_evaluation_seed3_cox_alpha100.json",
    2026: "nodes_evaluation_seed2026_cox_alpha100.json",
    2: "nodes_evaluation_seed2_cox_alpha100.json",
}
ROWS = ("RadiomicsCox", "DeepMTS-nodes", "AdaMSS-nodes")


def main():
    from survseg.datasets import make_petct_cohort
    from survseg.evaluation import concordance_index

    results = HERE.parent / "results"
    out = []
    for seed, name in OPENED.items():
        path = results / name
        if not path.exists():
            continue
        published = json.loads(path.read_text())
        X, y, truth = make_petct_cohort(150, (32,) * 3, random_state=seed, return_truth=True)
        fold = folds(y)
        true = float(concordance_index(y, truth.risk, groups=fold))
        # the benchmark's folds: the true risk's C must be the published one
        assert abs(true - published["true_risk"]["cindex_within_fold"]) < 1e-9, seed
        both, clinical = true_mask_features(X, truth.spacing_mm)
        row = {
            "seed": seed,
            "true_risk": true,
            "head on true masks": head_cindex(np.c_[both, clinical], y, fold),
            "head on the true tumour mask": head_cindex(np.c_[both[:, :3], clinical], y, fold),
            **{
                f"{k} (alpha {COX_ALPHA:g})": float(v)
                for k, v in learned_ceilings(y, truth, fold, alpha=COX_ALPHA).items()
            },
            **{
                r: float(published["models"][r]["cindex_within_fold"])
                for r in ROWS
                if r in published["models"]
            },
        }
        out.append(row)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
    text = json.dumps({"cox_alpha": COX_ALPHA, "rows": out}, indent=1) + "\n"
    (HERE / "results" / "evaluation_ceilings.json").write_text(text)


if __name__ == "__main__":
    main()
