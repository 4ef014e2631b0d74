# %% [markdown]
# # DeepMTS on a synthetic PET/CT cohort (CPU, a few minutes)
#
# Trains a shallower DeepMTS (the paper's first four backbone levels, a shorter DenseNet) on
# small synthetic volumes (24^3), reports the held-out C-index and Dice, and compares the validation Cox
# loss of the multi-task model with its single-task counterpart (segmentation off), as in
# the paper's Fig. 5. Run: ``python examples/deepmts_synthetic.py [--max-iter N]``.

# %%
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from survseg.datasets import make_petct_cohort
from survseg.estimators.deepmts import DeepMTSRegressor
from survseg.evaluation.metrics import concordance_index, dice_score

# The paper's first four backbone levels (sizes divisible by 8) and a DenseNet of 2/4/8
# bottleneck layers, so that CPU training at 24^3 takes minutes.
SMALL = dict(
    channels=(8, 16, 32, 64),
    encoder_convs=(2, 2, 3, 3),
    decoder_convs=(3, 2, 2),
    feature_channels=(4, 8, 16, 32),
    dense_block_layers=(2, 4, 8),
    dense_transition_channels=(8, 16, 32),
)


def make_data(n=150, shape=(24, 24, 24), seed=0, n_test=60):
    # 4 mm voxels: a 96 mm field of view around the oropharynx, so that the tumour fills about
    # 1 % of the volume as in the paper's 128 x 128 x 112 ROIs
    X, y = make_petct_cohort(n, shape, random_state=seed, event_rate=0.5, voxel_size_mm=4.0)
    idx_train, idx_test = train_test_split(
        np.arange(n), test_size=n_test, random_state=seed, stratify=y["event"]
    )
    return X[idx_train], y[idx_train], X[idx_test], y[idx_test]


def model(max_iter=400, **kw):
    # a short run: a 10x larger learning rate than the paper's, held until the last third
    # the cohort is in SUV and HU: the paper's per-patient z-score is done by the model
    params = dict(
        network_params=SMALL,
        intensity={"pet": "zscore", "ct": "zscore"},
        max_iter=max_iter,
        lr=1e-3,
        lr_factors=(1.0, 1.0, 0.1),
        validation_fraction=1 / 3,
        validate_every=max(1, max_iter // 20),
        monitor="loss",
        random_state=0,
        device="cpu",
    )
    params.update(kw)
    return DeepMTSRegressor(**params)


def evaluate(est, X_test, y_test):
    out = {"test_cindex": concordance_index(y_test, est.predict(X_test))}
    if est.segmentation:
        out["test_dice"] = float(np.mean(dice_score(X_test["mask"], est.predict_mask(X_test))))
    return out


# %%
if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-iter", type=int, default=400)
    parser.add_argument("--output", default="survseg_demo_output/deepmts_synthetic")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the CI/dev machine has 2 shared cores
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)

    X_train, y_train, X_test, y_test = make_data()
    print(
        f"train {len(X_train)} ({y_train['event'].sum()} events), test {len(X_test)} "
        f"({y_test['event'].sum()} events), shape {X_train['pet'].shape[1:]}"
    )

    results, histories = {}, {}
    for name, kw in {"DeepMTS": {}, "Sur (segmentation off)": {"segmentation": False}}.items():
        t0 = time.time()
        est = model(args.max_iter, verbose=1, **kw).fit(X_train, y_train)
        res = evaluate(est, X_test, y_test)
        res["fit_seconds"] = time.time() - t0
        res["best_iteration"] = int(est.best_iteration_)
        results[name] = res
        histories[name] = est.history_
        est.history_.to_csv(
            out_dir / f"history_{'deepmts' if est.segmentation else 'sur'}.csv", index=False
        )
        print(name, json.dumps(res))

    # %% validation Cox loss: multi-task vs single-task (paper Fig. 5)
    curves = {
        n: h.dropna(subset=["val_loss"])[["iteration", "val_loss", "val_c_index"]]
        for n, h in histories.items()
    }
    for n, c in curves.items():
        print(n)
        print(c.to_string(index=False))
    (out_dir / "results.json").write_text(
        json.dumps(
            {
                "results": results,
                "curves": {n: c.to_dict(orient="list") for n, c in curves.items()},
            },
            indent=2,
        )
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        for n, c in curves.items():
            ax[0].plot(c["iteration"], c["val_loss"], marker="o", label=n)
            ax[1].plot(c["iteration"], c["val_c_index"], marker="o", label=n)
        ax[0].set(xlabel="iteration", ylabel="validation Cox loss")
        ax[1].set(xlabel="iteration", ylabel="validation C-index")
        ax[0].legend()
        fig.tight_layout()
        fig.savefig(out_dir / "validation_curves.png", dpi=120)
    except ImportError:
        pass
