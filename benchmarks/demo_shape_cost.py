"""What a 32^3 demo would cost: the demo's deep fits at 24^3 and 32^3, alternated in one run.

``heads/demo_resolution.py`` shows that the demo's 24^3 grid caps its deep rows (the nodes'
burden is poorly resolved at 6.7 mm). This measures the price of the finer grid: the demo's
two deep models (:func:`survseg.demo.demo_models`, AdaMSS at the demo's batches of 2) fitted
on the same 100 patients of the demo cohort (seed 0) at each size, with a short ``max_iter``,
one torch thread (as each of the demo's two workers has), the sizes alternated so that a
change in the machine's load hits both. The ratio of the fit times, not the seconds, is the
result.

Run: ``python benchmarks/demo_shape_cost.py [--iters 40] [--repeats 2]``; writes
``benchmarks/results/demo_shape_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("DeepMTS-small-data", "AdaMSS-small-data")
SIZES = (24, 32)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--patients", type=int, default=100)
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from sklearn.base import clone

    from survseg.datasets import make_petct_cohort
    from survseg.demo import demo_models

    torch.set_num_threads(1)
    models = demo_models(iterations=args.iters)
    cohorts = {
        s: make_petct_cohort(args.patients, (s,) * 3, event_rate=0.5, random_state=0) for s in SIZES
    }
    seconds = {m: {s: [] for s in SIZES} for m in MODELS}
    for _ in range(args.repeats):
        for name in MODELS:
            for size in SIZES:
                X, y = cohorts[size]
                model = clone(models[name])
                start = time.perf_counter()
                model.fit(X, y)
                seconds[name][size].append(time.perf_counter() - start)
                print(name, size, round(seconds[name][size][-1], 1), flush=True)
    out = {
        "what": (
            f"demo deep models fitted on {args.patients} patients of the demo cohort (seed 0), "
            f"max_iter={args.iters}, 1 torch thread, 24^3 and 32^3 alternated, "
            f"{args.repeats} repeats, one process"
        ),
        "voxel_ratio": (32 / 24) ** 3,
        "seconds": {
            m: {str(s): [round(t, 2) for t in v] for s, v in d.items()} for m, d in seconds.items()
        },
        "ratio_32_to_24": {
            m: round(float(np.median(d[32]) / np.median(d[24])), 2) for m, d in seconds.items()
        },
    }
    print(json.dumps(out["ratio_32_to_24"]))
    (ROOT / "benchmarks" / "results" / "demo_shape_cost.json").write_text(
        json.dumps(out, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
