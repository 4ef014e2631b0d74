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

**Weights files** share a trained deep estimator (DeepMTS, AdaMSS, DeepSurv) *without* a
pickle. :func:`save_weights` (or ``model.save_weights(path)``) writes a zip archive of
``header.json`` (class, parameters and every non-network fitted attribute as tagged JSON:
arrays, the history, the Breslow baseline, time bins, feature names) and ``weights.pt``
(the networks' state dicts, read back with ``torch.load(weights_only=True)``).
:func:`load_weights` (or ``DeepMTSRegressor.from_weights(path)``) rebuilds the networks from
the parameters, loads the weights strictly and returns a fitted estimator that predicts as
the saved one; it imports no class but survseg's own estimators and executes nothing from the
file, so a weights file needs no signature or ``trusted=True``.
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
    "WEIGHTS_FORMAT",
    "save_weights",
    "load_weights",
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


# ---------------------------------------------------------------------------- weights files
#: Format of :func:`save_weights` files: a trained network without any pickle.
WEIGHTS_FORMAT = "survseg-weights"
WEIGHTS_FORMAT_VERSION = 1
_WEIGHTS = "weights.pt"
#: Parameters that describe how a fit ran, not the model: not written to a weights file.
_RUNTIME_ONLY = ("callbacks",)


def _encode(value, where: str):
    """``value`` as JSON, types tagged so :func:`_decode` rebuilds them exactly."""
    import numpy as np
    import pandas as pd

    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value
    if isinstance(value, np.generic):
        return _encode(value.item(), where)
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {
            "__dict__": [
                [_encode(k, where), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()
            ]
        }
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUO" or value.dtype.names:
            raise TypeError(f"{where}: arrays of dtype {value.dtype} cannot be written.")
        items = value.tolist()
        if value.dtype.kind == "O":
            items = [_encode(v, where) for v in value.ravel().tolist()]
        return {"__ndarray__": items, "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, pd.DataFrame):
        return {
            "__dataframe__": [
                [str(c), str(value[c].dtype), _encode(value[c].to_numpy(), f"{where}.{c}")]
                for c in value.columns
            ],
            "index": _encode(value.index.to_numpy(), f"{where}.index"),
        }
    from sksurv.functions import StepFunction
    from sksurv.linear_model.coxph import BreslowEstimator

    if isinstance(value, StepFunction):
        return {
            "__step_function__": {
                "x": _encode(value.x, where),
                "y": _encode(value.y, where),
                "a": _encode(value.a, where),
                "b": _encode(value.b, where),
                "domain": _encode(tuple(value.domain), where),
            }
        }
    if isinstance(value, BreslowEstimator):
        return {"__breslow__": {k: _encode(v, f"{where}.{k}") for k, v in vars(value).items()}}
    if hasattr(value, "get_params") and type(value).__module__.startswith("survseg."):
        cls = type(value)
        return {
            "__estimator__": f"{cls.__module__}.{cls.__qualname__}",
            "params": _encode(value.get_params(deep=False), f"{where}.params"),
        }
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which a weights file "
        "cannot hold without a pickle; use save_model for this estimator."
    )


def _decode(value):
    import numpy as np
    import pandas as pd

    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k): _decode(v) for k, v in value["__dict__"]}
    if "__ndarray__" in value:
        dtype = np.dtype(value["dtype"])
        if dtype.kind == "O":
            out = np.empty(len(value["__ndarray__"]), dtype=object)
            out[:] = [_decode(v) for v in value["__ndarray__"]]
            return out.reshape(value["shape"])
        return np.asarray(value["__ndarray__"], dtype=dtype).reshape(value["shape"])
    if "__dataframe__" in value:
        columns = {
            name: pd.Series(_decode(data)).astype(dtype)
            for name, dtype, data in value["__dataframe__"]
        }
        frame = pd.DataFrame(columns)
        frame.index = _decode(value["index"])
        return frame
    if "__step_function__" in value:
        from sksurv.functions import StepFunction

        p = {k: _decode(v) for k, v in value["__step_function__"].items()}
        return StepFunction(p["x"], p["y"], a=p["a"], b=p["b"], domain=p["domain"])
    if "__breslow__" in value:
        from sksurv.linear_model.coxph import BreslowEstimator

        model = BreslowEstimator()
        vars(model).update({k: _decode(v) for k, v in value["__breslow__"].items()})
        return model
    if "__estimator__" in value:
        cls = _survseg_class(value["__estimator__"], estimator_only=False)
        return cls(**_decode(value["params"]))
    raise ModelFileError(f"unknown entry {sorted(value)} in a weights file.")


def _survseg_class(name: str, *, estimator_only: bool = True):
    """The survseg class named ``name`` (only survseg's own classes are ever imported)."""
    import importlib

    module, _, qualname = str(name).rpartition(".")
    if not (module == "survseg" or module.startswith("survseg.")) or not qualname.isidentifier():
        raise ModelFileError(f"a weights file may only name survseg classes; got {name!r}.")
    try:
        cls = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        raise ModelFileError(f"{name} is not a class of this survseg version.") from None
    if estimator_only:
        from .estimators._deep import DeepSurvivalBase

        if not (isinstance(cls, type) and issubclass(cls, DeepSurvivalBase)):
            raise ModelFileError(f"{name} is not a survseg deep estimator.")
    return cls


def save_weights(path, model, *, overwrite: bool = False) -> Path:
    r"""Write a fitted deep estimator's networks and metadata without any pickle.

    The file is a zip archive of

    ``header.json``
        format name and version, library versions, the estimator's class and parameters, and
        every other fitted attribute (arrays, the history, the Breslow baseline hazard, time
        bins, feature names, ...) as tagged JSON, with the SHA-256 of ``weights.pt``;
    ``weights.pt``
        ``{attribute: state_dict}`` of each fitted network (``network_``,
        ``segmentation_network_``), written by ``torch.save`` and read back with
        ``torch.load(weights_only=True)``: tensors only, nothing executed.

    :func:`load_weights` rebuilds an estimator that predicts exactly as ``model`` does, so a
    trained network can be shared with people who should not have to trust a pickle. The
    ``callbacks`` parameter is not written (it belongs to the fit, not to the model).

    Parameters
    ----------
    path : path-like
        The file to write; its folder must exist.
    model : DeepMTSRegressor, AdaMSSRegressor or DeepSurv
        Fitted.
    overwrite : bool, default=False
        Replace an existing file (atomically). ``False``: an existing file is an error.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    TypeError
        A parameter or fitted attribute that JSON cannot hold (the message names it): such
        a model needs :func:`save_model`.

    See Also
    --------
    load_weights, save_model
    """
    import torch
    from sklearn.utils.validation import check_is_fitted

    from .data.store import atomic_path

    cls = type(model)
    _survseg_class(f"{cls.__module__}.{cls.__qualname__}")
    check_is_fitted(model, "network_")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    params = {
        k: (None if k in _RUNTIME_ONLY else v) for k, v in model.get_params(deep=False).items()
    }
    networks, fitted, same = {}, {}, {}
    for key, value in vars(model).items():
        if not key.endswith("_") or key.startswith("_"):
            continue
        if isinstance(value, torch.nn.Module):
            twin = next((k for k, v in networks.items() if v is value), None)
            if twin is not None:
                same[key] = twin
            else:
                networks[key] = value
        else:
            fitted[key] = _encode(value, f"fitted attribute {key}")
    buffer = io.BytesIO()
    torch.save(
        {k: {n: t.detach().cpu() for n, t in v.state_dict().items()} for k, v in networks.items()},
        buffer,
    )
    payload = buffer.getvalue()
    header = {
        "format": WEIGHTS_FORMAT,
        "format_version": WEIGHTS_FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "estimator": f"{cls.__module__}.{cls.__qualname__}",
        "params": _encode(params, "parameter"),
        "fitted": fitted,
        "networks": sorted(networks),
        "same_network": same,
        "payload": _WEIGHTS,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_HEADER, json.dumps(header, indent=1))
        zf.writestr(_WEIGHTS, payload)
    return path


def _read_weights(path) -> tuple[dict, dict]:
    """``(header, {attribute: state_dict})`` of a weights file, checked."""
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path} not found.")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a survseg weights file (not a zip archive).")
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.getinfo(_HEADER).file_size > 64 * _MAX_HEADER:
                raise ModelFileError(f"{path}: header.json is implausibly large.")
            header = json.loads(zf.read(_HEADER).decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != WEIGHTS_FORMAT:
                raise ModelFileError(
                    f"{path} is not a survseg weights file"
                    + (
                        " (it is a model file: use load_model)"
                        if isinstance(header, dict) and header.get("format") == FORMAT
                        else ""
                    )
                    + "."
                )
            if header.get("format_version") != WEIGHTS_FORMAT_VERSION:
                raise ModelFileError(
                    f"{path} has weights-file format version {header.get('format_version')!r}; "
                    f"this survseg reads version {WEIGHTS_FORMAT_VERSION}."
                )
            payload = zf.read(_WEIGHTS)
    except KeyError as exc:
        raise ModelFileError(f"{path} is not a survseg weights file ({exc.args[0]}).") from None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, EOFError) as exc:
        raise ModelFileError(f"{path} is a damaged weights file ({exc}).") from None
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ModelFileError(
            f"{path}: the weights do not match the hash in its header (the file is damaged or "
            "was modified)."
        )
    try:
        states = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
        raise ModelFileError(
            f"{path}: the weights cannot be read as plain tensors ({type(exc).__name__}: "
            f"{exc}); survseg never unpickles weights files."
        ) from None
    return header, states


def load_weights(path):
    """Rebuild the fitted estimator of a :func:`save_weights` file.

    Nothing is unpickled: the header is JSON, the networks are read with
    ``torch.load(weights_only=True)``, and only survseg's own estimator classes can be named.
    The networks are rebuilt from the parameters and fitted metadata and their weights loaded
    strictly (every tensor must match), so the estimator predicts as the saved one did.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    estimator
        Fitted, with ``callbacks=None``.

    Raises
    ------
    ModelFileError
        Not a weights file, another format version, a damaged or modified file, a class that
        is not a survseg deep estimator, or weights that do not fit the rebuilt network.
    """
    header, states = _read_weights(path)
    cls = _survseg_class(header.get("estimator"))
    fitted = {k: _decode(v) for k, v in header.get("fitted", {}).items()}
    try:
        model = cls(**_decode(header["params"]))
        vars(model).update(fitted)  # what the networks' shapes are rebuilt from
        networks = model._networks_from_fitted()
        for key, state in states.items():
            networks[key].load_state_dict(state, strict=True)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ModelFileError(
            f"{path}: the weights do not fit the {cls.__name__} rebuilt from its parameters "
            f"({type(exc).__name__}: {exc})."
        ) from None
    if set(states) != set(header.get("networks", ())) or not set(states) <= set(networks):
        raise ModelFileError(f"{path}: the networks {sorted(states)} do not match the header.")
    for key, twin in header.get("same_network", {}).items():
        if networks.get(key) is not networks.get(twin):
            raise ModelFileError(f"{path}: {key} and {twin} should be one network.")
    for net in networks.values():
        net.eval()
    from .training.recipe import assign_fitted

    return assign_fitted(model, {**fitted, **networks})
