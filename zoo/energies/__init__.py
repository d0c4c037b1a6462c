"""Energy network architectures, built by name from an entry's ``architecture`` block (config.json)."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .classifier import SmallCNNClassifier
from .conv import ConvEnergy
from .debm import DenoisingEBM
from .mdsm_resnet import MDSMResNet
from .mlp import MLPEnergy, tanh_mlp
from .ncebm import NoiseConditionalEnergy

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "MDSMResNet": MDSMResNet,
    "MLPEnergy": MLPEnergy,
    "ConvEnergy": ConvEnergy,
    "DenoisingEBM": DenoisingEBM,
    "NoiseConditionalEnergy": NoiseConditionalEnergy,
    "SmallCNNClassifier": SmallCNNClassifier,
}


def build_network(architecture: dict, input_shape: list[int]) -> nn.Module:
    """Build ``architecture["class"](input_shape, **rest)``; configs keep only JSON values (strings, numbers)."""
    spec = dict(architecture)
    name = spec.pop("class", None)
    spectral = spec.pop("spectral_norm", False)
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture class {name!r}; known: {sorted(ARCHITECTURES)}")
    try:
        net = ARCHITECTURES[name](input_shape=list(input_shape), **spec)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"architecture {architecture} for input shape {list(input_shape)}: {err}") from None
    return with_spectral_norm(net) if spectral else net


def with_spectral_norm(net: nn.Module) -> nn.Module:
    """``architecture.spectral_norm: true`` (opt-in stability aid, Miyato et al. 2018): every Linear / Conv weight
    divided by its largest singular value (torch's spectral_norm parametrization, one power iteration per call)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(net.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            spectral_norm(module)
    return net


__all__ = ["ARCHITECTURES", "ConvEnergy", "DenoisingEBM", "MDSMResNet", "MLPEnergy", "NoiseConditionalEnergy", "SmallCNNClassifier", "build_network", "with_spectral_norm", "tanh_mlp"]
