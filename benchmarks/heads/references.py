"""References on the development seeds: true risk, Cox on ground-truth features, RadiomicsCox.

Run: ``python benchmarks/heads/references.py`` (from the repository root; about 1-2 min per
seed on one thread).
"""

import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import DEV_SEEDS, cohort, folds, references, save_json  # noqa: E402

torch.set_num_threads(1)
out = {}
for seed in DEV_SEEDS:
    t = time.time()
    X, y, truth = cohort(seed)
    fold = folds(y)
    r = references(X, y, truth, fold)
    r["n_events"] = int(y["event"].sum())
    r["seconds"] = round(time.time() - t, 1)
    out[seed] = r
    print(seed, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
save_json("references", out)
