"""matplotlib is optional: lazy import and a clear error when it is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_importing_survseg_plotting_does_not_import_matplotlib():
    code = "import sys, survseg.plotting; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    import numpy as np

    from survseg.plotting import plot_overlay

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install survseg\[plot\]"):
        plot_overlay(np.zeros((4, 4, 4)))


def test_save_figure_writes_and_closes(tmp_path):
    import matplotlib.pyplot as plt

    from survseg.plotting import save_figure

    fig = plt.figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    assert not plt.fignum_exists(fig.number)
