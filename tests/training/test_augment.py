import pytest
import torch

from survseg.training import random_affine, random_crop


def _blob(shape=(1, 1, 16, 18, 20), centre=(8, 9, 10), r=3):
    d, h, w = torch.meshgrid(
        *[torch.arange(s, dtype=torch.float32) for s in shape[2:]], indexing="ij"
    )
    dist = ((d - centre[0]) ** 2 + (h - centre[1]) ** 2 + (w - centre[2]) ** 2).sqrt()
    return (dist <= r).float().expand(shape).clone()


def _centroid(m):
    idx = m[0, 0].nonzero().float()
    return idx.mean(0)


def test_identity_when_nothing_requested():
    x = torch.randn(2, 2, 8, 8, 8)
    out, m = random_affine(x)
    assert out is x and m is None


def test_flip_is_exact_left_right():
    x = torch.randn(3, 2, 6, 7, 9)
    g = torch.Generator().manual_seed(0)
    out, _ = random_affine(x, flip_axes=(-1,), generator=g)
    for i in range(3):
        assert torch.allclose(out[i], x[i], atol=1e-5) or torch.allclose(
            out[i], x[i].flip(-1), atol=1e-5
        )


def test_translation_moves_centroid_within_bound_and_keeps_mask_binary():
    m = _blob()
    img = m * 5.0
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        out, mo = random_affine(img, m, max_translation=3, generator=g)
        assert set(mo.unique().tolist()) <= {0.0, 1.0}
        shift = _centroid(mo) - _centroid(m)
        assert (shift.abs() <= 3.0 + 0.5).all()
        assert mo.sum().item() == pytest.approx(
            m.sum().item(), rel=0.15
        )  # sub-voxel shifts re-binarised


def test_rotation_keeps_volume_and_centre():
    m = _blob(r=4)
    g = torch.Generator().manual_seed(2)
    out, mo = random_affine(m, m.clone(), max_rotation=10, generator=g)
    assert mo.sum().item() == pytest.approx(m.sum().item(), rel=0.1)
    assert torch.allclose(_centroid(mo), _centroid(m), atol=0.6)


def test_reproducible_with_generator():
    x = torch.randn(2, 1, 8, 8, 8)
    kw = dict(max_translation=2, max_rotation=5, scale=(0.9, 1.1), max_shear=3, flip_axes=(-1,))
    a, _ = random_affine(x, generator=torch.Generator().manual_seed(5), **kw)
    b, _ = random_affine(x, generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(a, b)


def test_affine_errors():
    with pytest.raises(ValueError, match="N, C, D, H, W"):
        random_affine(torch.zeros(2, 8, 8, 8))
    with pytest.raises(ValueError, match="scale"):
        random_affine(torch.zeros(1, 1, 4, 4, 4), scale=(1.2, 1.0))


def test_random_crop_consistent_across_tensors():
    x = torch.arange(2 * 10 * 11 * 12, dtype=torch.float32).view(2, 1, 10, 11, 12)
    y = x * 2
    g = torch.Generator().manual_seed(0)
    cx, cy = random_crop((x, y), (4, 5, 6), g)
    assert cx.shape == (2, 1, 4, 5, 6)
    assert torch.equal(cy, cx * 2)
    for i in range(2):  # the crop is a contiguous block of the original
        start = cx[i, 0, 0, 0, 0].item() - i * 10 * 11 * 12
        a, rem = divmod(int(start), 11 * 12)
        b, c = divmod(rem, 12)
        assert torch.equal(cx[i], x[i, :, a : a + 4, b : b + 5, c : c + 6])
    with pytest.raises(ValueError, match="crop size"):
        random_crop((x,), (11, 5, 6))
