"""Device choice and reproducible seeding without touching the caller's global RNG state."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["resolve_device", "seeded", "make_generators", "seed_from"]


def resolve_device(device) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a ``torch.device``
    into a device.

    ``"auto"`` picks CUDA when available, else the CPU; an Apple GPU is used only when asked
    for (``"mps"``). Asking for CUDA or MPS on a machine without it raises a ``ValueError``
    instead of failing later inside torch.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}."
            ) from exc
    else:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}."
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={device!r} was requested but MPS (Apple GPU) is not available here."
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device type {dev.type!r}; use 'cpu', 'cuda' or 'mps'.")
    return dev


def seed_from(random_state) -> int:
    """A 31-bit integer seed drawn from an int, ``None`` or a ``RandomState``."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None):
    """Run a block with torch's global RNG seeded, then restore the caller's RNG state.

    Network initialisation and dropout use torch's global generator; forking it keeps
    ``random_state`` reproducible without flipping global state behind the user's back.
    """
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def make_generators(seed: int, device: torch.device):
    """A numpy ``Generator`` (batch sampling) and a torch ``Generator`` on ``device`` (augmentation)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed + 1)
    return rng, gen
