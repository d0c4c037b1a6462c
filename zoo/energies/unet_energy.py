"""Noise-blind U-Net energy E(x) = ||x - D(x)||² / (2 s²), D(x) = μ + F(x - μ): one energy for every noise level.

An option for MDSM's objective (eq. 7), which trains one E(x) whose gradient at x̃ = x + σn matches (x̃ - x) / σ0² at
every σ in its range: the U-Net F of ``NoiseConditionalEnergy`` (its noise embedding fed a constant, so no σ enters)
in place of MDSM's ResNet with a quadratic head (App. D). With s = σ0, ∇E = (I - J_D)ᵀ (x - D(x)) / σ0²: the objective
trains that gradient, and D reads as a blind denoiser where J_D is small. Writing D (not the residual x - D) through
F keeps the start well conditioned: at F = 0, E is a Gaussian around μ. The energy form ||x - D(x)||² / (2 s²) is
Salimans & Ho (2021) / Denoising-EBM's texture energy (Zeng, eq. 7); putting it under MDSM is this zoo's choice, not
the MDSM paper's.
"""
from __future__ import annotations

import torch
from torch import nn

from .architectures import ARCHITECTURES
from .ncebm import UNet


@ARCHITECTURES.register("UNetEnergy")
class UNetEnergy(nn.Module):
    """E(x) -> (B,) for images (B, *input_shape). ``scale`` is s (the entry's sigma0 for MDSM); ``data_mean`` μ centres
    the input."""

    def __init__(self, input_shape: list[int], channels: int = 32, channel_mult: list | None = None,
                 num_res_blocks: int = 1, scale: float = 0.1, data_mean: float = 0.5):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale, self.data_mean = scale, data_mean
        self.unet = UNet(input_shape, channels, list(channel_mult or [1, 2, 2]), num_res_blocks)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """x - D(x), D(x) = μ + F(x - μ): the noise the blind denoiser D removes."""
        centred = x - self.data_mean
        return centred - self.unet(centred, x.new_zeros(x.shape[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) = ||x - D(x)||² / (2 s²)."""
        return self.residual(x).pow(2).flatten(1).sum(1) / (2 * self.scale**2)
