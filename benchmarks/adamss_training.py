"""AdaMSS training throughput and peak memory (a benchmark, not a test).

Measures :class:`survseg.estimators.AdaMSSRegressor`'s real training path (batch reading,
on-device affine augmentation, random crop, forward, backward, Adam step, LR schedule) with the
paper's network (about 18.4 M parameters) and batch size 2:

* CPU: network input 2 x 48^3 per sample (48^3 volumes, no crop);
* CUDA (when present): the paper's setting, random 112^3 crops of 160^3 volumes, in fp32 and
  with mixed precision (``amp=True``), and their speed ratio.

Iterations per second of a stage = (hi - lo) / (wall time between the ends of its iterations
lo and hi), read by a ``callbacks`` clock of one fit, so start-up costs are left out. Each configuration runs in
its own process so that peak memory is its own: peak resident memory (``ru_maxrss``) on the
CPU, ``torch.cuda.max_memory_allocated`` on the GPU.

Usage::

    python benchmarks/adamss_training.py                 # CPU, then CUDA if available
    python benchmarks/adamss_training.py --devices cpu --threads 1

Results go to ``benchmarks/results/adamss_training_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _cohort(n, shape, seed=0):
    import numpy as np

    from survseg.datasets import make_petct_cohort

    X, y = make_petct_cohort(n, shape=shape, random_state=seed)
    pet = X["pet"]
    X["pet"] = (pet - pet.mean(axis=(1, 2, 3), keepdims=True)) / pet.std(
        axis=(1, 2, 3), keepdims=True
    )
    X["ct"] = np.clip(X["ct"], -1024, 1024) / 1024
    return X, y


def _worker(args) -> dict:
    """One configuration: one fit, stage times from a callback's clock (no monkeypatching)."""
    import torch

    from survseg.estimators import AdaMSSRegressor

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shape = (args.volume,) * 3
    X, y = _cohort(args.patients, shape)
    stamps: dict[str, dict[int, float]] = {}

    def clock(stage, iteration, row):
        """A callback: the wall time at the end of every iteration of every stage."""
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.setdefault(stage, {})[iteration] = time.perf_counter()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    lo, hi = args.iters
    AdaMSSRegressor(
        max_iter=hi,
        radiomics=False,
        validation_fraction=0,
        crop_size=None if args.crop is None else args.crop,
        amp=args.amp,
        device=str(device),
        random_state=0,
        callbacks=[clock],
    ).fit(X, y)
    out = {}
    for stage, key in (("segmentation", "stage_I"), ("survival", "stage_II")):
        # iterations lo+1 .. hi: past the warm-up, without the stage's set-up
        n_extra = hi - lo
        seconds = stamps[stage][hi] - stamps[stage][lo]
        out[key] = {
            "iterations_per_s": n_extra / seconds,
            "seconds_per_iteration": seconds / n_extra,
            "measured_iterations": n_extra,
        }
    out["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_before_training_MiB"] = rss_before
    if device.type == "cuda":
        out["peak_cuda_allocated_MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["gpu"] = torch.cuda.get_device_name(device)
        out["amp_dtype"] = (
            "bfloat16"
            if args.amp and torch.cuda.is_bf16_supported()
            else ("float16" if args.amp else "float32")
        )
    return out


def _run(config: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {config} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        cfg = argparse.Namespace(**json.loads(args.worker))
        print(json.dumps(_worker(cfg)))
        return

    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    os.makedirs(RESULTS, exist_ok=True)
    for dev in devices:
        if dev == "cuda" and not torch.cuda.is_available():
            print("no CUDA device: skipping the GPU benchmark")
            continue
        common = {"device": dev, "threads": args.threads, "patients": 6}
        if dev == "cpu":
            configs = {
                "fp32": {**common, "volume": 48, "crop": None, "iters": [2, 5], "amp": False}
            }
        else:
            gpu = {**common, "volume": 160, "crop": 112, "iters": [5, 25]}
            configs = {"fp32": {**gpu, "amp": False}, "amp": {**gpu, "amp": True}}
        results = {name: _run(cfg) for name, cfg in configs.items()}
        report = {
            "benchmark": "AdaMSSRegressor training iterations (batch 2, paper network)",
            "device": dev,
            "input_per_sample": "2 x 48^3" if dev == "cpu" else "2 x 112^3 crops of 160^3",
            "torch": torch.__version__,
            "cpu_threads": args.threads,
            "cpu_count": os.cpu_count(),
            "machine": platform.platform(),
            "note": (
                "CPU cores are shared with other jobs on this machine; timings are indicative."
                if dev == "cpu"
                else ""
            ),
            "configs": {name: {**configs[name], **res} for name, res in results.items()},
        }
        if "amp" in results:
            for stage in ("stage_I", "stage_II"):
                report[f"amp_speedup_{stage}"] = (
                    results["amp"][stage]["iterations_per_s"]
                    / results["fp32"][stage]["iterations_per_s"]
                )
            report["amp_memory_ratio"] = (
                results["amp"]["peak_cuda_allocated_MiB"]
                / results["fp32"]["peak_cuda_allocated_MiB"]
            )
        path = os.path.join(RESULTS, f"adamss_training_{dev}.json")
        with open(path, "w") as fh:
            json.dump(report, fh, indent=2)
        print(json.dumps(report, indent=2))
        print(f"written to {path}")


if __name__ == "__main__":
    main()
