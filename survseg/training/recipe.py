r"""The training recipe shared by the deep estimators: validation split, Adam with L2 on the
head only, the step schedule by fractions of a stage, the validation monitors, "C-index or
NaN", and fitted state assigned all at once (atomic ``fit``)."""

from __future__ import annotations

import bisect
import math

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "MONITORS",
    "assign_fitted",
    "c_index_or_nan",
    "head_l2_adam",
    "monitor_key",
    "step_schedule",
    "validation_every",
    "validation_split",
]

#: ``monitor`` parameter -> (history column, whether larger is better).
MONITORS = {
    "c_index": ("val_c_index", "max"),
    "loss": ("val_loss", "min"),
    "dice": ("val_dice", "max"),
    None: (None, "max"),
}


def monitor_key(monitor):
    """``(history column, "max" | "min")`` of a ``monitor`` parameter value."""
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {list(MONITORS)}; got {monitor!r}.")
    return MONITORS[monitor]


def validation_split(event, fraction, seed, *, need_events=True):
    """Indices ``(train, validation)`` holding out ``round(fraction * n)`` patients (at least 1).

    Stratified by event when both groups have at least two patients; ``fraction == 0`` gives
    an empty validation part. Both parts come back sorted.

    Raises
    ------
    ValueError
        When fewer than 2 patients remain for training, or (``need_events``) a part holds
        no event.
    """
    event = np.asarray(event, dtype=bool)
    n = len(event)
    idx = np.arange(n)
    if not fraction:
        return idx, idx[:0]
    n_val = max(1, int(round(fraction * n)))
    if n - n_val < 2:
        raise ValueError(
            f"validation_fraction={fraction} leaves {n - n_val} training patient(s) of {n}; "
            "use more patients or validation_fraction=0."
        )
    stratify = event if min(event.sum(), (~event).sum()) >= 2 else None
    train, val = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    train, val = np.sort(train), np.sort(val)
    if need_events and (not event[val].any() or not event[train].any()):
        raise ValueError(
            f"validation_fraction={fraction} leaves no event in the training or the validation "
            f"part ({int(event.sum())} events in {n} patients); use more patients or events, "
            "a larger fraction, or validation_fraction=0."
        )
    return train, val


def validation_every(validate_every, max_iter: int) -> int:
    """``validate_every``, or by default 2 % of the stage (AdaMSS's 200 of 10,000)."""
    if validate_every is not None:
        return int(validate_every)
    return max(1, round(0.02 * max_iter))


def head_l2_adam(module: torch.nn.Module, head_weights, lr: float, head_l2: float):
    r"""Adam with the L2 penalty :math:`\lambda \lVert W \rVert^2` on the head's weights only.

    The penalty is Adam's coupled weight decay :math:`2\lambda` on ``head_weights`` (the same
    gradient :math:`2 \lambda W`); every other parameter has none.
    """
    head = {id(p) for p in head_weights}
    groups = [
        {"params": [p for p in module.parameters() if id(p) not in head], "weight_decay": 0.0},
        {
            "params": [p for p in module.parameters() if id(p) in head],
            "weight_decay": 2.0 * head_l2,
        },
    ]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=lr)


def step_schedule(optimizer, milestones, factors, max_iter: int) -> LambdaLR:
    r"""Step schedule: :math:`\mathrm{lr}(t) = \mathrm{lr}_0 \, f_k` from iteration
    :math:`\operatorname{round}(m_k T)` on, with :math:`f_0 = 1`.

    ``milestones`` are fractions in (0, 1) of the stage's ``max_iter`` :math:`T`, so a short
    run keeps the paper's shape; ``factors`` multiply the optimiser's base rate.

    Examples
    --------
    DeepMTS (1e-4 -> 5e-5 -> 1e-5 -> 1e-6 at 2.5k / 5k / 10k of 15k):
    ``step_schedule(opt, (1/6, 1/3, 2/3), (0.5, 0.1, 0.01), max_iter)``.
    """
    milestones, factors = [float(m) for m in milestones], [float(f) for f in factors]
    if len(milestones) != len(factors):
        raise ValueError(
            f"lr_milestones {milestones} and lr_factors {factors} must have the same length."
        )
    if any(not 0 < m < 1 for m in milestones) or milestones != sorted(milestones):
        raise ValueError(
            f"lr_milestones must be increasing fractions of a stage in (0, 1); got {milestones}."
        )
    if any(not f > 0 for f in factors):
        raise ValueError(f"lr_factors must be positive; got {factors}.")
    bounds = [max(1, round(m * max_iter)) for m in milestones]
    values = [1.0, *factors]
    return LambdaLR(optimizer, lambda t: values[bisect.bisect_right(bounds, t)])


def c_index_or_nan(event, time, risk) -> float:
    """Harrell's C (``sksurv.metrics.concordance_index_censored``); NaN without a comparable
    pair (no event, or every event tied with the others) instead of an error."""
    from sksurv.metrics import concordance_index_censored

    try:
        return float(concordance_index_censored(np.asarray(event, bool), time, risk)[0])
    except (ValueError, ZeroDivisionError):
        return math.nan


def assign_fitted(estimator, state: dict):
    """Replace the fitted state of ``estimator`` with ``state``, all at once.

    Fitted attributes of an earlier ``fit`` (public names ending in ``_``) are removed first,
    so the estimator never mixes a new network with an old baseline or history. ``fit``
    computes everything into ``state`` and calls this last: an exception, a divergence or a
    ``KeyboardInterrupt`` before it leaves the estimator as it was.
    """
    bad = [k for k in state if not k.endswith("_") or k.startswith("_")]
    if bad:
        raise ValueError(f"fitted attributes must end in '_': {bad}")
    for key in [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]:
        delattr(estimator, key)
    vars(estimator).update(state)
    return estimator
