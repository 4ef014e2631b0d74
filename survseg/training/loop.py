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
        Iteration of the kept checkpoint (the last one without a monitored validation); its
        monitored value is ``history.loc[history.iteration == best_iteration, monitor]``.
    """

    history: pd.DataFrame
    best_iteration: int


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
        ``> 0`` shows a progress bar with the running loss.
    desc : str
        Progress-bar label and the stage name given to ``callbacks``.
    callbacks : sequence of callables ``(stage, iteration, row) -> None``
        Called after each iteration with ``desc``, the iteration (from 1) and its history row
        (losses, ``lr`` and any validation scores). A callback may raise to stop training.

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
    bar = tqdm(range(1, max_iter + 1), desc=desc, disable=not verbose, leave=False)
    module.train()
    for it in bar:
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
        row.update({k: float(v.detach()) for k, v in parts.items()})
        if scheduler is not None:
            scheduler.step()
        if validate is not None and (it % validate_every == 0 or it == max_iter):
            module.eval()
            with torch.no_grad():
                scores = validate(module)
            module.train()
            row.update({k: float(v) for k, v in scores.items()})
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
        rows.append(row)
        for callback in callbacks:
            callback(desc, it, row)
        if verbose:
            bar.set_postfix(loss=f"{row['loss']:.4f}")
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    history = pd.DataFrame(rows)
    return TrainingResult(history=history, best_iteration=best_iter)
