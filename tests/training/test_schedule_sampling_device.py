import numpy as np
import pytest
import torch

from survseg.training import (
    balanced_batches,
    random_batches,
    resolve_device,
    seeded,
    step_schedule,
)


def _lrs(max_iter):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    sched = step_schedule(opt, (1 / 6, 1 / 3, 2 / 3), (0.5, 0.1, 0.01), max_iter)
    out = []
    for _ in range(max_iter):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


def test_deepmts_schedule_at_paper_length_and_scaled():
    lrs = _lrs(15000)
    assert lrs[0] == lrs[2499] == pytest.approx(1e-4)
    assert lrs[2500] == pytest.approx(5e-5) and lrs[4999] == pytest.approx(5e-5)
    assert lrs[5000] == pytest.approx(1e-5) and lrs[10000] == pytest.approx(1e-6)
    short = _lrs(150)  # same shape, 100x shorter
    assert short[24] == pytest.approx(1e-4) and short[25] == pytest.approx(5e-5)
    assert short[50] == pytest.approx(1e-5) and short[100] == pytest.approx(1e-6)


def test_random_batches_cover_each_epoch_without_repeats():
    rng = np.random.default_rng(0)
    it = random_batches(10, 3, rng)
    epoch = np.concatenate([next(it) for _ in range(3)])  # 3 full batches, last 1 dropped
    assert len(np.unique(epoch)) == 9
    assert len(next(random_batches(2, 8, rng))) == 2


def test_balanced_batches():
    event = np.array([1, 0, 0, 0, 0, 1, 0, 0, 1, 0], dtype=bool)
    with pytest.warns(UserWarning, match="3 events for a quota of 4"):
        it = balanced_batches(event, 4, 4, np.random.default_rng(0))
    for _ in range(20):  # the 3 events in every batch, never twice (issue 15)
        b = next(it)
        assert event[b].sum() == 3 and (~event[b]).sum() == 4 and len(set(b)) == 7
    only_events = balanced_batches(np.ones(5, bool), 1, 1, np.random.default_rng(0))
    assert len(next(only_events)) == 2
    with pytest.raises(ValueError, match="at least one event"):
        next(balanced_batches(np.zeros(4, bool), 1, 1, np.random.default_rng(0)))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_seeded_is_reproducible_and_restores_global_state():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    with seeded(7):
        a = torch.rand(3)
    with seeded(7):
        b = torch.rand(3)
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(1), expected_next)  # caller's stream untouched
