"""Fusion gate and Ada-fusion encoder: gate maths, start values, modes, shapes."""

import pytest
import torch

from survseg.networks.fusion import FUSION_MODES, AdaFusionEncoder, FusionGate

TINY = dict(single_channels=(2, 3, 4), fuse_channels=(4, 6, 8), n_convs=(1, 2, 1))


def test_gate_starts_at_half_and_matches_softmax():
    torch.manual_seed(0)
    gate = FusionGate(3)
    f_fuse, f_pc = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    out, w = gate(f_fuse, f_pc)
    assert torch.equal(w, torch.full_like(w, 0.5))
    torch.testing.assert_close(out, 0.5 * (f_fuse + f_pc))

    # after random weights: w_fuse is the first component of a two-way softmax of the logits
    for conv in (gate.fuse_logit, gate.pc_logit):
        torch.nn.init.normal_(conv.weight)
        torch.nn.init.normal_(conv.bias)
    out, w = gate(f_fuse, f_pc)
    z = torch.cat([f_fuse, f_pc], 1)
    soft = torch.softmax(torch.stack([gate.fuse_logit(z), gate.pc_logit(z)]), dim=0)
    torch.testing.assert_close(w, soft[0])
    # voxel-wise (and channel-wise) the two weights sum to one, and the output mixes with them
    torch.testing.assert_close(w + soft[1], torch.ones_like(w))
    torch.testing.assert_close(out, soft[0] * f_fuse + soft[1] * f_pc)
    assert w.shape == f_fuse.shape and w.min() > 0 and w.max() < 1


def test_gate_is_stable_for_huge_logits():
    gate = FusionGate(1)
    with torch.no_grad():
        gate.fuse_logit.bias.fill_(1e4)  # exp(1e4) overflows float32
    f = torch.ones(1, 1, 2, 2, 2)
    out, w = gate(f, 3 * f)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(w, torch.ones_like(w))
    torch.testing.assert_close(out, f)


@pytest.mark.parametrize("fusion", FUSION_MODES)
@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_encoder_shapes(fusion, n_modalities):
    enc = AdaFusionEncoder(n_modalities, fusion=fusion, **TINY)
    x = torch.randn(2, n_modalities, 8, 12, 16)
    skips, weights = enc(x)
    expect = (
        [n_modalities * c for c in TINY["single_channels"]]
        if fusion == "late"
        else list(TINY["fuse_channels"])
    )
    assert [s.shape[1] for s in skips] == expect == list(enc.skip_channels)
    assert [tuple(s.shape[2:]) for s in skips] == [(8, 12, 16), (4, 6, 8), (2, 3, 4)]
    if fusion == "adaptive":
        assert [w.shape for w in weights] == [s.shape for s in skips]
    else:
        assert weights is None


def test_modes_have_the_paper_components():
    names = {
        m: {n.split(".")[0] for n, _ in AdaFusionEncoder(2, fusion=m, **TINY).named_parameters()}
        for m in FUSION_MODES
    }
    assert names["adaptive"] == {"single", "fuse", "merge", "gates"}
    assert names["intermediate"] == {"single", "fuse", "merge"}
    assert names["early"] == {"fuse"}
    assert names["late"] == {"single"}


def test_bad_parameters():
    with pytest.raises(ValueError, match="fusion"):
        AdaFusionEncoder(2, fusion="mid", **TINY)
    with pytest.raises(ValueError, match="levels"):
        AdaFusionEncoder(2, single_channels=(2, 3), fuse_channels=(4, 6, 8), n_convs=(1, 1, 1))
    with pytest.raises(ValueError, match="n_modalities"):
        AdaFusionEncoder(0, **TINY)
