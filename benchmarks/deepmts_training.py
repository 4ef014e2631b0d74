"""DeepMTS training throughput and peak memory (a benchmark, not a test).

Times :class:`survseg.estimators.deepmts.DeepMTSRegressor`'s real training path (balanced batch
drawn from the cohort, on-device affine augmentation, forward, Dice + Cox loss, backward, Adam
step, LR schedule) with the paper's network (about 3.7 M parameters):

* CPU: 2 x 64^3 input, batch 2, fp32 and channels-last;
* CUDA (when present): the paper's setting, 2 x 128 x 128 x 112, batch 8, in fp32, with mixed
  precision, and with mixed precision + channels-last; speed and memory as ratios to fp32.
  ``--quality`` also trains fp32 and amp + channels-last models on a synthetic cohort and
  reports their test C-index and Dice (same seed), to check that mixed precision does not
  change the result beyond noise.

Each iteration is time-stamped when its loss is computed (after a CUDA synchronise), so the
seconds per iteration are the median gap between consecutive iterations after a warm-up:
start-up and the final Breslow fit do not count. Each configuration runs in its own process so
that its peak memory is its own: peak resident memory (``ru_maxrss``) on the CPU,
``torch.cuda.max_memory_allocated`` on the GPU.

Usage::

    python benchmarks/deepmts_training.py                   # CPU, then CUDA if available
    python benchmarks/deepmts_training.py --devices cuda --quality

Results go to ``benchmarks/results/deepmts_training_<device>.json``.
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


def _random_cohort(n, shape, seed=0):
    """Normalised noise with one bright ellipsoidal 'tumour' each (timing needs no realism)."""
    import numpy as np
    from sksurv.util import Surv

    from survseg.data.cohort import volumes

    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij")
    mask = np.empty((n, *shape), np.uint8)
    for i in range(n):
        c, r = rng.uniform(-0.3, 0.3, 3), rng.uniform(0.1, 0.25)
        mask[i] = sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True)) <= r**2
    pet = rng.standard_normal((n, *shape), dtype=np.float32) + 3 * mask
    ct = rng.standard_normal((n, *shape), dtype=np.float32) + mask
    event = np.arange(n) % 2 == 0
    return volumes(pet=pet, ct=ct, mask=mask), Surv.from_arrays(event, rng.uniform(1, 100, n))


def _timed_estimator():
    from survseg.estimators.deepmts import DeepMTSRegressor

    class TimedDeepMTS(DeepMTSRegressor):
        """Records a time stamp as each iteration's loss is computed."""

        stamps: list = []

        def _loss(self, module, batch):
            if batch["images"].is_cuda:
                import torch

                torch.cuda.synchronize()
            TimedDeepMTS.stamps.append(time.perf_counter())
            return super()._loss(module, batch)

    return TimedDeepMTS


def _worker(cfg) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    X, y = _random_cohort(cfg.patients, tuple(cfg.shape))
    Timed = _timed_estimator()
    est = Timed(
        max_iter=cfg.warmup + cfg.iters,
        batch_size=cfg.batch_size,
        amp=cfg.amp,
        channels_last=cfg.channels_last,
        device=str(device),
        random_state=0,
        predict_batch_size=cfg.batch_size,
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    est.fit(X, y)
    gaps = np.diff(Timed.stamps)[cfg.warmup - 1 :]
    out = {
        "seconds_per_iteration": float(np.median(gaps)),
        "iterations_per_s": float(1 / np.median(gaps)),
        "seconds_per_iteration_iqr": [
            float(np.percentile(gaps, 25)),
            float(np.percentile(gaps, 75)),
        ],
        "measured_iterations": int(len(gaps)),
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_training_MiB": rss_before,
        "parameters": int(sum(p.numel() for p in est.network_.parameters())),
    }
    if device.type == "cuda":
        out["peak_cuda_allocated_MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["gpu"] = torch.cuda.get_device_name(device)
        out["amp_dtype"] = (
            ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if cfg.amp else "float32"
        )
    return out


def _quality_worker(cfg) -> dict:
    """Train one model on a synthetic cohort; held-out C-index and Dice."""
    import numpy as np
    import torch

    from survseg.datasets import make_petct_cohort
    from survseg.estimators.deepmts import DeepMTSRegressor
    from survseg.evaluation.metrics import concordance_index, dice_score

    torch.set_num_threads(cfg.threads)
    X, y = make_petct_cohort(cfg.patients, tuple(cfg.shape), random_state=0, event_rate=0.5)
    for f in ("pet", "ct"):
        v = X[f].astype(np.float64)
        X[f] = (v - v.mean(axis=(1, 2, 3), keepdims=True)) / v.std(axis=(1, 2, 3), keepdims=True)
    n_train = int(0.7 * len(X))
    t0 = time.perf_counter()
    est = DeepMTSRegressor(
        max_iter=cfg.iters,
        lr=1e-3,
        amp=cfg.amp,
        channels_last=cfg.channels_last,
        device=cfg.device,
        random_state=0,
    )
    est.fit(X[:n_train], y[:n_train])
    Xt, yt = X[n_train:], y[n_train:]
    return {
        "test_cindex": concordance_index(yt, est.predict(Xt)),
        "test_dice": float(np.mean(dice_score(Xt["mask"], est.predict_mask(Xt)))),
        "fit_seconds": time.perf_counter() - t0,
    }


def _run(config: dict, quality: bool = False) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--quality-worker" if quality else "--worker",
        json.dumps(config),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {config} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--quality",
        action="store_true",
        help="CUDA: also compare test C-index/Dice of fp32 and amp + channels-last",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quality-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None or args.quality_worker is not None:
        fn = _worker if args.worker is not None else _quality_worker
        cfg = argparse.Namespace(**json.loads(args.worker or args.quality_worker))
        print(json.dumps(fn(cfg)))
        return

    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    os.makedirs(RESULTS, exist_ok=True)
    for dev in devices:
        if dev == "cuda" and not torch.cuda.is_available():
            print("no CUDA device: skipping the GPU benchmark")
            continue
        common = {"device": dev, "threads": args.threads}
        if dev == "cpu":
            base = {
                **common,
                "shape": [64, 64, 64],
                "batch_size": 2,
                "patients": 6,
                "warmup": 2,
                "iters": 6,
                "amp": False,
            }
            configs = {
                "fp32": {**base, "channels_last": False},
                "fp32_channels_last": {**base, "channels_last": True},
            }
        else:
            base = {
                **common,
                "shape": [128, 128, 112],
                "batch_size": 8,
                "patients": 16,
                "warmup": 5,
                "iters": 30,
            }
            configs = {
                "fp32": {**base, "amp": False, "channels_last": False},
                "amp": {**base, "amp": True, "channels_last": False},
                "amp_channels_last": {**base, "amp": True, "channels_last": True},
            }
        results = {name: _run(cfg) for name, cfg in configs.items()}
        ref = results["fp32"]
        report = {
            "benchmark": "DeepMTSRegressor training iterations (paper network, Dice + Cox)",
            "device": dev,
            "input_per_sample": "2 x 64^3" if dev == "cpu" else "2 x 128 x 128 x 112",
            "batch_size": base["batch_size"],
            "torch": torch.__version__,
            "cpu_threads": args.threads,
            "cpu_count": os.cpu_count(),
            "machine": platform.platform(),
            "note": (
                "2 CPU cores shared with other jobs on this machine; timings are indicative."
                if dev == "cpu"
                else ""
            ),
            "configs": {name: {**configs[name], **res} for name, res in results.items()},
            "speedup_vs_fp32": {
                name: res["iterations_per_s"] / ref["iterations_per_s"]
                for name, res in results.items()
            },
        }
        mem_key = "peak_cuda_allocated_MiB" if dev == "cuda" else "peak_rss_MiB"
        report["memory_ratio_vs_fp32"] = {
            name: res[mem_key] / ref[mem_key] for name, res in results.items()
        }
        if dev == "cuda" and args.quality:
            q = {**common, "shape": [64, 64, 64], "patients": 100, "iters": 1500}
            report["quality"] = {
                "setting": "make_petct_cohort(100, 64^3), 70 train / 30 test, lr 1e-3, 1500 iterations",
                "fp32": _run({**q, "amp": False, "channels_last": False}, quality=True),
                "amp_channels_last": _run({**q, "amp": True, "channels_last": True}, quality=True),
            }
        path = os.path.join(RESULTS, f"deepmts_training_{dev}.json")
        with open(path, "w") as fh:
            json.dump(report, fh, indent=2)
        print(json.dumps(report, indent=2))
        print(f"written to {path}")


if __name__ == "__main__":
    main()
