r"""DeepSurv: a multilayer perceptron on tabular features trained with the Cox partial likelihood."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ..data.validation import check_survival
from ..losses.cox import cox_partial_likelihood_loss
from ..networks.mlp import MLP
from ..training.checkpoint import bind_checkpoints
from ..training.device import make_generators, seed_from, seeded
from ..training.loop import train
from ..training.recipe import (
    assign_fitted,
    c_index_or_nan,
    monitor_key,
    validation_every,
    validation_split,
)
from ..training.sampling import random_batches
from ._cox import CoxSurvivalMixin
from ._deep import DeepSurvivalBase

__all__ = ["DeepSurv"]


_MAX_LOG_RISK_SPREAD = 700.0  # exp(700) ~ 1e304: beyond this Breslow's curves overflow


def _full_batches(n):
    index = np.arange(n)
    while True:
        yield index


class DeepSurv(CoxSurvivalMixin, DeepSurvivalBase):
    r"""Cox proportional-hazards model whose log hazard ratio is a neural network.

    The network :math:`\eta_\theta(x)` (:class:`survseg.networks.mlp.MLP`, one output, no
    output bias) is trained by minimising the negative Cox partial log-likelihood
    (:func:`survseg.losses.cox.cox_partial_likelihood_loss`, averaged over events) with Adam
    and an L2 penalty (``weight_decay``). With full batches this is the partial likelihood of
    the training set; with ``batch_size`` set, risk sets are those of each mini-batch, as in
    DeepSurv's own code. Survival functions use Breslow's baseline hazard of the training
    risks.

    Inputs are used as given: standardise them first (e.g. ``StandardScaler`` in a
    ``Pipeline``), as DeepSurv does.

    Parameters
    ----------
    hidden_layer_sizes : sequence of int, default=(32,)
        Hidden layer widths; ``()`` gives a linear Cox model.
    activation : {"relu", "selu", "elu", "tanh"}, default="relu"
    dropout : float in [0, 1), default=0.2
    batch_norm : bool, default=False
    weight_decay : float, default=1e-2
        L2 penalty of Adam. The defaults (one hidden layer, dropout 0.2, weight decay 1e-2,
        300 full-batch steps) are strongly regularised for the few hundred patients of a
        radiomics study; the papers do not report their DeepSurv settings.
    lr : float, default=1e-3
        Adam learning rate.
    batch_size : int, optional
        Patients per step; ``None`` uses all training patients every step.
    max_iter : int, default=300
        Optimisation steps.
    ties : {"efron", "breslow"}, default="efron"
        Tied event times in the partial likelihood.
    validation_fraction : float in [0, 1), default=0
        Hold out this fraction of the training patients (``round(fraction * n)``, stratified
        by event) and keep the weights that score best by ``monitor``; ``0``: no validation,
        the last step is kept.
    validate_every : int or None, default=None
        Steps between validations (default 2 % of ``max_iter``).
    monitor : {"loss", "c_index"} or None, default="loss"
        Kept weights: the lowest validation Cox loss (``val_loss``), the highest validation
        C-index (``val_c_index``), or (``None``) the last step.
    random_state : int, RandomState or None
        Seeds initialisation, dropout, batches and the validation split.
    device : {"cpu", "cuda", "auto"} or torch.device, default="cpu"
        Tabular networks this small train faster on the CPU.
    verbose : int, default=0
        ``> 0`` shows a progress bar with the loss and the latest validation scores.
    callbacks : list of callables or None, default=None
        Each called as ``callback(stage, iteration, row)`` after every step; raising stops
        ``fit``, which then leaves the estimator as it was. A
        :class:`~survseg.training.Checkpoint` saves the training state and resumes an
        interrupted fit.

    Attributes
    ----------
    network_ : survseg.networks.mlp.MLP
    history_ : pandas.DataFrame
        Per step: ``stage`` ("survival"), loss, learning rate and, with validation,
        ``val_loss`` and ``val_c_index``.
    best_iteration_ : dict
        ``{"survival": step of the kept weights}``.
    baseline_model_ : sksurv.linear_model.coxph.BreslowEstimator
    unique_times_ : ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When ``X`` is a DataFrame.

    See Also
    --------
    sksurv.linear_model.CoxPHSurvivalAnalysis : the linear model DeepSurv generalises.

    References
    ----------
    .. [1] Katzman et al., "DeepSurv: personalized treatment recommender system using a Cox
       proportional hazards deep neural network", BMC Medical Research Methodology 18, 2018.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from survseg.estimators.deepsurv import DeepSurv
    >>> model = make_pipeline(StandardScaler(), DeepSurv(random_state=0))  # doctest: +SKIP
    >>> model.fit(X_train, y_train).score(X_test, y_test)                  # doctest: +SKIP
    """

    _parameter_constraints = {
        "hidden_layer_sizes": [list, tuple],
        "activation": [StrOptions({"relu", "selu", "elu", "tanh"})],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [None, Interval(numbers.Integral, 2, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "ties": [StrOptions({"efron", "breslow"})],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "validate_every": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "monitor": [None, StrOptions({"loss", "c_index"})],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "callbacks": [None, list, tuple],
    }

    def __init__(
        self,
        hidden_layer_sizes=(32,),
        *,
        activation="relu",
        dropout=0.2,
        batch_norm=False,
        weight_decay=1e-2,
        lr=1e-3,
        batch_size=None,
        max_iter=300,
        ties="efron",
        validation_fraction=0.0,
        validate_every=None,
        monitor="loss",
        random_state=None,
        callbacks=None,
        verbose=0,
        device="cpu",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.weight_decay = weight_decay
        self.lr = lr
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.ties = ties
        self.validation_fraction = validation_fraction
        self.validate_every = validate_every
        self.monitor = monitor
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.callbacks = callbacks

    def fit(self, X, y):
        """Train the network and fit the Breslow baseline hazard.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Standardised features.
        y : structured ndarray
            Survival outcomes (``sksurv.util.Surv``).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad ``X`` or ``y``, or a validation split without events.
        FloatingPointError
            If training diverges (lower ``lr``, check the inputs are scaled).
        """
        self._validate_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        event, time = check_survival(y, X.shape[0])
        if self.batch_norm and (self.batch_size or X.shape[0]) < 2:
            raise ValueError("batch_norm needs batches of at least 2 patients.")
        device = self._device()
        seed = seed_from(self.random_state)
        rng, _ = make_generators(seed, device)
        callbacks = bind_checkpoints(self.callbacks, self, X, y, device)

        fit_idx, val_idx = validation_split(event, self.validation_fraction, seed)

        def tensor(a, dtype=torch.float32):
            # writable C-contiguous copy when needed: torch refuses read-only (memmap) arrays
            return torch.as_tensor(
                np.require(a, requirements=["C", "W"]), dtype=dtype, device=device
            )

        Xt, et, tt = tensor(X), tensor(event, torch.bool), tensor(time, torch.float64)

        with seeded(seed, device):
            net = self._build_network(X.shape[1]).to(device)
            optimizer = torch.optim.Adam(
                net.parameters(), lr=self.lr, weight_decay=self.weight_decay
            )
            if self.batch_size is None:
                sampler = _full_batches(len(fit_idx))
                sources = ()
            else:
                sampler = random_batches(len(fit_idx), self.batch_size, rng)
                sources = (rng, sampler)
            batches = (fit_idx[b] for b in sampler)

            def compute_loss(module, index):
                index = torch.as_tensor(index, device=device)
                eta = module(Xt[index]).squeeze(1)
                return {
                    "loss": cox_partial_likelihood_loss(
                        eta.double(), et[index], tt[index], ties=self.ties
                    )
                }

            validate = None
            if len(val_idx):
                vi = torch.as_tensor(val_idx, device=device)

                def validate(module):
                    eta = module(Xt[vi]).squeeze(1).double()
                    loss = cox_partial_likelihood_loss(eta, et[vi], tt[vi], ties=self.ties)
                    cindex = c_index_or_nan(event[val_idx], time[val_idx], eta.cpu().numpy())
                    return {"val_loss": float(loss), "val_c_index": cindex}

            result = train(
                net,
                batches,
                compute_loss,
                optimizer,
                max_iter=self.max_iter,
                device=device,
                validate=validate,
                validate_every=validation_every(self.validate_every, self.max_iter),
                monitor=monitor_key(self.monitor)[0] if validate is not None else None,
                mode=monitor_key(self.monitor)[1],
                callbacks=callbacks,
                random_sources=sources,
                verbose=self.verbose,
                desc="DeepSurv",
            )
        net.eval()
        risk = self._risk(X, net)
        spread = np.ptp(risk) if np.isfinite(risk).all() else np.inf
        if spread > _MAX_LOG_RISK_SPREAD:
            raise FloatingPointError(
                f"the trained network's log-risks span {spread:.3g} on the training data, beyond "
                "what a survival curve exp(-H0 exp(eta)) can represent: training diverged or the "
                "inputs are not standardised (DeepSurv uses them as given)."
            )
        return assign_fitted(
            self,
            dict(
                network_=net,
                history_=result.history.assign(stage="survival"),
                best_iteration_={"survival": result.best_iteration},
                n_features_in_=self.n_features_in_,
                **(
                    {"feature_names_in_": self.feature_names_in_}
                    if hasattr(self, "feature_names_in_")
                    else {}
                ),
                **self._baseline(risk, event, time),
            ),
        )

    def _build_network(self, n_features: int) -> MLP:
        return MLP(
            n_features,
            tuple(self.hidden_layer_sizes),
            1,
            dropout=self.dropout,
            activation=self.activation,
            batch_norm=self.batch_norm,
            output_bias=False,
        )

    def _networks_from_fitted(self) -> dict:
        return {"network_": self._build_network(self.n_features_in_)}

    def _risk(self, X, net=None) -> np.ndarray:
        net = self._network() if net is None else net
        with torch.no_grad():
            x = torch.as_tensor(
                np.require(X, requirements=["C", "W"]),
                dtype=torch.float32,
                device=next(net.parameters()).device,
            )
            return net(x).squeeze(1).double().cpu().numpy()

    def predict(self, X):
        """Log hazard ratio :math:`\\eta(x)` (higher = earlier event)."""
        check_is_fitted(self, "network_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._risk(X)
