"""survseg model files: a checked header before anything is unpickled.

A fitted estimator holds torch networks, scikit-learn and scikit-survival objects and
pyradiomics settings; the only format that keeps all of them is a pickle (joblib), and
unpickling a file runs whatever code the file asks for. A model file is therefore treated as
code. :func:`save_model` writes a zip archive::

    header.json    format name and version, survseg / Python / library versions, estimator
                   class and parameters, cohort fields it was fitted on, SHA-256 of the payload,
                   and an HMAC-SHA256 signature made with this user's key
    model.joblib   the estimator (a joblib pickle)

:func:`load_model` reads and checks ``header.json`` (plain JSON, nothing executed) and the
payload's hash, then unpickles the payload only if the file is **trusted**:

* it carries a valid signature made with this user's key (a file you wrote yourself with
  :func:`save_model` or ``survseg fit`` on a machine sharing your key), or
* the caller says so: ``load_model(path, trusted=True)`` / ``survseg predict --trust-model``,
  after checking where the file comes from.

The key is a random 256-bit secret in ``$XDG_CONFIG_HOME/survseg/model-key`` (default
``~/.config/survseg/model-key``), created with permissions 0600 on first use; nothing else is
read from the environment. A file signed with another person's key, unsigned or modified after
signing is refused without ``trusted=True``. The signature proves who wrote the file, not that
its content is harmless: share a model only with people who trust you, and load shared
models only from people you trust.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import io
import json
import os
import platform
import secrets
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFileError",
    "UntrustedModelError",
    "ModelFile",
    "save_model",
    "read_header",
    "load_model",
]

FORMAT = "survseg-model"
FORMAT_VERSION = 1
_HEADER, _PAYLOAD = "header.json", "model.joblib"
_MAX_HEADER = 1 << 20


class ModelFileError(ValueError):
    """A file that is not a usable survseg model file (the message names the file)."""


class UntrustedModelError(ModelFileError):
    """A valid model file that is not trusted: not signed with this user's key."""


@dataclass
class ModelFile:
    """What :func:`load_model` returns: the estimator and the checked header."""

    model: object
    header: dict
    signed: bool


def _key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "survseg" / "model-key"


def _key(create: bool) -> bytes | None:
    """This user's signing key (created when ``create``); ``None`` if unavailable."""
    path = _key_path()
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        if not create:
            return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex())
        return key
    except FileExistsError:  # another process created it meanwhile
        return _key(create=False)
    except OSError as exc:
        warnings.warn(
            f"cannot create the model signing key {path} ({exc}); the model file is written "
            "unsigned and will need trusted=True (--trust-model) to load.",
            UserWarning,
            stacklevel=3,
        )
        return None


def _signature(key: bytes, header: dict) -> str:
    body = json.dumps({k: v for k, v in header.items() if k != "hmac"}, sort_keys=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _jsonable_params(estimator) -> dict:
    """``get_params(deep=False)`` with values JSON can hold; others as their ``repr``."""
    out = {}
    for k, v in estimator.get_params(deep=False).items():
        try:
            json.dumps(v)
            out[k] = v
        except (TypeError, ValueError):
            out[k] = repr(v)
    return out


def _versions() -> dict:
    import numpy
    import sklearn

    from . import __version__

    out = {
        "survseg": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
    }
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return out


def save_model(path, model, *, name: str | None = None, signature: dict | None = None) -> Path:
    """Write ``model`` as a survseg model file (signed with this user's key).

    Parameters
    ----------
    path : path-like
        The file to write (its folder must exist). Written to a temporary file first and
        renamed when complete: a failed write leaves an existing file untouched.
    model : estimator
        A fitted scikit-learn compatible estimator.
    name : str, optional
        A label (the CLI's model name, e.g. ``"RadiomicsCox"``).
    signature : dict, optional
        :func:`survseg.data.validation.cohort_signature` of the training cohort, checked
        against the cohorts the model later predicts on.

    Returns
    -------
    pathlib.Path
    """
    import joblib

    from .data.store import atomic_path

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    payload = buffer.getvalue()
    cls = type(model)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "estimator": f"{cls.__module__}.{cls.__qualname__}",
        "name": name,
        "params": _jsonable_params(model) if hasattr(model, "get_params") else {},
        "cohort": signature,
        "payload": _PAYLOAD,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    key = _key(create=True)
    if key is not None:
        header["hmac"] = _signature(key, header)
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_HEADER, json.dumps(header, indent=1, sort_keys=True))
        zf.writestr(_PAYLOAD, payload)
    return path


def read_header(path) -> dict:
    """Read and check a model file's header, without unpickling anything.

    Raises
    ------
    FileNotFoundError
        No such file.
    ModelFileError
        Not a zip archive with a survseg header, another format version, or a payload that
        does not match its recorded hash (a damaged or altered file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path} not found (create it with `survseg fit`).")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not a survseg model file (no survseg header); files written by "
            "`survseg fit` before model files had a header cannot be read: fit the model again."
        )
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(_HEADER)
            if info.file_size > _MAX_HEADER:
                raise ModelFileError(f"{path}: header.json is implausibly large.")
            header = json.loads(zf.read(_HEADER).decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ModelFileError(f"{path} is a zip archive but not a survseg model file.")
            if header.get("format_version") != FORMAT_VERSION:
                raise ModelFileError(
                    f"{path} has model-file format version {header.get('format_version')!r}; "
                    f"this survseg reads version {FORMAT_VERSION}."
                )
            digest = hashlib.sha256(zf.read(header.get("payload", _PAYLOAD))).hexdigest()
    except KeyError as exc:
        raise ModelFileError(f"{path} is not a survseg model file ({exc.args[0]}).") from None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, EOFError) as exc:
        raise ModelFileError(f"{path} is a damaged model file ({exc}).") from None
    if digest != header.get("payload_sha256"):
        raise ModelFileError(
            f"{path}: the model payload does not match the hash in its header (the file is "
            "damaged or was modified)."
        )
    return header


def load_model(path, *, trusted: bool = False) -> ModelFile:
    """Read a survseg model file: header checked first, payload unpickled only if trusted.

    Parameters
    ----------
    path : path-like
    trusted : bool, default=False
        Unpickle the payload even if the file is not signed with this user's key. Unpickling
        runs code chosen by whoever wrote the file: pass ``True`` only for files from a source
        you trust.

    Returns
    -------
    ModelFile
        ``model``, ``header`` (the JSON header) and ``signed`` (whether this user's key
        signed it).

    Raises
    ------
    ModelFileError
        See :func:`read_header`; also a payload that is not the estimator class the header
        names.
    UntrustedModelError
        The file is valid but not signed with this user's key, and ``trusted`` is false.
    """
    import joblib

    header = read_header(path)
    key = _key(create=False)
    signed = (
        key is not None
        and isinstance(header.get("hmac"), str)
        and hmac.compare_digest(header["hmac"], _signature(key, header))
    )
    if not (signed or trusted):
        made = header.get("versions", {}).get("survseg", "?")
        raise UntrustedModelError(
            f"{path} was not written with this user's survseg key (it holds a "
            f"{header.get('estimator')} from survseg {made}, created {header.get('created')}). "
            "Loading it unpickles code from the file: if you trust its source, pass "
            "trusted=True (CLI: --trust-model)."
        )
    with zipfile.ZipFile(os.fspath(path)) as zf:
        payload = zf.read(header.get("payload", _PAYLOAD))
    try:
        model = joblib.load(io.BytesIO(payload))
    except Exception as exc:  # an unpickling failure can be any exception type
        raise ModelFileError(
            f"{path}: the model payload cannot be unpickled ({type(exc).__name__}: {exc}); "
            "it may need other library versions than these "
            f"({header.get('versions')})."
        ) from None
    cls = type(model)
    if f"{cls.__module__}.{cls.__qualname__}" != header.get("estimator"):
        raise ModelFileError(
            f"{path}: the payload is a {cls.__module__}.{cls.__qualname__}, but the header "
            f"says {header.get('estimator')}."
        )
    from . import __version__

    made = header.get("versions", {}).get("survseg")
    if made != __version__:
        warnings.warn(
            f"{path} was written by survseg {made}; this is survseg {__version__}.",
            UserWarning,
            stacklevel=2,
        )
    return ModelFile(model=model, header=header, signed=signed)
