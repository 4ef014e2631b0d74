"""How far can the demo's deep rows get at 24^3? The small-data head's features on *perfect* masks.

The README's demo (``survseg demo``: 300 patients, half of them with an event, 24^3 voxels of
6.7 mm) asks the deep models for tumour RadiomicsCox + 0.04 within folds. Their survival head
(``SMALL_DATA_HEAD``) is a ridge Cox model (alpha 100, z-scored) on three features per
segmented region (log(1 + V), log(1 + TLG), mean SUV; ``gap.soft_features``) plus the
clinical covariates. This fits that head, fold by fold, on the same features of the
*ground-truth* tumour and node masks, so it is the best the deep rows can do with a perfect
segmentation, on three grids: 24^3 over the generator's 160 mm (6.7 mm voxels, the demo
until session 12), 24^3 over HECKTOR 2021's 144 mm box (6 mm voxels, the demo's
``field_of_view_mm`` since then), 24^3 over 120 mm (5 mm voxels, a box that cuts some nodes
off: the last column counts the patients with node voxels on the volume's border) and 32^3
over 160 mm (5 mm voxels, where small nodes cover
more voxels). No network is trained: under a minute.

Two diagnostic columns: the same head with the generating model's node term (log(1 + true
nodal volume)) in place of the measured node features, and the correlation of the two. The
generator paints every node with a radius of at least 1.2 voxels (8 mm at 6.7 mm, 7.2 mm at
6 mm, 6 mm at 5 mm), so on coarse grids the painted nodes stop telling small node burdens
apart.

Cohorts: the demo's seed 0 (not an evaluation seed; nothing here is tuned, it only measures a
ceiling) and the development seeds 1, 11, 21, drawn as ``survseg demo --seed s`` draws them,
with the demo's folds (``StratifiedKFold(3, shuffle=True, random_state=s)``), so that the
numbers compare with the demo table's rows.

Run: ``PYTHONPATH=. python benchmarks/heads/demo_resolution.py``; writes
``benchmarks/heads/results/demo_resolution.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
from _rows import refitted_cox_cindex  # noqa: E402
from common import DEV_SEEDS, RESERVED, folds  # noqa: E402
from gap import CLINICAL, true_mask_features  # noqa: E402

HERE = Path(__file__).resolve().parent
DEMO_SEED = 0
GRIDS = (
    (24, 160.0),
    (24, 144.0),
    (24, 120.0),
    (32, 160.0),
)  # (voxels per axis, field of view in mm)
COX_ALPHA = 100.0  # the estimators' cox_alpha


def head_cindex(features, y, fold) -> float:
    """Within-fold C of the head (z-scored ridge Cox) refitted fold by fold on ``features``."""
    return refitted_cox_cindex(features, y, fold, COX_ALPHA)


def on_border(masks) -> np.ndarray:
    """Whether each ``(n, D, H, W)`` mask has a voxel on a face of its volume."""
    faces = [masks[:, [0, -1]], masks[:, :, [0, -1]], masks[:, :, :, [0, -1]]]
    return np.any([f.reshape(len(masks), -1).any(1) for f in faces], axis=0)


def main():
    from survseg.datasets import make_petct_cohort
    from survseg.evaluation import concordance_index

    rows = []
    for size, fov in GRIDS:
        for seed in (DEMO_SEED, *DEV_SEEDS):
            assert seed not in RESERVED
            X, y, truth = make_petct_cohort(
                300,
                (size,) * 3,
                event_rate=0.5,
                random_state=seed,
                return_truth=True,
                voxel_size_mm=fov / size,
            )
            fold = folds(y, random_state=seed)  # the demo's folds
            both, clinical = true_mask_features(X, truth.spacing_mm)
            burden = np.asarray(truth.covariates["node_burden"], dtype=float)
            row = {
                "shape": size,
                "field_of_view_mm": fov,
                "voxel_mm": round(float(truth.spacing_mm), 2),
                "seed": seed,
                "events": int(y["event"].sum()),
                "true_risk": float(concordance_index(y, truth.risk, groups=fold)),
                "clinical": head_cindex(clinical, y, fold),
                "tumour, true mask": head_cindex(np.c_[both[:, :3], clinical], y, fold),
                "tumour + nodes, true masks": head_cindex(np.c_[both, clinical], y, fold),
                # the generating model's node term in place of the measured node features
                "tumour, true mask + true node burden": head_cindex(
                    np.c_[both[:, :3], burden, clinical], y, fold
                ),
                "corr(log(1 + node volume on the true mask), node burden)": float(
                    np.corrcoef(both[:, 3], burden)[0, 1]
                ),
                "patients with nodes on the border": int(on_border(X["nodes"]).sum()),
            }
            rows.append(row)
            print(
                json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
            )
    out = {"cox_alpha": COX_ALPHA, "clinical": list(CLINICAL), "rows": rows}
    (HERE / "results" / "demo_resolution.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
