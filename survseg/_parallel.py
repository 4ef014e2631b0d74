"""One way to run survseg's parallel loops on any joblib backend (loky, Dask, Ray, ...).

Every place where survseg runs independent jobs (preprocessing, radiomics extraction, the
benchmark's folds, the members of a fold ensemble) calls :func:`parallel_run`. It adds three
things to a plain ``joblib.Parallel`` call:

1. **A fallback for backends that lack a mode.** Results are consumed as they finish
   (``return_as="generator"`` or ``"generator_unordered"``) where the active backend supports
   it; backends that do not (Ray's, joblib's ``multiprocessing``) refuse those modes, and the
   jobs then run with ``return_as="list"`` and their results are yielded once all are done.
2. **Memory-mapped cohorts sent by reference.** joblib's own process backends (loky,
   multiprocessing) already send a ``np.memmap`` as its file name and offset; Dask and Ray
   would pickle its content. For every other backend, a memory-mapped array argument is
   replaced by a :class:`MemmapRef`, a small picklable handle that reopens the same file
   region (read-only, or copy-on-write) in the worker. Remote workers must see the file
   under the same path (a shared file system); pass ``np.asarray(X)`` to send it by value.
3. **No thread oversubscription.** Each job runs with its BLAS/OpenMP thread pools
   (threadpoolctl) and torch's intra-op threads limited to
   ``max(1, cpu_count // n_workers)`` (or the backend's ``inner_max_num_threads`` when set),
   so that ``n_jobs`` workers on one machine do not each start one thread per core.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Iterator

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from joblib.parallel import get_active_backend

__all__ = ["MemmapRef", "by_reference", "parallel_run"]

_RETURN_AS = ("list", "generator", "generator_unordered")

# joblib's own backends: they share memory (threads) or memory-map arrays themselves
_JOBLIB_NATIVE = ("SequentialBackend", "ThreadingBackend", "LokyBackend", "MultiprocessingBackend")


def _root_memmap(a: np.ndarray) -> np.memmap | None:
    """The ``np.memmap`` that owns the file mapping under ``a``, or None."""
    base = a
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap) and isinstance(base.base, mmap.mmap):
            return base
        base = base.base
    return None


class MemmapRef:
    """A picklable reference to a C-contiguous region of a memory-mapped ``.npy`` file.

    Unpickling (in a worker) reopens the region as a ``np.memmap`` instead of carrying the
    data: a worker reads only the patients it indexes.

    Parameters
    ----------
    filename : str
    dtype : numpy dtype
    shape : tuple of int
    offset : int
        Byte offset of the region's first element in the file.
    mode : {"r", "c"}
        ``"r"`` read-only; ``"c"`` copy-on-write (writes in the worker stay in the worker).
    """

    def __init__(self, filename, dtype, shape, offset, mode="r"):
        self.filename = os.fspath(filename)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.offset = int(offset)
        self.mode = mode

    @classmethod
    def from_array(cls, a) -> MemmapRef | None:
        """The reference of a memory-mapped array, or None (not mapped, or not contiguous)."""
        if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or a.size == 0:
            return None
        root = _root_memmap(a)
        if root is None or root.filename is None:
            return None
        start = a.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        mode = "r" if root.mode == "r" else "c"
        return cls(root.filename, a.dtype, a.shape, root.offset + start, mode)

    def open(self) -> np.memmap:
        """Map the region (raises FileNotFoundError naming the path if it is not there).

        The result is a ``np.memmap`` that pickles as a reference again, so it stays one
        through a scheduler that unpickles and re-pickles the arguments (Dask's does).
        """
        if not os.path.exists(self.filename):
            raise FileNotFoundError(
                f"memory-mapped cohort {self.filename} is not readable on this worker: put it "
                "on a file system every worker sees under the same path, or pass "
                "np.asarray(X) to send the data by value."
            )
        return _FileBacked(
            self.filename, dtype=self.dtype, mode=self.mode, offset=self.offset, shape=self.shape
        )

    def __reduce__(self):
        return (_reopen, (self.filename, self.dtype.descr, self.shape, self.offset, self.mode))

    def __repr__(self):
        return f"MemmapRef({self.filename!r}, shape={self.shape}, offset={self.offset})"


class _FileBacked(np.memmap):
    """A memmap opened from a :class:`MemmapRef`: pickled, it is the reference again.

    A copy made from it (fancy indexing, arithmetic) no longer maps the file and pickles its
    values as any array does.
    """

    def __reduce_ex__(self, protocol):
        ref = MemmapRef.from_array(self)
        if ref is None:
            return np.asarray(self).view(np.ndarray).__reduce_ex__(protocol)
        return ref.__reduce__()

    def __reduce__(self):
        return self.__reduce_ex__(2)


def _reopen(filename, descr, shape, offset, mode):
    return MemmapRef(filename, np.dtype(descr), shape, offset, mode).open()


def by_reference(value):
    """``value`` itself, or its :class:`MemmapRef` when it is a memory-mapped array."""
    ref = MemmapRef.from_array(value)
    return value if ref is None else ref


def _inner_threads(backend, n_workers: int) -> int | None:
    """Threads per job, or None to leave the thread pools alone (serial or threads)."""
    if type(backend).__name__ in ("SequentialBackend", "ThreadingBackend") or n_workers <= 1:
        return None
    preset = getattr(backend, "inner_max_num_threads", None)
    if preset:
        return int(preset)
    return max(1, (os.cpu_count() or 1) // n_workers)


def _run_limited(func, n_threads, args, kwargs):
    """Run one job in a worker with at most ``n_threads`` BLAS/OpenMP and torch threads."""
    # a job the backend ran in this process was not pickled: open its references here
    args = tuple(a.open() if isinstance(a, MemmapRef) else a for a in args)
    kwargs = {k: v.open() if isinstance(v, MemmapRef) else v for k, v in kwargs.items()}
    if n_threads is None:
        return func(*args, **kwargs)
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            return func(*args, **kwargs)
    finally:
        torch.set_num_threads(before)


def parallel_run(tasks: Iterable, *, n_jobs=None, return_as: str = "list") -> list | Iterator:
    """Run ``joblib.delayed`` tasks on the active joblib backend.

    Parameters
    ----------
    tasks : iterable of ``delayed(func)(*args, **kwargs)``
    n_jobs : int or None
        As joblib's (``None`` = the backend's default, ``-1`` = every worker).
    return_as : {"list", "generator", "generator_unordered"}
        ``"list"`` returns the results in task order once all are done; the generator modes
        yield each result as it is ready (in task order, or in completion order). A backend
        that lacks a generator mode runs the tasks as a list and yields its results in task
        order (which satisfies ``"generator_unordered"`` too).

    Returns
    -------
    list or iterator of the tasks' results
    """
    if return_as not in _RETURN_AS:
        raise ValueError(f"return_as must be one of {_RETURN_AS}; got {return_as!r}.")
    backend, _ = get_active_backend()
    n_workers = effective_n_jobs(n_jobs)
    native = type(backend).__name__ in _JOBLIB_NATIVE or n_workers == 1
    n_threads = _inner_threads(backend, n_workers)
    # a nested call in a worker gets the sequential backend and passes its tasks untouched
    jobs = (
        delayed(_run_limited)(
            func,
            n_threads,
            args if native else tuple(by_reference(a) for a in args),
            kwargs if native else {k: by_reference(v) for k, v in kwargs.items()},
        )
        for func, args, kwargs in tasks
    )
    mode = return_as
    if mode != "list" and not getattr(backend, "supports_return_generator", False):
        mode = "list"
    if type(backend).__name__ == "SequentialBackend" and return_as != "list":
        mode = return_as  # joblib runs the generator modes serially on any backend
    results = Parallel(n_jobs=n_jobs, return_as=mode)(jobs)
    if return_as != "list" and mode == "list":
        return iter(results)
    return results
