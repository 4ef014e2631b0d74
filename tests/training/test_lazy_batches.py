"""Batch building from a memory-mapped cohort reads only the fields and rows it needs.

The memory regression of issue 17 (item 4): ``X[rows]`` of a structured memmap copies every
field of the rows (all image volumes, masks, clinical values). numpy reports its allocations
to :mod:`tracemalloc` (torch's do not), so the peak of traced memory while a tensor is built
is the numpy temporaries: one chunk of one field, never a copy of the rows' records.
"""

import tracemalloc

import numpy as np
import pytest
import torch
from sksurv.util import Surv

from survseg.data.cohort import load_cohort, save_cohort, volumes
from survseg.estimators.adamss import AdaMSSRegressor
from survseg.estimators.deepmts import DeepMTSRegressor
from survseg.training import CohortBatches, batches, check_intensity, image_tensor, mask_tensor

SHAPE = (20, 20, 20)
CPU = torch.device("cpu")
METHODS = check_intensity({"pet": "zscore", "ct": "window"}, ("pet", "ct"))


def _memmapped(tmp_path, n=24, shape=SHAPE, seed=0):
    """PET, CT, mask and a large field the batches never read (float64 'dose', 2x the PET)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    radius = rng.uniform(2.5, 5.0, n)
    dist = np.sqrt((zz - 10.0) ** 2 + (yy - 10.0) ** 2 + (xx - 10.0) ** 2)
    mask = (dist[None] <= radius[:, None, None, None]).astype(np.uint8)
    X = volumes(
        pet=(rng.gamma(2.0, 1.0, (n, *shape)) + 3.0 * mask).astype(np.float32),
        ct=(rng.normal(0, 300, (n, *shape)) + 200.0 * mask).astype(np.float32),
        dose=rng.normal(0, 1, (n, *shape)),
        mask=mask,
        age=rng.uniform(40, 80, n),
    )
    event = np.ones(n, dtype=bool)
    event[::3] = False
    y = Surv.from_arrays(event, 100 * np.exp(-(radius - 3.5)))
    path = tmp_path / "cohort.npy"
    save_cohort(path, X)
    return load_cohort(path), X, y


def _traced_peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_image_tensor_copies_one_chunk_of_one_field_not_the_records(tmp_path):
    Xm, X, _ = _memmapped(tmp_path, n=40)
    rows = np.arange(2, 40)[::-1]
    images, peak = _traced_peak(lambda: image_tensor(Xm, ["pet", "ct"], rows, intensity=METHODS))
    voxels = int(np.prod(SHAPE))
    one_field_all_rows = len(rows) * voxels * 4  # a whole-set float32 array of one field
    records = len(rows) * X.dtype.itemsize  # what X[rows] would copy
    assert peak < one_field_all_rows and peak < records / 4
    # chunk buffer (8 patients x 2 fields) and one field's fancy-index temporary of 8
    assert peak < (8 * 2 + 8) * voxels * 4 + 64 * 1024
    pet = X["pet"][rows].astype(np.float64)
    z = (pet - pet.mean(axis=(1, 2, 3), keepdims=True)) / pet.std(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(images[:, 0].numpy(), z, rtol=1e-5, atol=1e-5)
    ct = np.clip(X["ct"][rows], -1024, 1024)
    np.testing.assert_allclose(images[:, 1].numpy(), 2 * (ct + 1024) / 2048 - 1, atol=1e-6)


def test_masks_stay_uint8_until_the_batch(tmp_path):
    Xm, X, _ = _memmapped(tmp_path)
    rows = np.arange(0, 24, 2)
    masks, peak = _traced_peak(lambda: mask_tensor(Xm, ["mask"], rows))
    assert masks.dtype == torch.uint8 and peak < len(rows) * int(np.prod(SHAPE)) * 2 + 64 * 1024
    np.testing.assert_array_equal(masks[:, 0].numpy(), X["mask"][rows])
    data = CohortBatches(Xm, rows, ("pet",), device=CPU, mask_field="mask", storage="cpu")
    assert data.masks.dtype == torch.uint8
    b = data.batch([3, 1])
    assert b.masks.dtype == torch.float32
    np.testing.assert_array_equal(b.masks[:, 0].numpy(), X["mask"][rows[[3, 1]]])


def _batches(Xm, rows, storage, n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    data = CohortBatches(
        Xm, rows, ("pet", "ct"), device=CPU, intensity=METHODS, mask_field="mask",
        raw_fields=("pet",), tabular=np.arange(len(rows) * 2.0).reshape(-1, 2),
        augment=dict(max_translation=2.0, max_rotation=8.0, flip_axes=(-1,)),
        crop=(16, 16, 12), generator=gen, storage=storage,
    )  # fmt: skip
    order = np.random.default_rng(seed).permutation(len(rows))
    return data, [data.batch(order[i : i + 3], with_masks=i % 2 == 0) for i in range(0, 3 * n, 3)]


def test_lazy_batches_equal_preloaded_ones_and_hold_no_volumes(tmp_path):
    Xm, X, _ = _memmapped(tmp_path)
    rows = np.array([3, 20, 1, 7, 12, 15, 9, 0, 22, 5, 11, 18, 2, 4, 6, 8, 10, 13, 14, 16])
    pre, want = _batches(Xm, rows, "cpu")
    (lazy, got), peak = _traced_peak(lambda: _batches(Xm, rows, "lazy"))
    assert lazy.images is None and lazy.masks is None and len(lazy) == len(rows)
    assert pre.images.shape == (20, 3, *SHAPE)  # pet, ct normalised + raw pet
    # one chunk of 8 patients (the constant-image check) and its fancy-index temporary
    voxels = int(np.prod(SHAPE))
    assert peak < 2 * 8 * voxels * 4 + 64 * 1024 < 20 * voxels * 4
    for a, b in zip(want, got, strict=True):
        assert torch.equal(a.index, b.index) and torch.equal(a.tabular, b.tabular)
        assert torch.equal(a.images, b.images)  # bit for bit
        assert (a.masks is None) == (b.masks is None)
        if a.masks is not None:
            assert torch.equal(a.masks, b.masks)
    raw = want[0].images[:, 2]  # the raw PET channel is the cohort's voxels, cropped
    assert raw.shape == (3, 16, 16, 12) and raw.max() <= X["pet"].max()


def test_auto_reads_lazily_above_the_budget(tmp_path, monkeypatch):
    Xm, _, _ = _memmapped(tmp_path, n=6)
    rows = np.arange(6)
    per_patient = int(np.prod(SHAPE)) * (4 * 2 + 1)  # two float32 images, a uint8 mask
    monkeypatch.setattr(batches, "PRELOAD_BUDGET", 6 * per_patient)
    fits = CohortBatches(Xm, rows, ("pet", "ct"), device=CPU, mask_field="mask")
    assert fits.images is not None and fits.storage == CPU
    monkeypatch.setattr(batches, "PRELOAD_BUDGET", 6 * per_patient - 1)
    over = CohortBatches(Xm, rows, ("pet", "ct"), device=CPU, mask_field="mask")
    assert over.images is None and over.storage is None
    with pytest.raises(ValueError, match="storage must be one of"):
        CohortBatches(Xm, rows, ("pet",), device=CPU, storage="disk")


def test_lazy_storage_reports_a_constant_image_before_training(tmp_path):
    rng = np.random.default_rng(0)
    pet = rng.gamma(2.0, 1.0, (5, 8, 8, 8))
    pet[3] = 2.0
    save_cohort(tmp_path / "c.npy", volumes(pet=pet, ct=rng.normal(0, 1, (5, 8, 8, 8))))
    Xm = load_cohort(tmp_path / "c.npy")
    with pytest.raises(ValueError, match="the 'pet' image of patient 3 is constant"):
        CohortBatches(
            Xm, np.arange(5), ("pet", "ct"), device=CPU, intensity=METHODS, storage="lazy"
        )


NET_MTS = dict(
    channels=(4, 6, 8), encoder_convs=(1, 1, 1), decoder_convs=(1, 1),
    feature_channels=(2, 3, 4), dense_stem_channels=6, dense_block_layers=(1, 1, 1),
    dense_transition_channels=(3, 4, 5), dense_growth_rate=4, dense_bottleneck_channels=8,
    fc_units=5,
)  # fmt: skip


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: DeepMTSRegressor(
            network_params=NET_MTS, max_iter=3, batch_size=4, clinical=["age"],
            intensity={"pet": "zscore", "ct": "window"}, validation_fraction=0.25,
            validate_every=2, random_state=0, device="cpu", **kw,
        ),
        lambda **kw: AdaMSSRegressor(
            network_params=dict(
                single_channels=(2, 4), fuse_channels=(4, 8), n_convs=(1, 1), hidden_features=8
            ),
            max_iter=2, radiomics=False, intensity={"pet": "zscore", "ct": "window"},
            random_state=0, device="cpu", **kw,
        ),
    ],
    ids=["DeepMTS", "AdaMSS"],
)  # fmt: skip
def test_preload_false_fits_the_same_model_from_a_memmap(tmp_path, make):
    Xm, X, y = _memmapped(tmp_path, n=12)
    preloaded = make(preload=True).fit(X, y)
    lazy = make(preload=False).fit(Xm, y)
    np.testing.assert_array_equal(lazy.predict(Xm), preloaded.predict(X))
    np.testing.assert_array_equal(lazy.history_["loss"], preloaded.history_["loss"])
