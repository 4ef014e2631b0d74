"""Batch index samplers: random (epoch-shuffled) and balanced events/censored.

Both are endless iterators whose position can be saved (``state_dict``) and restored
(``load_state_dict``), so a :class:`~survseg.training.checkpoint.Checkpoint` resumes a fit on
the very batches an uninterrupted fit would have drawn. The random generator they draw from
is shared with the caller and saved separately (it is one of the loop's ``random_sources``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["random_batches", "balanced_batches", "RandomBatches", "BalancedBatches"]


class RandomBatches:
    """Endless batches of indices: each epoch is a fresh permutation cut into full batches.

    The last incomplete batch of an epoch is dropped (``drop_last``), so a batch never holds
    a patient twice; ``batch_size`` larger than ``n`` is reduced to ``n``. A permutation is
    drawn from ``rng`` when an epoch starts (lazily: creating the sampler draws nothing).
    """

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator):
        if n < 1:
            raise ValueError("cannot sample batches from zero patients.")
        self.n, self.batch_size, self.rng = int(n), int(min(batch_size, n)), rng
        self._perm, self._start = None, 0

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        if self._perm is None or self._start + self.batch_size > self.n:
            self._perm, self._start = self.rng.permutation(self.n), 0
        out = self._perm[self._start : self._start + self.batch_size]
        self._start += self.batch_size
        return out

    def state_dict(self) -> dict:
        """Position in the current epoch (JSON-able); the generator's state is not included."""
        perm = None if self._perm is None else [int(i) for i in self._perm]
        return {"n": self.n, "batch_size": self.batch_size, "perm": perm, "start": self._start}

    def load_state_dict(self, state: dict) -> None:
        if (state["n"], state["batch_size"]) != (self.n, self.batch_size):
            raise ValueError(
                f"sampler state for {state['n']} patients in batches of {state['batch_size']} "
                f"cannot restore a sampler of {self.n} patients in batches of {self.batch_size}."
            )
        perm = state["perm"]
        self._perm = None if perm is None else np.asarray(perm, dtype=np.int64)
        self._start = int(state["start"])


class BalancedBatches:
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

    def __init__(self, event, n_events: int, n_censored: int, rng: np.random.Generator):
        event = np.asarray(event, dtype=bool)
        events, censored = np.flatnonzero(event), np.flatnonzero(~event)
        if len(events) == 0:
            raise ValueError(
                f"balanced batches need at least one event; the {len(event)} training "
                "patients are all censored."
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
                f"balanced batches: the training part has {said}: each batch takes all of "
                f"them (no patient twice in a batch), so batches hold {size} patients instead "
                f"of {n_events + n_censored}; use a smaller batch_size to silence this.",
                UserWarning,
                stacklevel=3,
            )
        self.rng = rng
        self._streams = [  # (group, RandomBatches over the group)
            (group, RandomBatches(len(group), min(k, len(group)), rng))
            for group, k, _ in quotas
            if k > 0 and len(group) > 0
        ]

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        return np.concatenate([group[next(sub)] for group, sub in self._streams])

    def state_dict(self) -> dict:
        return {"streams": [sub.state_dict() for _, sub in self._streams]}

    def load_state_dict(self, state: dict) -> None:
        saved = state["streams"]
        if len(saved) != len(self._streams) or any(part is None for part in saved):
            raise ValueError("the sampler state is for batches of other groups.")
        for (_, sub), part in zip(self._streams, saved, strict=True):
            sub.load_state_dict(part)


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> RandomBatches:
    """Endless epoch-shuffled batches of ``range(n)`` (see :class:`RandomBatches`)."""
    return RandomBatches(n, batch_size, rng)


def balanced_batches(event, n_events: int, n_censored: int, rng) -> BalancedBatches:
    """Endless batches of ``n_events`` events and ``n_censored`` censored patients (see
    :class:`BalancedBatches`)."""
    return BalancedBatches(event, n_events, n_censored, rng)
