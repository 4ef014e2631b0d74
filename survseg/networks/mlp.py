"""A fully connected network for tabular features (the DeepSurv network)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP"]

_ACTIVATIONS = {"relu": nn.ReLU, "selu": nn.SELU, "elu": nn.ELU, "tanh": nn.Tanh}


class MLP(nn.Module):
    r"""Multilayer perceptron: ``[Linear -> (BatchNorm) -> activation -> (Dropout)] * k -> Linear``.

    DeepSurv (Katzman et al., 2018) is this network with one output, the log hazard ratio
    :math:`\eta(x)`, trained with the Cox partial likelihood.

    Parameters
    ----------
    in_features : int
        Number of input features.
    hidden_layer_sizes : sequence of int, default=(32, 32)
        Width of each hidden layer; empty for a linear model.
    out_features : int, default=1
    dropout : float in [0, 1), default=0.0
        Dropout probability after each hidden activation.
    activation : {"relu", "selu", "elu", "tanh"}, default="relu"
    batch_norm : bool, default=False
        Batch normalisation after each hidden linear layer.
    output_bias : bool, default=True
        Bias of the output layer. A Cox model's likelihood does not depend on a constant shift
        of :math:`\eta`, so DeepSurv leaves it out.

    Examples
    --------
    >>> import torch
    >>> net = MLP(5, (16, 8), dropout=0.1)
    >>> net(torch.zeros(3, 5)).shape
    torch.Size([3, 1])
    """

    def __init__(
        self,
        in_features: int,
        hidden_layer_sizes=(32, 32),
        out_features: int = 1,
        *,
        dropout: float = 0.0,
        activation: str = "relu",
        batch_norm: bool = False,
        output_bias: bool = True,
    ):
        super().__init__()
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(
                f"in_features and out_features must be >= 1; got {in_features}, {out_features}."
            )
        sizes = [int(h) for h in hidden_layer_sizes]
        if any(h < 1 for h in sizes):
            raise ValueError(f"hidden layer sizes must be >= 1; got {list(hidden_layer_sizes)}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}."
            )
        layers = []
        width = int(in_features)
        for h in sizes:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width, int(out_features), bias=output_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(n, in_features)`` inputs to ``(n, out_features)`` outputs."""
        if x.ndim != 2:
            raise ValueError(
                f"MLP expects a 2D (n_samples, n_features) input; got shape {tuple(x.shape)}."
            )
        return self.output(self.hidden(x))
