"""Stage A: per fold, a small two-region U-Net (tumour + nodes), then fixed per-patient features.

For each development seed and each of the 3 folds, a DeepMTS segmentation backbone (narrow:
channels 4-8-16-32, residual blocks, 1x1 feature convolutions) with a two-channel output
(tumour, nodes; the generator's node masks as labels) is trained on the fold's training
patients only: 16^3 random crops (half centred on a tumour voxel, a quarter on a node voxel),
batch 6, Adam 1e-3, soft Dice + BCE per region, left-right flips. It is then run once on every
patient's whole 32^3 volume (eval mode) and saves, per patient:

- ``gap``: the hard-sharing features GAP(ReLU(BN(conv1x1(E_k)))) (what DeepMTS's FC-1 sees);
- ``seg``: segmentation-derived features of the predicted probability maps: log(1 + soft
  volume in ml), log(1 + total uptake sum p*SUV*ml), p-weighted mean SUV, for tumour and nodes;
- test Dice per region (threshold 0.5).

Run: ``python benchmarks/heads/segment.py [seed ...] [--iters N]``; arrays go to
/tmp/heads_cache/stageA_seed{s}.npz, Dice and timing to results/segment_seed{s}.json.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import DEV_SEEDS, cohort, folds, normalise, region_features, save_json  # noqa: E402

from survseg.networks.deepmts import SegmentationBackbone  # noqa: E402

CACHE = Path("/tmp/heads_cache")
CROP = 16
BATCH = 6


def make_net(n_regions=2):
    net = SegmentationBackbone(
        2, (4, 8, 16, 32), (1, 2, 2, 2), (2, 2, 1), feature_channels=(2, 4, 8, 16)
    )
    net.seg_head = nn.Conv3d(4, n_regions, 1)
    nn.init.constant_(net.seg_head.bias, float(np.log(0.01 / 0.99)))
    return net


def seg_loss(logits, target):
    """Soft Dice (over the batch, per region) + BCE, averaged over regions."""
    p = torch.sigmoid(logits)
    dims = (0, 2, 3, 4)
    inter = (p * target).sum(dims)
    dice = 1 - (2 * inter + 1e-5) / (p.sum(dims) + target.sum(dims) + 1e-5)
    return dice.mean() + nn.functional.binary_cross_entropy_with_logits(logits, target)


def crop_batch(images, labels, idx, rng, size=CROP):
    """Random crops; half centred on a tumour voxel, a quarter on a node voxel."""
    d = images.shape[-1]
    xs, ys = [], []
    for i in idx:
        u = rng.random()
        region = 0 if u < 0.5 else (1 if u < 0.75 else None)
        if region is not None and labels[i, region].any():
            vox = np.argwhere(labels[i, region])
            c = vox[rng.integers(len(vox))]
        else:
            c = rng.integers(0, d, 3)
        lo = np.clip(c - size // 2 + rng.integers(-3, 4, 3), 0, d - size)
        sl = tuple(slice(a, a + size) for a in lo)
        x, t = images[i][(slice(None), *sl)], labels[i][(slice(None), *sl)]
        if rng.random() < 0.5:
            x, t = x[..., ::-1], t[..., ::-1]
        xs.append(x.copy())
        ys.append(t.copy())
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys).astype(np.float32))


def dice(pred, true):
    inter = (pred & true).sum((1, 2, 3))
    den = pred.sum((1, 2, 3)) + true.sum((1, 2, 3))
    return np.where(den > 0, 2 * inter / np.maximum(den, 1), 1.0)


def run(seed, iters):
    X, y, truth = cohort(seed)
    fold = folds(y)
    images = normalise(X)
    labels = np.stack([X["mask"], truth.node_mask], 1).astype(bool)
    out, report = {}, {"iters": iters}
    for k in range(3):
        t0 = time.time()
        torch.manual_seed(100 * seed + k)
        rng = np.random.default_rng(100 * seed + k)
        net = make_net()
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        train = np.flatnonzero(fold != k)
        net.train()
        for _ in range(iters):
            x, t = crop_batch(images, labels, rng.choice(train, BATCH, replace=False), rng)
            logits, _ = net(x)
            loss = seg_loss(logits, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        gap, prob = [], []
        with torch.no_grad():
            for s in range(0, len(y), 10):
                logits, f = net(torch.from_numpy(images[s : s + 10]))
                gap.append(f.numpy())
                prob.append(torch.sigmoid(logits).numpy())
        gap, prob = np.concatenate(gap), np.concatenate(prob)
        seg = np.column_stack(
            [region_features(X["pet"], prob[:, r], truth.spacing_mm) for r in (0, 1)]
        )
        test = fold == k
        d_t = dice(prob[:, 0] > 0.5, labels[:, 0])
        d_n = dice(prob[:, 1] > 0.5, labels[:, 1])
        out[f"gap{k}"], out[f"seg{k}"] = gap, seg
        out[f"prob{k}"] = (prob * 255).round().astype(np.uint8)
        report[k] = {
            "dice_tumour_test": round(float(d_t[test].mean()), 3),
            "dice_nodes_test": round(float(d_n[test].mean()), 3),
            "dice_tumour_train": round(float(d_t[~test].mean()), 3),
            "dice_nodes_train": round(float(d_n[~test].mean()), 3),
            "final_loss": round(float(loss), 3),
            "gap_sd_mean": round(float(gap[~test].std(0).mean()), 3),
            "seconds": round(time.time() - t0, 1),
        }
        print(seed, k, report[k], flush=True)
    CACHE.mkdir(exist_ok=True)
    np.savez_compressed(CACHE / f"stageA_seed{seed}.npz", fold=fold, **out)
    save_json(f"segment_seed{seed}", report)


if __name__ == "__main__":
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("seeds", nargs="*", type=int, default=list(DEV_SEEDS))
    ap.add_argument("--iters", type=int, default=200)
    a = ap.parse_args()
    for s in a.seeds:
        run(s, a.iters)
