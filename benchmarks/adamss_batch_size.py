"""Development only: AdaMSS-small-data's stage I at batches of 2 (the paper) and 8 (DeepMTS's).

With the Cox head AdaMSS trains stage I only, for ``--iterations`` iterations; at the paper's
batches of two patients it sees a quarter of the patients DeepMTS sees in as many iterations.
This script fits AdaMSS-small-data with node labels at each ``--batch-sizes`` on one
development cohort (150 patients at 32^3 by default, 3-fold, the CPU settings of
``nodes_evaluation.py``) and reports the within-fold C-index, tumour and node Dice and the fit
time. Evaluation seeds are refused.

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/adamss_batch_size.py --seed 1 --batch-sizes 2 8

Writes ``benchmarks/results/adamss_batch_size_seed<seed>.json``.
"""

from __future__ import annotations

import argparse
import os
import platform

from _rows import rows_with_truth, write_result
from nodes_evaluation import COMMON, EVALUATION_SEEDS

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=150)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 8])
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
        f"AdaMSS-nodes-b{b}": make_model(
            "AdaMSS",
            dict(ADAMSS_SMALL_DATA_HEAD, batch_size=b),
            max_iter=args.iterations,
            random_state=0,
            **COMMON,
        )
        for b in args.batch_sizes
    }
    result = benchmark(
        named,
        X,
        y,
        cv=3,
        n_bootstrap=args.n_bootstrap,
        random_state=0,
        output_dir=args.output_dir or f"/tmp/survseg_adamss_batch_size_seed{args.seed}",
        verbose=1,
    )
    true_within, _, rows = rows_with_truth(result, y, truth.risk, named)
    out = {
        "cohort": {"patients": args.patients, "shape": [args.size] * 3, "seed": args.seed},
        "iterations": args.iterations,
        "true_risk": {"cindex_within_fold": true_within},
        "models": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "p_value_within_fold is against the first batch size",
    }
    path = os.path.join(RESULTS, f"adamss_batch_size_seed{args.seed}.json")
    write_result(out, path)
    return out


if __name__ == "__main__":
    main()
