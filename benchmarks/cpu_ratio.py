"""Deep estimators against the bare network loop, at the demo's settings, in one run.

For each deep estimator of the demo (:func:`survseg.demo.demo_models`: DeepMTS and AdaMSS with
their CPU networks, the demo cohort of :func:`survseg.datasets.make_petct_cohort` at 24^3) this
script alternates, iteration by iteration, in one process with the same torch threads:

* **estimator**: ``est.fit(X_train, y_train)`` with a small ``max_iter`` and validation off,
  through the public API only (so it keeps working when the training internals change);
* **bare loop**: the same network class and shape (a copy of the fitted ``network_``), the
  same batch size, the batch already in memory as a tensor (normalised once), and per
  iteration only forward, loss (the estimator's loss functions), backward and an Adam step.

Iteration times come from a global optimizer step hook
(``torch.optim.optimizer.register_optimizer_step_post_hook``): the gap between two consecutive
Adam steps of one optimizer is one whole training iteration (batch, augmentation, forward,
loss, backward, step, history). The same hook runs one bare iteration right after each of the
estimator's steps and cuts its time out of the estimator's next gap, so the two sides
alternate one iteration at a time and a change in the machine's load hits both. Global module forward hooks on the network split each gap
into *data* (from the previous step to the network's forward: batch reading, normalisation,
augmentation, logging), *forward*, *loss + backward* and *optimizer step*. A cProfile of one
estimator fit names the Python functions inside *data*.

Prediction: ``est.predict(X_test)`` against the bare network's forward under ``no_grad`` over
the same patients in the estimator's prediction batch size, inputs already in memory.

The ratio ``bare seconds / estimator seconds`` is the estimator's speed as a fraction of the
bare network's (1.0 = no overhead); the issue's goal is >= 0.85.

Usage::

    python benchmarks/cpu_ratio.py                    # 1 torch thread, both estimators
    python benchmarks/cpu_ratio.py --threads 2 --repeats 3 --models DeepMTS

Results go to ``benchmarks/results/cpu_ratio.json`` (``--tag`` adds a suffix).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's survseg, not an installed one
RESULTS = os.path.join(HERE, "results")

# The demo's cohort and fold size: 80 patients at 24^3, 3 folds -> 54 training patients.
N_PATIENTS, SHAPE, N_TRAIN = 80, (24, 24, 24), 54

# Estimator parameters that turn validation (and AdaMSS's between-stage radiomics, a fixed
# cost outside the iterations) off. Keep in step with the estimators' parameter names.
FIT_OVERRIDES = {
    "DeepMTS": {"validation_fraction": 0.0},  # before the redesign: None
    "AdaMSS": {"validation_fraction": 0, "radiomics": False},
}


# ---------------------------------------------------------------------------- timing hooks
class Clock:
    """Time stamps of optimizer steps and network forwards, from torch's global hooks.

    ``bare`` maps the n-th optimizer to appear (0: DeepMTS's, or AdaMSS's stage I; 1:
    AdaMSS's stage II) to a bare-loop iteration ``one(k) -> phases``, run right after each
    of that optimizer's steps: estimator and bare iterations then alternate one by one, so
    the machine's load changes hit both. The time spent in the bare iteration is cut out of
    the estimator's next iteration (its boundary moves to the bare iteration's end).
    """

    def __init__(self, network_types, bare=None):
        import torch
        from torch.nn.modules.module import (
            register_module_forward_hook,
            register_module_forward_pre_hook,
        )
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        self.torch = torch
        self.network_types = tuple(network_types)
        self.bare = dict(bare or {})
        self.in_bare = False
        self.reset()
        self.handles = [
            register_optimizer_step_pre_hook(self._step_pre),
            register_optimizer_step_post_hook(self._step_post),
            register_module_forward_pre_hook(self._module_hook("fwd_pre")),
            register_module_forward_hook(self._module_hook("fwd_post")),
        ]

    def reset(self):
        self.events = []  # (kind, key, t)
        self.order = []  # optimizer ids in order of first step
        self.bare_rows = {}  # optimizer index -> list of bare phases

    def _step_pre(self, opt, args, kwargs):
        if not self.in_bare:
            if id(opt) not in self.order:
                self.order.append(id(opt))
            self.events.append(("step_pre", id(opt), time.perf_counter()))

    def _step_post(self, opt, args, kwargs):
        if self.in_bare:
            return
        self.events.append(("step_post", id(opt), time.perf_counter()))
        index = self.order.index(id(opt))
        one = self.bare.get(index)
        if one is None:
            return
        self.in_bare = True
        try:
            with self.torch.enable_grad():
                rows = self.bare_rows.setdefault(index, [])
                rows.append(one(len(rows)))
        finally:
            self.in_bare = False
        self.events.append(("resume", id(opt), time.perf_counter()))

    def _module_hook(self, kind):
        def hook(module, *rest):
            if (
                not self.in_bare
                and isinstance(module, self.network_types)
                and self.torch.is_grad_enabled()
            ):
                self.events.append((kind, None, time.perf_counter()))

        return hook

    def close(self):
        for h in self.handles:
            h.remove()

    def iterations(self, warmup):
        """Per optimizer (in order of first use): estimator and bare per-iteration phases.

        Estimator iteration ``k`` runs from step ``k-1``'s end (or the end of the bare
        iteration after it) to step ``k``'s end; its phases are data (-> forward start),
        forward, loss + backward (forward end -> step start) and step. The first ``warmup``
        iterations of each optimizer are dropped, on both sides.
        """
        per_opt = {key: {"start": [], "pre": [], "post": [], "fwd": []} for key in self.order}
        last_fwd = None
        for kind, key, t in self.events:
            if kind == "fwd_pre":
                last_fwd = [t, np.nan]
            elif kind == "fwd_post" and last_fwd is not None:
                last_fwd[1] = t
            elif kind == "step_pre":
                per_opt[key]["pre"].append(t)
                per_opt[key]["fwd"].append(tuple(last_fwd) if last_fwd else (np.nan, np.nan))
                last_fwd = None
            elif kind == "step_post":
                per_opt[key]["post"].append(t)
                per_opt[key]["start"].append(t)
            elif kind == "resume":
                per_opt[key]["start"][-1] = t
        out = []
        for index, key in enumerate(self.order):
            d = per_opt[key]
            rows = [
                _phases(d["start"][k - 1], *d["fwd"][k], d["pre"][k], d["post"][k])
                for k in range(1, len(d["post"]))
            ]
            bare = self.bare_rows.get(index, [])
            out.append((rows[max(0, warmup - 1) :], bare[warmup:]))
        return out


def _median_phases(rows):
    keys = ("total", "data", "forward", "loss_backward", "step")
    return {k: float(np.median([r[k] for r in rows])) for k in keys} | {"n": len(rows)}


# ---------------------------------------------------------------------------- bare loops
def _bare_inputs(est, X, name):
    """Inputs normalised once, as the estimator's ``intensity`` does, as in-memory tensors."""
    import torch

    images = []
    for field in est.modalities:
        vol = np.asarray(X[field], dtype=np.float32)
        method = (est.intensity or {}).get(field)
        if method == "zscore":
            v = vol.reshape(len(vol), -1).astype(np.float64)
            mean, std = v.mean(1), v.std(1)
            vol = ((vol - mean[:, None, None, None]) / std[:, None, None, None]).astype(np.float32)
        elif method == "window":
            vol = (2.0 * (np.clip(vol, -1024, 1024) + 1024) / 2048 - 1).astype(np.float32)
        images.append(vol)
    images = torch.from_numpy(np.ascontiguousarray(np.stack(images, axis=1)))
    masks = torch.from_numpy(np.asarray(X["mask"], dtype=np.float32)).unsqueeze(1)
    clin = None
    if est.clinical:
        c = np.stack([np.asarray(X[f], dtype=np.float64) for f in est.clinical], axis=1)
        clin = torch.from_numpy(
            ((c - c.mean(0)) / np.where(c.std(0) > 0, c.std(0), 1)).astype(np.float32)
        )
    return images, masks, clin


def _phases(start, fwd0, fwd1, step0, step1):
    return {
        "total": step1 - start,
        "data": fwd0 - start,
        "forward": fwd1 - fwd0,
        "loss_backward": step0 - fwd1,
        "step": step1 - step0,
    }


def _deepmts_bare(est, X, y, rng):
    """Forward, Cox + Dice, backward, Adam on the fitted network's architecture."""
    import torch

    from survseg.losses.cox import cox_partial_likelihood_loss
    from survseg.losses.segmentation import dice_loss

    images, masks, clin = _bare_inputs(est, X, "DeepMTS")
    event = torch.as_tensor(np.ascontiguousarray(y["event"]))
    time_ = torch.as_tensor(np.ascontiguousarray(y["time"]))
    ev_idx, ce_idx = np.flatnonzero(y["event"]), np.flatnonzero(~y["event"])
    half = est.batch_size // 2
    batches = []
    for _ in range(4):  # a few balanced batches, built before timing
        idx = torch.as_tensor(
            np.concatenate(
                [rng.choice(ev_idx, half, False), rng.choice(ce_idx, est.batch_size - half, False)]
            )
        )
        batches.append(
            (
                images[idx].contiguous(),
                masks[idx].contiguous(),
                None if clin is None else clin[idx],
                event[idx],
                time_[idx],
            )
        )
    net = copy.deepcopy(est.network_).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def one(k):
        xb, mb, cb, eb, tb = batches[k % len(batches)]
        t0 = time.perf_counter()
        out = net(xb, cb)
        t1 = time.perf_counter()
        loss = cox_partial_likelihood_loss(out.log_risk, eb, tb) + dice_loss(
            out.seg_logits, mb, squared=True
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return _phases(t0, t0, t1, t2, t3)

    return one


def _adamss_bare(est, X, y, rng, stage):
    """Stage I (Dice + focal on random crops) or stage II (discrete-time NLL on crops)."""
    import torch

    from survseg.losses.discrete_time import discrete_time_nll, encode_survival
    from survseg.losses.segmentation import dice_loss, focal_loss

    images, masks, clin = _bare_inputs(est, X, "AdaMSS")
    s, f = encode_survival(np.asarray(y["time"]), np.asarray(y["event"]), est.time_bins_)
    s, f = torch.as_tensor(s, dtype=torch.float32), torch.as_tensor(f, dtype=torch.float32)
    net = copy.deepcopy(est.network_ if stage == 2 else est.segmentation_network_).train()
    n_extra = net.n_extra_features
    extra = torch.randn(len(X), n_extra) if n_extra else None
    m = net.size_multiple  # AdaMSS's crop_size="auto": 112/160 of each axis, a multiple of m
    crop = tuple(max(m, min(n, m * round(n * 112 / 160 / m))) for n in SHAPE)
    bs = est.batch_size
    batches = []
    for _ in range(4):
        idx = torch.as_tensor(rng.choice(len(X), bs, False))
        a, b, c = (int(rng.integers(0, m - k + 1)) for m, k in zip(SHAPE, crop, strict=True))
        sl = (idx, slice(None), slice(a, a + crop[0]), slice(b, b + crop[1]), slice(c, c + crop[2]))
        batches.append(
            (
                images[sl].contiguous(),
                masks[sl].contiguous(),
                None if extra is None else extra[idx],
                s[idx],
                f[idx],
            )
        )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def one(k):
        xb, mb, eb, sb, fb = batches[k % len(batches)]
        t0 = time.perf_counter()
        if stage == 1:
            logits = net(xb, task="segmentation").seg_logits
            t1 = time.perf_counter()
            loss = dice_loss(logits, mb) + focal_loss(
                logits, mb, alpha=est.focal_alpha, gamma=est.focal_gamma
            )
        else:
            logits = net(xb, eb, task="survival").survival_logits
            t1 = time.perf_counter()
            loss = discrete_time_nll(logits, sb, fb) / est.n_intervals
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return _phases(t0, t0, t1, t2, t3)

    return one


def _bare_predict(est, X, network):
    """Forward under no_grad over in-memory inputs, in the estimator's prediction batches."""
    import torch

    images, _, clin = _bare_inputs(est, X, None)
    net = network.eval()
    bs = est.predict_batch_size
    is_adamss = hasattr(net, "n_extra_features")
    extra = None
    if is_adamss and net.n_extra_features:
        extra = torch.randn(len(X), net.n_extra_features)

    def run():
        outs = []
        with torch.no_grad():
            for start in range(0, len(X), bs):
                xb = images[start : start + bs]
                if is_adamss:
                    e = None if extra is None else extra[start : start + bs]
                    outs.append(torch.sigmoid(net(xb, e, task="survival").survival_logits))
                else:
                    outs.append(
                        net(xb, None if clin is None else clin[start : start + bs]).log_risk
                    )
        return torch.cat(outs).numpy()

    return run


# ---------------------------------------------------------------------------- one model
def _profile_fit(est, X, y):
    """cProfile of one fit: cumulative seconds of the functions that matter, and the top list."""
    prof = cProfile.Profile()
    prof.enable()
    est.fit(X, y)
    prof.disable()
    stats = pstats.Stats(prof)
    wanted = {
        "image_tensor": "read cohort rows + stack + to tensor (incl. normalisation)",
        "_normalise": "per-batch intensity normalisation",
        "random_affine": "affine augmentation (affine_grid + grid_sample)",
        "random_crop": "random crop",
        "grid_sample": "grid_sample calls",
        "_clinical_tensor": "clinical covariates per batch",
        "backward": "autograd backward",
        "step": "optimizer step (Adam)",
        "_predict_in_batches": "prediction passes inside fit (Breslow baseline)",
        "check_cohort": "input validation",
        "_fit_baseline": "Breslow baseline hazard",
        "batch": "CohortBatches.batch: index_select + augmentation (redesign)",
        "forward_in_batches": "prediction passes (redesign)",
        "__init__": "CohortBatches: read + normalise the training volumes once (redesign)",
    }
    found = {}
    for (file, _line, func), (_cc, nc, _tt, ct, _callers) in stats.stats.items():
        if func in wanted and (func != "step" or "optim" in file):
            if func in ("batch", "__init__") and not file.endswith("batches.py"):
                continue
            key = f"{func} ({os.path.basename(file)})"
            found[key] = {"calls": nc, "cumulative_s": round(ct, 4), "what": wanted[func]}
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    top = [ln.strip() for ln in buf.getvalue().splitlines() if ln.strip()][-16:]
    total = sum(v[3] for k, v in stats.stats.items() if k[2] == "fit" and "estimators" in k[0])
    return {"fit_cumulative_s": round(total, 3), "functions": found, "top_by_self_time": top}


def _run_model(name, args):
    import torch

    from survseg.datasets import make_petct_cohort
    from survseg.demo import demo_models
    from survseg.networks.adamss import AdaMSS
    from survseg.networks.deepmts import DeepMTS

    torch.set_num_threads(args.threads)
    X, y = make_petct_cohort(N_PATIENTS, SHAPE, random_state=0)
    Xtr, ytr, Xte = X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:]
    est = demo_models(iterations=args.iters)[name].set_params(**FIT_OVERRIDES[name])
    rng = np.random.default_rng(0)
    est.fit(Xtr, ytr)  # warm-up fit: gives the network architecture for the bare loop
    if name == "DeepMTS":
        bares = {"iteration": _deepmts_bare(est, Xtr, ytr, rng)}
    else:
        bares = {
            "stage_I": _adamss_bare(est, Xtr, ytr, rng, 1),
            "stage_II": _adamss_bare(est, Xtr, ytr, rng, 2),
        }
    stages = list(bares)
    clock = Clock((DeepMTS, AdaMSS), bare={i: bares[s] for i, s in enumerate(stages)})
    pred_bare = _bare_predict(est, Xte, copy.deepcopy(est.network_))
    est_rows = {s: [] for s in stages}
    bare_rows = {s: [] for s in stages}
    fit_walls, fit_outside = [], []
    pred_est, pred_bare_t = [], []
    for _rep in range(args.repeats):
        clock.reset()
        t0 = time.perf_counter()
        est.fit(Xtr, ytr)  # each estimator iteration is followed by one bare iteration
        wall = time.perf_counter() - t0
        per_opt = clock.iterations(args.warmup)
        in_bare = sum(r["total"] for rows in clock.bare_rows.values() for r in rows)
        in_iters = sum(r["total"] for rows, _ in clock.iterations(1) for r in rows)
        fit_walls.append(wall - in_bare)
        fit_outside.append(wall - in_bare - in_iters)
        for s, (rows, bare) in zip(stages, per_opt, strict=True):
            est_rows[s] += rows
            bare_rows[s] += bare
    for rep in range(args.predict_repeats):  # prediction: alternate whole passes
        for side in ("est", "bare") if rep % 2 == 0 else ("bare", "est"):
            t0 = time.perf_counter()
            if side == "est":
                est.predict(Xte)
                pred_est.append(time.perf_counter() - t0)
            else:
                pred_bare()
                pred_bare_t.append(time.perf_counter() - t0)
    clock.close()
    result = {"estimator": type(est).__name__, "training": {}}
    for s in stages:
        e, b = _median_phases(est_rows[s]), _median_phases(bare_rows[s])
        result["training"][s] = {
            "estimator_s_per_iter": e,
            "bare_s_per_iter": b,
            "speed_ratio": b["total"] / e["total"],
        }
    pe, pb = float(np.median(pred_est)), float(np.median(pred_bare_t))
    result["prediction"] = {
        "patients": len(Xte),
        "estimator_s": pe,
        "bare_s": pb,
        "speed_ratio": pb / pe,
        "median_of_paired_ratios": float(np.median(np.divide(pred_bare_t, pred_est))),
        "estimator_runs_s": pred_est,
        "bare_runs_s": pred_bare_t,
    }
    result["fit_wall_s"] = fit_walls  # without the bare iterations run inside it
    result["fit_outside_iterations_s"] = fit_outside
    result["profile"] = _profile_fit(est, Xtr, ytr)
    result["settings"] = {
        "max_iter": args.iters,
        "warmup_dropped": args.warmup,
        "repeats": args.repeats,
        "predict_repeats": args.predict_repeats,
        "batch_size": est.batch_size,
        "predict_batch_size": est.predict_batch_size,
        "overrides": FIT_OVERRIDES[name],
        "parameters": int(sum(p.numel() for p in est.network_.parameters())),
    }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["DeepMTS", "AdaMSS"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--iters", type=int, default=8, help="max_iter of each fit")
    parser.add_argument("--warmup", type=int, default=2, help="iterations dropped per fit")
    parser.add_argument("--repeats", type=int, default=3, help="alternations")
    parser.add_argument("--predict-repeats", type=int, default=7, help="prediction passes")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_run_model(args.worker, args)))
        return
    import torch

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    results = {}
    for name in args.models:  # one process per model: its threads and memory are its own
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name]
        cmd += ["--threads", str(args.threads), "--iters", str(args.iters)]
        cmd += ["--warmup", str(args.warmup), "--repeats", str(args.repeats)]
        cmd += ["--predict-repeats", str(args.predict_repeats)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{proc.stderr[-4000:]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    report = {
        "benchmark": "deep estimators vs the bare network loop at the demo's settings (CPU)",
        "setting": f"make_petct_cohort({N_PATIENTS}, {SHAPE}), {N_TRAIN} training patients, "
        "demo_models() networks and batch sizes",
        "commit": commit,
        "torch": torch.__version__,
        "torch_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "wall_s": time.perf_counter() - t0,
        "models": results,
    }
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"cpu_ratio{'_' + args.tag if args.tag else ''}.json")
    with open(path, "w") as fh:
        json.dump(report, fh, indent=2)
    for name, r in results.items():
        for s, t in r["training"].items():
            print(
                f"{name} {s}: estimator {t['estimator_s_per_iter']['total']:.3f} s/it, bare "
                f"{t['bare_s_per_iter']['total']:.3f} s/it, ratio {t['speed_ratio']:.2f}"
            )
        p = r["prediction"]
        print(
            f"{name} predict: {p['estimator_s']:.3f} s vs {p['bare_s']:.3f} s, ratio {p['speed_ratio']:.2f}"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
