"""Errors and warnings that name patients, and the renaming that makes those names the user's.

A check sees only the ``X`` it was given. Inside ``benchmark`` that is ``X[train]`` of one
fold, so "patient 3" would be the fourth patient of the fold, not of the cohort; behind the
command line the user knows patients by their ids, not by row. So a check raises a
:class:`PatientError`, which keeps the rows apart from the words, and whoever sliced ``X``
or holds the ids renames them on the way out. A :class:`PatientWarning` (a patient given NaN
features, say) is renamed the same way by the same context managers:

>>> from survseg.data.errors import PatientError
>>> err = PatientError("mask field 'mask' is empty for {patient}.", patient=[1])
>>> str(err)
"mask field 'mask' is empty for patient 1."
>>> str(err.in_cohort([10, 20, 30], context="fold 2"))
"fold 2: mask field 'mask' is empty for patient 20."
>>> str(err.in_cohort([10, 20, 30]).with_ids({None: [f"HN-{i:03d}" for i in range(40)]}))
"mask field 'mask' is empty for patient 'HN-020' (row 20)."
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np

__all__ = ["PatientError", "PatientWarning", "naming_patients", "rows_of"]

#: How many patients a message lists before "and N more".
MAX_LISTED = 10


class _NamesPatients:
    """A message about particular patients, named by row until someone knows better."""

    def __init__(self, template: str, *, context="", cohort=None, ids=None, **groups):
        self.template = template
        self.groups = {k: [int(r) for r in np.atleast_1d(v)] for k, v in groups.items()}
        self.context, self.cohort, self.ids = context, cohort, ids
        super().__init__(self._render())

    @property
    def rows(self) -> list[int]:
        """Every patient named, as rows (sorted, unique)."""
        return sorted({r for rows in self.groups.values() for r in rows})

    def _name(self, row: int) -> str:
        if self.ids is None:
            return str(row)
        return f"{str(self.ids[row])!r} (row {row})"

    def _group(self, rows: list[int]) -> str:
        if len(rows) == 1:
            return f"patient {self._name(rows[0])}"
        shown = ", ".join(self._name(r) for r in rows[:MAX_LISTED])
        more = f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
        return f"patients [{shown}]{more}"

    def _render(self) -> str:
        text = self.template
        for name, rows in self.groups.items():
            text = text.replace("{" + name + "}", self._group(rows))
        return f"{self.context}: {text}" if self.context else text

    def _copy(self, **changes) -> _NamesPatients:
        kw = dict(context=self.context, cohort=self.cohort, ids=self.ids, **self.groups)
        kw.update(changes)
        return type(self)(self.template, **kw)

    def in_cohort(self, index, context: str = "", cohort=None) -> _NamesPatients:
        """The same error with rows of ``X[index]`` turned into rows of ``X``.

        ``index`` may be integer or boolean, or ``None`` to keep the rows; ``context`` is
        prefixed (before any earlier one); ``cohort`` names the cohort the new rows index
        (see the class parameters).
        """
        groups = self.groups
        if index is not None:
            index = np.asarray(index)
            if index.dtype == bool:
                index = np.flatnonzero(index)
            groups = {k: [int(index[r]) for r in v] for k, v in groups.items()}
        prefix = ": ".join(c for c in (context, self.context) if c)
        return self._copy(context=prefix, cohort=cohort, **groups)

    def with_ids(self, ids_by_cohort: dict) -> _NamesPatients:
        """The same error naming patients by id, from ``{cohort: ids by row}``.

        Unchanged when its cohort is not in the mapping or it already has ids.
        """
        ids = ids_by_cohort.get(self.cohort)
        if self.ids is not None or ids is None:
            return self
        return self._copy(ids=list(ids))

    def __reduce__(self):  # pickles (joblib workers) despite the keyword-only signature
        kw = dict(context=self.context, cohort=self.cohort, ids=self.ids, **self.groups)
        return _rebuild, (type(self), self.template, kw)


def _rebuild(cls, template, kw):
    return cls(template, **kw)


class PatientError(_NamesPatients, ValueError):
    """A ``ValueError`` about particular patients, named by row until someone knows better.

    Parameters
    ----------
    template : str
        The message, with a placeholder ``{name}`` for each group of patients (replaced as
        text, so other braces in the message need no escaping).
    context : str, default=""
        Prefixed to the message (``"RadiomicsCox, fold 2"``).
    cohort : str or None, default=None
        Which cohort the rows index (``None``: the one being fitted; ``"test"``: an external
        test cohort), so that :meth:`with_ids` picks the right ids.
    ids : sequence or None, default=None
        Patient ids of that cohort, by row; set by :meth:`with_ids`.
    **groups : int or sequence of int
        Each template field's patients, as rows of the ``X`` the raising code was given.
    """


class PatientWarning(_NamesPatients, UserWarning):
    """A ``UserWarning`` about particular patients, renamed like :class:`PatientError`.

    Parameters are those of :class:`PatientError`: a ``template`` with ``{name}``
    placeholders, ``context``, ``cohort``, ``ids`` and the groups of rows.
    """


@contextmanager
def _renaming(rename):
    """Pass the block's patient messages through ``rename``: re-raise a :class:`PatientError`
    (or a :class:`PatientWarning` raised under an ``"error"`` filter) renamed, with its
    traceback, and re-emit each caught :class:`PatientWarning` renamed.

    Other warnings are re-emitted unchanged, at their own file and line, so the caller's
    filters still decide what is shown; also when the block raises.
    """
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    except (PatientError, PatientWarning) as exc:
        renamed = rename(exc)
        if renamed is exc:
            raise
        raise renamed.with_traceback(exc.__traceback__) from None
    finally:
        for w in caught:
            message = rename(w.message) if isinstance(w.message, PatientWarning) else w.message
            warnings.warn_explicit(message, w.category, w.filename, w.lineno, source=w.source)


def naming_patients(ids_by_cohort: dict):
    """Re-raise a :class:`PatientError` of the block naming patients by id (and re-emit its
    :class:`PatientWarning` so).

    ``ids_by_cohort`` maps a cohort (``None`` for the one being fitted, ``"test"`` for an
    external test cohort) to its patient ids, by row. The traceback is kept.
    """
    return _renaming(lambda msg: msg.with_ids(ids_by_cohort))


def rows_of(index, context: str = "", cohort=None):
    """Re-raise a :class:`PatientError` of a block that was given ``X[index]``, naming the
    patients as rows of ``X`` (see :meth:`PatientError.in_cohort`), and re-emit its
    :class:`PatientWarning` so. The traceback is kept."""
    return _renaming(lambda msg: msg.in_cohort(index, context, cohort))
