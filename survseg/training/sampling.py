"""Batch index samplers: random (epoch-shuffled) and balanced events/censored."""

from __future__ import annotations

import numpy as np

__all__ = ["random_batches", "balanced_batches"]


def random_batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless batches of indices: each epoch is a fresh permutation cut into full batches.

    The last incomplete batch of an epoch is dropped (``drop_last``), so a batch never holds
    a patient twice; ``batch_size`` larger than ``n`` is reduced to ``n``.
    """
    if n < 1:
        raise ValueError("cannot sample batches from zero patients.")
    batch_size = min(batch_size, n)
    while True:
        perm = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start : start + batch_size]


def balanced_batches(event, n_events: int, n_censored: int, rng: np.random.Generator):
    """Endless batches with ``n_events`` uncensored and ``n_censored`` censored patients.

    DeepMTS draws 4 + 4 and AdaMSS 1 + 1, so every batch has events for the Cox or
    discrete-time loss. Each group is drawn without replacement from reshuffled epochs of that
    group, so a batch never holds a patient twice.

    A group smaller than its quota (e.g. 3 events in the training part for a batch of 4 + 4)
    gives all its patients to every batch: the quota is reduced to the group's size, as
    :func:`random_batches` reduces ``batch_size`` to ``n``, and a ``UserWarning`` naming the
    counts is issued once, when the sampler is made. Drawing with replacement instead would
    put a patient twice in a batch, counting it twice in the partial likelihood, and make
    batches larger than the data (slower, nothing gained). With no censored patient at all
    (every patient had the event) batches are all events, up to ``n_events + n_censored``.

    Raises
    ------
    ValueError
        With no event at all: a balanced batch needs one.
    """
    event = np.asarray(event, dtype=bool)
    events, censored = np.flatnonzero(event), np.flatnonzero(~event)
    if len(events) == 0:
        raise ValueError(
            f"balanced batches need at least one event; the {len(event)} training patients "
            "are all censored."
        )
    if len(censored) == 0:
        n_events, n_censored = n_events + n_censored, 0
    quotas = [(events, n_events, "events"), (censored, n_censored, "censored patients")]
    short = [(len(g), k, what) for g, k, what in quotas if 0 < len(g) < k]
    if short:
        import warnings

        said = "; ".join(f"{n} {what} for a quota of {k}" for n, k, what in short)
        size = sum(min(len(g), k) for g, k, _ in quotas)
        warnings.warn(
            f"balanced batches: the training part has {said}: each batch takes all of them "
            f"(no patient twice in a batch), so batches hold {size} patients instead of "
            f"{n_events + n_censored}; use a smaller batch_size to silence this.",
            UserWarning,
            stacklevel=2,
        )
    streams = [
        (group, random_batches(len(group), min(k, len(group)), rng))
        for group, k, _ in quotas
        if k > 0 and len(group) > 0
    ]
    return _balanced(streams)


def _balanced(streams):
    while True:
        yield np.concatenate([group[next(it)] for group, it in streams])
