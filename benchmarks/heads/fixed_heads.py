"""Stage B: survival heads trained on FIXED per-patient features (from segment.py).

Isolates what makes a head learn or not from the backbone's features: each configuration
changes one thing from the DeepMTS-like baseline (demo settings: FC-1 64 units on the pooled
encoder features, clinical joined at FC-3, dropout 0.5, coupled L2 0.2 on the FC kernels,
Adam 1e-3, balanced batches of 4 events + 4 censored, batch Cox loss, 300 iterations).
Every head sees the same features of the same fold network, trained on the same fold's
training patients, and is scored by within-fold C on the test folds (3 seeds x 3 folds).

Run: ``python benchmarks/heads/fixed_heads.py`` -> results/fixed_heads.json.
"""

import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import DEV_SEEDS, cindex, clinical, cohort, cox_oof, save_json  # noqa: E402

from survseg.losses.cox import cox_partial_likelihood_loss  # noqa: E402
from survseg.losses.discrete_time import (  # noqa: E402
    discrete_time_nll,
    encode_survival,
    predicted_time,
    time_bin_edges,
)
from survseg.networks.heads import FeatureStandardizer, RiskMemoryBank  # noqa: E402
from survseg.training.sampling import balanced_batches, random_batches  # noqa: E402

CACHE = Path("/tmp/heads_cache")
PART = "part2"

BASE = dict(
    inputs="gap", scale="raw", arch="deepmts", loss="cox", batch=8, dropout=0.5, l2=0.2,
    lr=1e-3, iters=300, n_intervals=10,
)  # fmt: skip


class Head(nn.Module):
    def __init__(self, p, n_clin, arch, dropout, scale, n_out=1):
        super().__init__()
        self.std = FeatureStandardizer(p)
        self.scale = scale
        self.bn = nn.BatchNorm1d(p, affine=False) if scale == "bn" else None
        if arch == "deepmts":
            self.fc1 = nn.Sequential(nn.Dropout(dropout), nn.Linear(p, 64), nn.ReLU())
            self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(64 + n_clin, n_out))
        else:  # linear
            self.fc1 = nn.Identity()
            self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(p + n_clin, n_out))
        self.kernels = [m.weight for m in self.modules() if isinstance(m, nn.Linear)]

    def forward(self, f, c):
        if self.scale == "z":
            f = self.std(f)
        elif self.bn is not None:
            f = self.bn(f)
        return self.out(torch.cat([self.fc1(f), c], 1))


def fit_predict(f_tr, c_tr, y_tr, f_te, c_te, cfg, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(y_tr)
    ev, tm = y_tr["event"].astype(bool), y_tr["time"].astype(float)
    discrete = cfg["loss"] == "discrete"
    if discrete:
        edges = time_bin_edges(tm, cfg["n_intervals"])
        s, f = map(torch.from_numpy, encode_survival(tm, ev, edges))
    head = Head(f_tr.shape[1], c_tr.shape[1], cfg["arch"], cfg["dropout"], cfg["scale"],
                n_out=cfg["n_intervals"] if discrete else 1)  # fmt: skip
    F_tr, C_tr = torch.from_numpy(f_tr).float(), torch.from_numpy(c_tr).float()
    head.std.set_statistics(F_tr)
    kernels = {id(w) for w in head.kernels}
    params = [p for p in head.parameters()]
    groups = [
        {"params": [p for p in params if id(p) in kernels], "weight_decay": cfg["l2"]},
        {"params": [p for p in params if id(p) not in kernels], "weight_decay": 0.0},
    ]
    opt = torch.optim.Adam(groups, lr=cfg["lr"])
    if cfg["loss"] == "cox_full":
        batches = itertools.repeat(np.arange(n))
    elif cfg["balanced"] if "balanced" in cfg else True:
        k = cfg["batch"] // 2
        batches = balanced_batches(ev, k, cfg["batch"] - k, rng)
    else:
        batches = random_batches(n, cfg["batch"], rng)
    bank = RiskMemoryBank(tm, ev) if cfg["loss"] == "bank" else None
    if bank is not None:  # start the bank at the initial model's risks
        with torch.no_grad():
            head.eval()
            bank.update(np.arange(n), head(F_tr, C_tr).squeeze(1))
    t_ev = torch.from_numpy(ev)
    t_tm = torch.from_numpy(tm)
    head.train()
    for _ in range(cfg["iters"]):
        idx = next(batches)
        out = head(F_tr[idx], C_tr[idx])
        if discrete:
            loss = discrete_time_nll(out, s[idx], f[idx])
        elif bank is not None:
            loss = bank.loss(out.squeeze(1), idx)
        else:
            loss = cox_partial_likelihood_loss(out.squeeze(1), t_ev[idx], t_tm[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if bank is not None:
            bank.update(idx, out.squeeze(1))
    head.eval()
    with torch.no_grad():
        out = head(torch.from_numpy(f_te).float(), torch.from_numpy(c_te).float())
    if discrete:
        return -predicted_time(torch.sigmoid(out).numpy(), edges)
    return out.squeeze(1).numpy()


def features(kind, data, k):
    gap, seg = data[f"gap{k}"], data[f"seg{k}"]
    return {
        "gap": gap,
        "seg_tumour": seg[:, :3],
        "seg_both": seg,
        "gap+seg_tumour": np.column_stack([gap, seg[:, :3]]),
        "gap+seg_both": np.column_stack([gap, seg]),
    }[kind]


CONFIGS = {
    "baseline (DeepMTS demo)": {},
    "lr 1e-4 (paper)": dict(lr=1e-4),
    "scale z": dict(scale="z"),
    "scale bn": dict(scale="bn"),
    "no dropout, L2 1e-4": dict(dropout=0.0, l2=1e-4),
    "scale z, no dropout, L2 1e-4": dict(scale="z", dropout=0.0, l2=1e-4),
    "loss cox batch 2 (1+1)": dict(batch=2),
    "loss cox full set": dict(loss="cox_full"),
    "loss memory bank (batch 8)": dict(loss="bank"),
    "loss discrete-time (batch 8)": dict(loss="discrete"),
    "scale z + bank": dict(scale="z", loss="bank"),
    "scale z + full": dict(scale="z", loss="cox_full"),
    "linear head, z, bank, dropout 0, L2 1e-4": dict(
        arch="linear", scale="z", loss="bank", dropout=0.0, l2=1e-4
    ),
    "inputs seg_tumour (baseline head)": dict(inputs="seg_tumour"),
    "inputs seg_tumour, z": dict(inputs="seg_tumour", scale="z"),
    "inputs seg_tumour, linear z bank": dict(
        inputs="seg_tumour", arch="linear", scale="z", loss="bank", dropout=0.0, l2=1e-4
    ),
    "inputs seg_both (baseline head)": dict(inputs="seg_both"),
    "inputs seg_both, z": dict(inputs="seg_both", scale="z"),
    "inputs seg_both, linear z bank": dict(
        inputs="seg_both", arch="linear", scale="z", loss="bank", dropout=0.0, l2=1e-4
    ),
    "inputs gap+seg_both, z bank": dict(inputs="gap+seg_both", scale="z", loss="bank"),
    "iters 3000": dict(iters=3000),
    # part 3: checks added after parts 1-2
    "discrete-time, z, no dropout, L2 1e-4": dict(loss="discrete", scale="z", dropout=0.0, l2=1e-4),
    "inputs seg_tumour, linear z, batch cox 8 (no bank)": dict(
        inputs="seg_tumour", arch="linear", scale="z", dropout=0.0, l2=1e-4
    ),
    "inputs seg_both, linear z, full set": dict(
        inputs="seg_both", arch="linear", scale="z", loss="cox_full", dropout=0.0, l2=1e-4
    ),
    "baseline, training seed +1": dict(seed_offset=1),
    "baseline, training seed +2": dict(seed_offset=2),
    # part 4: training-seed spread of the GAP-feature fixes
    "scale z, training seed +1": dict(scale="z", seed_offset=1),
    "scale z, training seed +2": dict(scale="z", seed_offset=2),
    "no dropout, L2 1e-4, training seed +1": dict(dropout=0.0, l2=1e-4, seed_offset=1),
    "no dropout, L2 1e-4, training seed +2": dict(dropout=0.0, l2=1e-4, seed_offset=2),
    "loss memory bank, training seed +1": dict(loss="bank", seed_offset=1),
    "loss memory bank, training seed +2": dict(loss="bank", seed_offset=2),
    "inputs seg_both, z, training seed +1": dict(inputs="seg_both", scale="z", seed_offset=1),
    "inputs seg_both, z, training seed +2": dict(inputs="seg_both", scale="z", seed_offset=2),
}


def main(only=None):
    torch.set_num_threads(1)
    results = {"base": BASE, "configs": {}, "ridge_cox": {}}
    data = {s: np.load(CACHE / f"stageA_seed{s}.npz") for s in DEV_SEEDS}
    cohorts = {s: cohort(s)[:2] for s in DEV_SEEDS}
    # what a ridge Cox (the "deep features + Cox" small-data option) gets from each input
    for kind in () if only else ("gap", "seg_tumour", "seg_both", "gap+seg_both"):
        row = {}
        for s in DEV_SEEDS:
            X, y = cohorts[s]
            fold = data[s]["fold"]
            risk = np.zeros(len(y))
            for k in range(3):
                feats = np.column_stack([features(kind, data[s], k), clinical(X)])
                r = cox_oof(feats, y, np.where(fold == k, 0, 1), alpha=1.0)  # fold k = test
                risk[fold == k] = r[fold == k]
            row[s] = round(cindex(y, risk, fold), 3)
        row["mean"] = round(float(np.mean([row[s] for s in DEV_SEEDS])), 3)
        results["ridge_cox"][kind] = row
        print("ridge cox", kind, row, flush=True)
    for name, change in CONFIGS.items():
        if only and name not in only:
            continue
        cfg = {**BASE, **change}
        t0 = time.time()
        row = {}
        for s in DEV_SEEDS:
            X, y = cohorts[s]
            fold = data[s]["fold"]
            clin = clinical(X)
            risk = np.zeros(len(y))
            for k in range(3):
                tr, te = fold != k, fold == k
                feats = features(cfg["inputs"], data[s], k)
                mu, sd = clin[tr].mean(0), clin[tr].std(0)
                c = (clin - mu) / sd
                risk[te] = fit_predict(
                    feats[tr],
                    c[tr],
                    y[tr],
                    feats[te],
                    c[te],
                    cfg,
                    s * 10 + k + cfg.get("seed_offset", 0),
                )
            row[s] = round(cindex(y, risk, fold), 3)
        row["mean"] = round(float(np.mean([row[s] for s in DEV_SEEDS])), 3)
        row["seconds"] = round(time.time() - t0, 1)
        results["configs"][name] = {"change": change, **row}
        print(f"{name:45s}", row, flush=True)
        save_json("fixed_heads" + (f"_{PART}" if only else ""), results)  # after each configuration
    save_json("fixed_heads" + (f"_{PART}" if only else ""), results)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0].startswith("--part="):
        PART, args = args[0][len("--part=") :], args[1:]
    main(args or None)
