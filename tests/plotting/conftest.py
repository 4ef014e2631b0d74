"""Fixtures for the plotting tests: the Agg backend and a small synthetic PET/CT cohort."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: no display in CI

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def petct():
    """Three synthetic head-and-neck patients at 32^3 (images, tumour masks, outcomes)."""
    from survseg.datasets import make_petct_cohort

    return make_petct_cohort(n_patients=3, shape=(32, 32, 32), random_state=0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _render_png(fig, path) -> np.ndarray:
    """Save ``fig`` as a PNG at ``path`` and read it back as an RGB array in [0, 1]."""
    fig.savefig(path, dpi=80)
    return mpimg.imread(path)[..., :3]


def _assert_not_blank(rgb: np.ndarray, min_ink: float) -> None:
    """The image has varied pixels and a non-trivial fraction that is not white."""
    assert rgb.std() > 0.02, f"image is nearly uniform (pixel SD {rgb.std():.4f})"
    ink = float((rgb.min(axis=-1) < 0.9).mean())
    assert ink > min_ink, f"only {ink:.3%} of the pixels are not white"


@pytest.fixture
def check_png(tmp_path):
    """``check_png(fig, name, min_ink=0.02)``: write ``fig`` to a PNG, assert it is not blank.

    Set ``SURVSEG_PLOT_DIR`` to keep the PNGs for looking at them.
    """
    import os

    out = os.environ.get("SURVSEG_PLOT_DIR")

    def check(fig, name, min_ink=0.02):
        folder = tmp_path if out is None else os.path.join(out)
        os.makedirs(folder, exist_ok=True)
        rgb = _render_png(fig, os.path.join(folder, f"{name}.png"))
        _assert_not_blank(rgb, min_ink)
        return rgb

    return check
