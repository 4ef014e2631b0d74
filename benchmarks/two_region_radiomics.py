"""Two-region radiomics: RadiomicsCox on the tumour, tumour + lymph nodes, and + peritumoral shells.

A measurement, not a test. Cohort: ``make_petct_cohort`` on a *development* seed (default 1;
the evaluation seeds of ``nodes_evaluation.py`` are refused here), ``--patients`` patients at
``--size``^3 voxels (160 mm field of view, so 5 mm voxels at 32^3). Models, all
``RadiomicsCox`` with the same extractor (first-order, GLCM, GLRLM, GLSZM, NGTDM and shape on
the original images only, no wavelets, to fit in minutes; PET bins 0.25 SUV, CT bins 25 HU):

- ``tumour``: ``regions=("tumour",)``, the papers' model;
- ``tumour+nodes``: ``regions=("tumour", "nodes")``: node radiomics and node burden;
- ``tumour+nodes+shells``: the same plus shells of ``--shells`` mm around the tumour.

The true linear predictor of the generator (``truth.risk``) is scored on the same folds as
the ceiling. Reported: within-fold C-index (pairs of patients of the same test fold, so the
folds' models need not share a risk scale) with its bootstrap 95 % interval, the paired
within-fold p-value against the tumour-only model, and the pooled out-of-fold C-index.

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/two_region_radiomics.py [--patients 150] [--size 32] [--seed 1]
    PYTHONPATH=. python benchmarks/two_region_radiomics.py --feature-classes firstorder shape \
        --output benchmarks/results/two_region_radiomics_firstorder.json

Writes ``benchmarks/results/two_region_radiomics.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from _rows import rows_with_truth, write_result
from nodes_evaluation import EVALUATION_SEEDS

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=150)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--shells", type=float, nargs="+", default=[5.0, 10.0])
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument(
        "--feature-classes",
        nargs="+",
        default=["firstorder", "glcm", "glrlm", "glszm", "ngtdm", "shape"],
        help="pyradiomics classes (default: the papers' five plus shape)",
    )
    parser.add_argument("--output", default=os.path.join(RESULTS, "two_region_radiomics.json"))
    parser.add_argument("--correlation-order", default="column", choices=("column", "concordance"))
    parser.add_argument("--scoring", default="cindex", choices=("cindex", "partial_likelihood"))
    args = parser.parse_args(argv)
    if args.seed in EVALUATION_SEEDS:
        parser.error(f"seed {args.seed} is reserved for evaluation; use a development seed.")

    import torch

    torch.set_num_threads(1)
    from survseg.datasets import make_petct_cohort
    from survseg.estimators import RadiomicsCox
    from survseg.evaluation import benchmark
    from survseg.radiomics import RadiomicsExtractor

    start = time.perf_counter()
    X, y, truth = make_petct_cohort(
        args.patients, (args.size,) * 3, random_state=args.seed, return_truth=True
    )
    generate_s = time.perf_counter() - start
    extractor = RadiomicsExtractor(
        feature_classes=list(args.feature_classes),
        image_types=["original"],
        bin_width={"pet": 0.25, "ct": 25.0},
        spacing=truth.spacing_mm,
        empty_mask="nan",
    )
    shells = tuple(args.shells)
    head = dict(correlation_order=args.correlation_order, scoring=args.scoring, random_state=0)
    models = {
        "tumour": RadiomicsCox(extractor, regions=("tumour",), **head),
        "tumour+nodes": RadiomicsCox(extractor, regions=("tumour", "nodes"), **head),
        "tumour+nodes+shells": RadiomicsCox(
            extractor, regions=("tumour", "nodes"), shells=shells, **head
        ),
    }
    start = time.perf_counter()
    result = benchmark(
        models,
        X,
        y,
        cv=args.folds,
        reference="tumour",
        n_bootstrap=args.n_bootstrap,
        random_state=0,
        n_jobs=args.n_jobs,
    )
    benchmark_s = time.perf_counter() - start
    true_within, true_pooled, rows = rows_with_truth(result, y, truth.risk, models)
    selected = {}
    # the features each model selects when fitted on the whole cohort (for reading only)
    n_features = {}
    for name, model in models.items():
        whole = model.fit(X, y)
        n_features[name] = int(whole.extractor_.get_feature_names_out().size)
        selected[name] = [[f, float(whole.coef_[f])] for f in whole.selected_features_[:10]]
    out = {
        "cohort": {
            "patients": args.patients,
            "shape": [args.size] * 3,
            "seed": args.seed,
            "events": int(y["event"].sum()),
            "spacing_mm": truth.spacing_mm,
            "patients_with_nodes": int((truth.measurements["n_nodes"] > 0).sum()),
        },
        "folds": args.folds,
        "feature_classes": list(args.feature_classes),
        "correlation_order": args.correlation_order,
        "scoring": args.scoring,
        "shells_mm": list(shells),
        "true_risk": {"cindex_within_fold": true_within, "cindex": true_pooled},
        "models": rows,
        "n_features_extracted": n_features,
        "top_selected_features_whole_cohort": selected,
        "seconds": {"generate": generate_s, "benchmark": benchmark_s},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    write_result(out, args.output)
    return out


if __name__ == "__main__":
    main()
