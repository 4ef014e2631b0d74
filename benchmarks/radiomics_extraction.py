"""Radiomics extraction speed: seconds per patient, parallel speed-up, cache speed-up.

A benchmark, not a test. Cohort: ``--patients`` PET/CT cases of 128 x 128 x 112 voxels at 1 mm
(the DeepMTS input size) with one lobulated, heterogeneous tumour of about 20 cm^3 each; PET in
SUV, CT in HU. Feature set: the papers' 1,456 features (``RadiomicsExtractor()`` defaults,
original + 8 wavelet images, first-order/GLCM/GLRLM/GLSZM/NGTDM per modality + 16 shape),
bin widths 25/10 HU for CT (the authors' file) and 0.5/0.25 SUV for PET (25-150 grey levels).

Measured, in one run on the same cohort:

1. ``n_jobs=1``, no cache: seconds per patient;
2. ``n_jobs=2``, no cache: speed-up over 1 (the loky worker pool is started by a one-patient
   warm-up call first, so start-up is not counted; it is reported separately). Serial and
   parallel runs alternate ``--rounds`` times and the fastest of each is kept, because the
   machine may be shared;
3. cache: a first ``fit_transform`` with the in-memory cache empty, then a cloned extractor's
   ``fit_transform`` on the same cohort (what each later cross-validation fold does), and the
   same from the on-disk cache after emptying the in-memory one.

Usage::

    python benchmarks/radiomics_extraction.py [--patients 6] [--rounds 2]

Writes ``benchmarks/results/radiomics_extraction.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SHAPE = (112, 128, 128)  # (D, H, W), 1 mm voxels
BIN_WIDTH = {"pet": {"original": 0.5, "wavelet": 0.25}, "ct": {"original": 25.0, "wavelet": 10.0}}


def _smooth_noise(rng, shape, passes=3):
    """Spatially correlated noise (box-filtered), unit standard deviation."""
    x = rng.normal(size=shape)
    for _ in range(passes):
        for axis in range(3):
            x = (np.roll(x, 1, axis) + x + np.roll(x, -1, axis)) / 3
    return x / x.std()


def make_cohort(n, seed=0):
    """PET/CT cases with a ~20 cm^3 lobulated tumour: heterogeneous uptake, necrotic-ish core."""
    from survseg.data.cohort import volumes

    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(SHAPE, dtype=np.float32)
    pets, cts, masks = [], [], []
    for _ in range(n):
        centre = np.array(SHAPE) / 2 + rng.uniform(-10, 10, 3)
        r = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
        lobes = 1 + 0.15 * _smooth_noise(rng, SHAPE, passes=6)
        radius = (3 * 20000 / (4 * np.pi)) ** (1 / 3)  # 20 cm^3 sphere: 16.8 mm
        mask = (r / lobes <= radius).astype(np.uint8)
        tex = _smooth_noise(rng, SHAPE)
        core = np.clip(1 - r / radius, 0, 1)
        pet = 1.0 + 0.15 * rng.normal(size=SHAPE) + mask * (8.0 + 1.5 * tex - 4.0 * core**2)
        ct = (
            40
            + 15 * _smooth_noise(rng, SHAPE, 1)
            + 10 * rng.normal(size=SHAPE)
            + mask * (15 + 12 * tex)
        )
        pets.append(pet.astype(np.float32))
        cts.append(ct.astype(np.float32))
        masks.append(mask)
    return volumes(pet=np.stack(pets), ct=np.stack(cts), mask=np.stack(masks))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2, help="serial/parallel repetitions")
    args = parser.parse_args()

    import radiomics
    from joblib import Memory
    from sklearn.base import clone

    from survseg.radiomics import RadiomicsExtractor, clear_cache

    load_before = os.getloadavg()
    X = make_cohort(args.patients)
    volumes_ml = X["mask"].reshape(len(X), -1).sum(axis=1) / 1000.0
    base = RadiomicsExtractor(bin_width=BIN_WIDTH)

    serial = clone(base).set_params(cache=False, n_jobs=1).fit(X)
    parallel = clone(base).set_params(cache=False, n_jobs=2).fit(X)
    _, t_warm = timed(lambda: parallel.transform(X[:1]))  # starts the worker pool
    # Other users share this machine: alternate serial and parallel runs, keep the fastest.
    serial_times, parallel_times = [], []
    for _ in range(args.rounds):
        f1, t = timed(lambda: serial.transform(X))
        serial_times.append(t)
        f2, t = timed(lambda: parallel.transform(X))
        parallel_times.append(t)
    t1, t2 = min(serial_times), min(parallel_times)
    # Bit-identical except where BLAS threading differs (workers run single-threaded).
    a, b = f1.to_numpy(), f2.to_numpy()
    rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-12)
    max_rel = float(np.nanmax(rel)) if np.isfinite(rel).any() else 0.0
    assert np.allclose(a, b, rtol=1e-6, equal_nan=True), "parallel extraction differs from serial"

    clear_cache()
    cached = clone(base).fit(X)
    _, t_first = timed(lambda: cached.fit_transform(X))
    _, t_again = timed(lambda: clone(base).fit_transform(X))
    with tempfile.TemporaryDirectory() as tmp:
        clear_cache()
        clone(base).set_params(memory=Memory(tmp, verbose=0)).fit_transform(X)
        clear_cache()
        _, t_disk = timed(lambda: clone(base).set_params(memory=tmp).fit_transform(X))
    clear_cache()

    roi = X["mask"].astype(bool)
    bins = {
        m: float(
            np.median(
                [np.ptp(X[m][i][roi[i]]) / BIN_WIDTH[m]["original"] + 1 for i in range(len(X))]
            )
        )
        for m in ("pet", "ct")
    }
    result = {
        "benchmark": "radiomics_extraction",
        "cohort": {
            "patients": len(X),
            "shape_DHW": list(SHAPE),
            "spacing_mm": 1.0,
            "tumour_volume_ml_mean": round(float(volumes_ml.mean()), 2),
            "tumour_volume_ml_range": [
                round(float(volumes_ml.min()), 2),
                round(float(volumes_ml.max()), 2),
            ],
            "median_grey_levels_original": bins,
        },
        "features": int(f1.shape[1]),
        "bin_width": BIN_WIDTH,
        "seconds_per_patient_n_jobs_1": round(t1 / len(X), 3),
        "seconds_per_patient_n_jobs_2": round(t2 / len(X), 3),
        "speedup_n_jobs_2": round(t1 / t2, 2),
        "serial_runs_s": [round(t, 2) for t in serial_times],
        "parallel_runs_s": [round(t, 2) for t in parallel_times],
        "parallel_vs_serial_max_relative_difference": max_rel,
        "worker_pool_start_plus_one_patient_s": round(t_warm, 2),
        "cache_first_fit_s": round(t_first, 2),
        "cache_repeated_fit_s": round(t_again, 4),
        "cache_speedup": round(t_first / t_again, 1),
        "disk_cache_repeated_fit_s": round(t_disk, 4),
        "disk_cache_speedup": round(t_first / t_disk, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1_5_15_before": [round(v, 2) for v in load_before],
            "load_average_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(),
            "pyradiomics": radiomics.__version__,
        },
    }
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "radiomics_extraction.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
