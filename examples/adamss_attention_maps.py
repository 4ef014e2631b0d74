# %% [markdown]
# # AdaMSS: where does the decoder look, and how does it fuse PET and CT?
#
# Meng et al. (2024) interpret AdaMSS with the attention maps of its Ada-focus decoder (their
# Fig. 3: focused on the tumour after the segmentation stage, widened to the tumour surroundings
# after the survival stage) and the mean weights of its fusion gates (their Table IV). This
# example trains a small AdaMSS on the synthetic PET/CT cohort on a CPU and draws both.
#
# Run it as a script (``python examples/adamss_attention_maps.py``, about 2 minutes on one
# core) or cell by cell. Figures go to ``survseg_demo_output/``.

# %%
import os

import numpy as np
import torch

from survseg.datasets import make_petct_cohort
from survseg.estimators.adamss import AdaMSSRegressor
from survseg.plotting import plot_attention, plot_fusion_weights, save_figure

torch.set_num_threads(1)
OUT = "survseg_demo_output"
os.makedirs(OUT, exist_ok=True)


# %% [markdown]
# A 32^3 cohort (5 mm voxels over a 16 cm field of view) and a narrower network than the
# paper's, so a CPU trains it in minutes. The learning rates are ten times the paper's because
# the run is 40 times shorter.

# %%
X, y = make_petct_cohort(60, shape=(32, 32, 32), random_state=0, event_rate=0.5)  # SUV, HU
train, test = np.arange(45), np.arange(45, 60)
model = AdaMSSRegressor(
    network_params=dict(
        single_channels=(4, 8, 16, 32),
        fuse_channels=(8, 16, 32, 64),
        n_convs=(1, 2, 2, 2),
        hidden_features=32,
    ),
    max_iter=250,
    lr=(1e-3, 5e-4),  # stage I 1e-3 -> 5e-4 -> 1e-4, stage II 5e-4 -> 1e-4 -> 1e-5
    radiomics=False,
    clinical=["age", "hpv"],
    intensity={"pet": "zscore", "ct": "window"},  # the paper's normalisation
    random_state=0,
    verbose=1,
)
model.fit(X[train], y[train])
print(f"test C-index {model.score(X[test], y[test]):.3f}")

# %% [markdown]
# Attention maps of one test patient: the segmentation network (stage I) and the survival
# network (stage II) on the same slice through the tumour, finest decoder level first.

# %%
patient = test[:1]
for stage, label in (("segmentation", "stage_I"), ("survival", "stage_II")):
    maps = model.attention_maps(X[patient], stage=stage)
    fig = plot_attention(
        X["pet"][patient[0]],
        {f"level {i + 1}": m[0] for i, m in enumerate(maps)},
        mask=X["mask"][patient[0]],
        image_name="PET (SUV)",
    )
    fig.suptitle(f"AdaMSS attention, {stage} network")
    save_figure(fig, os.path.join(OUT, f"adamss_attention_{label}.png"))

# %% [markdown]
# Mean fusion-gate weights w_fuse per encoder level (0.5 at initialisation; below 0.5 the gate
# takes more from the per-modality branches than from the fused branch), as in Table IV.

# %%
weights = {
    "Stage I": model.fusion_weights(X[test], stage="segmentation"),
    "Stage II": model.fusion_weights(X[test], stage="survival"),
}
for name, w in weights.items():
    print(name, np.round(w, 3))
save_figure(plot_fusion_weights(weights), os.path.join(OUT, "adamss_fusion_weights.png"))
print(f"figures written to {OUT}/")
