r"""Checkpoints of a long fit: the whole training state every ``every`` iterations, and
resuming from it.

Like skorch's ``Checkpoint`` + ``LoadInitState`` pair, in one callback: give
``Checkpoint(dirname, every=N)`` in an estimator's ``callbacks`` and ``fit`` writes the
training state of each stage to ``dirname`` every ``N`` iterations and at the stage's last
iteration; with ``resume=True`` a later ``fit`` of the same estimator on the same data starts
from the latest state found there instead of from scratch, and ends with the same network,
history and predictions as an uninterrupted fit (on the same device and library versions). A
finished stage is restored without training again, so a multi-stage fit (AdaMSS) that was
interrupted in its second stage resumes there.

Per stage (``multitask``, ``segmentation``, ``survival``, ``DeepSurv``) two files are written:

``<stage>.ckpt.pt``
    Tensors only, written with ``torch.save`` and read back with
    ``torch.load(weights_only=True)`` (which refuses anything but tensors and plain
    containers; nothing in the file is executed): the network's ``state_dict``, the best
    weights so far, the optimiser's, learning-rate scheduler's and gradient scaler's state,
    torch's global random state (dropout) and that of the augmentation generator.
``<stage>.ckpt.json``
    Plain JSON: format and version, the *fingerprint* of the fit (a SHA-256 of the estimator's
    class and parameters, the device type and the training data; see :func:`fit_fingerprint`),
    the iteration, the history so far, the best iteration and score, the batch sampler's
    position and the numpy generator's state, and the SHA-256 of the ``.pt`` file. It is
    written last, so a state counts only once both files are complete.

Files are never overwritten unless they are this fit's own: a folder that already holds
checkpoint files makes ``fit`` fail at once unless ``resume=True``, and with ``resume=True`` a
checkpoint of another fit (other parameters or data) makes it fail, naming the file. Other
files in the folder are never touched. Runtime-only parameters (``callbacks``, ``verbose``,
``predict_batch_size``, ``preload``) are left out of the fingerprint, so a fit can be resumed
with another progress setting.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import torch

__all__ = ["Checkpoint", "EarlyStopping", "bind_checkpoints", "fit_fingerprint"]

FORMAT = "survseg-checkpoint"
FORMAT_VERSION = 1
_SUFFIX = ".ckpt.json"
#: Parameters that change neither the numbers a fit computes nor its result.
_RUNTIME_PARAMS = frozenset({"callbacks", "verbose", "device", "predict_batch_size", "preload"})


class Checkpoint:
    """Save the training state every ``every`` iterations to ``dirname``; resume from it.

    Parameters
    ----------
    dirname : path-like
        Folder of the checkpoint files (created if needed). Use one folder per fit: the
        folds of a cross-validation need one each.
    every : int, default=1000
        Iterations between saves; the last iteration of every stage is always saved.
    resume : bool, default=False
        Start ``fit`` from the latest state saved in ``dirname`` by the same fit (same
        estimator parameters, device type and data). ``False``: ``dirname`` must not hold
        checkpoint files yet.

    See Also
    --------
    survseg.persistence.save_weights : share a *trained* network without pickles.

    Examples
    --------
    >>> from survseg.training import Checkpoint
    >>> model = DeepMTSRegressor(callbacks=[Checkpoint("runs/fold0", every=500)])  # doctest: +SKIP
    >>> model.fit(X, y)  # interrupted after 9,000 iterations  # doctest: +SKIP
    >>> model.set_params(callbacks=[Checkpoint("runs/fold0", every=500, resume=True)])  # doctest: +SKIP
    >>> model.fit(X, y)  # continues at iteration 9,001  # doctest: +SKIP
    """

    def __init__(self, dirname, *, every: int = 1000, resume: bool = False):
        self.dirname = dirname
        self.every = every
        self.resume = resume

    def __repr__(self):
        return f"Checkpoint({os.fspath(self.dirname)!r}, every={self.every}, resume={self.resume})"


class EarlyStopping:
    """Stop a stage once its validation score has not improved for ``patience`` validations.

    The score is the one that picks the kept weights (the estimator's ``monitor``: e.g.
    ``val_c_index`` or ``val_loss``), so training stops ``patience`` validations after the
    best one and ``fit`` keeps the best weights, as skorch's ``EarlyStopping`` with
    ``load_best=True``. Needs validation (``validation_fraction > 0``); the history ends at the
    stopping iteration. Works with :class:`Checkpoint` (a resumed fit stops where the
    uninterrupted one does).

    Parameters
    ----------
    patience : int, default=5
        Validations without a new best before stopping (with ``validate_every=200``,
        ``patience=5`` is 1,000 iterations).
    """

    def __init__(self, patience: int = 5):
        if isinstance(patience, bool) or not isinstance(patience, int | np.integer) or patience < 1:
            raise ValueError(f"EarlyStopping patience must be an integer >= 1; got {patience!r}.")
        self.patience = int(patience)

    def __repr__(self):
        return f"EarlyStopping(patience={self.patience})"


def fit_fingerprint(estimator, X, y, device=None) -> str:
    """SHA-256 naming one fit: estimator class and parameters (runtime-only ones left out),
    device type and training data (:func:`survseg.data.fingerprint.data_fingerprint`)."""
    from ..data.fingerprint import data_fingerprint, stable_description

    cls = type(estimator)
    params = {
        k: stable_description(v)
        for k, v in sorted(estimator.get_params(deep=False).items())
        if k not in _RUNTIME_PARAMS
    }
    y = np.asarray(y)
    text = json.dumps(
        {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "params": params,
            "device": None if device is None else torch.device(device).type,
            "data": data_fingerprint(np.asarray(X) if not hasattr(X, "dtype") else X, y),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def bind_checkpoints(callbacks, estimator, X, y, device=None) -> tuple:
    """``callbacks`` with each :class:`Checkpoint` bound to this fit, its folder checked now.

    Called at the start of ``fit`` so a folder that cannot be used fails before training.

    Raises
    ------
    FileExistsError
        ``resume=False`` and the folder already holds checkpoint files.
    ValueError
        ``resume=True`` and a checkpoint in the folder belongs to another fit; or bad
        ``every``.
    """
    callbacks = tuple(callbacks or ())
    if not any(isinstance(c, Checkpoint) for c in callbacks):
        return callbacks
    fingerprint = fit_fingerprint(estimator, X, y, device)
    return tuple(
        _BoundCheckpoint(c, fingerprint) if isinstance(c, Checkpoint) else c for c in callbacks
    )


def _file_stage(stage: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(stage))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _BoundCheckpoint:
    """A :class:`Checkpoint` for one fit: reads and writes that fit's stage files."""

    def __init__(self, checkpoint: Checkpoint, fingerprint: str | None):
        every = checkpoint.every
        if isinstance(every, bool) or not isinstance(every, int | np.integer) or every < 1:
            raise ValueError(f"Checkpoint every must be an integer >= 1; got {every!r}.")
        self.every, self.resume = int(every), bool(checkpoint.resume)
        self.fingerprint = fingerprint
        self.folder = Path(checkpoint.dirname)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"Checkpoint dirname {self.folder} is a file, not a folder.")
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.folder.glob("*" + _SUFFIX))
        if existing and not self.resume:
            raise FileExistsError(
                f"{self.folder} already holds checkpoint files ({', '.join(p.name for p in existing)}"
                "); they are not overwritten. Pass Checkpoint(..., resume=True) to continue "
                "that fit, or choose another folder."
            )
        for path in existing:
            meta = self._read_json(path)
            if meta.get("fingerprint") != fingerprint:
                raise ValueError(
                    f"{path} is a checkpoint of another fit (other estimator parameters, device "
                    "or training data) and is not overwritten; resume needs the same estimator "
                    "and data, or choose another folder."
                )

    def __call__(self, stage, iteration, row):  # the loop saves through save(); no-op here
        return None

    # ------------------------------------------------------------------ files
    def _paths(self, stage):
        name = _file_stage(stage)
        return self.folder / f"{name}.ckpt.pt", self.folder / f"{name}{_SUFFIX}"

    @staticmethod
    def _read_json(path: Path) -> dict:
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable survseg checkpoint ({exc}).") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a survseg checkpoint file.")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} has checkpoint format version {meta.get('format_version')!r}; this "
                f"survseg reads version {FORMAT_VERSION}."
            )
        return meta

    def save(self, stage: str, state: dict, meta: dict) -> None:
        """Write one stage's state (``state``: tensors; ``meta``: JSON-able), atomically."""
        from ..data.store import atomic_path

        pt, js = self._paths(stage)
        with atomic_path(pt) as tmp:
            torch.save(state, tmp)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "stage": str(stage),
            **meta,
            "tensors": pt.name,
            "tensors_sha256": _sha256(pt),
        }
        text = json.dumps(meta, indent=1)
        with atomic_path(js) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")

    def load(self, stage: str):
        """``(tensors, meta)`` of the stage's saved state, or ``None`` (none, or not resuming)."""
        if not self.resume:
            return None
        pt, js = self._paths(stage)
        if not js.exists():
            return None
        meta = self._read_json(js)
        if meta.get("fingerprint") != self.fingerprint or meta.get("stage") != str(stage):
            raise ValueError(f"{js} is a checkpoint of another fit or stage.")
        if not pt.exists() or _sha256(pt) != meta.get("tensors_sha256"):
            raise ValueError(
                f"{pt} is missing or does not match the hash recorded in {js.name} (a damaged "
                "or modified checkpoint)."
            )
        try:
            tensors = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
            raise ValueError(
                f"{pt} cannot be read as plain tensors ({type(exc).__name__}: {exc}); survseg "
                "never unpickles checkpoint files."
            ) from None
        return tensors, meta


# ---------------------------------------------------------------------- random sources
def source_states(sources) -> tuple[dict, list]:
    """``(tensors, JSON-able)`` states of numpy / torch generators and samplers."""
    tensors, plain = {}, []
    for k, src in enumerate(sources):
        if isinstance(src, np.random.Generator):
            plain.append({"numpy": src.bit_generator.state})
        elif isinstance(src, torch.Generator):
            tensors[f"generator{k}"] = src.get_state()
            plain.append({"torch": f"generator{k}"})
        elif hasattr(src, "state_dict"):
            plain.append({"sampler": src.state_dict()})
        else:
            raise TypeError(f"cannot save the state of random source {src!r}.")
    return tensors, plain


def restore_sources(sources, tensors: dict, plain: list) -> None:
    if len(plain) != len(sources):
        raise ValueError("the checkpoint holds the state of other random sources.")
    for src, entry in zip(sources, plain, strict=True):
        if isinstance(src, np.random.Generator) and "numpy" in entry:
            src.bit_generator.state = entry["numpy"]
        elif isinstance(src, torch.Generator) and "torch" in entry:
            src.set_state(tensors[entry["torch"]])
        elif hasattr(src, "load_state_dict") and "sampler" in entry:
            src.load_state_dict(entry["sampler"])
        else:
            raise ValueError(f"the checkpoint's random state {list(entry)} does not fit {src!r}.")
