"""The one training loop every survseg network uses.

The estimator owns the data (a batch iterator), the loss (``compute_loss``) and the
validation metric (``validate``); the loop owns everything else: backward pass, optimiser and
scheduler steps, mixed precision, divergence detection, history, progress bar, callbacks and
keeping the best checkpoint.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

__all__ = ["train", "TrainingResult", "cpu_state_dict"]


def cpu_state_dict(module: torch.nn.Module) -> dict:
    """A CPU copy of ``module.state_dict()`` (checkpoints that survive later updates)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


@dataclass
class TrainingResult:
    """What a call to :func:`train` leaves behind.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per iteration: ``iteration``, ``lr``, every loss part, and the validation
        metrics at the iterations where validation ran (NaN elsewhere).
    best_iteration : int
        Iteration of the kept checkpoint (the last one without validation).
    best_score : float
        Its monitored validation value (NaN without validation).
    """

    history: pd.DataFrame
    best_iteration: int
    best_score: float = math.nan


#: A loss this many times its running median (over the last ``_WINDOW`` iterations) has
#: exploded: training diverged even though the loss is still finite.
EXPLOSION_FACTOR = 1e6
_WINDOW = 50


def _diverged(it, parts, reason):
    values = {k: float(v.detach()) for k, v in parts.items()}
    return FloatingPointError(
        f"training diverged at iteration {it}: {reason} (loss parts {values}). Lower the "
        "learning rate `lr`, check that the inputs are normalised, or disable mixed precision "
        "(`amp=False`)."
    )


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def _split_callbacks(callbacks):
    """``(checkpoints bound to this run, plain callables)``."""
    from .checkpoint import Checkpoint, EarlyStopping, _BoundCheckpoint

    checkpoints, stoppers, plain = [], [], []
    for callback in callbacks or ():
        if isinstance(callback, Checkpoint):
            callback = _BoundCheckpoint(callback, None)
        if isinstance(callback, _BoundCheckpoint):
            checkpoints.append(callback)
        elif isinstance(callback, EarlyStopping):
            stoppers.append(callback)
        else:
            plain.append(callback)
    return checkpoints, stoppers, plain


def _latest_scores(rows) -> dict:
    """The validation scores (``val_*`` and others beyond the losses) of the last row that has them."""
    for row in reversed(rows):
        scores = {k: v for k, v in row.items() if k.startswith("val_")}
        if scores:
            return scores
    return {}


def _rng_tensors(device):
    out = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda_rng"] = torch.cuda.get_rng_state(device)
    return out


def _save(checkpoint, desc, it, max_iter, module, optimizer, scheduler, scaler, sources,
          device, rows, recent, best_iter, best_score, best_state, progress):  # fmt: skip
    from .checkpoint import source_states

    source_tensors, source_plain = source_states(sources)
    tensors = {
        "module": cpu_state_dict(module),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        **_rng_tensors(device),
        **source_tensors,
    }
    if best_state is not None:
        tensors["best"] = best_state
    meta = {
        "iteration": it,
        "max_iter": max_iter,
        "history": rows,
        "recent_losses": list(recent),
        "best_iteration": best_iter,
        "best_score": best_score,
        "random_sources": source_plain,
        **progress,
    }
    checkpoint.save(desc, tensors, meta)


def _restore(checkpoints, desc, module, optimizer, scheduler, scaler, sources, device):
    """Load the latest saved state of stage ``desc`` into the training objects, if any."""
    from .checkpoint import restore_sources

    found = [c.load(desc) for c in checkpoints]
    found = [f for f in found if f is not None]
    if not found:
        return None
    tensors, meta = max(found, key=lambda f: f[1]["iteration"])
    module.load_state_dict(tensors["module"], strict=True)
    optimizer.load_state_dict(tensors["optimizer"])
    if (scheduler is None) != (tensors["scheduler"] is None):
        raise ValueError(f"the checkpoint of stage {desc!r} was saved with another scheduler.")
    if scheduler is not None:
        scheduler.load_state_dict(tensors["scheduler"])
    scaler.load_state_dict(tensors["scaler"])
    torch.set_rng_state(tensors["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in tensors:
        torch.cuda.set_rng_state(tensors["cuda_rng"], device)
    restore_sources(sources, tensors, meta["random_sources"])
    recent = deque((float(v) for v in meta["recent_losses"]), maxlen=_WINDOW)
    best_state = tensors.get("best")
    return (
        int(meta["iteration"]) + 1,
        list(meta["history"]),
        recent,
        int(meta["best_iteration"]),
        float(meta["best_score"]),
        best_state,
        {"stale": int(meta.get("stale", 0)), "stopped": bool(meta.get("stopped", False))},
    )


def train(
    module: torch.nn.Module,
    batches: Iterator,
    compute_loss: Callable[[torch.nn.Module, object], dict],
    optimizer: torch.optim.Optimizer,
    *,
    max_iter: int,
    device: torch.device,
    scheduler=None,
    validate: Callable[[torch.nn.Module], dict] | None = None,
    validate_every: int | None = None,
    monitor: str | None = None,
    mode: str = "max",
    amp: bool = False,
    verbose: int = 0,
    desc: str = "training",
    callbacks: Sequence[Callable] = (),
    random_sources: Sequence = (),
) -> TrainingResult:
    """Train ``module`` for ``max_iter`` iterations.

    Parameters
    ----------
    module : torch.nn.Module
        Already on ``device``.
    batches : iterator
        Yields one batch per iteration (any object ``compute_loss`` understands).
    compute_loss : callable ``(module, batch) -> dict[str, Tensor]``
        Named scalar losses; the total to minimise is under ``"loss"``; every part is logged.
    optimizer : torch.optim.Optimizer
    max_iter : int
        Number of optimisation steps.
    device : torch.device
    scheduler : LR scheduler, optional
        Stepped once per iteration.
    validate : callable ``(module) -> dict[str, float]``, optional
        Run in eval mode under ``torch.no_grad`` every ``validate_every`` iterations and at the
        last iteration.
    validate_every : int, optional
        Defaults to ``max(1, max_iter // 20)``.
    monitor : str, optional
        Key of ``validate``'s result used to keep the best checkpoint; ``None`` keeps the last.
    mode : {"max", "min"}
        Whether a larger or a smaller monitored value is better.
    amp : bool
        Mixed precision on CUDA (bfloat16 where supported, else float16 with a gradient
        scaler); ignored on the CPU.
    verbose : int
        ``> 0`` shows a progress bar with the loss and, once validation has run, the latest
        validation scores (``val_c_index``, ``val_dice``, ...).
    desc : str
        Progress-bar label and the stage name given to ``callbacks``.
    callbacks : sequence of callables ``(stage, iteration, row) -> None``
        Called after each iteration with ``desc``, the iteration (from 1) and its history row
        (losses, ``lr`` and any validation scores). A callback may raise to stop training.
        A :class:`~survseg.training.checkpoint.Checkpoint` among them is not called: the loop
        saves the training state through it every ``every`` iterations and at the last one,
        and, with ``resume=True``, starts from the state it finds for ``desc``. An
        :class:`~survseg.training.checkpoint.EarlyStopping` ends training once ``monitor``
        has not improved for ``patience`` validations (the history then ends there).
    random_sources : sequence
        What ``batches`` draws from: numpy and torch generators and
        samplers with ``state_dict`` / ``load_state_dict`` (:class:`~survseg.training.
        sampling.RandomBatches`). A checkpoint saves and restores their states with torch's
        global random state, so a resumed run draws the batches, augmentations and dropout
        masks of an uninterrupted one.

    Returns
    -------
    TrainingResult
        The module ends holding the best checkpoint's weights.

    Raises
    ------
    FloatingPointError
        When training diverges: a loss NaN or infinite, or more than ``EXPLOSION_FACTOR``
        times the median of the last iterations' losses. The message names the iteration.
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1; got {max_iter}.")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min'; got {mode!r}.")
    if validate is not None and validate_every is None:
        validate_every = max(1, max_iter // 20)
    use_scaler = amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    sign = 1.0 if mode == "max" else -1.0
    best_state, best_iter, best_score = None, max_iter, math.nan
    rows = []
    recent = deque(maxlen=_WINDOW)
    checkpoints, stoppers, plain = _split_callbacks(callbacks)
    if stoppers and (validate is None or monitor is None):
        raise ValueError(
            "EarlyStopping watches the validation score that picks the kept weights: it needs "
            "validation (validation_fraction > 0) and a monitor."
        )
    progress = {"stale": 0, "stopped": False}  # validations without a new best; stopped early
    start = 1
    restored = _restore(
        checkpoints, desc, module, optimizer, scheduler, scaler, random_sources, device
    )
    if restored is not None:
        start, rows, recent, best_iter, best_score, best_state, progress = restored
        if start - 1 > max_iter:
            raise ValueError(
                f"the checkpoint of stage {desc!r} is at iteration {start - 1}, past max_iter="
                f"{max_iter}."
            )
    shown = _latest_scores(rows)
    bar = tqdm(
        range(start, max_iter + 1),
        desc=desc,
        disable=not verbose,
        leave=False,
        total=max_iter,
        initial=start - 1,
    )
    module.train()
    for it in bar:
        if progress["stopped"]:  # restored from a checkpoint of a run that stopped early
            break
        batch = next(batches)
        with _autocast(device, amp):
            parts = compute_loss(module, batch)
        loss = parts["loss"]
        value = float(loss.detach())
        if not math.isfinite(value):
            raise _diverged(it, parts, "the loss is not finite")
        if len(recent) >= 5:
            median = sorted(recent)[len(recent) // 2]
            if median > 0 and value > EXPLOSION_FACTOR * median:
                raise _diverged(
                    it,
                    parts,
                    f"the loss {value:.3g} exploded past {EXPLOSION_FACTOR:.0e} times "
                    f"its running median {median:.3g}",
                )
        recent.append(abs(value))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        row = {"iteration": it, "lr": optimizer.param_groups[0]["lr"]}
        validated = False
        row.update({k: float(v.detach()) for k, v in parts.items()})
        if scheduler is not None:
            scheduler.step()
        if validate is not None and (it % validate_every == 0 or it == max_iter):
            module.eval()
            with torch.no_grad():
                scores = validate(module)
            module.train()
            row.update({k: float(v) for k, v in scores.items()})
            shown = {k: float(v) for k, v in scores.items()}
            validated = True
            if monitor is not None:
                if monitor not in scores:
                    raise KeyError(
                        f"monitor {monitor!r} not among validation results {list(scores)}."
                    )
                value = float(scores[monitor])
                if math.isfinite(value) and (
                    math.isnan(best_score) or sign * value > sign * best_score
                ):
                    best_score, best_iter = value, it
                    best_state = cpu_state_dict(module)
                    progress["stale"] = 0
                else:
                    progress["stale"] += 1
                if any(progress["stale"] >= s.patience for s in stoppers):
                    progress["stopped"] = True
        rows.append(row)
        for callback in plain:
            callback(desc, it, row)
        for checkpoint in checkpoints:
            if it == max_iter or it % checkpoint.every == 0 or progress["stopped"]:
                _save(checkpoint, desc, it, max_iter, module, optimizer, scheduler, scaler,
                      random_sources, device, rows, recent, best_iter, best_score, best_state,
                      progress)  # fmt: skip
        if verbose:
            bar.set_postfix(
                {"loss": f"{row['loss']:.4f}", **{k: f"{v:.4f}" for k, v in shown.items()}},
                refresh=validated,  # always shown when new scores come in
            )
        if progress["stopped"]:
            break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    history = pd.DataFrame(rows)
    return TrainingResult(
        history=history,
        best_iteration=best_iter,
        best_score=best_score if best_state is not None else math.nan,
    )
