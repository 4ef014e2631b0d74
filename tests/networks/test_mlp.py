"""The tabular MLP: shapes, gradients, every input used, linear special case, bad arguments."""

from __future__ import annotations

import pytest
import torch

from survseg.networks.mlp import MLP


def test_output_shape_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = MLP(7, (16, 8), 3, dropout=0.2, batch_norm=True)
    out = net(torch.randn(5, 7))
    assert out.shape == (5, 3)
    out.square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_every_input_feature_changes_the_output():
    torch.manual_seed(0)
    net = MLP(6, (12,), activation="tanh").eval()
    x = torch.randn(4, 6)
    base = net(x)
    for j in range(6):
        bumped = x.clone()
        bumped[:, j] += 1.0
        assert not torch.allclose(net(bumped), base), j


def test_no_hidden_layer_is_an_affine_map():
    torch.manual_seed(0)
    net = MLP(4, (), 2)
    x = torch.randn(3, 4)
    expected = x @ net.output.weight.T + net.output.bias
    torch.testing.assert_close(net(x), expected)
    assert MLP(4, (), output_bias=False).output.bias is None


def test_eval_mode_is_deterministic_with_dropout():
    net = MLP(5, (32,), dropout=0.5).eval()
    x = torch.randn(8, 5)
    torch.testing.assert_close(net(x), net(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"in_features": 0}, "in_features"),
        ({"hidden_layer_sizes": (8, 0)}, "hidden layer sizes"),
        ({"dropout": 1.0}, "dropout"),
        ({"activation": "swish"}, "activation"),
    ],
)
def test_bad_arguments(kwargs, match):
    params = {"in_features": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        MLP(**params)


def test_wrong_input_rank():
    with pytest.raises(ValueError, match="2D"):
        MLP(3)(torch.zeros(2, 3, 1))
