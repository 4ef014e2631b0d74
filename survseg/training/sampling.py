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
    group; a group smaller than its quota is drawn with replacement. With no censored patients
    at all, batches are all events (and vice versa the caller must reject all-censored data).
    """

    def __init__(self, event, n_events: int, n_censored: int, rng: np.random.Generator):
        event = np.asarray(event, dtype=bool)
        events, censored = np.flatnonzero(event), np.flatnonzero(~event)
        if len(events) == 0:
            raise ValueError("balanced batches need at least one event.")
        if len(censored) == 0:
            n_events, n_censored = n_events + n_censored, 0
        self.rng = rng
        self._streams = []  # (group, RandomBatches or None, quota)
        for group, k in ((events, n_events), (censored, n_censored)):
            if k == 0:
                continue
            sub = RandomBatches(len(group), k, rng) if len(group) >= k else None
            self._streams.append((group, sub, k))

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        parts = []
        for group, sub, k in self._streams:
            if sub is None:
                parts.append(self.rng.choice(group, size=k, replace=True))
            else:
                parts.append(group[next(sub)])
        return np.concatenate(parts)

    def state_dict(self) -> dict:
        return {
            "streams": [None if sub is None else sub.state_dict() for _, sub, _ in self._streams]
        }

    def load_state_dict(self, state: dict) -> None:
        saved = state["streams"]
        if len(saved) != len(self._streams):
            raise ValueError("the sampler state is for batches of other groups.")
        for (_, sub, _), part in zip(self._streams, saved, strict=True):
            if (sub is None) != (part is None):
                raise ValueError("the sampler state is for batches of other groups.")
            if sub is not None:
                sub.load_state_dict(part)


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> RandomBatches:
    """Endless epoch-shuffled batches of ``range(n)`` (see :class:`RandomBatches`)."""
    return RandomBatches(n, batch_size, rng)


def balanced_batches(event, n_events: int, n_censored: int, rng) -> BalancedBatches:
    """Endless batches of ``n_events`` events and ``n_censored`` censored patients (see
    :class:`BalancedBatches`)."""
    return BalancedBatches(event, n_events, n_censored, rng)
