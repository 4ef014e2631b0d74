"""What would a two-region (tumour + nodes) segmentation add to segmentation-derived features?

Ridge Cox (alpha 1, z-scored, + age and HPV) per fold on segmentation-derived features
(log soft volume, log total uptake, mean SUV per region) from: the stage-A network's predicted
tumour map alone; predicted tumour + predicted nodes (node Dice 0.0-0.47 at 200 iterations);
predicted tumour + the ground-truth node map (what a perfect node channel would give); and
ground-truth tumour + ground-truth nodes. Within-fold C on the dev seeds.

Run after segment.py: ``python benchmarks/heads/two_region.py`` -> results/two_region.json.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import DEV_SEEDS, cindex, clinical, cohort, cox_oof, region_features, save_json  # noqa: E402

CACHE = Path("/tmp/heads_cache")

out = {}
for s in DEV_SEEDS:
    X, y, truth = cohort(s)
    d = np.load(CACHE / f"stageA_seed{s}.npz")
    fold = d["fold"]
    gt_t = region_features(X["pet"], X["mask"], truth.spacing_mm)
    gt_n = region_features(X["pet"], truth.node_mask, truth.spacing_mm)
    clin = clinical(X)

    def sets(k, d=d, gt_t=gt_t, gt_n=gt_n):
        seg = d[f"seg{k}"]
        return {
            "pred tumour": seg[:, :3],
            "pred tumour + pred nodes": seg,
            "pred tumour + GT nodes": np.column_stack([seg[:, :3], gt_n]),
            "GT tumour + GT nodes": np.column_stack([gt_t, gt_n]),
            "GT tumour": gt_t,
        }

    row = {}
    for name in sets(0):
        risk = np.zeros(len(y))
        for k in range(3):
            r = cox_oof(
                np.column_stack([sets(k)[name], clin]), y, np.where(fold == k, 0, 1), alpha=1.0
            )
            risk[fold == k] = r[fold == k]
        row[name] = round(cindex(y, risk, fold), 3)
    out[s] = row
    print(s, row, flush=True)
out["mean"] = {
    name: round(float(np.mean([out[s][name] for s in DEV_SEEDS])), 3) for name in out[DEV_SEEDS[0]]
}
print("mean", out["mean"])
save_json("two_region", out)
