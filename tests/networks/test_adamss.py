"""The AdaMSS network: shapes, gradients, every input matters, input checks, size."""

import pytest
import torch

from survseg.networks.adamss import AdaMSS
from survseg.networks.fusion import FUSION_MODES

TINY = dict(
    single_channels=(2, 3, 4), fuse_channels=(4, 6, 8), n_convs=(1, 2, 1), hidden_features=8
)
SHAPE = (8, 12, 16)  # divisible by 4 = 2 ** (3 levels - 1), deliberately not cubic


def _net(**kw):
    torch.manual_seed(0)
    return AdaMSS(**{**TINY, **kw})


@pytest.mark.parametrize("fusion", FUSION_MODES)
@pytest.mark.parametrize("n_modalities", [1, 2, 3])
def test_output_shapes(fusion, n_modalities):
    net = _net(
        n_modalities=n_modalities, fusion=fusion, n_intervals=5, n_extra_features=3, seg_channels=2
    )
    out = net(
        torch.randn(2, n_modalities, *SHAPE),
        torch.randn(2, 3),
        return_attention=True,
        return_fusion_weights=True,
    )
    assert out.seg_logits.shape == (2, 2, *SHAPE)
    assert out.survival_logits.shape == (2, 5)
    p = out.survival_probabilities
    assert ((p > 0) & (p < 1)).all()
    assert [tuple(a.shape) for a in out.attention_maps] == [(2, 1, 8, 12, 16), (2, 1, 4, 6, 8)]
    if fusion == "adaptive":
        assert len(out.fusion_weights) == 3
        # gates start at 0.5 / 0.5 (zero-initialised convolutions)
        assert all(torch.equal(w, torch.full_like(w, 0.5)) for w in out.fusion_weights)
    else:
        assert out.fusion_weights is None


def test_tasks_skip_heads():
    net = _net(n_extra_features=2)
    x = torch.randn(1, 2, *SHAPE)
    seg_only = net(x, task="segmentation")  # needs no extra features
    assert seg_only.survival_logits is None and seg_only.seg_logits is not None
    surv_only = net(x, torch.randn(1, 2), task="survival")
    assert surv_only.seg_logits is None and surv_only.survival_logits is not None
    with pytest.raises(ValueError, match="task"):
        net(x, task="classification")


@pytest.mark.parametrize("fusion", FUSION_MODES)
def test_gradients_reach_every_parameter(fusion):
    net = _net(fusion=fusion, n_extra_features=2).train()
    out = net(torch.randn(2, 2, *SHAPE), torch.randn(2, 2))
    g = torch.Generator().manual_seed(0)
    loss = (out.seg_logits * torch.randn(out.seg_logits.shape, generator=g)).sum() + (
        out.survival_logits * torch.randn(out.survival_logits.shape, generator=g)
    ).sum()
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("fusion", FUSION_MODES)
def test_every_input_changes_the_output(fusion):
    # eval mode: dropout off, so any change comes from the input
    net = _net(n_modalities=3, fusion=fusion, n_extra_features=4).eval()
    x, extra = torch.randn(1, 3, *SHAPE), torch.randn(1, 4)
    with torch.no_grad():
        ref = net(x, extra)
        for m in range(3):
            x2 = x.clone()
            x2[:, m] += torch.randn_like(x2[:, m])
            out = net(x2, extra)
            assert not torch.allclose(out.seg_logits, ref.seg_logits), f"modality {m} ignored (seg)"
            assert not torch.allclose(out.survival_logits, ref.survival_logits), (
                f"modality {m} ignored"
            )
        for j in range(4):  # each tabular column (radiomics, clinical) reaches the survival logits
            e2 = extra.clone()
            e2[0, j] += 1.0
            out = net(x, e2)
            assert not torch.allclose(out.survival_logits, ref.survival_logits), (
                f"extra feature {j} ignored"
            )
            torch.testing.assert_close(out.seg_logits, ref.seg_logits)


def test_input_checks():
    net = _net(n_extra_features=2)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 2, 8, 10, 16), torch.randn(1, 2))
    with pytest.raises(ValueError, match=r"\(N, 2, D, H, W\)"):
        net(torch.randn(1, 3, *SHAPE), torch.randn(1, 2))
    with pytest.raises(ValueError, match="pass the radiomics/clinical"):
        net(torch.randn(1, 2, *SHAPE))
    with pytest.raises(ValueError, match="shape"):
        net(torch.randn(1, 2, *SHAPE), torch.randn(1, 3))
    with pytest.raises(ValueError, match="would be ignored"):
        _net()(torch.randn(1, 2, *SHAPE), torch.randn(1, 2))
    with pytest.raises(ValueError, match="dropout"):
        AdaMSS(dropout=1.0)


def test_default_size_matches_the_paper():
    # paper: "about 18.4 M parameters"; decoder blocks 384->128, 192->64, 96->32, 48->16
    net = AdaMSS()
    n = sum(p.numel() for p in net.parameters())
    assert 18.3e6 < n < 18.6e6
    assert net.decoder.channels == (16, 32, 64, 128)
    assert net.survival_head.net[1].in_features == 128 + 64 + 32 + 16
    assert [b.convs[0][0].in_channels for b in net.decoder.blocks] == [48, 96, 192, 384]
    assert [len(b.convs) for b in net.decoder.blocks] == [2, 3, 3, 4]
    assert len(net.head_weights()) == 2
