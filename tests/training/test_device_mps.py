"""device="mps" (Apple GPU) is accepted where torch has MPS, refused clearly elsewhere."""

import pytest
import torch

from survseg.training.device import resolve_device


def test_mps_accepted_where_torch_has_it(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")
    assert resolve_device(torch.device("mps")).type == "mps"


def test_mps_refused_where_absent(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="MPS .Apple GPU. is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match="'mps'"):
        resolve_device("tpu")
