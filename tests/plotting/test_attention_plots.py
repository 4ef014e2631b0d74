"""AdaMSS attention maps over the image and fusion-gate weight bars."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from survseg.plotting import plot_attention, plot_fusion_weights, resample_to


def test_resample_matches_torch_trilinear():
    # the network upsamples with align_corners=False voxel geometry; so do we
    coarse = np.random.default_rng(0).uniform(size=(4, 5, 3))
    ours = resample_to(coarse, (8, 10, 6))
    ref = torch.nn.functional.interpolate(
        torch.tensor(coarse)[None, None], size=(8, 10, 6), mode="trilinear", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    np.testing.assert_array_equal(resample_to(coarse, coarse.shape), coarse)


@pytest.fixture(scope="module")
def adamss_maps(petct):
    """Attention maps and fusion weights of an (untrained) AdaMSS network on real inputs."""
    from survseg.networks.adamss import AdaMSS

    X, _ = petct
    torch.manual_seed(0)
    net = AdaMSS(n_modalities=2, n_extra_features=0).eval()
    pet = (X["pet"] - X["pet"].mean()) / X["pet"].std()
    ct = np.clip(X["ct"], -1024, 1024) / 1024
    images = torch.tensor(np.stack([pet, ct], axis=1), dtype=torch.float32)
    with torch.no_grad():
        out = net(images, task="segmentation", return_fusion_weights=True, return_attention=True)
    maps = [m.numpy() for m in out.attention_maps]  # each (n, 1, D/2^i, H/2^i, W/2^i)
    weights = np.stack([w.mean(dim=(1, 2, 3, 4)).numpy() for w in out.fusion_weights], axis=1)
    return maps, weights


def test_attention_panels_over_image(petct, adamss_maps, check_png):
    X, _ = petct
    maps, _ = adamss_maps
    patient = [m[0] for m in maps]  # (1, d, h, w): the leading channel axis is dropped
    fig = plot_attention(X["pet"][0], patient, mask=X["mask"][0], image_name="PET")
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["PET"] + [f"level {i + 1}" for i in range(len(maps))]
    k = int(np.argmax(X["mask"][0].sum(axis=(1, 2))))  # largest axial cross-section
    np.testing.assert_array_equal(np.asarray(axes[0].images[0].get_array()), X["pet"][0][k])
    for ax, m in zip(axes[1:], patient):
        up = torch.nn.functional.interpolate(
            torch.tensor(m[None], dtype=torch.float64),
            size=X["pet"].shape[1:],
            mode="trilinear",
            align_corners=False,
        )[0, 0].numpy()
        np.testing.assert_allclose(np.asarray(ax.images[1].get_array()), up[k], atol=1e-10)
        assert ax.images[1].get_clim() == (0.0, 1.0)  # sigmoid attention: fixed [0, 1] scale
    check_png(fig, "attention")


def test_attention_default_slice_without_mask():
    image = np.zeros((6, 8, 8))
    att = np.zeros((3, 4, 4))
    att[2] = 1.0  # all the attention in coarse slice 2 -> fine slices 4 and 5 mostly
    fig = plot_attention(image, {"a": att})
    fine = resample_to(att, image.shape)
    k = int(np.argmax(fine.sum(axis=(1, 2))))
    assert fig.get_suptitle() == f"axial slice {k}"


def test_attention_bad_inputs():
    with pytest.raises(ValueError, match="3D map"):
        plot_attention(np.zeros((4, 4, 4)), [np.zeros((2, 2))])
    with pytest.raises(ValueError, match="NaN"):
        plot_attention(np.zeros((4, 4, 4)), [np.full((2, 2, 2), np.nan)])
    with pytest.raises(ValueError, match="no attention map"):
        plot_attention(np.zeros((4, 4, 4)), [])


def test_fusion_weights_bars(adamss_maps, check_png):
    _, weights = adamss_maps  # (n_patients, n_gates) from the real network
    table_iv = np.array([0.525, 0.487, 0.429, 0.308, 0.398])  # AdaMSS Table IV, OPC stage II
    fig = plot_fusion_weights({"untrained": weights, "paper": table_iv})
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 2 * weights.shape[1]
    heights = np.array([b.get_height() for b in bars])
    np.testing.assert_allclose(heights[: weights.shape[1]], weights.mean(axis=0))
    np.testing.assert_allclose(heights[weights.shape[1] :], table_iv)
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"F{i}" for i in range(1, 6)]
    check_png(fig, "fusion_weights")


def test_fusion_weights_errors():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        plot_fusion_weights([0.2, 1.3])
    with pytest.raises(ValueError, match="same number of gates"):
        plot_fusion_weights({"a": [0.5, 0.5], "b": [0.5, 0.5, 0.5]})
    with pytest.raises(ValueError, match="2 labels for 3 gates"):
        plot_fusion_weights([0.5, 0.4, 0.3], labels=["x", "y"])
    with pytest.raises(ValueError, match="shape"):
        plot_fusion_weights(np.zeros((2, 2, 2)))
