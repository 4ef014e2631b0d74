"""A synthetic head-and-neck cancer PET/CT cohort with known survival risk."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter
from sklearn.utils import Bunch, check_random_state
from sksurv.util import Surv

from ..data.cohort import volumes
from ._anatomy import AIR_HU, make_grid, paint_anatomy
from ._lesions import paint_lesion
from ._survival import calibrate_study_length, censor, weibull_times

__all__ = ["make_petct_cohort", "DEFAULT_COEF", "TUMOUR_TERMS", "OUTSIDE_TERMS", "CLINICAL_TERMS"]

#: Log-hazard coefficients of the generating model, per unit of each covariate.
DEFAULT_COEF = {
    "tumour_size": 0.45,  # per SD of log tumour volume
    "tumour_uptake": 0.30,  # per SD of log peak SUV
    "tumour_heterogeneity": 0.35,  # per SD of the heterogeneity score
    "node_burden": 1.30,  # per unit of log(1 + total nodal volume in ml)
    "age": 0.025,  # per year
    "hpv": -0.70,  # HPV-positive (oropharyngeal) cancers do better
}
TUMOUR_TERMS = ("tumour_size", "tumour_uptake", "tumour_heterogeneity")
OUTSIDE_TERMS = ("node_burden",)
CLINICAL_TERMS = ("age", "hpv")
_CENTRE = {"node_burden": np.log1p(3.0), "age": 60.0, "hpv": 0.65}  # population means

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
_CT_NOISE_HU, _PET_NOISE = 12.0, 0.2  # PET noise SD is _PET_NOISE * sqrt(SUV)
_SITES = np.array([[12.0, -2.0, 15.0], [0.0, -14.0, 6.0]])  # tonsil, base of tongue (x: side)


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
    return_truth=False,
):
    r"""Generate a synthetic head-and-neck cancer PET/CT cohort with survival outcomes.

    Each patient has a CT (HU) and an FDG PET (SUV) of the neck with anatomy (skin, fat,
    muscle, airway, cervical spine, mandible, skull base and brain, salivary glands, tonsils,
    thyroid, great vessels), a primary oropharyngeal tumour with its mask, and cervical lymph
    nodes that are *not* in the mask. Survival depends on the tumour *and* on the nodes, so a
    model that sees only the masked tumour cannot reach the best possible C-index.

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
    return_truth : bool, default=False
        Also return the ground truth.

    Returns
    -------
    X : ndarray, structured, shape (n_patients,)
        A survseg cohort (:func:`survseg.data.cohort.volumes`) with fields ``'pet'`` (SUV) and
        ``'ct'`` (HU), float32 of ``shape``; ``'mask'`` (uint8, primary tumour); clinical
        fields ``'age'`` (years, float64), ``'sex'`` (1 = male), ``'hpv'`` (1 = positive) and
        ``'tnm_stage'`` (ordinal 1-4, simplified AJCC 7th edition for oropharynx, from the
        tumour diameter and the nodes), all int64.
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
        - ``node_mask``: uint8 array ``(n_patients, D, H, W)``, the lymph nodes;
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

    **Images.** CT: anatomy in HU, partial-volume blur (Gaussian, 0.4 voxel), white noise of
    12 HU. PET: activity :math:`A` in SUV plus noise :math:`0.2\sqrt{A}` (after blurring),
    convolved with a Gaussian PSF of ``pet_fwhm_mm``.

    **Survival.** The log-hazard is

    .. math::

        \eta = \underbrace{\beta_s z_s + \beta_u z_u + \beta_h z_h}_{\text{tumour (in mask)}}
             + \underbrace{\beta_n \left(\log(1 + V_N / \mathrm{ml}) - c_n\right)}_{\text{nodes
             (outside mask)}}
             + \underbrace{\beta_a (\mathrm{age} - 60) + \beta_p (\mathrm{hpv} - 0.65)}_{
             \text{clinical}},

    and event times follow a Weibull proportional-hazards model with shape :math:`k = 1.2`,

    .. math:: h(t \mid \eta, \varepsilon) = h_0(t)\, e^{\eta + \varepsilon},\quad
              S_0(t) = \exp\!\left(-\ln 2\, (t / 60)^{k}\right),\quad
              \varepsilon \sim N(0, \sigma_f^2).

    Censoring is independent of :math:`T` given the covariates: staggered uniform entry into
    a study of length :math:`\tau`, :math:`C = \tau (0.2 + 0.8 V)`, :math:`V \sim U(0, 1)`,
    with :math:`\tau` solving :math:`\frac{1}{n}\sum_i P(T_i \le C_i \mid \eta_i +
    \varepsilon_i) = \text{event\_rate}`. If no event occurs (tiny cohorts), :math:`\tau` is
    extended until the first one is observed, so ``y`` always has an event.
    ``tnm_stage`` is a noisy summary of tumour size and nodes with no effect of its own.

    Examples
    --------
    >>> from survseg.datasets import make_petct_cohort
    >>> X, y = make_petct_cohort(n_patients=12, shape=(32, 32, 32), random_state=0)
    >>> X["pet"].shape, X["mask"].dtype, bool(y["event"].any())
    ((12, 32, 32, 32), dtype('uint8'), True)
    """
    n, shape = _check_int("n_patients", n_patients, 2), _check_shape(shape)
    event_rate = _check_real("event_rate", event_rate, 0.0, 1.0, closed=False)
    node_range = _check_node_range(n_nodes)
    beta = _check_coef(coef)
    frailty_sd = _check_real("frailty_sd", frailty_sd, 0.0, np.inf)
    noise = _check_real("noise", noise, 0.0, np.inf)
    pet_fwhm_mm = _check_real("pet_fwhm_mm", pet_fwhm_mm, 0.0, np.inf)
    if voxel_size_mm is None:
        spacing = _FOV_MM / max(shape)
    else:
        spacing = _check_real("voxel_size_mm", voxel_size_mm, 0.0, np.inf, closed=False)
    if not isinstance(return_truth, bool | np.bool_):
        raise TypeError(f"return_truth must be a bool, got {type(return_truth).__name__}.")

    seeds = _seed_sequence(random_state).spawn(n + 1)
    rng = np.random.default_rng(seeds[0])

    # clinical covariates (HECKTOR-like oropharyngeal cohort)
    age = np.round(np.clip(rng.normal(60.0, 9.0, n), 30.0, 90.0))
    sex = (rng.uniform(size=n) < 0.83).astype(np.int64)
    hpv = (rng.uniform(size=n) < 0.65).astype(np.int64)

    # latent tumour and nodal scores -> lesion parameters
    z = rng.standard_normal((n, 4)) @ np.linalg.cholesky(_LATENT_CORR).T
    z_size, z_uptake, z_het, z_node = z.T
    radius = _TUMOUR_RADIUS_MM * np.exp(_TUMOUR_RADIUS_SD * z_size)
    suv = _TUMOUR_SUV * np.exp(_TUMOUR_SUV_SD * z_uptake)
    texture = np.minimum(0.2 * np.exp(0.45 * z_het), 0.8)
    necrosis = 0.8 / (1.0 + np.exp(-(1.5 * z_het + 0.8 * z_size - 1.5)))
    lobes = 0.15 + 0.25 / (1.0 + np.exp(-z_het))
    k_nodes = rng.integers(node_range[0], node_range[1] + 1, n)
    node_ml = np.where(k_nodes > 0, _NODE_ML * np.exp(_NODE_ML_SD * z_node), 0.0)

    covariates = pd.DataFrame(
        {
            "tumour_size": z_size,
            "tumour_uptake": z_uptake,
            "tumour_heterogeneity": z_het,
            "node_burden": np.log1p(node_ml),
            "age": age,
            "hpv": hpv.astype(float),
        }
    )
    centred = covariates - pd.Series({k: _CENTRE.get(k, 0.0) for k in covariates.columns})
    parts = {k: beta[k] * centred[k].to_numpy() for k in covariates.columns}
    risk_tumour = sum(parts[k] for k in TUMOUR_TERMS)
    risk_nodes = sum(parts[k] for k in OUTSIDE_TERMS)
    risk_clinical = sum(parts[k] for k in CLINICAL_TERMS)
    risk = risk_tumour + risk_nodes + risk_clinical
    frailty = frailty_sd * rng.standard_normal(n)

    times = weibull_times(risk + frailty, rng)
    tau = calibrate_study_length(risk + frailty, event_rate)
    event, observed, censoring, tau = censor(times, tau, rng)

    grid = make_grid(shape, spacing)
    X = _empty_cohort(n, shape)
    pet, ct, mask = X["pet"], X["ct"], X["mask"]  # views: patients are written in place
    node_mask = np.zeros((n, *shape), dtype=bool)
    node_diam = np.zeros(n)  # largest node's equivalent diameter (mm)
    side = rng.choice([-1.0, 1.0], n)
    site = rng.integers(0, 2, n)
    psf_sigma = pet_fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / spacing
    pet_noise = noise * _PET_NOISE / _blur_noise_gain(psf_sigma)  # SD before the PSF blur
    ct_sigma, ct_noise = 0.4, noise * _CT_NOISE_HU
    stats = np.zeros((n, 5))  # tumour voxels, SUVmax, SUVmean, SUV CV, node voxels
    for i in range(n):
        prng = np.random.default_rng(seeds[i + 1])
        ct_i, act, body, bone, size, shift = paint_anatomy(grid, prng)

        centre = size * (_SITES[site[i]] * [1.0, 1.0, side[i]] + prng.normal(0, [4, 3, 3])) + shift
        centre = _inside_fov(grid, centre, 0.6 * radius[i])
        r_t = max(radius[i], 1.6 * spacing)
        box, inside = paint_lesion(
            grid, ct_i, act, body & ~bone, prng, centre=centre, radius=r_t, suv=suv[i],
            texture=texture[i], necrosis=necrosis[i], lobes=lobes[i], hu=48.0,
        )  # fmt: skip
        mask[i][box] = inside

        if k_nodes[i]:
            fractions = prng.dirichlet(np.full(k_nodes[i], 2.0))
            radii = np.cbrt(3.0 * node_ml[i] * 1000.0 * fractions / (4.0 * np.pi))
            node_diam[i] = 2.0 * radii.max()
            allowed = body & ~bone & (mask[i] == 0)
            for r_n in np.maximum(radii, 1.2 * spacing):
                c_n = _node_centre(grid, prng, size, shift, side[i], centre, r_t, r_n)
                box, inside = paint_lesion(
                    grid, ct_i, act, allowed, prng, centre=c_n, radius=r_n,
                    suv=5.0 * np.exp(prng.normal(0.0, 0.25)), texture=0.1,
                    necrosis=0.6 * float(hpv[i] == 1 and prng.uniform() < 0.3), lobes=0.0, hu=38.0,
                )  # fmt: skip
                node_mask[i][box] |= inside
                allowed[box] &= ~inside

        act += pet_noise * np.sqrt(act + 0.05) * prng.standard_normal(shape, dtype=np.float32)
        pet[i] = np.maximum(gaussian_filter(act, psf_sigma) if psf_sigma > 0 else act, 0.0)
        ct_i = gaussian_filter(ct_i, ct_sigma)
        ct_i += ct_noise * prng.standard_normal(shape, dtype=np.float32)
        ct[i] = np.maximum(ct_i, AIR_HU - 24.0)  # scanners clip near -1024 HU
        in_tumour = pet[i][mask[i].view(bool)].astype(np.float64)
        stats[i] = (
            in_tumour.size,
            in_tumour.max(),
            in_tumour.mean(),
            in_tumour.std() / max(in_tumour.mean(), 1e-12),
            np.count_nonzero(node_mask[i]),
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
            "n_nodes": k_nodes,
        }
    )
    diameter = 2.0 * np.cbrt(3.0 * measurements["tumour_volume_ml"].to_numpy() * 1000 / (4 * np.pi))
    t_cat = np.digitize(diameter, [20.0, 40.0, 55.0]) + 1
    n_cat = np.where(
        k_nodes == 0,
        0,
        np.where(node_diam > 60, 3, np.where((k_nodes > 1) | (node_diam > 30), 2, 1)),
    )
    measurements["t_category"], measurements["n_category"] = t_cat, n_cat
    stage = np.select(
        [(t_cat == 4) | (n_cat >= 2), (t_cat == 3) | (n_cat == 1), t_cat == 2], [4, 3, 2], 1
    ).astype(np.int64)

    X["age"], X["sex"], X["hpv"], X["tnm_stage"] = age, sex, hpv, stage
    y = Surv.from_arrays(event=event, time=observed, name_event="event", name_time="time")
    if not return_truth:
        return X, y
    truth = Bunch(
        risk=risk,
        risk_tumour=risk_tumour,
        risk_nodes=risk_nodes,
        risk_clinical=risk_clinical,
        frailty=frailty,
        covariates=covariates,
        coef=dict(beta),
        centre={k: _CENTRE.get(k, 0.0) for k in covariates.columns},
        measurements=measurements,
        node_mask=node_mask.view(np.uint8),
        event_time=times,
        censoring_time=censoring,
        study_length=tau,
        spacing_mm=spacing,
    )
    return X, y, truth


# ----------------------------------------------------------------------------- helpers


def _seed_sequence(random_state) -> np.random.SeedSequence:
    """A SeedSequence drawn from an int, None, RandomState or Generator (advancing it)."""
    if isinstance(random_state, np.random.Generator):
        entropy = random_state.integers(0, 2**32, size=4, dtype=np.uint64)
    else:
        entropy = check_random_state(random_state).randint(0, 2**32, size=4, dtype=np.uint64)
    return np.random.SeedSequence([int(e) for e in entropy])


def _empty_cohort(n, shape) -> np.ndarray:
    """An all-zero cohort of ``n`` patients with the fields this generator fills.

    The record layout comes from :func:`survseg.data.cohort.volumes` (on a one-patient
    template), so it is exactly the data model's; the images are then written patient by
    patient instead of being stacked and copied.
    """
    one = np.zeros((1, *shape), dtype=np.float32)
    template = volumes(
        pet=one, ct=one, mask=one.astype(np.uint8), age=np.zeros(1),
        sex=np.zeros(1, np.int64), hpv=np.zeros(1, np.int64), tnm_stage=np.zeros(1, np.int64),
    )  # fmt: skip
    return np.zeros(n, dtype=template.dtype)


def _blur_noise_gain(sigma: float) -> float:
    """Factor by which a Gaussian blur of ``sigma`` voxels scales white-noise SD (3D)."""
    if sigma <= 0:
        return 1.0
    delta = np.zeros(2 * int(np.ceil(4 * sigma)) + 3)
    delta[len(delta) // 2] = 1.0
    w = gaussian_filter(delta, sigma)
    return float(np.sum(w**2) ** 1.5)


def _inside_fov(grid, centre, margin):
    """Clip a point so that a ball of ``margin`` mm around it stays in the field of view."""
    out = np.empty(3)
    for a in range(3):
        lo, hi = grid.extent(a)
        lo, hi = lo + margin, hi - margin
        out[a] = np.clip(centre[a], lo, hi) if lo < hi else 0.5 * (lo + hi)
    return out


def _node_centre(grid, rng, size, shift, side, tumour_centre, r_tumour, r_node):
    """Draw a node centre on the jugular chain (levels II-IV), clear of the primary tumour."""
    for _ in range(30):
        s = side if rng.uniform() < 0.8 else -side
        template = np.array([rng.uniform(-50, 10), rng.uniform(-14, 10), s * rng.uniform(28, 42)])
        c = _inside_fov(grid, size * template + shift, r_node)
        if np.linalg.norm(c - tumour_centre) > 1.3 * r_tumour + r_node + 4.0:
            break
    return c


def _check_int(name, value, minimum):
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_real(name, value, lo, hi, closed=True):
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    value = float(value)
    ok = (lo <= value <= hi) if closed else (lo < value < hi)
    if not ok or np.isnan(value) or (np.isinf(value)):
        brackets = "[]" if closed else "()"
        raise ValueError(
            f"{name} must be finite and in {brackets[0]}{lo}, {hi}{brackets[1]}; got {value}."
        )
    return value


def _check_shape(shape):
    if not isinstance(shape, Sequence | np.ndarray) or len(shape) != 3:
        raise ValueError(f"shape must be a tuple of 3 ints (D, H, W), got {shape!r}.")
    out = []
    for s in shape:
        if isinstance(s, bool | np.bool_) or not isinstance(s, numbers.Integral):
            raise TypeError(f"shape must hold ints, got {shape!r}.")
        if s < 16:
            raise ValueError(f"each side of shape must be >= 16 voxels, got {tuple(shape)}.")
        out.append(int(s))
    return tuple(out)


def _check_node_range(n_nodes):
    pair = (n_nodes, n_nodes) if isinstance(n_nodes, numbers.Integral) else n_nodes
    try:
        lo, hi = pair
    except (TypeError, ValueError):
        raise ValueError(f"n_nodes must be an int or a pair (lo, hi), got {n_nodes!r}.") from None
    for v in (lo, hi):
        if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral):
            raise TypeError(f"n_nodes must hold ints, got {n_nodes!r}.")
    if not 0 <= lo <= hi <= 6:
        raise ValueError(f"n_nodes must satisfy 0 <= lo <= hi <= 6, got {n_nodes!r}.")
    return int(lo), int(hi)


def _check_coef(coef):
    beta = dict(DEFAULT_COEF)
    if coef is None:
        return beta
    if not isinstance(coef, Mapping):
        raise TypeError(f"coef must be a dict of coefficients, got {type(coef).__name__}.")
    unknown = sorted(set(coef) - set(DEFAULT_COEF))
    if unknown:
        raise ValueError(f"unknown coef key(s) {unknown}; valid keys are {sorted(DEFAULT_COEF)}.")
    for k, v in coef.items():
        beta[k] = _check_real(f"coef[{k!r}]", v, -np.inf, np.inf, closed=False)
    return beta
