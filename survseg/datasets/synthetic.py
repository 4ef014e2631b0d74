"""A synthetic head-and-neck cancer PET/CT cohort with known survival risk."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state
from sksurv.util import Surv

from ..data.cohort import volumes
from ._anatomy import make_grid
from ._checks import check_coef, check_int, check_node_range, check_real, check_shape
from ._clinical import draw_clinical, tnm_stage
from ._patient import PatientPainter
from ._survival import (
    CENTRE,
    CLINICAL_TERMS,
    DEFAULT_COEF,
    OUTSIDE_TERMS,
    TUMOUR_TERMS,
    calibrate_study_length,
    censor,
    linear_predictor,
    weibull_times,
)

__all__ = ["make_petct_cohort", "DEFAULT_COEF", "TUMOUR_TERMS", "OUTSIDE_TERMS", "CLINICAL_TERMS"]

# Latent tumour/node scores (size, uptake, heterogeneity, nodal volume): mildly correlated,
# as bigger tumours tend to be hotter, more heterogeneous and to have spread further.
_LATENT_CORR = np.array(
    [
        [1.0, 0.3, 0.3, 0.25],
        [0.3, 1.0, 0.2, 0.1],
        [0.3, 0.2, 1.0, 0.1],
        [0.25, 0.1, 0.1, 1.0],
    ]
)
_FOV_MM = 160.0  # field of view along the longest axis when voxel_size_mm is None
_TUMOUR_RADIUS_MM, _TUMOUR_RADIUS_SD = 14.0, 0.28  # median ~11 ml, 95% range ~2-60 ml
_TUMOUR_SUV, _TUMOUR_SUV_SD = 9.0, 0.30
_NODE_ML, _NODE_ML_SD = 3.0, 0.8


def make_petct_cohort(
    n_patients=100,
    shape=(48, 48, 48),
    *,
    random_state=None,
    event_rate=0.3,
    n_nodes=(1, 3),
    coef=None,
    frailty_sd=0.3,
    noise=1.0,
    pet_fwhm_mm=7.0,
    voxel_size_mm=None,
    return_nodes=True,
    return_truth=False,
):
    r"""Generate a synthetic head-and-neck cancer PET/CT cohort with survival outcomes.

    Each patient has a CT (HU) and an FDG PET (SUV) of the neck with anatomy (skin, fat,
    muscle, airway, cervical spine, mandible, skull base and brain, salivary glands, tonsils,
    thyroid, great vessels), a primary oropharyngeal tumour with its mask, and cervical lymph
    nodes that are *not* in the tumour mask but have their own (``'nodes'``, as HECKTOR's label
    2). Survival depends on the tumour *and* on the nodes, so a model that sees only the masked
    tumour cannot reach the best possible C-index.

    Parameters
    ----------
    n_patients : int, default=100
        Number of patients (at least 2).
    shape : tuple of 3 int, default=(48, 48, 48)
        Volume shape ``(D, H, W)`` = (inferior-superior, anterior-posterior, right-left); each
        at least 16.
    random_state : int, RandomState, Generator or None
        Seed; the same seed gives the same cohort.
    event_rate : float in (0, 1), default=0.3
        Expected fraction of patients with an observed event; censoring is calibrated to it.
    n_nodes : int or (int, int), default=(1, 3)
        Number of involved lymph nodes per patient, drawn uniformly from ``[lo, hi]`` (0 to 6).
    coef : dict, optional
        Overrides of :data:`DEFAULT_COEF` (keys ``tumour_size``, ``tumour_uptake``,
        ``tumour_heterogeneity``, ``node_burden``, ``age``, ``hpv``); e.g.
        ``{"node_burden": 0}`` makes the nodes irrelevant to survival.
    frailty_sd : float, default=0.3
        Standard deviation of the unobserved log-hazard noise :math:`\varepsilon`.
    noise : float, default=1.0
        Scale of the CT and PET image noise (0 = noise-free).
    pet_fwhm_mm : float, default=7.0
        Full width at half maximum of the PET point-spread function (partial-volume blur).
    voxel_size_mm : float, optional
        Isotropic voxel size; by default the longest axis spans 160 mm.
    return_nodes : bool, default=True
        Give ``X`` a ``'nodes'`` field with the lymph-node masks. ``False`` gives the cohort
        of earlier versions (tumour mask only; the nodes are still in the images and in
        ``truth.node_mask``).
    return_truth : bool, default=False
        Also return the ground truth.

    Returns
    -------
    X : ndarray, structured, shape (n_patients,)
        A survseg cohort (:func:`survseg.data.cohort.volumes`) with fields ``'pet'`` (SUV) and
        ``'ct'`` (HU), float32 of ``shape``; ``'mask'`` (uint8, primary tumour); ``'nodes'``
        (uint8, every painted lymph-node voxel; all zero for a patient without nodes; only
        with ``return_nodes``); clinical
        fields ``'age'`` (years, float64), ``'sex'`` (1 = male), ``'hpv'`` (1 = positive) and
        ``'tnm_stage'`` (ordinal 1-4, simplified AJCC 7th edition for oropharynx, from the
        tumour diameter and the nodes), all int64; ``'spacing'``, the voxel size in mm
        (3 floats, D, H, W) that the radiomics extractors read.
    y : ndarray, structured
        ``sksurv.util.Surv.from_arrays(event, time)``, time in months.
    truth : sklearn.utils.Bunch
        Only if ``return_truth``:

        - ``risk``: the true linear predictor :math:`\eta` (without frailty); the best risk
          score any model can learn;
        - ``risk_tumour``, ``risk_nodes``, ``risk_clinical``: its parts (tumour terms, nodal
          term, clinical terms; they sum to ``risk``);
        - ``frailty``: :math:`\varepsilon`;
        - ``covariates``: DataFrame of the covariates :math:`x_j` of the linear predictor;
        - ``coef``: the coefficients :math:`\beta_j` used; ``centre``: the :math:`c_j`;
        - ``measurements``: DataFrame measured on the images: ``tumour_volume_ml``,
          ``tumour_voxels``, ``suv_max``, ``suv_mean``, ``suv_cv`` (coefficient of variation of
          PET in the mask, a heterogeneity measure), ``node_volume_ml``, ``node_voxels``,
          ``n_nodes``, ``t_category``, ``n_category``;
        - ``node_mask``: uint8 array ``(n_patients, D, H, W)``, the lymph nodes (equal to
          ``X['nodes']``);
        - ``event_time``, ``censoring_time``: :math:`T` and :math:`C` (months);
        - ``study_length``: :math:`\tau`; ``spacing_mm``: the voxel size.

    Notes
    -----
    **Tumour and nodes.** Latent scores :math:`(z_s, z_u, z_h, z_n) \sim N(0, R)` with
    pairwise correlations 0.1-0.3 set the primary tumour's mean radius
    :math:`14\,e^{0.28 z_s}` mm, its peak SUV :math:`9\,e^{0.3 z_u}`, its heterogeneity
    (uptake texture amplitude :math:`0.2\,e^{0.45 z_h}`, necrotic core depth
    :math:`0.8\,\sigma(1.5 z_h + 0.8 z_s - 1.5)`, lobulation) and the total nodal volume
    :math:`V_N = 3\,e^{0.8 z_n}` ml, split among the :math:`K` nodes by a Dirichlet(2) draw
    (:math:`V_N = 0` when :math:`K = 0`). Nodes sit along the jugular chain (levels II-IV),
    ipsilateral with probability 0.8, apart from the primary.

    **Images.** Isotropic voxels; axis 0 runs inferior to superior (shoulders to the lower
    brain), axis 1 anterior to posterior, axis 2 across. CT: anatomy in HU (air -1000, fat
    -90, soft tissue ~40, marrow 250, cortical bone 800-1100), partial-volume blur (Gaussian,
    0.4 voxel), white noise of SD 12 HU. PET: activity :math:`A` in SUV (soft tissue ~0.9,
    marrow ~1.6, salivary glands and tonsils 1.6-2.8, brain ~7, tumour up to its peak SUV)
    convolved with a Gaussian PSF of ``pet_fwhm_mm``, with spatially correlated noise of SD
    :math:`0.2\sqrt{A}` after the blur.

    **Survival.** The log-hazard is

    .. math::

        \eta = \underbrace{\beta_s z_s + \beta_u z_u + \beta_h z_h}_{\text{tumour (in mask)}}
             + \underbrace{\beta_n \left(\log(1 + V_N / \mathrm{ml}) - c_n\right)}_{\text{nodes
             (outside mask)}}
             + \underbrace{\beta_a (\mathrm{age} - 60) + \beta_p (\mathrm{hpv} - 0.65)}_{
             \text{clinical}},

    with :data:`DEFAULT_COEF` :math:`\beta_s = 0.45, \beta_u = 0.30, \beta_h = 0.35,
    \beta_n = 1.3, \beta_a = 0.025` per year, :math:`\beta_p = -0.7` and
    :math:`c_n = \log 4`. The nodal term uses the *drawn* total nodal volume :math:`V_N`;
    the painted node mask measures it up to discretisation (a node smaller than a voxel
    keeps its centre voxel, nodes are clipped by bone and the body outline), so its volume in
    ml, :math:`\text{voxels} \times \text{spacing}^3 / 1000`, is close to but not exactly
    :math:`V_N`, and a patient with :math:`K = 0` has an empty ``'nodes'`` mask and
    :math:`\log(1 + V_N) = 0`. Event times follow a Weibull proportional-hazards model with shape
    :math:`k = 1.2`,

    .. math:: h(t \mid \eta, \varepsilon) = h_0(t)\, e^{\eta + \varepsilon},\quad
              S_0(t) = \exp\!\left(-\ln 2\, (t / 60)^{k}\right),\quad
              \varepsilon \sim N(0, \sigma_f^2).

    Censoring is independent of :math:`T` given the covariates: staggered uniform entry into
    a study of length :math:`\tau`, :math:`C = \tau (0.2 + 0.8 V)`, :math:`V \sim U(0, 1)`,
    with :math:`\tau` solving :math:`\frac{1}{n}\sum_i P(T_i \le C_i \mid \eta_i +
    \varepsilon_i) = \text{event\_rate}`. If no event occurs (tiny cohorts), :math:`\tau` is
    extended until the first one is observed, so ``y`` always has an event.
    ``tnm_stage`` is a coarse summary of tumour size and nodes with no effect of its own.

    With the defaults (three cohorts of 500-1000 patients at 48^3), Harrell's C of
    :math:`\eta` was 0.77-0.81 and that of its tumour and clinical parts alone 0.04-0.06
    lower: the nodes outside the mask carry prognostic information that a tumour-only model
    cannot use.

    Examples
    --------
    >>> from survseg.datasets import make_petct_cohort
    >>> X, y = make_petct_cohort(n_patients=12, shape=(32, 32, 32), random_state=0)
    >>> X["pet"].shape, X["mask"].dtype, bool(y["event"].any())
    ((12, 32, 32, 32), dtype('uint8'), True)
    """
    n, shape = check_int("n_patients", n_patients, 2), check_shape(shape)
    event_rate = check_real("event_rate", event_rate, 0.0, 1.0, closed=False)
    node_range = check_node_range(n_nodes)
    beta = check_coef(coef, DEFAULT_COEF)
    frailty_sd = check_real("frailty_sd", frailty_sd, 0.0)
    noise = check_real("noise", noise, 0.0)
    pet_fwhm_mm = check_real("pet_fwhm_mm", pet_fwhm_mm, 0.0)
    if voxel_size_mm is None:
        spacing = _FOV_MM / max(shape)
    else:
        spacing = check_real("voxel_size_mm", voxel_size_mm, 0.0, np.inf, closed=False)
    for name, flag in (("return_nodes", return_nodes), ("return_truth", return_truth)):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}.")

    seeds = _seed_sequence(random_state).spawn(n + 1)  # cohort-level, then one per patient
    rng = np.random.default_rng(seeds[0])
    age, sex, hpv = draw_clinical(rng, n)
    lesions = _draw_lesions(rng, n, node_range)
    covariates = pd.DataFrame(
        {
            "tumour_size": lesions["z_size"],
            "tumour_uptake": lesions["z_uptake"],
            "tumour_heterogeneity": lesions["z_het"],
            "node_burden": np.log1p(lesions["node_ml"]),
            "age": age,
            "hpv": hpv.astype(float),
        }
    )
    parts = linear_predictor(covariates, beta)
    risk = parts["tumour"] + parts["nodes"] + parts["clinical"]
    frailty = frailty_sd * rng.standard_normal(n)
    times = weibull_times(risk + frailty, rng)
    tau = calibrate_study_length(risk + frailty, event_rate)
    event, observed, censoring, tau = censor(times, tau, rng)

    X = _empty_cohort(n, shape, bool(return_nodes))
    node_mask = np.zeros((n, *shape), dtype=bool)
    painter = PatientPainter(make_grid(shape, spacing), noise, pet_fwhm_mm)
    stats = np.zeros((n, 6))
    for i in range(n):
        stats[i] = painter(
            np.random.default_rng(seeds[i + 1]),
            {k: v[i] for k, v in lesions.items()},
            cystic_nodes=bool(hpv[i]),
            out=(X["pet"][i], X["ct"][i], X["mask"][i], node_mask[i]),
        )

    voxel_ml = spacing**3 / 1000.0
    measurements = pd.DataFrame(
        {
            "tumour_volume_ml": stats[:, 0] * voxel_ml,
            "tumour_voxels": stats[:, 0].astype(np.int64),
            "suv_max": stats[:, 1],
            "suv_mean": stats[:, 2],
            "suv_cv": stats[:, 3],
            "node_volume_ml": stats[:, 4] * voxel_ml,
            "node_voxels": stats[:, 4].astype(np.int64),
            "n_nodes": lesions["n_nodes"],
        }
    )
    diameter = 2.0 * np.cbrt(3.0 * measurements["tumour_volume_ml"].to_numpy() * 1000 / (4 * np.pi))
    t_cat, n_cat, stage = tnm_stage(diameter, lesions["n_nodes"], stats[:, 5])
    measurements["t_category"], measurements["n_category"] = t_cat, n_cat
    X["age"], X["sex"], X["hpv"], X["tnm_stage"] = age, sex, hpv, stage
    if return_nodes:
        X["nodes"] = node_mask
    X["spacing"] = spacing  # isotropic, mm: radiomics measures in mm without being told
    y = Surv.from_arrays(event=event, time=observed, name_event="event", name_time="time")
    if not return_truth:
        return X, y
    truth = Bunch(
        risk=risk,
        risk_tumour=parts["tumour"],
        risk_nodes=parts["nodes"],
        risk_clinical=parts["clinical"],
        frailty=frailty,
        covariates=covariates,
        coef=beta,
        centre=dict(CENTRE),
        measurements=measurements,
        node_mask=node_mask.view(np.uint8),
        event_time=times,
        censoring_time=censoring,
        study_length=tau,
        spacing_mm=spacing,
    )
    return X, y, truth


def _draw_lesions(rng, n, node_range) -> dict:
    """Per-patient lesion parameters from correlated latent scores (see Notes above)."""
    z = rng.standard_normal((n, 4)) @ np.linalg.cholesky(_LATENT_CORR).T
    z_size, z_uptake, z_het, z_node = z.T
    n_nodes = rng.integers(node_range[0], node_range[1] + 1, n)
    return {
        "z_size": z_size,
        "z_uptake": z_uptake,
        "z_het": z_het,
        "radius": _TUMOUR_RADIUS_MM * np.exp(_TUMOUR_RADIUS_SD * z_size),
        "suv": _TUMOUR_SUV * np.exp(_TUMOUR_SUV_SD * z_uptake),
        "texture": np.minimum(0.2 * np.exp(0.45 * z_het), 0.8),
        "necrosis": 0.8 / (1.0 + np.exp(-(1.5 * z_het + 0.8 * z_size - 1.5))),
        "lobes": 0.15 + 0.25 / (1.0 + np.exp(-z_het)),
        "n_nodes": n_nodes,
        "node_ml": np.where(n_nodes > 0, _NODE_ML * np.exp(_NODE_ML_SD * z_node), 0.0),
        "side": rng.choice([-1.0, 1.0], n),
    }


def _seed_sequence(random_state) -> np.random.SeedSequence:
    """A SeedSequence drawn from an int, None, RandomState or Generator (advancing it)."""
    if isinstance(random_state, np.random.Generator):
        entropy = random_state.integers(0, 2**32, size=4, dtype=np.uint64)
    else:
        entropy = check_random_state(random_state).randint(0, 2**32, size=4, dtype=np.uint64)
    return np.random.SeedSequence([int(e) for e in entropy])


def _empty_cohort(n, shape, nodes: bool) -> np.ndarray:
    """An all-zero cohort of ``n`` patients with the fields this generator fills.

    The record layout comes from :func:`survseg.data.cohort.volumes` (on a one-patient
    template), so it is exactly the data model's; the images are then written patient by
    patient instead of being stacked and copied.
    """
    one = np.zeros((1, *shape), dtype=np.float32)
    template = volumes(
        pet=one, ct=one, mask=one.astype(np.uint8), nodes=one.astype(np.uint8) if nodes else None,
        age=np.zeros(1),
        sex=np.zeros(1, np.int64), hpv=np.zeros(1, np.int64), tnm_stage=np.zeros(1, np.int64),
        spacing=1.0,
    )  # fmt: skip
    return np.zeros(n, dtype=template.dtype)
