"""MLP energies (DEEN, Saremi et al. 2018, Sec. 3).

E(x) = w . phi(x) + b with tanh hidden layers phi and a linear scalar output (a product of experts
over the last hidden layer).
"""
from __future__ import annotations

import torch
from torch import nn

from .architectures import ARCHITECTURES


def tanh_mlp(in_features: int, hidden: list[int], out_features: int) -> nn.Sequential:
    layers, f = [], in_features
    for h in hidden:
        layers += [nn.Linear(f, h), nn.Tanh()]
        f = h
    layers.append(nn.Linear(f, out_features))
    return nn.Sequential(*layers)


@ARCHITECTURES.register("MLPEnergy")
class MLPEnergy(nn.Module):
    """Energy E(x) -> (B,) for inputs of shape (B, *input_shape), flattened. ``base_precision`` > 0 adds a fixed
    Gaussian term base_precision |x|^2 / 2 (a tanh MLP is bounded, so exp(-E) alone has no finite Z on R^d; the
    maximum-likelihood and NCE entries need a normalisable model)."""

    def __init__(self, input_shape: list[int], hidden: list[int], base_precision: float = 0.0):
        super().__init__()
        self.mlp = tanh_mlp(int(torch.Size(input_shape).numel()), list(hidden), 1)
        self.base_precision = float(base_precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return plus_gaussian_term(self.mlp(x.flatten(1)).squeeze(1), x, self.base_precision)


def plus_gaussian_term(energy: torch.Tensor, x: torch.Tensor, precision: float) -> torch.Tensor:
    """energy + precision |x|^2 / 2 per sample (a fixed Gaussian factor that makes exp(-E) normalisable)."""
    return energy + 0.5 * precision * x.flatten(1).pow(2).sum(1) if precision else energy
