"""The PyTorch networks: plain ``torch.nn.Module``\\ s, configurable and usable without the
estimators.

- :mod:`~survseg.networks.blocks`: convolution, residual and plain blocks shared by both models.
- :mod:`~survseg.networks.deepmts`: the DeepMTS segmentation backbone with hard sharing, joined to
  the cascaded :mod:`~survseg.networks.densenet`.
- :mod:`~survseg.networks.fusion`, :mod:`~survseg.networks.attention`,
  :mod:`~survseg.networks.adamss`: AdaMSS's Ada-fusion encoder, attention gates and network.
- :mod:`~survseg.networks.mlp`: the DeepSurv multilayer perceptron.
"""

from .adamss import AdaMSS
from .attention import AttentionGate
from .blocks import ConvBNReLU, PlainBlock, ResidualBlock
from .deepmts import DeepMTS, SegmentationBackbone
from .densenet import DenseNet3d
from .fusion import AdaFusionEncoder, FusionGate
from .mlp import MLP

__all__ = [
    "AdaFusionEncoder",
    "AdaMSS",
    "AttentionGate",
    "ConvBNReLU",
    "DeepMTS",
    "DenseNet3d",
    "FusionGate",
    "MLP",
    "PlainBlock",
    "ResidualBlock",
    "SegmentationBackbone",
]
