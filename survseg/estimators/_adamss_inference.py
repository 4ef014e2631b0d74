"""AdaMSSRegressor's forward passes over a cohort at prediction: input checks, batched
full-volume inference, survival probabilities and tumour probability maps."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ..data.cohort import volume_shape
from ..data.validation import check_cohort, check_fitted_cohort
from ..networks.adamss import AdaMSS


class _AdaMSSInference:
    """Network inference helpers behind the public ``predict*`` methods."""

    def _module(self, name) -> AdaMSS:
        check_is_fitted(self, name)
        net = getattr(self, name)
        dev = self._device()
        if next(net.parameters()).device != dev:
            net.to(dev)
        return net.eval()

    def _check_X(self, X):
        check_is_fitted(self, "network_")
        check_fitted_cohort(self, X)  # fields (and volume size once fit records it; issue 15)
        check_cohort(X, modalities=self.modalities_, clinical=self.clinical_)
        multiple = self.network_.size_multiple
        if any(s % multiple for s in volume_shape(X)):
            raise ValueError(f"volumes of shape {volume_shape(X)} must be divisible by {multiple}.")

    def _run_network(self, name, X, fn, with_extra):
        """Apply ``fn(output, index) -> Tensor | tuple`` to full-volume forward passes over ``X``."""
        net = self._module(name)
        extra = self._extra(X) if with_extra else None
        dev = self._device()

        def step(images, idx):
            e = None if extra is None else torch.from_numpy(extra[idx]).to(dev)
            return fn(net, images, e)

        return self._predict_in_batches(step, X, list(self.modalities_))

    def _survival_probabilities(self, X):
        self._check_X(X)
        return self._run_network(
            "network_",
            X,
            lambda net, images, e: torch.sigmoid(
                net(images, e, task="survival").survival_logits.float()
            ),
            with_extra=True,
        ).reshape(len(X), -1)

    def _probability_maps(self, X):
        return self._run_network(
            "segmentation_network_",
            X,
            lambda net, images, e: torch.sigmoid(
                net(images, task="segmentation").seg_logits[:, 0].float()
            ),
            with_extra=False,
        )

    def _predicted_masks(self, X, nonempty):
        prob = self._probability_maps(X)
        masks = (prob > self.mask_threshold).astype(np.uint8)
        if nonempty:
            # radiomics need a region: where nothing passes the threshold, take the voxels
            # within half of that patient's highest probability
            for i in np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1)):
                masks[i] = prob[i] >= 0.5 * prob[i].max()
        return masks

    def _stage_network(self, stage):
        if stage not in ("survival", "segmentation"):
            raise ValueError(f"stage must be 'survival' or 'segmentation'; got {stage!r}.")
        return "network_" if stage == "survival" else "segmentation_network_"
