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
    group; a group smaller than its quota is drawn with replacement. With no censored patients
    at all, batches are all events (and vice versa the caller must reject all-censored data).
    """
    event = np.asarray(event, dtype=bool)
    events, censored = np.flatnonzero(event), np.flatnonzero(~event)
    if len(events) == 0:
        raise ValueError("balanced batches need at least one event.")
    if len(censored) == 0:
        n_events, n_censored = n_events + n_censored, 0
    streams = []
    for group, k in ((events, n_events), (censored, n_censored)):
        if k == 0:
            continue
        if len(group) >= k:
            streams.append((group, random_batches(len(group), k, rng)))
        else:
            streams.append((group, None, k))
    while True:
        parts = []
        for stream in streams:
            if stream[1] is None:
                group, _, k = stream
                parts.append(rng.choice(group, size=k, replace=True))
            else:
                group, it = stream
                parts.append(group[next(it)])
        yield np.concatenate(parts)
