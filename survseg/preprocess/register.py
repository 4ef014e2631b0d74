"""Rigid registration of a patient to a template patient (DeepMTS, Sec. 4.2 step 3).

Mattes mutual information, a 3D Euler (rotation + translation) transform, regular-step
gradient descent and a coarse-to-fine image pyramid, all from SimpleITK's
``ImageRegistrationMethod``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

__all__ = ["register_rigid"]

_INITIALIZATIONS = {
    "geometry": sitk.CenteredTransformInitializerFilter.GEOMETRY,
    "moments": sitk.CenteredTransformInitializerFilter.MOMENTS,
}


def register_rigid(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    n_bins: int = 50,
    sampling_percentage: float = 0.25,
    learning_rate: float = 1.0,
    min_step: float = 1e-3,
    max_iter: int = 200,
    shrink_factors=(4, 2, 1),
    smoothing_sigmas=(2.0, 1.0, 0.0),
    initialization: str | None = "geometry",
    random_state: int = 0,
) -> sitk.Euler3DTransform:
    """Find the rigid transform that aligns ``moving`` (a patient's CT) to ``fixed`` (the template).

    Parameters
    ----------
    fixed : SimpleITK.Image
        Template image; the result maps its points into ``moving``'s space.
    moving : SimpleITK.Image
        The patient's image (any grid; it need not be resampled first).
    n_bins : int
        Histogram bins of the Mattes mutual information.
    sampling_percentage : float in (0, 1]
        Fraction of fixed-image voxels sampled (randomly) per metric evaluation.
    learning_rate, min_step : float
        Initial and minimal step of the regular-step gradient descent (mm-scaled via
        ``SetOptimizerScalesFromPhysicalShift``).
    max_iter : int
        Iterations per pyramid level.
    shrink_factors, smoothing_sigmas : sequence
        The pyramid: downsampling factor and Gaussian sigma (mm) per level, coarse to fine.
    initialization : {'geometry', 'moments', None}
        Start by aligning the image centres (``'geometry'``) or centres of mass
        (``'moments'``); ``None`` starts from the identity.
    random_state : int
        Seed of the metric's voxel sampling. It fixes the sampled voxels, not the result:
        ITK sums the metric over threads, so the last digits, and sometimes the iteration at
        which the optimiser stops, vary from run to run unless ITK runs on one thread
        (``SimpleITK.ProcessObject.SetGlobalDefaultNumberOfThreads(1)``; SimpleITK's
        registration overview, "Reproducibility").

    Returns
    -------
    transform : SimpleITK.Euler3DTransform
        Maps template points to patient points: ``resample_to_reference(patient, template,
        transform=transform)`` puts the patient on the template grid.
    """
    if not 0 < sampling_percentage <= 1:
        raise ValueError(f"sampling_percentage must be in (0, 1]; got {sampling_percentage}.")
    if len(shrink_factors) != len(smoothing_sigmas):
        raise ValueError("shrink_factors and smoothing_sigmas need one entry per pyramid level.")
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    if initialization is None:
        transform = sitk.Euler3DTransform()
        transform.SetCenter(
            fixed.TransformContinuousIndexToPhysicalPoint((np.asarray(fixed.GetSize()) - 1) / 2.0)
        )
    elif initialization in _INITIALIZATIONS:
        transform = sitk.Euler3DTransform(
            sitk.CenteredTransformInitializer(
                fixed, moving, sitk.Euler3DTransform(), _INITIALIZATIONS[initialization]
            )
        )
    else:
        raise ValueError(
            f"initialization must be 'geometry', 'moments' or None; got {initialization!r}."
        )
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(n_bins))
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(float(sampling_percentage), int(random_state))
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=float(learning_rate),
        minStep=float(min_step),
        numberOfIterations=int(max_iter),
        relaxationFactor=0.5,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([int(f) for f in shrink_factors])
    method.SetSmoothingSigmasPerLevel([float(s) for s in smoothing_sigmas])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    if not np.isfinite(transform.GetParameters()).all():
        raise RuntimeError("rigid registration diverged (non-finite transform parameters).")
    return transform
