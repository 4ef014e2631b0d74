"""The built-in demo: the papers' benchmark on a synthetic head-and-neck PET/CT cohort.

``survseg demo`` (or :func:`run_demo`) draws a synthetic cohort, cross-validates every survseg
model with settings small enough for a laptop CPU, and writes the comparison table, the
per-patient predictions and the figures to a folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["demo_models", "run_demo"]


def demo_models(
    *,
    iterations: int = 200,
    clinical=("age", "hpv", "tnm_stage"),
    spacing=None,
    random_state: int = 0,
    fast_radiomics: bool = True,
) -> dict:
    """The models of the demo table: :func:`survseg.registry.make_model` with CPU settings.

    Every model gets the same clinical covariates, as in the papers' comparisons. The images
    of :func:`~survseg.datasets.make_petct_cohort` are in SUV and HU: the radiomics models use
    them as they are (bin widths in SUV and HU), the deep models normalise them per patient
    (their ``intensity`` parameter), as the papers' preprocessing does.

    Parameters
    ----------
    iterations : int
        Training iterations of each deep model (per stage for AdaMSS). The papers use
        15,000 (DeepMTS) and 10,000 per stage (AdaMSS) on a GPU; the demo runs at a ten
        times larger learning rate to learn something in a few hundred.
    clinical : sequence of str
        Clinical fields of the cohort given to every model.
    spacing : float, optional
        Voxel size in mm given to every model's radiomics. ``None`` (default): each
        extractor reads the cohort's own ``'spacing'`` field, as the synthetic cohort has.
    random_state : int
    fast_radiomics : bool
        Use the original image only (no wavelets) for the radiomics baselines, so the demo
        runs in minutes; set ``False`` for the papers' 1,456-feature set.
    """
    from .registry import make_model

    # the deep models with the small-data head (their own segmentation's volume and uptake,
    # then a Cox model refitted on them): the papers' heads, trained by SGD on batches of a
    # few patients, learn little from a demo-sized cohort (issue 14, benchmarks/README.md)
    names = (
        "ClinicalCox",
        "RadiomicsCox",
        "RadiomicsCox-nodes",
        "Radiomics+RSF",
        "Radiomics+DeepSurv",
        "Radiomics+ICARE",
        "DeepMTS-small-data",
        "AdaMSS-small-data",
    )
    # AdaMSS-small-data at batches of 4 (the registry's 8 costs more; the paper's 2 left the
    # node channel unlearned), three times the CPU stage-I learning rate and stage I kept at its
    # best mean Dice over tumour and nodes: at the registry's rate the node channel stayed at
    # its initial probability for the demo's 200 iterations (node Dice 0.00 and 0.33 on
    # development seeds 11 and 1 at batches of 2; 0.60 and 0.72 with these settings, within-
    # fold C 0.683 -> 0.695 and 0.691 -> 0.699; the seed-11 run 21 s longer; benchmarks/README.md)
    params = {
        "AdaMSS-small-data": {
            "batch_size": 4,
            "lr": (3e-3, 5e-4),
            "segmentation_monitor": "mean",
        }
    }
    return {
        name: make_model(
            name,
            params.get(name),
            settings="cpu",
            units="physical",
            spacing=spacing,
            clinical=clinical,
            max_iter=iterations,
            fast_radiomics=fast_radiomics,
            random_state=random_state,
        )
        for name in names
    }


def run_demo(
    output_dir="survseg_demo_output",
    *,
    n_patients: int = 300,
    shape=(24, 24, 24),
    field_of_view_mm: float = 144.0,
    event_rate: float = 0.5,
    n_folds: int = 3,
    iterations: int = 200,
    models=None,
    n_bootstrap: int = 500,
    random_state: int = 0,
    n_jobs=2,
    plots: bool = True,
    verbose: int = 1,
) -> pd.DataFrame:
    """Run the benchmark on a synthetic cohort and write table, predictions and figures.

    Parameters
    ----------
    output_dir : str or Path
        Folder of the table (``results.csv``), the predictions and the figures; created if
        missing, nothing is written outside it.
    n_patients, event_rate : int, float
        Size of the cohort. The defaults (300 patients, half of them with an observed event,
        about 140 events) make the within-fold 95 % intervals about ±0.05 wide, enough to see a
        difference of 0.1 between models; at 80 patients and the generator's 30 % they were
        ±0.13 (measured, ``benchmarks/README.md``).
    shape : tuple of int
        Volume size in voxels.
    field_of_view_mm : float
        Extent of the longest axis in mm; the voxels are ``field_of_view_mm / max(shape)``
        mm wide (6 mm at the default 24^3). The default is HECKTOR 2021's 144 mm box around
        the oropharynx. At the generator's own 160 mm (6.7 mm voxels at 24^3) the painted
        nodes are floored at 8 mm radius and their volume on the true masks correlated only
        0.66-0.69 with the node burden that drives the risk, against 0.78-0.83 at 6 mm
        (development seeds 1, 11, 21; ``benchmarks/heads/demo_resolution.py``).
    n_folds, iterations : int
        Cross-validation folds; training iterations of each deep model (see
        :func:`demo_models`).
    models : sequence of str, optional
        Subset of :func:`demo_models`'s names; all by default.
    n_bootstrap : int
        Bootstrap resamples of the intervals and the paired p-values.
    random_state : int
        Seed of the cohort and of every model.
    n_jobs : int or None
        (model, fold) fits run in parallel (joblib; ``-1``: all cores). The default, 2, keeps
        the demo under 10 minutes on a 2-core CPU; the deep models' fold times do not grow
        with the cohort (a fixed number of iterations).
    plots : bool
        Write the figures (needs matplotlib).
    verbose : int
        Print the progress and the table.

    Returns
    -------
    table : pandas.DataFrame
        One row per model (see :func:`survseg.evaluation.benchmark`).
    """
    from .datasets import make_petct_cohort
    from .datasets._checks import check_real
    from .evaluation.benchmark import benchmark
    from .evaluation.metrics import concordance_index

    fov = check_real("field_of_view_mm", field_of_view_mm, 0.0, np.inf, closed=False)
    all_models = demo_models(iterations=iterations, random_state=random_state)
    if models:
        unknown = sorted(set(models) - set(all_models))
        if unknown:
            raise ValueError(f"unknown demo model(s) {unknown}; choose from {list(all_models)}.")
        all_models = {k: v for k, v in all_models.items() if k in models}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    X, y, truth = make_petct_cohort(
        n_patients=n_patients,
        shape=tuple(shape),
        voxel_size_mm=fov / max(shape),
        event_rate=event_rate,
        random_state=random_state,
        return_truth=True,
    )
    if verbose:
        print(
            f"synthetic cohort: {len(X)} patients, {tuple(shape)} voxels of "
            f"{truth.spacing_mm:.1f} mm, "
            f"{int(y['event'].sum())} events; models: {', '.join(all_models)}"
        )
    result = benchmark(
        all_models,
        X,
        y,
        cv=n_folds,
        reference="RadiomicsCox" if "RadiomicsCox" in all_models else None,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
        n_jobs=n_jobs,
        output_dir=out,
        keep_models=plots,
        verbose=verbose,
    )
    if plots:
        write_figures(out, X, y, result)
    if verbose:
        cols = [
            c
            for c in (
                "model",
                "cindex",
                "cindex_low",
                "cindex_high",
                "cindex_within_fold",
                "cindex_within_fold_low",
                "cindex_within_fold_high",
                "cindex_uno",
                "dice",
                "dice_nodes",
                "auc",
                "ibs",
                "dcal_p",
                "ece",
                "calibration_slope",
                "p_value",
                "p_value_within_fold",
            )
            if c in result.table
        ]
        with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
            print(result.table[cols].to_string(index=False))
        ceiling = concordance_index(y, truth.risk)
        clinical_only = concordance_index(y, truth.risk_clinical)
        print(
            f"C-index of the true risk (the ceiling): {ceiling:.3f}; of its clinical part "
            f"alone: {clinical_only:.3f}"
        )
        print(
            f"reference for p-values: {result.table.attrs['reference']}; "
            f"results in {out.resolve()} ({time.perf_counter() - t0:.0f} s)"
        )
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
