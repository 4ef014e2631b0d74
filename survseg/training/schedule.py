"""Piecewise-constant learning-rate schedules that scale with the iteration budget."""

from __future__ import annotations

import bisect

from torch.optim.lr_scheduler import LambdaLR

__all__ = ["scaled_step_lr", "scaled_boundaries"]


def scaled_boundaries(boundaries, reference_iter: int, max_iter: int) -> list[int]:
    """Boundaries of a ``reference_iter``-long schedule mapped onto ``max_iter`` iterations."""
    if reference_iter <= 0 or max_iter <= 0:
        raise ValueError("reference_iter and max_iter must be positive.")
    return [max(1, round(b * max_iter / reference_iter)) for b in boundaries]


def scaled_step_lr(optimizer, lrs, boundaries, reference_iter: int, max_iter: int) -> LambdaLR:
    r"""Step schedule :math:`\mathrm{lr}(t) = \mathrm{lrs}[k]` for :math:`b_{k-1} \le t < b_k`.

    The paper's boundaries ``b`` (given for ``reference_iter`` iterations) are scaled by
    ``max_iter / reference_iter``, so a short run keeps the paper's shape. ``lrs[0]`` must
    equal the optimiser's base learning rate of every parameter group (the schedule is a
    multiplicative factor ``lrs[k] / lrs[0]``).

    Examples
    --------
    DeepMTS: ``scaled_step_lr(opt, (1e-4, 5e-5, 1e-5, 1e-6), (2500, 5000, 10000), 15000, max_iter)``.
    """
    lrs = [float(v) for v in lrs]
    if len(lrs) != len(boundaries) + 1:
        raise ValueError(f"need one more lr than boundaries; got {len(lrs)} and {len(boundaries)}.")
    if any(v <= 0 for v in lrs):
        raise ValueError(f"learning rates must be positive; got {lrs}.")
    bounds = scaled_boundaries(boundaries, reference_iter, max_iter)
    factors = [v / lrs[0] for v in lrs]
    return LambdaLR(optimizer, lambda t: factors[bisect.bisect_right(bounds, t)])
