"""Reading memory-mapped cohorts without keeping them resident.

A cohort opened with :func:`survseg.data.cohort.load_cohort` is a read-only
:class:`numpy.memmap`. Each page of it that is read stays mapped into the process and is
counted in its resident memory (RSS) until the mapping is closed, although it is page cache
that the kernel could drop. A full pass over a 500-patient 64^3 cohort (a NaN scan, a
prediction pass) thus adds the whole file, 1.1 GiB, to the RSS of a process that holds a few
MiB of it at a time. :func:`release_pages` unmaps the pages read so far
(``madvise(MADV_DONTNEED)``): they stay in the page cache, and a later read maps them back
from it (or from the file). For a shared mapping (``mode`` ``"r"``, ``"r+"``, ``"w+"``) this
loses nothing; a copy-on-write mapping (``mode="c"``) is left alone, since there it would
discard the caller's changes.

:func:`read_field` reads one field of some patients in chunks, so that a structured
``X[rows]`` (which copies *every* field of the rows: all image volumes, masks and clinical
values) is never made.
"""

from __future__ import annotations

import mmap

import numpy as np

__all__ = ["CHUNK", "mapped_file", "read_field", "release_pages"]

#: Patients read at a time from a cohort by the chunked readers.
CHUNK = 8

_SHARED_MODES = ("r", "r+", "w+")


def mapped_file(X) -> mmap.mmap | None:
    """The shared memory map ``X`` is a view of, or ``None`` (in memory, or copy-on-write)."""
    mode = None
    base = X
    while base is not None and not isinstance(base, mmap.mmap):
        if mode is None and isinstance(base, np.memmap):
            mode = getattr(base, "mode", None)
        base = getattr(base, "base", None)
    if base is None or mode not in _SHARED_MODES:
        return None
    return base


def release_pages(X) -> None:
    """Unmap the pages of the memory-mapped file behind ``X`` from this process.

    A no-op for an in-memory array, a copy-on-write map, or where ``madvise`` is not
    available (Windows). The data stay readable: the next access maps the pages again.
    """
    mm = mapped_file(X)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        mm.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # closed map, or a kernel that refuses the advice
        pass


def read_field(X, field: str, rows, out: np.ndarray, *, chunk: int = CHUNK) -> np.ndarray:
    """Fill ``out`` (``len(rows)`` first) with ``X[field][rows]``, ``chunk`` patients at a time.

    Only ``field`` of the given patients is read, converted to ``out``'s dtype chunk by
    chunk (the temporary copy is at most ``chunk`` patients of that one field); the pages of a
    memory-mapped ``X`` are released afterwards (:func:`release_pages`).

    Parameters
    ----------
    X : cohort (structured ndarray or memmap)
    field : str
    rows : array of int
        Patients (rows of ``X``), in the order wanted; repeats allowed.
    out : ndarray
        Of shape ``(len(rows),) + X.dtype.fields[field][0].shape``; any writable view (e.g.
        one channel of a preallocated batch array).
    chunk : int

    Returns
    -------
    out : ndarray
    """
    rows = np.asarray(rows, dtype=np.intp)
    column = X[field]  # a view: no data read
    for start in range(0, len(rows), chunk):
        out[start : start + chunk] = column[rows[start : start + chunk]]
    release_pages(X)
    return out
