import math

import pytest
import torch

from survseg.losses.segmentation import dice_loss, focal_loss

P = torch.tensor([[[0.9, 0.8, 0.1, 0.2]]], dtype=torch.float64)  # (N=1, C=1, 4 voxels)
G = torch.tensor([[[1, 1, 0, 0]]], dtype=torch.uint8)


def test_dice_hand_computed_squared_and_plain():
    # sum p g = 1.7; sum p^2 = 1.5; sum p = 2.0; sum g = sum g^2 = 2
    sq = dice_loss(P, G, logits=False, squared=True, smooth_dr=1e-12)
    plain = dice_loss(P, G, logits=False, squared=False, smooth_dr=1e-12)
    assert sq.item() == pytest.approx(1 - 3.4 / 3.5, abs=1e-9)
    assert plain.item() == pytest.approx(1 - 3.4 / 4.0, abs=1e-9)


def test_dice_gradient_is_that_of_deepmts_eq2():
    # Eq. 2: L = -2A/B with A = sum p g, B = sum p^2 + sum g^2; dL/dp_i = -2 g_i/B + 4 A p_i / B^2
    p = P.clone().requires_grad_(True)
    dice_loss(p, G, logits=False, squared=True, smooth_dr=1e-12).backward()
    g = G.double()
    A, B = 1.7, 3.5
    expected = -2 * g / B + 4 * A * P / B**2
    torch.testing.assert_close(p.grad, expected, rtol=1e-7, atol=1e-9)


def test_dice_logits_are_passed_through_a_sigmoid():
    logits = torch.logit(P)
    torch.testing.assert_close(dice_loss(logits, G), dice_loss(P, G, logits=False))


def test_dice_per_sample_versus_batch():
    p = torch.cat([P, torch.tensor([[[0.5, 0.5, 0.5, 0.5]]], dtype=torch.float64)])
    g = torch.cat([G, torch.tensor([[[1, 0, 0, 0]]], dtype=torch.uint8)])
    per_sample = dice_loss(p, g, logits=False, reduction="none", smooth_dr=1e-12)
    assert per_sample.shape == (2, 1)
    # second sample: 2*0.5 / (2.0 + 1) = 1/3
    torch.testing.assert_close(
        per_sample[:, 0], torch.tensor([1 - 3.4 / 4, 1 - 1 / 3], dtype=torch.float64)
    )
    assert dice_loss(p, g, logits=False, smooth_dr=1e-12).item() == pytest.approx(
        per_sample.mean().item()
    )
    # pooled: sum p g = 1.7 + 0.5; sum p + sum g = 4 + 3
    pooled = dice_loss(p, g, logits=False, batch=True, smooth_dr=1e-12)
    assert pooled.item() == pytest.approx(1 - 2 * 2.2 / 7.0)
    assert dice_loss(p, g, logits=False, reduction="sum", smooth_dr=1e-12).item() == pytest.approx(
        per_sample.sum().item()
    )


def test_dice_multichannel_is_per_channel():
    p = torch.rand(2, 3, 4, 5, 6)
    g = (torch.rand(2, 3, 4, 5, 6) > 0.5).to(torch.uint8)
    none = dice_loss(p, g, logits=False, reduction="none")
    for c in range(3):
        torch.testing.assert_close(
            none[:, c : c + 1],
            dice_loss(p[:, c : c + 1], g[:, c : c + 1], logits=False, reduction="none"),
        )


def test_dice_empty_label_is_finite_and_inert():
    logits = torch.full((1, 1, 3, 3, 3), -8.0, requires_grad=True)
    loss = dice_loss(logits, torch.zeros(1, 1, 3, 3, 3))
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().max() == 0


def test_dice_perfect_prediction_is_zero():
    g = torch.zeros(1, 1, 4, 4, 4)
    g[..., 1:3, 1:3, 1:3] = 1
    assert dice_loss(g, g, logits=False, squared=True).item() == pytest.approx(0.0, abs=1e-5)


def _focal_by_hand(x, g, alpha=0.25, gamma=2.0):
    p = 1 / (1 + math.exp(-x))
    pt, at = (p, alpha) if g == 1 else (1 - p, 1 - alpha)
    return -at * (1 - pt) ** gamma * math.log(pt)


def test_focal_hand_computed():
    xs = [0.0, 2.0, -1.5, 3.0]
    gs = [1, 1, 0, 0]
    logits = torch.tensor([[xs]], dtype=torch.float64)
    target = torch.tensor([[gs]])
    expected = [_focal_by_hand(x, g) for x, g in zip(xs, gs, strict=True)]
    assert focal_loss(logits, target).item() == pytest.approx(sum(expected) / 4, rel=1e-6)
    assert focal_loss(logits, target, reduction="sum").item() == pytest.approx(
        sum(expected), rel=1e-6
    )
    assert focal_loss(logits, target, reduction="none").shape == (1, 1)
    no_alpha = [_focal_by_hand(x, g, alpha=0.5) * 2 for x, g in zip(xs, gs, strict=True)]
    assert focal_loss(logits, target, alpha=None).item() == pytest.approx(
        sum(no_alpha) / 4, rel=1e-6
    )


def test_focal_with_gamma_zero_and_no_alpha_is_bce():
    x = torch.randn(2, 1, 5, 5)
    g = (torch.rand(2, 1, 5, 5) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, g)
    torch.testing.assert_close(focal_loss(x, g, alpha=None, gamma=0.0), bce)


def test_losses_run_in_float32_under_half_inputs():
    x = torch.randn(1, 1, 4, 4, 4).half()
    g = torch.rand(1, 1, 4, 4, 4) > 0.5
    assert dice_loss(x, g).dtype == torch.float32
    assert focal_loss(x, g).dtype == torch.float32


@pytest.mark.parametrize("fn", [dice_loss, focal_loss])
def test_bad_inputs_raise(fn):
    with pytest.raises(ValueError, match="target shape"):
        fn(torch.zeros(1, 1, 4), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="reduction"):
        fn(torch.zeros(1, 1, 4), torch.zeros(1, 1, 4), reduction="max")
    with pytest.raises(ValueError, match="spatial"):
        fn(torch.zeros(1, 4), torch.zeros(1, 4))
