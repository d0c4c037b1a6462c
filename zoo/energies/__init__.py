"""Energy network architectures, built by name from an entry's ``architecture`` block (config.json). Each module
registers its networks in ``ARCHITECTURES`` (``architectures.py``); importing this package imports them all."""
from __future__ import annotations

from .architectures import ARCHITECTURES, build_network, with_spectral_norm
from .classifier import SmallCNNClassifier
from .conv import ConvEnergy
from .debm import DenoisingEBM
from .mdsm_resnet import MDSMResNet
from .mlp import MLPEnergy, tanh_mlp
from .ncebm import NoiseConditionalEnergy
from .unet_energy import UNetEnergy

__all__ = ["ARCHITECTURES", "ConvEnergy", "DenoisingEBM", "MDSMResNet", "MLPEnergy", "NoiseConditionalEnergy", "SmallCNNClassifier", "UNetEnergy", "build_network", "with_spectral_norm", "tanh_mlp"]
