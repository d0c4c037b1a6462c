"""The architecture registry: energy networks by name (config.json's ``architecture.class``), and building one."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..components import Registry

ARCHITECTURES = Registry("architecture")


def build_network(architecture: dict, input_shape: list[int]) -> nn.Module:
    """Build ``architecture["class"](input_shape, **rest)``; configs keep only JSON values (strings, numbers). A
    size that cannot build (negative) or builds an empty layer (0) is one ConfigError."""
    spec = dict(architecture)
    name = spec.pop("class", None)
    spectral = spec.pop("spectral_norm", False)
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture class {name!r}; known: {sorted(ARCHITECTURES)}")
    try:
        net = ARCHITECTURES[name](input_shape=list(input_shape), **spec)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(f"architecture {architecture} for input shape {list(input_shape)}: {err}") from None
    if any(p.numel() == 0 for p in net.parameters()):
        raise ConfigError(f"architecture {architecture} for input shape {list(input_shape)} has an empty layer "
                          f"(a width or size of 0)")
    return with_spectral_norm(net) if spectral else net


def with_spectral_norm(net: nn.Module) -> nn.Module:
    """``architecture.spectral_norm: true`` (opt-in stability aid, Miyato et al. 2018): every Linear / Conv weight
    divided by its largest singular value (torch's spectral_norm parametrization, one power iteration per call)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(net.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            spectral_norm(module)
    return net
