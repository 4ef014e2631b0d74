"""Content-addressed cache of extracted features.

Radiomics features of a patient depend only on its image, its mask, the voxel spacing and the
extraction settings, never on the training fold. Keying the features by a hash of exactly those
lets every ``fit`` in a cross-validation (each on a *clone* of the extractor) reuse what an
earlier fit extracted. Two levels:

* a process-wide in-memory LRU (:data:`MEMORY_CACHE`), shared by all extractor instances;
* optionally a directory on disk (one ``.npz`` per entry), which survives the process and is
  shared by processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict

import numpy as np

__all__ = ["content_key", "MemoryCache", "DiskCache", "MEMORY_CACHE", "clear_cache"]


def content_key(arrays, config) -> str:
    """Hex digest identifying ``arrays`` (bytes, dtype, shape) together with ``config``.

    ``config`` must be JSON-serialisable; keys are sorted so equal settings hash equally.
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"|{a.dtype.str}{a.shape}|".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


class MemoryCache:
    """Thread-safe LRU map ``key -> (names, values)``.

    Feature-name tuples are interned, so thousands of entries share one tuple of names.
    """

    def __init__(self, max_entries: int = 50_000):
        self.max_entries = max_entries
        self._data: OrderedDict = OrderedDict()
        self._names: dict = {}
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key, names, values) -> None:
        names = tuple(names)
        with self._lock:
            names = self._names.setdefault(names, names)
            self._data[key] = (names, np.asarray(values, dtype=np.float64))
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._names.clear()

    def __len__(self) -> int:
        return len(self._data)


class DiskCache:
    """A directory of ``<key>.npz`` files holding ``names`` and ``values``.

    Writes go to a temporary file renamed into place, so concurrent processes never read a
    half-written entry. An unreadable entry counts as a miss.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key[:2], key + ".npz")

    def get(self, key):
        path = self._path(key)
        if not os.path.exists(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                return tuple(str(n) for n in f["names"]), np.asarray(f["values"], np.float64)
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key, names, values) -> None:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, names=np.asarray(names, dtype=str), values=np.asarray(values, np.float64))
        os.replace(tmp, path)


#: The process-wide in-memory cache used by :class:`~survseg.radiomics.RadiomicsExtractor`.
MEMORY_CACHE = MemoryCache()


def clear_cache() -> None:
    """Empty the process-wide in-memory feature cache (on-disk caches are left alone)."""
    MEMORY_CACHE.clear()
