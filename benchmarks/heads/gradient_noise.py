"""How noisy (and how biased) is the Cox gradient of a 2-8-patient batch?

A linear Cox model on z-scored ground-truth region features (tumour and node soft volume,
total uptake, mean SUV; age, HPV) of the training patients of fold 0 of each development
seed. At two points -- w = 0 (a head at initialisation) and w = w*/2 (half-way to the
full-data maximum-likelihood w*, from scikit-survival) -- it compares the gradient of the
full-training-set partial likelihood g with 2,000 minibatch gradients g_b:

- ``cos_mean``: cosine between g_b and g, averaged over batches (1 = every step points the
  full-data way; 0 = random direction);
- ``cos_of_mean``: cosine between E[g_b] and g (1 = unbiased direction);
- ``snr``: |E g_b|^2 / E|g_b - E g_b|^2 (signal-to-noise of one step);
- ``events_per_batch``.

Batches: balanced 1+1 (AdaMSS), 4+4 (DeepMTS), 16+16, random 8, and a balanced 4+4 batch
scored against a memory bank holding the current risks of all other training patients.

Run: ``python benchmarks/heads/gradient_noise.py`` -> results/gradient_noise.json (seconds).
"""

import sys

import numpy as np
import torch
from sksurv.linear_model import CoxPHSurvivalAnalysis

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import DEV_SEEDS, clinical, cohort, folds, region_features, save_json  # noqa: E402

from survseg.losses.cox import cox_partial_likelihood_loss  # noqa: E402
from survseg.networks.heads import RiskMemoryBank  # noqa: E402
from survseg.training.sampling import balanced_batches, random_batches  # noqa: E402

N_DRAWS = 2000


def grad(w, x, ev, tm, idx, bank=None):
    w = w.clone().requires_grad_(True)
    eta = x[idx] @ w
    loss = (
        bank.loss(eta, idx)
        if bank is not None
        else cox_partial_likelihood_loss(eta, ev[idx], tm[idx])
    )
    (g,) = torch.autograd.grad(loss, w)
    return g.numpy()


def cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def main():
    torch.set_num_threads(1)
    out = {}
    for seed in DEV_SEEDS:
        X, y, truth = cohort(seed)
        tr = folds(y) != 0
        f = np.column_stack(
            [
                region_features(X["pet"], X["mask"], truth.spacing_mm),
                region_features(X["pet"], truth.node_mask, truth.spacing_mm),
                clinical(X),
            ]
        )[tr]
        f = (f - f.mean(0)) / f.std(0)
        yt = y[tr]
        w_star = CoxPHSurvivalAnalysis(alpha=1e-2).fit(f, yt).coef_
        x = torch.from_numpy(f)
        ev = torch.from_numpy(yt["event"].astype(bool))
        tm = torch.from_numpy(yt["time"].astype(float))
        n = len(yt)
        res = {}
        for point, w in (("w=0", np.zeros(f.shape[1])), ("w=w*/2", w_star / 2)):
            w = torch.from_numpy(w)
            g = grad(w, x, ev, tm, np.arange(n))
            rng = np.random.default_rng(seed)
            samplers = {
                "balanced 1+1": balanced_batches(yt["event"], 1, 1, rng),
                "balanced 4+4": balanced_batches(yt["event"], 4, 4, rng),
                "balanced 16+16": balanced_batches(yt["event"], 16, 16, rng),
                "random 8": random_batches(n, 8, rng),
                "balanced 4+4 + memory bank": balanced_batches(yt["event"], 4, 4, rng),
            }
            row = {}
            for name, sampler in samplers.items():
                bank = None
                if "bank" in name:
                    bank = RiskMemoryBank(yt["time"], yt["event"])
                    bank.update(np.arange(n), x @ w)
                gs, n_ev = [], []
                for _ in range(N_DRAWS):
                    idx = next(sampler)
                    n_ev.append(int(ev[idx].sum()))
                    if n_ev[-1] == 0:
                        gs.append(np.zeros_like(g))  # no event: zero gradient
                        continue
                    gs.append(grad(w, x, ev, tm, idx, bank))
                gs = np.array(gs)
                mean = gs.mean(0)
                row[name] = {
                    "cos_mean": round(float(np.mean([cos(gb, g) for gb in gs])), 3),
                    "cos_of_mean": round(cos(mean, g), 3),
                    "snr": round(float(mean @ mean / ((gs - mean) ** 2).sum(1).mean()), 4),
                    "events_per_batch": round(float(np.mean(n_ev)), 2),
                }
            res[point] = row
        out[seed] = {"n_train": int(n), "n_events_train": int(ev.sum()), **res}
        print(seed, out[seed], flush=True)
    save_json("gradient_noise", out)


if __name__ == "__main__":
    main()
