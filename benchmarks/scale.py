"""Scale: a 500-patient memory-mapped cohort through RadiomicsCox and a deep estimator's fit.

The cohort (:func:`survseg.datasets.make_petct_cohort`, 64^3, PET + CT + mask, about 1.2 GB on
disk) is drawn in chunks of 25 patients straight into a ``.npy`` file written by
:func:`survseg.data.cohort.save_cohort`'s format (``np.lib.format.open_memmap``), so it is
never whole in memory, and each step opens it with :func:`survseg.data.cohort.load_cohort`
(memory-mapped, read-only) in a fresh process. Per step:

* peak resident memory (``ru_maxrss``) of the process, and the peak of its anonymous memory
  (``rss - shared`` sampled every 0.1 s with psutil): pages of the memory-mapped file that
  were read count in the RSS but are page cache, which the kernel can drop, not memory the
  step holds;
* the peak of the summed RSS of its child processes (the ``n_jobs`` workers), sampled alike;
* the memory before the step (imports, the opened cohort) and the wall time.

Steps: ``RadiomicsCox`` (the demo's extractor settings, original image, PET 0.25 SUV / CT
25 HU bins, but first-order and shape features only, so 500 patients take minutes on two
shared cores; the data path is the same for every class) with ``n_jobs`` extraction
processes; ``AdaMSSRegressor`` (the demo's CPU network, batch 2, 48^3 crops, ``max_iter``
small per stage, validation and radiomics off) and, in a process of its own, the same
network's training steps on random in-memory batches (what the network's activations take,
whatever the cohort). DeepMTS is left out: its fit ends with a prediction pass over all
patients for the Breslow baseline, about 6 minutes at 500 x 64^3 here. A last step checks
that ``n_jobs`` workers do not oversubscribe: it runs joblib's default (loky) backend as
survseg does and reports torch's and BLAS's thread counts inside each worker.

Usage::

    python benchmarks/scale.py                         # 500 patients, 64^3, n_jobs=2
    python benchmarks/scale.py --patients 100 --steps deepmts

Results go to ``benchmarks/results/scale.json``. The cohort is cached in ``--cache`` (default
``/tmp/survseg_scale``) between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's survseg, not an installed one
RESULTS = os.path.join(HERE, "results")
DEMO_BINS = {"pet": 0.25, "ct": 25.0}


def make_cohort(path, n, shape, chunk=25):
    """Draw ``n`` patients in chunks into a memory-mappable cohort file; returns y."""
    from survseg.datasets import make_petct_cohort

    Xc, yc = make_petct_cohort(chunk, shape, random_state=0)
    out = np.lib.format.open_memmap(path + ".tmp", mode="w+", dtype=Xc.dtype, shape=(n,))
    ys = []
    for k, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        if k:
            Xc, yc = make_petct_cohort(m, shape, random_state=k)
        out[start : start + m] = Xc[:m]
        ys.append(yc[:m])
    out.flush()
    del out
    os.replace(path + ".tmp", path)
    y = np.concatenate(ys)
    np.save(path.replace(".npy", "_y.npy"), y)
    return y


class MemorySampler:
    """Peak RSS and peak anonymous memory (rss - shared) of this process, sampled."""

    def __init__(self, interval=0.1):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak_rss = self.peak_anon = self.peak_workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        info = self.proc.memory_info()
        self.peak_rss = max(self.peak_rss, info.rss)
        self.peak_anon = max(self.peak_anon, info.rss - info.shared)
        workers = 0  # child processes (n_jobs workers): their RSS, summed
        for child in self.proc.children(recursive=True):
            try:
                workers += child.memory_info().rss
            except Exception:  # exited between listing and reading
                pass
        self.peak_workers = max(self.peak_workers, workers)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._sample()
        self.start = {"rss": self.peak_rss, "anon": self.peak_anon}
        self.peak_rss = self.peak_anon = self.peak_workers = 0
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def _mib(b):
    return round(b / 2**20, 1)


def _step(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from survseg.data.cohort import load_cohort

    X = load_cohort(args.cohort)  # memory-mapped
    y = np.load(args.cohort.replace(".npy", "_y.npy"))
    out = {
        "step": args.step,
        "patients": len(X),
        "cohort_file_MiB": _mib(os.path.getsize(args.cohort)),
    }
    if args.step == "threads":
        return out | _threads_in_workers(args.n_jobs)
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        if args.step == "radiomics_cox":
            from survseg.estimators import RadiomicsCox
            from survseg.radiomics import RadiomicsExtractor

            est = RadiomicsCox(
                extractor=RadiomicsExtractor(
                    feature_classes=["firstorder", "shape"],  # texture: minutes per 100 patients
                    image_types=("original",),
                    bin_width=DEMO_BINS,
                    n_jobs=args.n_jobs,
                ),
                clinical=["age", "hpv", "tnm_stage"],
                random_state=0,
            )
            est.fit(X, y)
            out["selected_features"] = len(est.selected_features_)
            model_bytes = len(__import__("pickle").dumps(est))
        elif args.step == "adamss":
            est = _adamss(args.iters).fit(X, y)
            model_bytes = sum(
                p.numel() * p.element_size()
                for net in (est.network_, est.segmentation_network_)
                for p in net.parameters()
            )
        else:  # "adamss_network_step": the network alone, to tell its activations from data
            model_bytes = _bare_adamss_steps(X, y, args.iters)
        out["wall_s"] = time.perf_counter() - t0
    out |= {
        "start_rss_MiB": _mib(mem.start["rss"]),
        "start_anon_MiB": _mib(mem.start["anon"]),
        "peak_rss_MiB": _mib(mem.peak_rss),
        "peak_anon_MiB": _mib(mem.peak_anon),
        "peak_workers_rss_MiB": _mib(mem.peak_workers),
        "ru_maxrss_MiB": _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
        "model_MiB": _mib(model_bytes),
        "under_2GB_plus_model": bool(mem.peak_rss < 2 * 2**30 + model_bytes),
    }
    return out


def _adamss(iters):
    """The demo's AdaMSS (CPU network), radiomics and validation off."""
    from survseg.demo import demo_models

    return demo_models(iterations=iters)["AdaMSS"].set_params(
        radiomics=False, validation_fraction=0
    )


def _bare_adamss_steps(X, y, iters):
    """Training steps of the demo AdaMSS network on random in-memory batches of the
    estimator's crop size and batch size: the memory the network itself needs. The network
    (class and shape) is taken from a 1-iteration fit on 6 patients (3 events)."""
    import copy

    import torch

    from survseg.losses.segmentation import dice_loss

    event = np.asarray(y["event"])
    few = np.sort(np.r_[np.flatnonzero(event)[:3], np.flatnonzero(~event)[:3]])
    est = _adamss(1).fit(X[few], y[few])
    net = copy.deepcopy(est.segmentation_network_).train()
    shape = X.dtype.fields["pet"][0].shape
    m = net.size_multiple
    crop = [max(m, min(n, m * round(n * 112 / 160 / m))) for n in shape]  # crop_size="auto"
    opt = torch.optim.Adam(net.parameters())
    images = torch.randn(est.batch_size, 2, *crop)
    masks = (torch.rand(est.batch_size, 1, *crop) > 0.9).float()
    for _ in range(iters):
        loss = dice_loss(net(images, task="segmentation").seg_logits, masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return sum(p.numel() * p.element_size() for p in net.parameters())


def _worker_threads(_):
    import threadpoolctl
    import torch

    blas = {i["internal_api"]: i["num_threads"] for i in threadpoolctl.threadpool_info()}
    return {
        "pid": os.getpid(),
        "torch": torch.get_num_threads(),
        "blas": blas,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def _threads_in_workers(n_jobs) -> dict:
    """Thread counts inside joblib's (loky) workers, the backend survseg's n_jobs uses."""
    from joblib import Parallel, delayed

    seen = Parallel(n_jobs=n_jobs)(delayed(_worker_threads)(i) for i in range(4 * n_jobs))
    workers = {s["pid"]: s for s in seen}
    return {
        "n_jobs": n_jobs,
        "cpu_count": os.cpu_count(),
        "workers": list(workers.values()),
        "oversubscribed": any(
            w["torch"] * n_jobs > os.cpu_count()
            or any(v * n_jobs > os.cpu_count() for v in w["blas"].values())
            for w in workers.values()
        ),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--shape", type=int, default=64)
    parser.add_argument(
        "--steps",
        nargs="+",
        default=["threads", "adamss_network_step", "adamss", "radiomics_cox"],
    )
    parser.add_argument("--iters", type=int, default=3, help="AdaMSS max_iter (per stage)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the step")
    parser.add_argument("--cache", default="/tmp/survseg_scale")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    parser.add_argument("--step", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cohort", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        print(json.dumps(_step(args)))
        return
    os.makedirs(args.cache, exist_ok=True)
    path = os.path.join(args.cache, f"cohort_{args.patients}_{args.shape}.npy")
    t0 = time.perf_counter()
    if not os.path.exists(path):
        make_cohort(path, args.patients, (args.shape,) * 3)
    made = time.perf_counter() - t0
    report = {
        "benchmark": "500-patient memory-mapped cohort: peak memory of RadiomicsCox and AdaMSS fits",
        "cohort": f"make_petct_cohort in chunks of 25, {args.patients} x {args.shape}^3, pet+ct+mask",
        "cohort_build_s": made,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "steps": {},
    }
    for step in args.steps:
        cmd = [sys.executable, os.path.abspath(__file__), "--step", step, "--cohort", path]
        cmd += ["--iters", str(args.iters), "--n-jobs", str(args.n_jobs)]
        cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            report["steps"][step] = {"failed": proc.stderr[-2000:]}
        else:
            report["steps"][step] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(step, json.dumps(report["steps"][step]))
    report["loadavg_after"] = os.getloadavg()
    os.makedirs(RESULTS, exist_ok=True)
    out = os.path.join(RESULTS, f"scale{'_' + args.tag if args.tag else ''}.json")
    with open(out, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
