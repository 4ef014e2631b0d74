import pytest
import torch

from survseg.networks.deepmts import DeepMTS, SegmentationBackbone

# A 3-level backbone (sizes divisible by 4) and a small DenseNet (sizes >= 19): odd shapes work.
TINY = dict(
    channels=(4, 6, 8),
    encoder_convs=(1, 2, 2),
    decoder_convs=(1, 1),
    feature_channels=(2, 3, 4),
    dense_stem_channels=6,
    dense_block_layers=(2, 2, 2),
    dense_transition_channels=(3, 4, 5),
    dense_growth_rate=4,
    dense_bottleneck_channels=8,
    fc_units=5,
)
SHAPE = (20, 24, 28)

# The paper's models (Tables III-V) as switches.
VARIANTS = {
    "DeepMTS": dict(),
    "MT-HS": dict(cascade=False),
    "MT-CasNet": dict(hard_sharing=False),
    "Seg-Backbone": dict(hard_sharing=False, cascade=False),
    "Sur-HS": dict(segmentation=False, cascade=False),
    "Sur-CasNet": dict(segmentation=False, hard_sharing=False),
    "DeepMTS (U-net)": dict(backbone="plain"),
    "baseline MT-HS": dict(cascade=False, feature_convs=False),
}


def n_params(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_paper_defaults_size_and_features():
    net = DeepMTS()
    # the paper / authors' code: about 3.7 M trainable parameters, 124 + 112 = 236 features
    assert abs(n_params(net) - 3.7e6) / 3.7e6 < 0.02
    assert net.backbone.n_features == 124
    assert net.cascade.n_features == 112
    assert net.n_features == 236


def test_baseline_mt_hs_pools_the_blocks_directly():
    net = DeepMTS(cascade=False, feature_convs=False)
    assert net.n_features == 8 + 16 + 32 + 64 + 128
    assert net.backbone.feature_convs is None


def test_residual_block_depths_follow_the_table():
    bb = SegmentationBackbone()
    assert [len(b.convs) for b in bb.encoder] == [2, 2, 3, 3, 4]
    assert [len(b.convs) for b in bb.decoder] == [3, 3, 2, 2]
    # decoder inputs are up + skip channels
    assert [b.convs[0][0].in_channels for b in bb.decoder] == [192, 96, 48, 24]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_output_shapes_at_odd_size(name):
    kw = VARIANTS[name]
    net = DeepMTS(n_clinical=0 if name == "Seg-Backbone" else 2, **TINY, **kw).eval()
    x = torch.randn(2, 2, *SHAPE)
    clin = None if name == "Seg-Backbone" else torch.randn(2, 2)
    out = net(x, clin)
    seg = kw.get("segmentation", True)
    survival = kw.get("hard_sharing", True) or kw.get("cascade", True)
    assert (out.seg_logits is not None) == seg
    if seg:
        assert out.seg_logits.shape == (2, 1, *SHAPE)
    assert (out.log_risk is not None) == survival
    if survival:
        assert out.log_risk.shape == (2,)
    n_hs = (
        (2 + 3 + 4 if kw.get("feature_convs", True) else 4 + 6 + 8)
        if kw.get("hard_sharing", True)
        else 0
    )
    n_csn = 3 + 4 + 5 if kw.get("cascade", True) else 0
    assert out.features.shape == (2, n_hs + n_csn) == (2, net.n_features)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    net = DeepMTS(
        n_clinical=0 if name == "Seg-Backbone" else 1,
        fc_dropout=0.0,
        dense_dropout=0.0,
        **TINY,
        **VARIANTS[name],
    )
    x = torch.randn(3, 2, *SHAPE)
    out = net(x, None if name == "Seg-Backbone" else torch.randn(3, 1))
    loss = 0.0
    if out.seg_logits is not None:
        loss = loss + (out.seg_logits * torch.randn_like(out.seg_logits)).mean()
    if out.log_risk is not None:
        loss = loss + (out.log_risk * torch.randn(3)).sum()
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_every_input_changes_the_output():
    torch.manual_seed(0)
    net = DeepMTS(n_clinical=2, **TINY).eval()
    x, clin = torch.randn(2, 2, *SHAPE), torch.randn(2, 2)
    ref = net(x, clin)
    for c in range(2):  # each modality reaches the segmentation and the risk
        x2 = x.clone()
        x2[:, c] += torch.randn_like(x2[:, c])
        out = net(x2, clin)
        assert not torch.allclose(out.seg_logits, ref.seg_logits), f"modality {c} -> segmentation"
        assert not torch.allclose(out.log_risk, ref.log_risk), f"modality {c} -> risk"
    for j in range(2):  # each clinical covariate reaches the risk
        clin2 = clin.clone()
        clin2[:, j] += 1.0
        assert not torch.allclose(net(x, clin2).log_risk, ref.log_risk), f"clinical {j}"


def test_tumour_map_feeds_the_cascade():
    torch.manual_seed(0)
    net = DeepMTS(**TINY).eval()
    x = torch.randn(2, 2, *SHAPE)
    ref = net(x)
    n_hs = net.backbone.n_features
    # shift the backbone's logits only: hard-sharing features stay, cascade features move
    handle = net.backbone.register_forward_hook(lambda m, inp, out: (out[0] + 3.0, out[1]))
    try:
        out = net(x)
    finally:
        handle.remove()
    torch.testing.assert_close(out.features[:, :n_hs], ref.features[:, :n_hs])
    assert not torch.allclose(out.features[:, n_hs:], ref.features[:, n_hs:])
    assert not torch.allclose(out.log_risk, ref.log_risk)
    assert net.cascade.stem[0].in_channels == 3


def test_sur_casnet_has_no_backbone_and_two_channel_cascade():
    net = DeepMTS(segmentation=False, hard_sharing=False, **TINY)
    assert net.backbone is None
    assert net.cascade.stem[0].in_channels == 2


def test_sur_hs_has_no_decoder_and_accepts_any_size():
    net = DeepMTS(segmentation=False, cascade=False, **TINY).eval()
    assert net.backbone.decoder is None
    assert net(torch.randn(1, 2, 13, 17, 21)).log_risk.shape == (1,)


def test_plain_backbone_has_no_shortcuts():
    plain = SegmentationBackbone(block="plain")
    assert not any("shortcut" in n for n, _ in plain.named_parameters())
    assert any("shortcut" in n for n, _ in SegmentationBackbone().named_parameters())


def test_segmentation_head_starts_at_the_prior():
    bias = SegmentationBackbone().seg_head.bias
    torch.testing.assert_close(bias, torch.tensor([-4.59512]), atol=1e-5, rtol=0)  # logit(0.01)
    net = DeepMTS(seg_prior=0.2, **TINY).eval()
    with torch.no_grad():
        net.backbone.seg_head.weight.zero_()
        prob = torch.sigmoid(net(torch.randn(1, 2, *SHAPE)).seg_logits)
    torch.testing.assert_close(prob, torch.full_like(prob, 0.2))
    with pytest.raises(ValueError, match="seg_prior"):
        DeepMTS(seg_prior=1.0)


def test_head_weights_are_the_fc_kernels():
    net = DeepMTS(n_clinical=1, **TINY)
    weights = net.head_weights()
    assert [tuple(w.shape) for w in weights] == [(5, 9), (5, 12), (1, 11)]
    assert len(DeepMTS(cascade=False, **TINY).head_weights()) == 2


def test_indivisible_size_raises_a_clear_error():
    net = DeepMTS(
        channels=(4, 6, 8, 10),
        encoder_convs=(1, 1, 1, 1),
        decoder_convs=(1, 1, 1),
        feature_channels=(1, 1, 1, 1),
        cascade=False,
    )
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(1, 2, *SHAPE))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(segmentation=False, hard_sharing=False, cascade=False), "nothing to build"),
        (dict(hard_sharing=False, cascade=False, n_clinical=2), "survival head"),
        (dict(backbone="vnet"), "residual' or 'plain"),
        (dict(channels=(8, 16)), "encoder_convs"),
        (dict(decoder_convs=(3, 3, 2)), "decoder_convs"),
        (dict(feature_channels=(4, 8)), "feature_channels"),
        (dict(fc_dropout=-0.1), "fc_dropout"),
        (dict(n_clinical=-1), "n_clinical"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeepMTS(**kwargs)


def test_clinical_shape_is_checked():
    net = DeepMTS(n_clinical=2, **TINY).eval()
    x = torch.randn(2, 2, *SHAPE)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        net(x, torch.randn(2, 3))
    with pytest.raises(ValueError, match="n_clinical=0"):
        DeepMTS(**TINY).eval()(x, torch.randn(2, 1))
