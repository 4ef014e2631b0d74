r"""RadiomicsCox: radiomics features + Lasso-Cox, the papers' traditional benchmark, as one estimator."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..base import SurvivalMixin
from ..data.cohort import clinical_fields
from ..data.validation import check_cohort, check_survival
from ..radiomics.extractor import RadiomicsExtractor
from .lasso_cox import LassoCoxCV
from .pipelines import make_survival_pipeline

__all__ = ["RadiomicsCox"]


class RadiomicsCox(SurvivalMixin, BaseEstimator):
    r"""Radiomics + LASSO-Cox survival model on a cohort of images and tumour masks.

    ``fit`` runs, on the training patients only:

    1. pyradiomics extraction (:class:`~survseg.radiomics.RadiomicsExtractor`; cached, so
       cross-validation extracts each patient once);
    2. median imputation of missing values, removal of constant features;
    3. removal of redundant features, :math:`|\rho_{\text{Spearman}}| > 0.7`
       (:class:`~survseg.radiomics.CorrelationFilter`);
    4. standardisation (z-scores), with the optional clinical covariates joining here;
    5. a LASSO-penalised Cox model whose penalty is chosen by an inner cross-validation of the
       C-index (:class:`~survseg.estimators.lasso_cox.LassoCoxCV`, scikit-survival's
       ``CoxnetSurvivalAnalysis`` with ``l1_ratio=1``).

    ``predict`` returns the linear predictor (risk; higher = earlier event), ``score`` the
    C-index, ``predict_survival_function`` Breslow survival curves.

    Parameters
    ----------
    extractor : RadiomicsExtractor or transformer, optional
        Feature extraction; ``None`` means ``RadiomicsExtractor()`` (the papers' 1,456
        features). It is cloned at ``fit``; set its parameters with ``extractor__<name>``.
    regions : None or sequence of {"tumour", "nodes"}, default=None
        Regions the features describe (the extractor's ``regions``): ``("tumour",)`` the
        papers' model, ``("tumour", "nodes")`` adds the lymph nodes (``X['nodes']``) and
        their burden (count, volume, total uptake, SUVmax; 0 for patients without nodes).
        ``None`` keeps the extractor's setting.
    shells : None or sequence of float, default=None
        Peritumoral shells (mm) described as extra regions (the extractor's ``shells``),
        e.g. ``(3, 6)``; ``None`` keeps the extractor's setting.
    clinical : None, "all" or sequence of str, default=None
        Clinical fields of ``X`` added as covariates (they skip the correlation filter and
        are penalised like the radiomics features).
    correlation_threshold : float in [0, 1], default=0.7
    correlation_order : {"column", "concordance"}, default="column"
        Which feature of a correlated group survives (see ``CorrelationFilter``).
    n_alphas : int, default=100
        Length of the penalty path.
    alpha_min_ratio : float or "auto", default=0.01
        Smallest penalty of the path relative to the largest (see ``LassoCoxCV``).
    cv : int, CV splitter or iterable of (train, test) indices, default=5
        Inner folds for the penalty.
    scoring : {"cindex", "partial_likelihood"}, default="cindex"
        Inner-fold score of a penalty (see :class:`~survseg.estimators.lasso_cox.LassoCoxCV`;
        ``"partial_likelihood"`` is steadier when the training folds hold few events).
    max_iter : int, default=100000
    random_state : int, RandomState or None
        Inner-fold shuffling.
    verbose : int, default=0
        ``> 0`` shows the radiomics extraction's progress bar (patients x modalities still
        to extract; cached ones are served at once), in ``fit`` and ``predict``. It is set
        on the extractor when the extractor has a ``verbose`` parameter.

    Attributes
    ----------
    pipeline_ : sklearn.pipeline.Pipeline
        The fitted steps (``"features"``, ``"select"``, ``"model"``).
    extractor_ : RadiomicsExtractor
        The fitted extractor.
    model_ : LassoCoxCV
        The fitted Cox model.
    feature_names_ : ndarray of str
        The features entering the Cox model (after the filters).
    coef_ : pandas.Series
        Cox coefficients per standardised feature (index: ``feature_names_``).
    selected_features_ : list of str
        Features with a non-zero coefficient, by decreasing absolute coefficient.
    alpha_ : float
        The chosen penalty.
    unique_times_ : ndarray
        Event times of the training data.

    See Also
    --------
    survseg.estimators.pipelines.make_radiomics_pipeline : the same model as a Pipeline.

    References
    ----------
    .. [1] Meng et al., "DeepMTS", IEEE JBHI 2022, Sec. 4.3-4.4 ("Radiomics features +
       Lasso-Cox").
    .. [2] Meng et al., "AdaMSS", npj Precision Oncology 2024, Appendix A.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from survseg.estimators.radiomics_cox import RadiomicsCox
    >>> model = RadiomicsCox(extractor__bin_width={"pet": 0.25, "ct": 25})  # doctest: +SKIP
    >>> cross_val_score(RadiomicsCox(), X, y, cv=5)                         # doctest: +SKIP
    >>> two_region = RadiomicsCox(regions=("tumour", "nodes"), shells=(3, 6))  # doctest: +SKIP
    """

    _parameter_constraints = {
        "extractor": [None, HasMethods(["fit", "transform"])],
        "regions": [None, list, tuple],
        "shells": [None, list, tuple, np.ndarray],
        "clinical": [None, StrOptions({"all"}), list, tuple],
        "correlation_threshold": [Interval(numbers.Real, 0, 1, closed="both")],
        "correlation_order": [StrOptions({"column", "concordance"})],
        "n_alphas": [Interval(numbers.Integral, 1, None, closed="left")],
        "alpha_min_ratio": [
            Interval(numbers.Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "cv": ["cv_object"],
        "scoring": [StrOptions({"cindex", "partial_likelihood"})],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        extractor=None,
        *,
        regions=None,
        shells=None,
        clinical=None,
        correlation_threshold=0.7,
        correlation_order="column",
        n_alphas=100,
        alpha_min_ratio=0.01,
        cv=5,
        scoring="cindex",
        max_iter=100000,
        random_state=None,
        verbose=0,
    ):
        self.extractor = extractor
        self.regions = regions
        self.shells = shells
        self.clinical = clinical
        self.correlation_threshold = correlation_threshold
        self.correlation_order = correlation_order
        self.n_alphas = n_alphas
        self.alpha_min_ratio = alpha_min_ratio
        self.cv = cv
        self.scoring = scoring
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y):
        """Extract, select and fit the Lasso-Cox model on the training cohort.

        Parameters
        ----------
        X : cohort (structured ndarray)
            Images and tumour masks (the ``'nodes'`` field too when the regions include the
            nodes, and the clinical fields if ``clinical`` is set).
        y : structured ndarray
            Survival outcomes (``sksurv.util.Surv``).

        Returns
        -------
        self
        """
        self._validate_params()
        clinical = self.clinical
        if clinical == "all":
            clinical = clinical_fields(check_cohort(X, check_values=False))
            if not clinical:
                raise ValueError("clinical='all' but X has no clinical (scalar) field.")
        check_cohort(X, clinical=list(clinical) if clinical else None, check_values=False)
        event, time = check_survival(y, len(X))
        extractor = RadiomicsExtractor() if self.extractor is None else clone(self.extractor)
        region_params = {
            k: v for k, v in (("regions", self.regions), ("shells", self.shells)) if v is not None
        }
        if region_params:
            unknown = sorted(set(region_params) - set(extractor.get_params(deep=False)))
            if unknown:
                raise ValueError(
                    f"{unknown} were given but the extractor {type(extractor).__name__} has no "
                    "such parameter; use RadiomicsExtractor or set them on your extractor."
                )
            extractor.set_params(**region_params)
        if self.verbose and "verbose" in extractor.get_params(deep=False):
            extractor.set_params(verbose=self.verbose)
        head = LassoCoxCV(
            n_alphas=self.n_alphas,
            alpha_min_ratio=self.alpha_min_ratio,
            cv=self.cv,
            scoring=self.scoring,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )
        self.pipeline_ = make_survival_pipeline(
            extractor,
            head,
            clinical=list(clinical) if clinical else None,
            correlation_threshold=self.correlation_threshold,
            correlation_order=self.correlation_order,
        ).fit(X, y)
        features = self.pipeline_.named_steps["features"]
        self.extractor_ = features.transformer_list[0][1] if clinical else features
        self.model_ = self.pipeline_.named_steps["model"]
        self.feature_names_ = np.asarray(self.pipeline_[:-1].get_feature_names_out(), dtype=object)
        self.coef_ = pd.Series(self.model_.coef_, index=list(self.feature_names_), name="coef")
        nonzero = self.coef_[self.coef_ != 0]
        self.selected_features_ = list(
            nonzero.abs().sort_values(ascending=False, kind="stable").index
        )
        self.alpha_ = self.model_.alpha_
        self.unique_times_ = self.model_.unique_times_
        return self

    def _features(self, X):
        check_is_fitted(self, "pipeline_")
        return self.pipeline_[:-1].transform(X)

    def predict(self, X):
        """Risk score (Cox linear predictor; higher = earlier event)."""
        features = self._features(X)
        return self.model_.predict(features)

    def predict_survival_function(self, X, return_array=False):
        """Survival functions: sksurv ``StepFunction``\\ s, or an array over
        ``unique_times_`` when ``return_array`` is true."""
        features = self._features(X)
        return self.model_.predict_survival_function(features, return_array=return_array)

    def predict_cumulative_hazard_function(self, X, return_array=False):
        """Cumulative hazard functions, as :meth:`predict_survival_function`."""
        features = self._features(X)
        return self.model_.predict_cumulative_hazard_function(features, return_array=return_array)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags
