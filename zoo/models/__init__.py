"""Energy network architectures, built by name from an entry's ``architecture`` block."""
from __future__ import annotations

from torch import nn

from .mdsm_resnet import MDSMResNet
from .mlp import MLPEnergy, MLPScore

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "MDSMResNet": MDSMResNet,
    "MLPEnergy": MLPEnergy,
}


def build_network(architecture: dict, input_shape: list[int]) -> nn.Module:
    """Build ``architecture["class"](input_shape, **rest)``; configs keep only JSON values (strings, numbers)."""
    spec = dict(architecture)
    name = spec.pop("class")
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture class {name!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](input_shape=list(input_shape), **spec)


__all__ = ["ARCHITECTURES", "build_network", "MDSMResNet", "MLPEnergy", "MLPScore"]
