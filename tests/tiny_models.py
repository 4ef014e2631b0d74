"""Tiny settings of the deep estimators that the tests share, defined once.

Network shapes small enough to train a few iterations on the CPU in a test, the estimator
settings around them, a fast radiomics extractor and the sphere cohort the DeepMTS tests fit.
The golden recordings (``tests/golden``) were made with ``DEEPMTS_NETWORK``, ``ADAMSS_NETWORK``
and ``deepmts_cohort``: a change here must leave ``python -m pytest tests/golden`` passing (or
be re-recorded on purpose, as ``golden_rows.py`` says).
"""

from __future__ import annotations

import numpy as np
from sksurv.util import Surv

from survseg.data.cohort import volumes

#: Volumes divisible by 4 (3-level U-Net) and >= 19 voxels (DenseNet stem and pools).
DEEPMTS_SHAPE = (20, 20, 20)

#: DeepMTS's network at a few channels per level (the golden size).
DEEPMTS_NETWORK = dict(
    channels=(4, 6, 8),
    encoder_convs=(1, 1, 1),
    decoder_convs=(1, 1),
    feature_channels=(2, 3, 4),
    dense_stem_channels=6,
    dense_block_layers=(1, 1, 1),
    dense_transition_channels=(3, 4, 5),
    dense_growth_rate=4,
    dense_bottleneck_channels=8,
    fc_units=5,
)

#: Smaller still, for tests that only check the API (contract checks, fault injection).
DEEPMTS_NETWORK_MINI = dict(
    channels=(2, 3, 4),
    encoder_convs=(1, 1, 1),
    decoder_convs=(1, 1),
    feature_channels=(2, 2, 2),
    dense_stem_channels=4,
    dense_block_layers=(1, 1, 1),
    dense_transition_channels=(2, 2, 2),
    dense_growth_rate=2,
    dense_bottleneck_channels=4,
    fc_units=3,
)

#: DeepMTSRegressor trained 3 iterations on the CPU with a fixed seed.
DEEPMTS_FAST = dict(
    network_params=DEEPMTS_NETWORK, max_iter=3, batch_size=4, random_state=0, device="cpu"
)

#: The papers' survival head (issue 14 made segmentation-derived, scaled inputs the default).
PAPER_HEAD = dict(survival_inputs="pooled", feature_scaling=None)

#: The ablation rows of Meng et al. 2022, Tables II-V (docs/papers/deepmts.md): the
#: DeepMTSRegressor parameters that differ from the full model's.
DEEPMTS_ABLATIONS = {
    "DeepMTS": {},
    "MT-HS": dict(cascade=False),
    "MT-CasNet": dict(hard_sharing=False),
    "Seg-Backbone": dict(hard_sharing=False, cascade=False),
    "Sur-HS": dict(segmentation=False, cascade=False),
    "Sur-HS (using segmentation)": dict(segmentation=False, cascade=False, mask_input=True),
    "Sur-CasNet": dict(segmentation=False, hard_sharing=False),
    "Sur-CasNet (using segmentation)": dict(
        segmentation=False, hard_sharing=False, mask_input=True
    ),
    "U-net": dict(hard_sharing=False, cascade=False, backbone="plain"),
    "Sur-HS (U-net)": dict(segmentation=False, cascade=False, backbone="plain"),
    "MT-HS (U-net)": dict(cascade=False, backbone="plain"),
    "MT-CasNet (U-net)": dict(hard_sharing=False, backbone="plain"),
    "DeepMTS (U-net)": dict(backbone="plain"),
    "MT-HS (Baseline)": dict(cascade=False, feature_convs=False),
}

#: AdaMSS's network at two levels of a few channels (the golden size).
ADAMSS_NETWORK = dict(
    single_channels=(2, 4), fuse_channels=(4, 8), n_convs=(1, 1), hidden_features=8
)

#: AdaMSSRegressor on the CPU with a fixed seed, without radiomics.
ADAMSS_FAST = dict(
    network_params=ADAMSS_NETWORK, max_iter=4, random_state=0, radiomics=False, device="cpu"
)

#: A radiomics extractor of a few dozen features that runs in a second on tiny volumes.
FAST_RADIOMICS = dict(
    feature_classes=["firstorder", "shape"], image_types=["original"], settings={"binCount": 16}
)


def deepmts_cohort(n=12, shape=DEEPMTS_SHAPE, seed=0, events=None):
    """Noisy PET/CT with one spherical tumour each; larger tumours progress earlier.

    Every third patient is censored unless ``events`` is given; ``X`` has clinical fields
    ``age`` (uniform 40-80) and ``stage`` (3 or 4), both unrelated to the outcome.
    """
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    centre = np.asarray(shape) / 2 + rng.uniform(-2, 2, (n, 3))
    radius = rng.uniform(2.5, 5.0, n)
    dist = np.sqrt(
        sum((g[None] - centre[:, i, None, None, None]) ** 2 for i, g in enumerate((zz, yy, xx)))
    )
    mask = (dist <= radius[:, None, None, None]).astype(np.uint8)
    pet = rng.normal(0, 1, (n, *shape)) + 3.0 * mask
    ct = rng.normal(0, 1, (n, *shape)) + 1.0 * mask
    time = 100 * np.exp(-(radius - 3.5)) * rng.uniform(0.8, 1.2, n)
    event = np.ones(n, dtype=bool)
    event[::3] = False
    if events is not None:
        event = events
    X = volumes(pet=pet, ct=ct, mask=mask, age=rng.uniform(40, 80, n), stage=rng.integers(3, 5, n))
    return X, Surv.from_arrays(event, time)
