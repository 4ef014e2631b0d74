import numpy as np
import pytest
import SimpleITK as sitk

from survseg.preprocess import register_rigid, resample_to_reference
from tests.preprocess.conftest import make_patient, sample


@pytest.fixture(autouse=True)
def one_itk_thread():
    """ITK's multi-threaded metric sums make registration vary in the last digits from run
    to run (more under load); one thread makes these tests deterministic."""
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    yield
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


BLOBS = [
    ((6.0, 0.0, -4.0), 6.0, 800.0),
    ((-8.0, 10.0, 2.0), 4.0, -600.0),
    ((2.0, -12.0, 10.0), 5.0, 400.0),
    ((-10.0, -4.0, -12.0), 3.0, 1000.0),
]


def blobs(shift=(0.0, 0.0, 0.0), angle_z=0.0):
    """Asymmetric Gaussian blobs; the anatomy is rotated by angle_z about the origin, then
    moved by shift (mm)."""
    c, s = np.cos(angle_z), np.sin(angle_z)

    def f(x, y, z):
        # physical point -> anatomy coordinates: inverse of (rotate, then shift)
        x0, y0, z0 = x - shift[0], y - shift[1], z - shift[2]
        u, v = c * x0 + s * y0, -s * x0 + c * y0
        out = np.full(x.shape, -50.0)
        for (cx, cy, cz), r, value in BLOBS:
            out += value * np.exp(-((u - cx) ** 2 + (v - cy) ** 2 + (z0 - cz) ** 2) / (2 * r * r))
        return out

    return sample(f, (32, 32, 32), (2.0, 2.0, 2.0), (-31.0, -31.0, -31.0))


def test_recovers_a_known_translation():
    shift = np.array([3.0, -2.0, 1.5])
    transform = register_rigid(
        blobs(), blobs(shift), shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0)
    )
    # template point p maps to the patient point p + shift
    np.testing.assert_allclose(transform.GetTranslation(), shift, atol=0.2)
    np.testing.assert_allclose(transform.GetParameters()[:3], 0.0, atol=0.01)
    np.testing.assert_allclose(transform.TransformPoint((0.0, 0.0, 0.0)), shift, atol=0.2)


def test_recovers_a_small_rotation():
    angle = np.deg2rad(4.0)
    transform = register_rigid(
        blobs(),
        blobs(angle_z=angle),
        shrink_factors=(2, 1),
        smoothing_sigmas=(1.0, 0.0),
        initialization=None,
    )
    assert transform.GetAngleZ() == pytest.approx(angle, abs=np.deg2rad(0.5))


def test_registered_patient_overlays_the_template():
    template = make_patient()["ct"]
    moved = make_patient(shift=(4.0, -3.0, 3.0), seed=1)
    transform = register_rigid(
        template, moved["ct"], shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0)
    )
    np.testing.assert_allclose(transform.GetTranslation(), (4.0, -3.0, 3.0), atol=0.5)
    mask = resample_to_reference(
        moved["mask"], template, transform=transform, interpolator="nearest"
    )
    reference = sitk.GetArrayFromImage(make_patient()["mask"]) == 1
    aligned = sitk.GetArrayFromImage(mask) == 1
    dice = 2 * (reference & aligned).sum() / (reference.sum() + aligned.sum())
    assert dice > 0.85  # 0.34 without registration


def test_bad_parameters():
    image = blobs()
    with pytest.raises(ValueError, match="sampling_percentage"):
        register_rigid(image, image, sampling_percentage=0.0)
    with pytest.raises(ValueError, match="one entry per pyramid level"):
        register_rigid(image, image, shrink_factors=(2, 1), smoothing_sigmas=(1.0,))
    with pytest.raises(ValueError, match="initialization must be"):
        register_rigid(image, image, initialization="landmarks")
