import numpy as np
import pytest
import torch

from survseg.training import make_generators, random_batches, train


def _problem():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 3, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5])
    return X, y


def test_train_fits_least_squares_and_records_history():
    X, y = _problem()
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    rng, _ = make_generators(0, torch.device("cpu"))
    batches = ((X[i], y[i]) for i in random_batches(64, 16, rng))
    res = train(
        model,
        batches,
        lambda m, b: {"loss": ((m(b[0]).squeeze(1) - b[1]) ** 2).mean()},
        opt,
        max_iter=300,
        device=torch.device("cpu"),
        validate=lambda m: {"mse": float(((m(X).squeeze(1) - y) ** 2).mean())},
        validate_every=50,
        monitor="mse",
        mode="min",
    )
    # independent reference: the least-squares solution
    ref = torch.linalg.lstsq(torch.cat([X, torch.ones(64, 1)], 1), y.unsqueeze(1)).solution
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), ref[:3, 0].numpy(), atol=0.02)
    h = res.history
    assert list(h.columns[:3]) == ["iteration", "lr", "loss"] and len(h) == 300
    assert h["mse"].notna().sum() == 6
    # the kept checkpoint is the validation with the lowest MSE
    assert res.best_iteration == h.loc[h["mse"].idxmin(), "iteration"]
    assert not model.training


def test_best_checkpoint_is_restored():
    X, y = _problem()
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scores = iter([3.0, 1.0, 2.0])  # best at the second validation
    weights = []

    def validate(m):
        weights.append(m.weight.detach().clone())
        return {"score": next(scores)}

    res = train(
        model,
        iter(lambda: (X, y), None),
        lambda m, b: {"loss": ((m(b[0]).squeeze(1) - b[1]) ** 2).mean()},
        opt,
        max_iter=3,
        device=torch.device("cpu"),
        validate=validate,
        validate_every=1,
        monitor="score",
        mode="min",
    )
    assert res.best_iteration == 2
    assert torch.equal(model.weight.detach(), weights[1])


def test_nan_loss_stops_with_clear_error():
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match="diverged at iteration 1"):
        train(
            model,
            iter(lambda: None, 1),
            lambda m, b: {"loss": m.weight.sum() * float("nan"), "dice": torch.tensor(0.3)},
            opt,
            max_iter=5,
            device=torch.device("cpu"),
        )
