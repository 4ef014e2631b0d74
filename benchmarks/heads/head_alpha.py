"""The Cox head's ridge strength on the same networks, DeepMTS or AdaMSS (issue 14).

``gap.py`` refits Cox models on numpy copies of DeepMTS's head features; this sweeps the
estimators' own head. Per fold of a development cohort it fits the registry's
``<model>-nodes`` row of ``nodes_evaluation.py`` once and records every ``fit_cox_head``
call's inputs (the training patients' head features); each ``alpha`` in ``ALPHAS`` then gets
its own head, swapped into the fitted estimator (``head_mean_``, ``head_scale_``,
``head_coef_``) before ``predict`` on the test patients. The networks are therefore the same
for every alpha, and the row of the estimator's own ``cox_alpha`` reproduces its ``predict``
(checked).

Run: ``PYTHONPATH=. python benchmarks/heads/head_alpha.py --model AdaMSS --seed 11``;
writes ``benchmarks/heads/results/head_alpha_<model>_seed<seed>.json``.
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
from gap import CLINICAL  # noqa: E402  (the clinical covariates of nodes_evaluation.py)

HERE = Path(__file__).resolve().parent
ALPHAS = (1.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("DeepMTS", "AdaMSS"), default="AdaMSS")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.seed not in DEV_SEEDS:
        raise SystemExit(f"development seeds only: {DEV_SEEDS}")

    import torch

    import survseg.estimators.adamss as adamss_module
    import survseg.estimators.deepmts as deepmts_module
    from survseg.estimators._cox_head import fit_cox_head
    from survseg.evaluation import concordance_index
    from survseg.registry import ADAMSS_SMALL_DATA_HEAD, SMALL_DATA_HEAD, make_model

    torch.set_num_threads(args.threads)
    module = adamss_module if args.model == "AdaMSS" else deepmts_module
    calls = []

    def recording_fit_cox_head(features, event, time, alpha):
        calls.append((np.array(features, dtype=np.float64), np.array(event), np.array(time)))
        return fit_cox_head(features, event, time, alpha)

    module.fit_cox_head = recording_fit_cox_head
    head = ADAMSS_SMALL_DATA_HEAD if args.model == "AdaMSS" else SMALL_DATA_HEAD
    X, y, truth = evaluation_cohort(args.seed)
    fold = folds(y)
    risk = {a: np.zeros(len(y)) for a in ALPHAS}
    own = np.zeros(len(y))
    rows, start = [], time.perf_counter()
    for k in np.unique(fold):
        tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        model = make_model(
            args.model, dict(head), settings="cpu", units="physical", clinical=CLINICAL,
            fast_radiomics=True, max_iter=args.iterations, random_state=0,
        )  # fmt: skip
        calls.clear()
        model.fit(X[tr], y[tr])
        own[te] = model.predict(X[te])
        features, event, times = calls[-1]
        for a in ALPHAS:
            vars(model).update(fit_cox_head(features, event, times, a))
            risk[a][te] = model.predict(X[te])
        rows.append({"fold": int(k), "cox_alpha": model.cox_alpha,
                     "seconds": time.perf_counter() - start})  # fmt: skip
        print(rows[-1], flush=True)
    check = risk[float(model.cox_alpha)] if float(model.cox_alpha) in risk else None
    out = {
        "model": f"{args.model}-nodes",
        "seed": args.seed,
        "iterations": args.iterations,
        "estimator_cox_alpha": model.cox_alpha,
        "reproduces_predict": None if check is None else bool(np.allclose(check, own)),
        "true_risk": float(concordance_index(y, truth.risk, groups=fold)),
        "estimator": float(concordance_index(y, own, groups=fold)),
        "cindex_within_fold": {
            f"alpha {a:g}": float(concordance_index(y, r, groups=fold)) for a, r in risk.items()
        },
        "folds": rows,
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(out, indent=1))
    path = HERE / "results" / f"head_alpha_{args.model}_seed{args.seed}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
