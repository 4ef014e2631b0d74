import pytest
import torch

from survseg.networks.densenet import BottleneckLayer, DenseBlock, DenseNet3d, TransitionBlock

TINY = dict(
    stem_channels=6,
    block_layers=(2, 2, 3),
    transition_channels=(4, 6, 8),
    growth_rate=4,
    bottleneck_channels=8,
)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_bottleneck_parameter_count_matches_hand_count():
    # BN(24): 2*24; conv1x1 24->64: 24*64+64; BN(64): 2*64; conv3x3 64->16: 64*16*27+16
    expected = 48 + (24 * 64 + 64) + 128 + (64 * 16 * 27 + 16)
    assert n_params(BottleneckLayer(24, 16, 64)) == expected


def test_dense_block_concatenates_growth_channels():
    block = DenseBlock(5, n_layers=3, growth_rate=4, bottleneck_channels=8)
    x = torch.randn(2, 5, 6, 7, 8)
    out = block.eval()(x)
    assert block.out_channels == 5 + 3 * 4
    assert out.shape == (2, 17, 6, 7, 8)
    # dense connectivity: the input passes through unchanged as the first channels
    torch.testing.assert_close(out[:, :5], x)


def test_transition_block_shape():
    out = TransitionBlock(17, 6)(torch.randn(2, 17, 4, 4, 4))
    assert out.shape == (2, 6, 4, 4, 4)


def test_paper_defaults_give_112_features():
    net = DenseNet3d()
    assert net.n_features == 112
    assert net.min_input_size == 19


def test_output_shape_at_odd_size():
    net = DenseNet3d(in_channels=3, **TINY)
    out = net(torch.randn(2, 3, 20, 24, 28))
    assert out.shape == (2, 4 + 6 + 8)
    assert (out >= 0).all()  # ReLU before the pooling


def test_min_input_size_is_exact():
    # stem k3/s2: 19 -> 9; max-pool k3/s2: 9 -> 4; avg-pool 2: 4 -> 2 -> 1
    net = DenseNet3d(in_channels=1, **TINY).eval()
    assert net(torch.randn(1, 1, 19, 19, 19)).shape == (1, 18)
    with pytest.raises(ValueError, match="at least 19 voxels"):
        net(torch.randn(1, 1, 18, 30, 30))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = DenseNet3d(in_channels=2, dropout=0.0, **TINY)
    out = net(torch.randn(2, 2, 20, 21, 22))
    (out * torch.randn_like(out)).sum().backward()
    # reached by autograd; a bias right before a normalisation has an analytic gradient of 0,
    # which some CPUs' kernels return as exactly 0
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == []


def test_every_input_channel_changes_the_features():
    torch.manual_seed(0)
    net = DenseNet3d(in_channels=3, **TINY).eval()
    x = torch.randn(1, 3, 20, 20, 20)
    ref = net(x)
    for c in range(3):
        x2 = x.clone()
        x2[:, c] += torch.randn_like(x2[:, c])
        assert not torch.allclose(net(x2), ref), f"channel {c} does not reach the features"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(block_layers=(4, 8), transition_channels=(16, 32, 64)), "same length"),
        (dict(block_layers=(4, 0, 16)), "positive"),
        (dict(dropout=1.0), "dropout"),
        (dict(growth_rate=0), "positive"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DenseNet3d(**kwargs)
