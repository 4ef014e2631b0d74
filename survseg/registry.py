"""One model registry for the CLI (:func:`survseg.commands.make_model`) and the demo
(:func:`survseg.demo.demo_models`): every model of the papers' comparison by name, with the
papers' settings or CPU-sized ones, for images in physical units (SUV, HU) or normalised ones,
and the dataset's voxel spacing given to every model's radiomics (RadiomicsCox, the radiomics
pipelines and AdaMSS's own, through their ``extractor``)."""

from __future__ import annotations

__all__ = [
    "CPU_NETWORKS",
    "MODEL_NAMES",
    "NORMALISED_BINS",
    "PAPER_INTENSITY",
    "PHYSICAL_BINS",
    "SMALL_DATA_HEAD",
    "ADAMSS_SMALL_DATA_HEAD",
    "make_model",
]

MODEL_NAMES = (
    "ClinicalCox",
    "RadiomicsCox",
    "RadiomicsCox-nodes",
    "Radiomics+RSF",
    "Radiomics+DeepSurv",
    "Radiomics+ICARE",
    "DeepMTS",
    "DeepMTS-small-data",
    "DeepMTS-features+LassoCox",
    "AdaMSS",
    "AdaMSS-small-data",
)

#: Intensity normalisation of the papers, done by the deep models on images kept in SUV/HU.
PAPER_INTENSITY = {
    "DeepMTS": {"pet": "zscore", "ct": "zscore"},
    "AdaMSS": {"pet": "zscore", "ct": "window"},
}
#: Radiomics discretisation: fixed bin widths in SUV and HU on physical images (IBSI's
#: recommendation for PET; 0.25 SUV and 25 HU give tens of grey levels in the tumours), a
#: fixed bin count on normalised images. AdaMSS extracts from its own inputs with 32 bins.
PHYSICAL_BINS = {"bin_width": {"pet": 0.25, "ct": 25.0}}
NORMALISED_BINS = {"settings": {"binCount": 32}}

#: Narrower networks than the papers' (which train for hours on a GPU), for a CPU; trained at
#: ten times the papers' learning rates to learn something in a few hundred iterations.
CPU_NETWORKS = {
    "DeepMTS": dict(
        channels=(8, 16, 32, 64),
        encoder_convs=(2, 2, 3, 3),
        decoder_convs=(3, 2, 2),
        feature_channels=(4, 8, 16, 32),
        dense_block_layers=(2, 4, 8),
        dense_transition_channels=(8, 16, 32),
    ),
    "AdaMSS": dict(
        single_channels=(4, 8, 16, 32),
        fuse_channels=(8, 16, 32, 64),
        n_convs=(1, 2, 2, 2),
        hidden_features=32,
    ),
}
_CPU_DEEP = {
    "DeepMTS": dict(lr=1e-3),
    "AdaMSS": dict(lr=(1e-3, 5e-4)),
}
#: DeepMTS's survival head for 50-400 patients: features of its own segmentation (volume,
#: uptake per region), z-scored (``benchmarks/heads/``), and a ridge Cox model refitted on
#: them after training instead of the batch-trained risk layer (issue 14); chosen on the
#: development cohorts (seeds 1 and 11).
SMALL_DATA_HEAD = {
    "survival_inputs": "segmentation",
    "feature_scaling": "standardize",
    "survival_head": "cox",
}
#: The same for AdaMSS: stage I, then a Cox model on its segmentation features (no stage II,
#: no radiomics: radiomics of masks predicted on the training patients themselves lowered the
#: C-index in development, and cross-fitting them costs ``radiomics_cv`` more stage-I fits),
#: with DeepMTS's batches of 8 patients instead of the paper's 2: in a few hundred iterations
#: stage I then sees four times as many patients (development seed 1, 150 patients, 32^3,
#: 300 iterations: node Dice 0.40 -> 0.71, tumour Dice 0.85 -> 0.90, within-fold C 0.771 ->
#: 0.806, each fit about twice as long), and a focal loss weighting the foreground voxels
#: 0.75 instead of the paper's 0.25: at 0.25 the node channel stayed dead (Dice 0) in two of
#: three folds of development seed 11 (and 0.24 on evaluation seed 2026), at 0.75 it learned
#: in all three (node Dice 0.25 -> 0.75; ``benchmarks/README.md``).
ADAMSS_SMALL_DATA_HEAD = {
    **SMALL_DATA_HEAD,
    "radiomics": False,
    "batch_size": 8,
    "focal_alpha": 0.75,
}
_FAST_ADAMSS_RADIOMICS = dict(feature_classes=["firstorder", "glcm", "shape"])


def make_model(
    name: str,
    params=None,
    *,
    settings: str = "paper",
    units: str = "physical",
    spacing=None,
    clinical=None,
    max_iter=None,
    fast_radiomics: bool = False,
    random_state=0,
):
    """A fresh estimator of the papers' comparison by name.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    params : dict, optional
        Applied last with ``set_params`` (nested names such as ``extractor__bin_width``).
    settings : {"paper", "cpu"}
        ``"paper"``: the papers' networks and training (the estimators' defaults). ``"cpu"``:
        :data:`CPU_NETWORKS`, ten times the learning rates, and for AdaMSS's radiomics the
        original image's first-order, GLCM and shape features only.
    units : {"physical", "normalised"}
        The images' intensities: ``"physical"`` (PET in SUV, CT in HU) gives the deep models
        the papers' per-patient normalisation (:data:`PAPER_INTENSITY`) and the radiomics
        baselines bin widths in SUV and HU; ``"normalised"`` uses the images as they are and
        a fixed bin count.
    spacing : float or sequence of 3 float, optional
        Voxel size in mm (D, H, W) of the dataset, given to every radiomics extractor
        (shape and texture features are physical); ``None``: the extractor's default, 1 mm.
    clinical : sequence of str, optional
        Clinical fields given to every model.
    max_iter : int, optional
        Training iterations of the deep models (per stage for AdaMSS).
    fast_radiomics : bool
        The original image only (no wavelets) for the radiomics baselines.
    random_state : int

    Returns
    -------
    estimator
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from .estimators import (
        AdaMSSRegressor,
        ClinicalColumns,
        DeepMTSRegressor,
        RadiomicsCox,
        make_radiomics_pipeline,
        make_survival_pipeline,
    )
    from .radiomics import RadiomicsExtractor

    if units not in ("physical", "normalised"):
        raise ValueError(f"units must be 'physical' or 'normalised'; got {units!r}.")
    if settings not in ("paper", "cpu"):
        raise ValueError(f"settings must be 'paper' or 'cpu'; got {settings!r}.")
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose from {list(MODEL_NAMES)}.")
    physical = units == "physical"
    cpu = settings == "cpu"
    clinical = list(clinical) if clinical else None
    where = {} if spacing is None else {"spacing": spacing}

    def extractor():
        bins = PHYSICAL_BINS if physical else NORMALISED_BINS
        images = {"image_types": ("original",)} if fast_radiomics else {}
        return RadiomicsExtractor(**bins, **images, **where)

    def deep(key, **head):
        kw = dict(random_state=random_state, clinical=clinical, **head)
        kw["intensity"] = PAPER_INTENSITY[key] if physical else None
        if max_iter is not None:
            kw["max_iter"] = max_iter
        if cpu:
            kw.update(network_params=CPU_NETWORKS[key], **_CPU_DEEP[key])
        if key == "DeepMTS":
            return DeepMTSRegressor(**kw)
        if not head.get("radiomics", True):
            return AdaMSSRegressor(**kw)
        fast = dict(_FAST_ADAMSS_RADIOMICS, image_types=("original",)) if cpu else {}
        # an explicit extractor, so that ``extractor__<name>`` (the spacing) reaches it
        return AdaMSSRegressor(
            extractor=RadiomicsExtractor(**NORMALISED_BINS, **fast, **where), **kw
        )

    def pipeline(head):
        return make_radiomics_pipeline(
            head, extractor(), clinical=clinical, random_state=random_state
        )

    factories = {
        # the reference every image model must beat: Cox on the clinical covariates alone
        "ClinicalCox": lambda: make_pipeline(
            ClinicalColumns(clinical or "all"), StandardScaler(), CoxPHSurvivalAnalysis()
        ),
        "RadiomicsCox": lambda: RadiomicsCox(
            extractor(), clinical=clinical, random_state=random_state
        ),
        # two-region radiomics: the tumour, the lymph nodes and their burden (X needs 'nodes')
        "RadiomicsCox-nodes": lambda: RadiomicsCox(
            extractor(), clinical=clinical, regions=("tumour", "nodes"), random_state=random_state
        ),
        "Radiomics+RSF": lambda: pipeline("rsf"),
        "Radiomics+DeepSurv": lambda: pipeline("deepsurv"),
        # the HECKTOR 2022 prognosis winner: sign-averaged radiomics (Rebaud et al. 2023)
        "Radiomics+ICARE": lambda: pipeline("icare"),
        "DeepMTS": lambda: deep("DeepMTS"),
        "DeepMTS-small-data": lambda: deep("DeepMTS", **SMALL_DATA_HEAD),
        "DeepMTS-features+LassoCox": lambda: make_survival_pipeline(
            deep("DeepMTS"), "lasso_cox", clinical=clinical, random_state=random_state
        ),
        "AdaMSS": lambda: deep("AdaMSS"),
        "AdaMSS-small-data": lambda: deep("AdaMSS", **ADAMSS_SMALL_DATA_HEAD),
    }
    model = factories[name]()
    if params:
        model.set_params(**params)
    return model
