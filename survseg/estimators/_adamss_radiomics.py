"""AdaMSSRegressor's tabular inputs: radiomics of the stage-I predicted masks, their selection
on the training patients, and the clinical covariates, standardised for the survival head."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..data.cohort import clinical_frame
from ..training.device import seed_from


class _AdaMSSTabular:
    """Radiomics extraction and selection, and the survival head's tabular inputs."""

    def _fit_tabular(self, X, ctx, radiomics):
        """Select radiomics (training patients only) and standardise radiomics + clinical."""
        parts, names = [], []
        if radiomics is not None:
            rows = ctx.train_idx
            selected = self._select_radiomics(radiomics.iloc[rows], ctx.event[rows], ctx.time[rows])
            self.radiomics_features_ = selected
            parts.append(radiomics[selected].to_numpy(np.float64))
            names += selected
        if self.clinical_:
            parts.append(clinical_frame(X, self.clinical_).to_numpy(np.float64))
            names += list(self.clinical_)
        self.extra_feature_names_ = names
        if not names:
            self.extra_mean_ = self.extra_scale_ = np.zeros(0)
            ctx.extra = None
            return
        train = np.hstack(parts)[ctx.train_idx]
        self.extra_mean_ = np.nanmean(train, axis=0)
        scale = np.nanstd(train, axis=0)
        self.extra_scale_ = np.where(scale > 0, scale, 1.0)
        ctx.extra = torch.from_numpy(self._standardise(np.hstack(parts))).to(ctx.device)

    def _standardise(self, raw):
        z = (raw - self.extra_mean_) / self.extra_scale_
        # a radiomics feature pyradiomics could not compute (tiny predicted mask) -> the mean
        return np.nan_to_num(z, nan=0.0).astype(np.float32)

    def _extra(self, X):
        """Standardised tabular inputs of ``X`` (or ``None``)."""
        if not self.extra_feature_names_:
            return None
        parts = []
        if self.radiomics_features_:
            parts.append(self._radiomics_table(X)[self.radiomics_features_].to_numpy(np.float64))
        if self.clinical_:
            parts.append(clinical_frame(X, self.clinical_).to_numpy(np.float64))
        return self._standardise(np.hstack(parts))

    def _radiomics_extractor(self, masks):
        from ..radiomics import RadiomicsExtractor

        params = (
            {"settings": {"binCount": 32}}
            if self.radiomics_params is None
            else dict(self.radiomics_params)
        )
        clash = sorted({"mask", "modalities", "empty_mask"} & set(params))
        if clash:
            raise ValueError(
                f"radiomics_params must not set {clash}: AdaMSS extracts from its own predicted "
                "masks, on its modalities, and gives NaN (then the training mean) for a mask "
                "pyradiomics rejects."
            )
        return RadiomicsExtractor(
            modalities=list(self.modalities_), mask=lambda _: masks, empty_mask="nan", **params
        )

    def _radiomics_table(self, X) -> pd.DataFrame:
        """pyradiomics features of ``X`` inside the masks the segmentation network predicts."""
        masks = self._predicted_masks(X, nonempty=True)
        return self._radiomics_extractor(masks).fit(X).transform(X)

    def _select_radiomics(self, table, event, time) -> list:
        """z-score -> Spearman filter -> Lasso-Cox path, on the training patients only.

        Features that pyradiomics could not compute for some training patient, or that are
        constant, are dropped first. The Lasso penalty is the smallest on the path that keeps
        at most ``max_radiomics_features`` features (with a few dozen patients, choosing it
        by cross-validation is noisy), or with ``None`` the cross-validated one.
        """
        from sksurv.linear_model import CoxnetSurvivalAnalysis
        from sksurv.util import Surv

        from ..radiomics import CorrelationFilter

        values = table.to_numpy(np.float64)
        usable = np.isfinite(values).all(axis=0) & (np.nanstd(values, axis=0) > 0)
        if not usable.any():
            return []
        cols = table.columns[usable]
        z = values[:, usable]
        z = (z - z.mean(axis=0)) / z.std(axis=0)
        kept = CorrelationFilter(threshold=self.correlation_threshold).fit(z).get_support()
        cols, z = cols[kept], z[:, kept]
        if not event.any():
            return []
        y = Surv.from_arrays(event, time)
        if self.max_radiomics_features is None:
            return [str(c) for c in cols[self._lasso_cv(z, y, event)]]
        coxnet = CoxnetSurvivalAnalysis(l1_ratio=1.0, n_alphas=100, alpha_min_ratio=0.01)
        coxnet.fit(z, y)
        nonzero = (np.abs(coxnet.coef_) > 0).sum(axis=0)  # per alpha, decreasing alphas
        over = np.flatnonzero(nonzero > self.max_radiomics_features)
        last = over[0] - 1 if over.size else len(nonzero) - 1
        if last < 0:
            return []
        chosen = np.abs(coxnet.coef_[:, last]) > 0
        return [str(c) for c in cols[chosen]]

    def _lasso_cv(self, z, y, event):
        """Non-zero coefficients of a Lasso-Cox whose penalty is picked by inner CV (C-index)."""
        from .lasso_cox import LassoCoxCV

        n_folds = min(5, int(event.sum()), int((~event).sum()))
        if n_folds < 2:
            raise ValueError(
                "max_radiomics_features=None picks the Lasso penalty by cross-validation, which "
                "needs at least 2 events and 2 censored training patients; give a number of "
                "features instead."
            )
        seed = seed_from(self.random_state)
        model = LassoCoxCV(cv=n_folds, random_state=seed).fit(z, y)
        return np.abs(model.coef_) > 0
