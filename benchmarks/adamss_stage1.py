"""Development only: one setting of AdaMSS-small-data's stage I at several values.

With the Cox head AdaMSS trains stage I only (segmentation, ``--iterations`` iterations) and
fits a Cox model on features of its predicted regions, so the quality of its tumour and node
maps sets the C-index. This script fits AdaMSS-small-data with node labels at each of
``--values`` of one parameter ``--param`` on one development cohort (150 patients at 32^3 by
default, 3-fold, the CPU settings of ``nodes_evaluation.py``) and reports the within-fold
C-index (p-value paired against the first value), the tumour and node Dice, the node Dice of
each fold and the fit time. Evaluation seeds are refused.

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/adamss_stage1.py --seed 1 --param batch_size --values 2 8
    PYTHONPATH=. python benchmarks/adamss_stage1.py --seed 11 --param focal_alpha --values 0.25 0.75

Writes ``benchmarks/results/adamss_stage1_<param>_seed<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

from _rows import fold_node_dice, rows_with_truth, write_result
from nodes_evaluation import COMMON, EVALUATION_SEEDS

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=150)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--param", default="batch_size", help="an AdaMSSRegressor parameter")
    parser.add_argument("--values", type=json.loads, nargs="+", default=[2, 8])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--n-bootstrap", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output-dir", help="fold files (resume); default: under /tmp")
    args = parser.parse_args(argv)
    if args.seed in EVALUATION_SEEDS:
        parser.error(f"seed {args.seed} is reserved for evaluation; this is a development script.")

    import torch

    torch.set_num_threads(args.threads)
    from survseg.datasets import make_petct_cohort
    from survseg.evaluation import benchmark
    from survseg.registry import ADAMSS_SMALL_DATA_HEAD, make_model

    X, y, truth = make_petct_cohort(
        args.patients, (args.size,) * 3, random_state=args.seed, return_truth=True
    )
    named = {
        f"AdaMSS-nodes-{args.param}={v}": make_model(
            "AdaMSS",
            {**ADAMSS_SMALL_DATA_HEAD, args.param: v},
            max_iter=args.iterations,
            random_state=0,
            **COMMON,
        )
        for v in args.values
    }
    result = benchmark(
        named,
        X,
        y,
        cv=3,
        n_bootstrap=args.n_bootstrap,
        random_state=0,
        output_dir=args.output_dir or f"/tmp/survseg_adamss_stage1_seed{args.seed}",
        verbose=1,
    )
    true_within, _, rows = rows_with_truth(result, y, truth.risk, named)
    for name in named:
        rows[name]["dice_nodes_per_fold"] = fold_node_dice(result, name)
    out = {
        "cohort": {"patients": args.patients, "shape": [args.size] * 3, "seed": args.seed},
        "iterations": args.iterations,
        "fixed": {**ADAMSS_SMALL_DATA_HEAD, **COMMON},
        "true_risk": {"cindex_within_fold": true_within},
        "models": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": f"p_value_within_fold is against {args.param}={args.values[0]}",
    }
    path = os.path.join(RESULTS, f"adamss_stage1_{args.param}_seed{args.seed}.json")
    write_result(out, path)
    return out


if __name__ == "__main__":
    main()
