"""The built-in demo: the papers' benchmark on a synthetic head-and-neck PET/CT cohort.

``survseg demo`` (or :func:`run_demo`) draws a synthetic cohort, cross-validates every survseg
model with settings small enough for a laptop CPU, and writes the comparison table, the
per-patient predictions and the figures to a folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

__all__ = ["demo_models", "run_demo"]


def demo_models(*, iterations: int = 300, random_state: int = 0, fast_radiomics: bool = True) -> dict:
    """The models of the demo table, with CPU-sized settings.

    Parameters
    ----------
    iterations : int
        Training iterations of each deep model (per stage for AdaMSS). The papers use
        15,000 (DeepMTS) and 10,000 per stage (AdaMSS) on a GPU.
    random_state : int
    fast_radiomics : bool
        Use the original image only (no wavelets) for the radiomics baselines, so the demo
        runs in minutes; set ``False`` for the papers' 1,456-feature set.
    """
    from .estimators import (
        AdaMSSRegressor,
        DeepMTSRegressor,
        RadiomicsCox,
        make_radiomics_pipeline,
    )
    from .radiomics import RadiomicsExtractor

    def extractor():
        # The synthetic PET is in SUV and the CT in HU: 0.25 SUV and 25 HU bins give
        # pyradiomics' recommended 30-130 grey levels inside the tumours.
        return RadiomicsExtractor(image_types=("original",) if fast_radiomics else None,
                                  bin_width={"pet": 0.25, "ct": 25.0})

    return {
        "RadiomicsCox": RadiomicsCox(extractor=extractor(), random_state=random_state),
        "Radiomics+RSF": make_radiomics_pipeline("rsf", extractor=extractor(),
                                                 random_state=random_state),
        "Radiomics+DeepSurv": make_radiomics_pipeline("deepsurv", extractor=extractor(),
                                                      random_state=random_state),
        "DeepMTS": DeepMTSRegressor(max_iter=iterations, random_state=random_state),
        "AdaMSS": AdaMSSRegressor(max_iter=iterations, random_state=random_state),
    }


def run_demo(
    output_dir="survseg_demo_output",
    *,
    n_patients: int = 60,
    shape=(32, 32, 32),
    n_folds: int = 3,
    iterations: int = 300,
    models=None,
    n_bootstrap: int = 500,
    random_state: int = 0,
    n_jobs=None,
    plots: bool = True,
    verbose: int = 1,
) -> pd.DataFrame:
    """Run the benchmark on a synthetic cohort and write table, predictions and figures.

    Returns
    -------
    table : pandas.DataFrame
        One row per model (see :func:`survseg.evaluation.benchmark`).
    """
    from .datasets import make_petct_cohort
    from .evaluation.benchmark import benchmark

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    X, y = make_petct_cohort(n_patients=n_patients, shape=tuple(shape), random_state=random_state)
    all_models = demo_models(iterations=iterations, random_state=random_state)
    if models:
        unknown = sorted(set(models) - set(all_models))
        if unknown:
            raise ValueError(f"unknown demo model(s) {unknown}; choose from {list(all_models)}.")
        all_models = {k: v for k, v in all_models.items() if k in models}
    if verbose:
        print(f"synthetic cohort: {len(X)} patients, {tuple(shape)} voxels, "
              f"{int(y['event'].sum())} events; models: {', '.join(all_models)}")
    result = benchmark(all_models, X, y, cv=n_folds, n_bootstrap=n_bootstrap,
                       random_state=random_state, n_jobs=n_jobs, output_dir=out,
                       keep_models=plots, verbose=0)
    if plots:
        write_figures(out, X, y, result)
    if verbose:
        cols = [c for c in ("model", "cindex", "cindex_low", "cindex_high", "dice", "auc", "ibs",
                            "p_value") if c in result.table]
        with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
            print(result.table[cols].to_string(index=False))
        print(f"reference for p-values: {result.table.attrs['reference']}; "
              f"results in {out.resolve()} ({time.perf_counter() - t0:.0f} s)")
    return result.table


def write_figures(out, X, y, result) -> None:
    """Figures next to the table (needs matplotlib: ``pip install survseg[plot]``).

    Without matplotlib the figures are skipped with a message; the table is already written.
    """
    try:
        from .plotting import figures_for_benchmark

        figures_for_benchmark(result, X, y, out)
    except ImportError as exc:  # matplotlib is imported lazily, inside the call
        print(f"figures skipped ({exc}).")
