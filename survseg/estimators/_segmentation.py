r"""The segmentation outputs of every segmenting survseg estimator, written once.

A segmenting estimator (DeepMTS, AdaMSS, a :class:`~survseg.estimators.FoldEnsemble` of
them) defines one method, ``_region_probabilities(X)``: the voxel probabilities
:math:`p_{k,v}` of each region :math:`k` of its fitted ``regions_`` (``("tumour",)`` or
``("tumour", "nodes")``), ``(n_patients, R, D, H, W)`` float32, from the network that
segments. :class:`SegmentationMixin` gives it the public methods, with one threshold
:math:`t` (``_mask_threshold()``, the ``mask_threshold`` parameter):

* ``predict_proba_mask(X, region)``: :math:`p_{k,v}` of one region;
* ``predict_mask(X, region)``: :math:`\mathbb{1}[p_{k,v} > t]`, uint8;
* ``predict_label_map(X)``: every region in one HECKTOR-style label image (1 = tumour,
  2 = nodes, as GTVp / GTVn), :func:`~survseg.estimators._deep.label_map`.

An estimator that cannot segment (DeepMTS with ``segmentation=False``) makes
``_can_segment()`` raise ``AttributeError``, which hides the three methods
(``hasattr(model, "predict_mask")`` is then ``False``, as scikit-learn's ``available_if``).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._deep import label_map, region_channel

__all__ = ["SegmentationMixin"]


def _segments(est) -> bool:
    return est._can_segment()


class SegmentationMixin:
    """``predict_proba_mask``, ``predict_mask`` and ``predict_label_map`` from
    ``_region_probabilities`` (see the module docstring)."""

    def _can_segment(self) -> bool:
        """True, or raise ``AttributeError`` saying why this estimator cannot segment."""
        return True

    def _mask_threshold(self) -> float:
        return self.mask_threshold

    def _region_probabilities(self, X) -> np.ndarray:
        """Probabilities of every fitted region, ``(n_patients, R, D, H, W)`` float32."""
        raise NotImplementedError

    @available_if(_segments)
    def predict_proba_mask(self, X, region="tumour"):
        """Probability map of one region, ``(n_patients, D, H, W)`` float32 in [0, 1].

        Parameters
        ----------
        X : cohort
        region : {"tumour", "nodes"}, default="tumour"
            One of ``regions_``; ``"nodes"`` needs a model fitted with node labels in ``X``
            (its ``nodes_field``).

        Returns
        -------
        ndarray of shape (n_patients, D, H, W)
        """
        channel = region_channel(self, region)
        return self._region_probabilities(X)[:, channel]

    @available_if(_segments)
    def predict_mask(self, X, region="tumour"):
        """Binary mask of one region (probability above ``mask_threshold``),
        ``(n_patients, D, H, W)`` uint8; ``region`` as in :meth:`predict_proba_mask`."""
        return (self.predict_proba_mask(X, region) > self._mask_threshold()).astype(np.uint8)

    @available_if(_segments)
    def predict_label_map(self, X):
        r"""Every region in one label image, HECKTOR's convention: ``(n_patients, D, H, W)``
        uint8 with 0 background and :math:`k` the ``regions_[k - 1]`` (1 = tumour, 2 = nodes
        when fitted with node labels, as HECKTOR's GTVp / GTVn).

        A voxel takes the region of highest probability among those above
        ``mask_threshold``: :math:`\ell_v = 1 + \arg\max_k p_{k,v}` if
        :math:`\max_k p_{k,v} > t`, else 0 (labels are exclusive; a tie goes to the lower
        label). One forward pass for all regions. With one region it equals
        :meth:`predict_mask`.
        """
        check_is_fitted(self, "regions_")
        return label_map(self._region_probabilities(X), self._mask_threshold())
