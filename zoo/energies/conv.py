"""A small convolutional energy for maximum-likelihood training (the strided ConvNet of Nijkamp et al. 2019,
"Learning non-convergent non-persistent short-run MCMC toward energy-based model", and of Du & Mordatch 2019's
MNIST model): no normalisation layers, so E(x) of one image never depends on the rest of the batch — BatchNorm
makes Langevin negatives and data see different statistics and was what collapsed the zoo's first MNIST ML run.

    conv3x3(w) -> conv4x4/2(2w) -> conv4x4/2(4w) -> conv3x3/2(8w) -> global sum -> linear -> E(x)

with leaky ReLU (0.2) activations. Optional ``base_precision`` adds the fixed Gaussian term base_precision |x|² / 2
(as in MLPEnergy) so exp(-E) stays normalisable for AIS.
"""
from __future__ import annotations

import torch
from torch import nn

from .architectures import ARCHITECTURES
from .mlp import plus_gaussian_term


@ARCHITECTURES.register("ConvEnergy")
class ConvEnergy(nn.Module):
    def __init__(self, input_shape: list[int], width: int = 16, base_precision: float = 0.0):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"ConvEnergy needs an image shape [C, H, W], got {input_shape}")
        c, w = input_shape[0], int(width)
        act = nn.LeakyReLU(0.2)
        self.body = nn.Sequential(
            nn.Conv2d(c, w, 3, 1, 1), act,
            nn.Conv2d(w, 2 * w, 4, 2, 1), act,
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), act,
            nn.Conv2d(4 * w, 8 * w, 3, 2, 1), act,
        )
        self.head = nn.Linear(8 * w, 1)
        self.base_precision = float(base_precision)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return plus_gaussian_term(self.head(self.body(x).sum(dim=(2, 3))).squeeze(1), x, self.base_precision)
