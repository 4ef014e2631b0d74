"""One rule for turning patient ids into file names.

Patient ids come from users' tables (manifests, HECKTOR's endpoint CSV, ``patients.json``)
and become file and folder names (predicted masks, HECKTOR image paths). An id is used as a
file name only if it is a plain name: this module's rule is applied everywhere an id meets
the file system, so an id such as ``../../x`` or ``/etc/x`` can never write or read outside
the folder it is meant for.
"""

from __future__ import annotations

import os
import re

__all__ = ["safe_file_name", "check_patient_ids", "resolve_inside"]

_MAX_LENGTH = 200
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def safe_file_name(patient_id, what: str = "patient id") -> str:
    """Return ``patient_id`` as a string if it is safe as one file name, else raise.

    A safe name is non-empty, at most 200 characters, not ``.`` or ``..``, does not start
    with ``.`` or ``-`` nor end with a space or ``.``, holds no path separator (``/``,
    ``\\``), drive or stream marker (``:``), control character or any of ``*?"<>|``, and is
    not a name Windows reserves (``CON``, ``NUL``, ``COM1``, ... with any extension).
    Names are rejected, never rewritten: two ids cannot collide into one file.

    Raises
    ------
    ValueError
        Naming the id and what makes it unsafe.
    """
    name = str(patient_id)
    problem = None
    if not name.strip():
        problem = "it is empty"
    elif len(name) > _MAX_LENGTH:
        problem = f"it is longer than {_MAX_LENGTH} characters"
    elif name in (".", ".."):
        problem = "it is a relative folder reference"
    elif _FORBIDDEN.search(name):
        char = _FORBIDDEN.search(name).group()
        problem = f"it contains {char!r} (path separators and control characters are refused)"
    elif name[0] in ".-":
        problem = f"it starts with {name[0]!r}"
    elif name[-1] in ". ":
        problem = "it ends with a dot or a space"
    elif name.split(".")[0].upper() in _RESERVED:
        problem = "it is a reserved device name on Windows"
    if problem:
        raise ValueError(
            f"{what} {name!r} cannot be used as a file name: {problem}. Rename the patient "
            "(ids become file names of masks and images)."
        )
    return name


def check_patient_ids(ids, source: str = "") -> list[str]:
    """Check every id with :func:`safe_file_name` (and uniqueness); return them as strings."""
    where = f" in {source}" if source else ""
    out = [safe_file_name(i, what=f"patient id{where}") for i in ids]
    seen, dup = set(), []
    for i in out:
        if i in seen:
            dup.append(i)
        seen.add(i)
    if dup:
        raise ValueError(f"patient id(s) {sorted(set(dup))[:10]}{where} appear more than once.")
    return out


def resolve_inside(root, relative, what: str = "file") -> str:
    """``root/relative`` as an absolute path, refusing one that leaves ``root`` through
    ``..`` or an absolute ``relative``. The check is on the names (symbolic links that the
    owner of ``root`` placed there are followed as the file system does)."""
    base = os.path.abspath(os.fspath(root))
    path = os.path.normpath(os.path.join(base, os.fspath(relative)))
    if os.path.commonpath([base, path]) != base:
        raise ValueError(f"{what} {os.fspath(relative)!r} resolves outside {base}; refused.")
    return path
