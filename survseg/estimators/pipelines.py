"""Feature-based survival pipelines: any feature transformer + the papers' selection + a head.

The papers' feature-based baselines (DeepMTS Sec. 4.4, AdaMSS Table I) are all

    features (radiomics or deep) [+ clinical covariates]
      -> drop redundant features (Spearman > 0.7)  -> standardise
      -> Lasso-Cox | random survival forest | DeepSurv | ICARE (HECKTOR 2022 winner)

:func:`make_survival_pipeline` builds that as a scikit-learn ``Pipeline`` around any
transformer that maps a cohort to a DataFrame of named features (``RadiomicsExtractor``, a deep
feature extractor, ...); :func:`make_radiomics_pipeline` gives the ready-made radiomics ones.
Pipelines produce pandas output throughout, so the selected feature names can be read off
``pipeline[:-1].get_feature_names_out()``.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from ..data.cohort import clinical_fields
from ..data.validation import check_cohort
from ..radiomics.correlation import CorrelationFilter
from ..radiomics.extractor import RadiomicsExtractor
from .deepsurv import DeepSurv
from .icare import BaggedIcareSurvival
from .lasso_cox import LassoCoxCV

__all__ = [
    "ClinicalColumns",
    "make_feature_selector",
    "make_survival_pipeline",
    "make_radiomics_pipeline",
    "CLINICAL_PREFIX",
]

#: Prefix of clinical covariate columns, so the selector can route them around the filter.
CLINICAL_PREFIX = "clinical_"


class ClinicalColumns(TransformerMixin, BaseEstimator):
    """Clinical (scalar) fields of a cohort as a DataFrame with ``clinical_<field>`` columns.

    Parameters
    ----------
    columns : "all" or sequence of str, default="all"
        Fields to take; ``"all"`` means every scalar field of ``X`` at ``fit``.

    Attributes
    ----------
    columns_ : list of str
        The fields taken.
    """

    def __init__(self, columns="all"):
        self.columns = columns

    def fit(self, X, y=None):
        """Resolve and check the fields (they must exist and be finite)."""
        if isinstance(self.columns, str) and self.columns != "all":
            raise ValueError(
                f"columns must be 'all' or a list of field names; got the string {self.columns!r}."
            )
        check_cohort(X, check_values=False)
        cols = clinical_fields(X) if self.columns == "all" else list(self.columns)
        if not cols:
            raise ValueError("no clinical field to take: X has no scalar field.")
        check_cohort(X, clinical=cols, check_values=False)
        self.columns_ = cols
        return self

    def transform(self, X):
        """The fields as floats, one row per patient."""
        check_is_fitted(self, "columns_")
        check_cohort(X, clinical=self.columns_, check_values=False)
        return pd.DataFrame(
            {CLINICAL_PREFIX + c: np.asarray(X[c], dtype=np.float64) for c in self.columns_}
        )

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "columns_")
        return np.asarray([CLINICAL_PREFIX + c for c in self.columns_], dtype=object)


def make_feature_selector(correlation_threshold=0.7, *, correlation_order="column", scale=True):
    """The papers' feature reduction, fitted on the training fold only.

    Steps: median imputation of missing values (columns missing for every patient are
    dropped), removal of constant features, :class:`~survseg.radiomics.CorrelationFilter`
    (Spearman ``> correlation_threshold``), then standardisation. Columns named
    ``clinical_*`` (from :class:`ClinicalColumns`) skip the imputation, the constant-feature
    removal and the correlation filter, as in DeepMTS where the clinical covariate joins the
    filtered radiomics features.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Expects a DataFrame (named columns).
    """
    reduce = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=False)),
            ("constant", VarianceThreshold(0.0)),
            ("correlation", CorrelationFilter(correlation_threshold, order=correlation_order)),
        ]
    )
    routed = ColumnTransformer(
        [("clinical", "passthrough", make_column_selector(pattern=f"^{CLINICAL_PREFIX}"))],
        remainder=reduce,
        verbose_feature_names_out=False,
    )
    steps = [("reduce", routed)]
    if scale:
        steps.append(("scale", StandardScaler()))
    return Pipeline(steps)


def _head(head, random_state):
    if not isinstance(head, str):
        return clone(head)
    if head == "lasso_cox":
        return LassoCoxCV(random_state=random_state)
    if head == "rsf":
        from sksurv.ensemble import RandomSurvivalForest

        # randomForestSRC's defaults, which the DeepMTS authors used: 500 trees, node size 15.
        return RandomSurvivalForest(
            n_estimators=500, min_samples_leaf=15, max_features="sqrt", random_state=random_state
        )
    if head == "deepsurv":
        return DeepSurv(random_state=random_state)
    if head == "icare":
        # the HECKTOR 2022 winner's ensemble: 10 bootstrap members, signs agreed by Harrell's
        # C, Uno's C and the time-dependent AUC; the pipeline's reduction drops correlated
        # features before it
        return BaggedIcareSurvival(n_estimators=10, random_state=random_state)
    raise ValueError(
        f"head must be 'lasso_cox', 'rsf', 'deepsurv', 'icare' or an estimator; got {head!r}."
    )


def make_survival_pipeline(
    features,
    head="lasso_cox",
    *,
    clinical=None,
    correlation_threshold=0.7,
    correlation_order="column",
    random_state=None,
):
    """Feature transformer + the papers' feature reduction + a survival model.

    Parameters
    ----------
    features : transformer
        Maps a cohort ``X`` to a DataFrame of named features (e.g.
        :class:`~survseg.radiomics.RadiomicsExtractor`). It is cloned.
    head : {"lasso_cox", "rsf", "deepsurv", "icare"} or estimator, default="lasso_cox"
        :class:`LassoCoxCV`, scikit-survival's ``RandomSurvivalForest`` (500 trees, leaves of
        15), :class:`DeepSurv`, :class:`BaggedIcareSurvival` (10 members; the HECKTOR 2022
        prognosis winner, Rebaud et al. 2023), or any survival estimator on a feature table
        (cloned).
    clinical : None, "all" or sequence of str
        Clinical fields of ``X`` added as covariates (not filtered, standardised).
    correlation_threshold : float, default=0.7
    correlation_order : {"column", "concordance"}, default="column"
        See :class:`~survseg.radiomics.CorrelationFilter`.
    random_state : int or None
        Passed to the named heads.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``"features"``, ``"select"``, ``"model"``; pandas output.
    """
    if not hasattr(features, "transform"):
        raise TypeError(f"features must be a transformer; got {type(features).__name__}.")
    if isinstance(correlation_threshold, bool) or not isinstance(
        correlation_threshold, numbers.Real
    ):
        raise TypeError(f"correlation_threshold must be a number; got {correlation_threshold!r}.")
    feats = clone(features)
    if clinical is not None:
        feats = FeatureUnion(
            [("features", feats), ("clinical", ClinicalColumns(clinical))],
            verbose_feature_names_out=False,
        )
    pipe = Pipeline(
        [
            ("features", feats),
            (
                "select",
                make_feature_selector(correlation_threshold, correlation_order=correlation_order),
            ),
            ("model", _head(head, random_state)),
        ]
    )
    return pipe.set_output(transform="pandas")


def make_radiomics_pipeline(
    head="lasso_cox", extractor=None, *, clinical=None, random_state=None, **kwargs
):
    """Radiomics features + one of the papers' survival models, as a Pipeline.

    The papers' feature-based baselines: ``"lasso_cox"`` (the traditional benchmark),
    ``"rsf"`` and ``"deepsurv"``, and ``"icare"``, the HECKTOR 2022 prognosis winner
    (sign-averaged radiomics, :class:`BaggedIcareSurvival`). Extractor options, such as
    the features of other regions of the cohort, reach the head through ``extractor``. For Lasso-Cox as a single estimator with readable
    coefficients, see :class:`~survseg.estimators.radiomics_cox.RadiomicsCox`.

    Parameters
    ----------
    head : {"lasso_cox", "rsf", "deepsurv", "icare"} or estimator, default="lasso_cox"
    extractor : RadiomicsExtractor, optional
        Defaults to ``RadiomicsExtractor()`` (the papers' 1,456 features).
    clinical, random_state, **kwargs
        See :func:`make_survival_pipeline`.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from survseg.estimators.pipelines import make_radiomics_pipeline
    >>> rsf = make_radiomics_pipeline("rsf", random_state=0)    # doctest: +SKIP
    >>> cross_val_score(rsf, X, y, cv=5)                         # doctest: +SKIP
    """
    extractor = RadiomicsExtractor() if extractor is None else extractor
    return make_survival_pipeline(
        extractor, head, clinical=clinical, random_state=random_state, **kwargs
    )
