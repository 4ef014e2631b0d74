"""Attention gate: shapes, analytic value, gating really uses both inputs."""

import pytest
import torch

from survseg.networks.attention import AttentionGate


def test_shapes_and_range():
    torch.manual_seed(0)
    ag = AttentionGate(4, 8)
    x, g = torch.randn(2, 4, 6, 8, 10), torch.randn(2, 8, 3, 4, 5)
    out, alpha = ag(x, g)
    assert out.shape == x.shape and alpha.shape == (2, 1, 6, 8, 10)
    assert alpha.min() > 0 and alpha.max() < 1
    torch.testing.assert_close(out, x * alpha)


def test_constant_map_when_psi_is_a_bias():
    # psi conv with zero weights, then BN with shift b (eval mode, unit running variance):
    # alpha = sigmoid(b) everywhere, whatever x and g are
    ag = AttentionGate(2, 4).eval()
    with torch.no_grad():
        ag.psi[0].weight.zero_()
        ag.psi[1].bias.fill_(0.7)
    x = torch.randn(1, 2, 4, 4, 4)
    out, alpha = ag(x, torch.randn(1, 4, 2, 2, 2))
    expected = 1 / (1 + torch.exp(torch.tensor(-0.7)))
    torch.testing.assert_close(alpha, torch.full_like(alpha, expected.item()))
    torch.testing.assert_close(out, x * expected)


def test_map_depends_on_skip_and_gating():
    torch.manual_seed(1)
    ag = AttentionGate(3, 6).eval()
    x, g = torch.randn(1, 3, 4, 4, 4), torch.randn(1, 6, 2, 2, 2)
    _, a0 = ag(x, g)
    _, a1 = ag(x, g + 1.0)
    _, a2 = ag(x + 1.0, g)
    assert not torch.allclose(a0, a1) and not torch.allclose(a0, a2)


def test_size_mismatch_raises():
    ag = AttentionGate(2, 4)
    with pytest.raises(ValueError, match="half the skip size"):
        ag(torch.randn(1, 2, 4, 4, 4), torch.randn(1, 4, 4, 4, 4))
