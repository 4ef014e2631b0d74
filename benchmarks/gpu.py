"""GPU benchmarks of the deep estimators at the papers' sizes (skipped without CUDA).

For each model, fp32 and mixed precision (the estimators' ``amp``), through the public API
(``fit`` with a small ``max_iter``, validation off), each configuration in its own process so
that its peak memory is its own:

* **AdaMSS**: the paper's network (``AdaMSSRegressor()`` defaults), random 112^3 crops of 2 x
  160^3 volumes, batch 2 (the paper's setting); stage I and stage II timed separately.
* **DeepMTS**: the paper's network (``DeepMTSRegressor()`` defaults), 2 x 128^3, batch 8, or
  the largest batch that fits (halved on out-of-memory).

Reported per configuration: seconds per iteration (median gap between optimizer steps,
after a CUDA synchronise, warm-up dropped), iterations/s and the AMP speed-up over fp32; the
GPU busy fraction of a step (kernel time within the measured iterations / their wall time,
from ``torch.profiler`` in a second short fit; below 1 means the GPU waits for the CPU:
batch assembly, augmentation, Python); peak allocated CUDA memory; and the wall time of the
papers' schedule extrapolated from the measured iteration time (10,000 iterations per AdaMSS
stage; 15,000 for DeepMTS; validation, start-up and prediction excluded).

Optionally (``--radiomics``, when fastrad and pyradiomics are importable) the fastrad backend
of ``RadiomicsExtractor`` on CUDA against pyradiomics on the CPU: seconds per patient and the
largest relative difference.

Usage::

    python benchmarks/gpu.py                      # everything (about 5 minutes on an H200)
    python benchmarks/gpu.py --models AdaMSS --iters 10

Results go to ``benchmarks/results/gpu.json`` (or ``--out DIR``). See ``benchmarks/gpu.sh``
for the one command a session with a GPU runs (tests marked ``gpu`` included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's survseg, not an installed one
RESULTS = os.path.join(HERE, "results")
PAPER_ITER = {"AdaMSS": 10_000, "DeepMTS": 15_000}  # per stage for AdaMSS


def _noise_cohort(n, shape, seed=0):
    """Normalised noise with one bright ellipsoid 'tumour' each (timing needs no realism)."""
    from sksurv.util import Surv

    from survseg.data.cohort import volumes

    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, s, dtype=np.float32) for s in shape]
    mask = np.empty((n, *shape), np.uint8)
    for i in range(n):
        c, r = rng.uniform(-0.3, 0.3, 3), rng.uniform(0.1, 0.25)
        d = sum(
            (a.reshape([-1 if j == k else 1 for j in range(3)]) - c[k]) ** 2
            for k, a in enumerate(axes)
        )
        mask[i] = d <= r**2
    pet = rng.standard_normal((n, *shape), dtype=np.float32) + 3 * mask
    ct = rng.standard_normal((n, *shape), dtype=np.float32) + mask
    event = np.arange(n) % 2 == 0
    return volumes(pet=pet, ct=ct, mask=mask), Surv.from_arrays(event, rng.uniform(1, 100, n))


def _estimator(cfg):
    from survseg.estimators import AdaMSSRegressor, DeepMTSRegressor

    common = dict(
        device=cfg["device"], random_state=0, amp=cfg["amp"], batch_size=cfg["batch_size"]
    )
    if cfg["model"] == "AdaMSS":  # crop_size="auto" = 112^3 of 160^3, the paper's augmentation
        return AdaMSSRegressor(
            max_iter=cfg["iters"], radiomics=False, validation_fraction=0, **common
        )
    return DeepMTSRegressor(max_iter=cfg["iters"], validation_fraction=0.0, **common)


def _busy_fraction(prof, marks):
    """Union of CUDA kernel intervals inside [first mark, last mark] / that window."""
    from torch.autograd import DeviceType

    events = prof.events()
    stamps = sorted(e.time_range.start for e in events if e.name == "survseg_bench_step")
    if len(stamps) < 2:
        return None
    lo, hi = stamps[min(marks, len(stamps) - 2)], stamps[-1]
    spans = sorted(
        (max(e.time_range.start, lo), min(e.time_range.end, hi))
        for e in events
        if e.device_type == DeviceType.CUDA and e.time_range.end > lo and e.time_range.start < hi
    )
    busy, cur_s, cur_e = 0.0, None, None
    for s, e in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                busy += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        busy += cur_e - cur_s
    return busy / (hi - lo)


def _worker(cfg) -> dict:
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    torch.set_num_threads(cfg["threads"])
    X, y = _noise_cohort(cfg["patients"], tuple(cfg["shape"]))
    cuda = cfg["device"] == "cuda"
    stamps = {}  # optimizer id -> step times (after a synchronise)
    profiling = {"on": False, "first": None}

    def hook(opt, args, kwargs):
        if cuda:
            torch.cuda.synchronize()
        stamps.setdefault(id(opt), []).append(time.perf_counter())
        if profiling["on"]:
            profiling["first"] = profiling["first"] or id(opt)
            if id(opt) == profiling["first"]:  # AdaMSS: stage I's steps only
                with torch.profiler.record_function("survseg_bench_step"):
                    pass

    handle = register_optimizer_step_post_hook(hook)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    est = _estimator(cfg)
    t0 = time.perf_counter()
    est.fit(X, y)
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    out = {"fit_wall_s": wall, "peak_cuda_allocated_MiB": peak, "stages": {}}
    names = ["stage_I", "stage_II"] if cfg["model"] == "AdaMSS" else ["iteration"]
    for name, times in zip(names, stamps.values(), strict=True):
        gaps = np.diff(times)[cfg["warmup"] :]
        out["stages"][name] = {
            "seconds_per_iteration": float(np.median(gaps)),
            "iterations_per_s": float(1 / np.median(gaps)),
            "iqr_s": [float(np.percentile(gaps, 25)), float(np.percentile(gaps, 75))],
            "measured_iterations": int(len(gaps)),
        }
    # busy fraction: a second, shorter fit under the profiler (one stage suffices for AdaMSS)
    est = _estimator({**cfg, "iters": cfg["warmup"] + cfg["profile_iters"]})
    if cfg["model"] == "AdaMSS":
        est.set_params(max_iter_survival=1)
    profiling["on"] = True
    acts = [torch.profiler.ProfilerActivity.CPU]
    acts += [torch.profiler.ProfilerActivity.CUDA] if cuda else []
    with torch.profiler.profile(activities=acts) as prof:
        est.fit(X, y)
    profiling["on"] = False
    handle.remove()
    out["gpu_busy_fraction"] = _busy_fraction(prof, cfg["warmup"])
    if cuda:
        out["gpu"] = torch.cuda.get_device_name()
        bf16 = torch.cuda.is_bf16_supported()
        out["amp_dtype"] = ("bfloat16" if bf16 else "float16") if cfg["amp"] else "float32"
    return out


def _run(cfg) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr[-3000:]
        if "OutOfMemoryError" in tail or "out of memory" in tail:
            return {"oom": True, "stderr_tail": tail[-500:]}
        raise RuntimeError(f"worker {cfg} failed:\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _radiomics(n_patients=8) -> dict:
    """fastrad on CUDA vs pyradiomics on the CPU, demo cohort, original image, same columns."""
    try:
        import fastrad  # noqa: F401
        import radiomics  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"needs fastrad and pyradiomics ({exc})"}
    from survseg.datasets import make_petct_cohort
    from survseg.radiomics import RadiomicsExtractor

    X, _ = make_petct_cohort(n_patients, (64, 64, 64), random_state=0)
    kw = dict(
        feature_classes=["firstorder", "glcm", "glrlm", "glszm", "ngtdm", "shape"],
        image_types=("original",),
        bin_width={"pet": 0.25, "ct": 25.0},
        cache=False,
    )
    out = {
        "patients": n_patients,
        "shape": [64, 64, 64],
        "fastrad": fastrad.__dict__.get("__version__"),
    }
    tables = {}
    for backend in ("pyradiomics", "fastrad"):
        ext = RadiomicsExtractor(backend=backend, **kw).fit(X[:1])
        ext.transform(X[:1])  # warm-up (CUDA context, kernels)
        t0 = time.perf_counter()
        tables[backend] = ext.transform(X)
        out[f"{backend}_s_per_patient"] = (time.perf_counter() - t0) / n_patients
    ref, got = tables["pyradiomics"].to_numpy(), tables["fastrad"].to_numpy()
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-12)
    worst = np.nanmax(rel, axis=0)
    out["max_relative_difference"] = float(np.nanmax(worst))
    j = int(np.nanargmax(worst))
    i = int(np.nanargmax(rel[:, j]))
    out["worst_feature"] = {
        "name": str(tables["pyradiomics"].columns[j]),
        "patient": i,
        "pyradiomics": float(ref[i, j]),
        "fastrad": float(got[i, j]),
    }
    cols = tables["pyradiomics"].columns
    out["features_beyond_1e-4"] = [str(c) for c, w in zip(cols, worst, strict=True) if w > 1e-4]
    out["features"] = int(ref.shape[1])
    out["speedup"] = out["pyradiomics_s_per_patient"] / out["fastrad_s_per_patient"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["AdaMSS", "DeepMTS"])
    parser.add_argument("--iters", type=int, default=25, help="max_iter per fit (per stage)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile-iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4, help="torch CPU threads")
    parser.add_argument("--no-radiomics", action="store_true")
    parser.add_argument(
        "--radiomics-only",
        action="store_true",
        help="only fastrad vs pyradiomics, on CUDA if present else the CPU; writes "
        "radiomics_backends_<device>.json",
    )
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument(
        "--smoke-cpu",
        action="store_true",
        help="check the script on the CPU at tiny sizes (numbers meaningless, nothing kept)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    import torch

    if args.radiomics_only:
        torch.set_num_threads(args.threads)
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        res = {"device": dev, "torch_threads": args.threads, "loadavg_before": os.getloadavg()}
        res |= _radiomics()
        res["loadavg_after"] = os.getloadavg()
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, f"radiomics_backends_{dev}.json")
        with open(path, "w") as fh:
            json.dump(res, fh, indent=2)
        print(json.dumps(res, indent=1))
        return 0
    if not torch.cuda.is_available() and not args.smoke_cpu:
        print("no CUDA device: GPU benchmarks skipped (nothing written).")
        return 0
    device = "cpu" if args.smoke_cpu else "cuda"
    t0 = time.perf_counter()
    report = {
        "benchmark": "deep estimators on the GPU at the papers' sizes, fp32 vs AMP",
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "machine": platform.platform(),
        "loadavg_before": os.getloadavg(),
        "models": {},
    }
    common = {"threads": args.threads, "iters": args.iters, "warmup": args.warmup}
    common["device"] = device
    common["profile_iters"] = args.profile_iters
    for model in args.models:
        if model == "AdaMSS":
            base = {"model": model, "shape": [160, 160, 160], "patients": 6, "batch_size": 2}
        else:
            base = {"model": model, "shape": [128, 128, 128], "patients": 16, "batch_size": 8}
        if args.smoke_cpu:
            base = {**base, "shape": [32, 32, 32], "patients": 6, "batch_size": 2}
        res = {}
        for amp in (False, True):
            cfg = {**common, **base, "amp": amp}
            r = _run(cfg)
            while r.get("oom") and cfg["batch_size"] > 1 and model == "DeepMTS":
                cfg["batch_size"] //= 2
                print(f"{model}: out of memory, batch {cfg['batch_size']}")
                r = _run(cfg)
            res["amp" if amp else "fp32"] = {**cfg, **r}
            print(model, "amp" if amp else "fp32", json.dumps(r.get("stages", r)))
        entry = {"configs": res}
        if all("stages" in r for r in res.values()):
            fp32, amp = res["fp32"]["stages"], res["amp"]["stages"]
            entry["amp_speedup"] = {
                s: fp32[s]["seconds_per_iteration"] / amp[s]["seconds_per_iteration"] for s in fp32
            }
            entry["paper_schedule_hours"] = {
                k: sum(v["stages"][s]["seconds_per_iteration"] for s in v["stages"])
                * PAPER_ITER[model]
                / 3600
                for k, v in res.items()
            }
        report["models"][model] = entry
    if not args.no_radiomics:
        report["radiomics_fastrad_vs_pyradiomics"] = _radiomics()
        print("radiomics", json.dumps(report["radiomics_fastrad_vs_pyradiomics"]))
    report["wall_s"] = time.perf_counter() - t0
    if args.smoke_cpu:
        print(json.dumps(report, indent=1))
        return 0
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "gpu.json")
    with open(path, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
