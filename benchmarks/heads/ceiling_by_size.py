"""How many patients does a *learned* model need to reach 0.95 x the true risk's C-index?

Issue 14 asks the deep models for 0.95 x the true risk's within-fold C-index on 150-patient
cohorts. A deep model learns its survival coefficients from about 100 training patients per
fold, so it cannot beat a Cox model fitted on the same patients to *perfect* features. This
measures that ceiling (``_rows.learned_ceilings``: ridge Cox, alpha 1, z-scored, fold by
fold) at several cohort sizes, on development seeds only:

- ``Cox on the true covariates``: the generator's covariates, coefficients learned;
- ``Cox on measured tumour + nodes``: log tumour volume, log SUVmax, SUV CV, log(1 + nodal
  volume) on the ground-truth masks, plus age and HPV (what a perfect segmentation gives);
- ``Cox on measured tumour``: the same without the nodes.

Same cohorts as ``nodes_evaluation.py`` (``make_petct_cohort(n, (32,)*3, seed)``, its default
event rate), 3-fold stratified on the event (``StratifiedKFold(shuffle=True,
random_state=0)``, the benchmark's folds).

Run: ``PYTHONPATH=. python benchmarks/heads/ceiling_by_size.py``; writes
``benchmarks/heads/results/ceiling_by_size.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
from _rows import learned_ceilings  # noqa: E402
from common import DEV_SEEDS, evaluation_cohort, folds  # noqa: E402

SIZES = (150, 300, 600)


def main():
    from survseg.evaluation import concordance_index

    rows, start = [], time.perf_counter()
    for n in SIZES:
        for seed in DEV_SEEDS:
            X, y, truth = evaluation_cohort(seed, n)
            fold = folds(y)
            true = float(concordance_index(y, truth.risk, groups=fold))
            ceilings = learned_ceilings(y, truth, fold)
            row = {"patients": n, "seed": seed, "events": int(y["event"].sum())}
            row["true_risk"] = true
            row.update({k: v / true for k, v in ceilings.items()})
            rows.append(row)
            print(json.dumps(row), flush=True)
            del X
    summary = {}
    for n in SIZES:
        part = [r for r in rows if r["patients"] == n]
        keys = [k for k in part[0] if k.startswith("Cox")]
        summary[n] = {k: float(np.mean([r[k] for r in part])) for k in keys}
    out = {
        "what": "learned ceilings as a fraction of the true risk's within-fold C-index",
        "rows": rows,
        "mean_fraction_of_true": summary,
        "seconds": time.perf_counter() - start,
    }
    (HERE / "results" / "ceiling_by_size.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
