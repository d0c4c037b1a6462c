"""Noise-conditional energy E(x, σ) = ||x - D(x, σ)||² / (2σ²) with D a small U-Net denoiser.

Not from the zoo's four papers: the energy parameterisation is Salimans & Ho (2021), "Should EBMs model the energy or
the score?"; it is the form of Denoising-EBM's texture energy (Zeng, eq. 7) with the noisy input fed to D directly.
-∇ₓE(x, σ) is the model's score of the σ-smoothed data density; it is trained by denoising score matching on that
gradient (``zoo.objectives.noise_conditional``).

Optional EDM preconditioning (Karras et al. 2022, Table 1), ``preconditioning: edm``:
    D(x, σ) = μ + c_skip(σ) (x - μ) + c_out(σ) F(c_in(σ) (x - μ), c_noise(σ)),
    c_skip = σ_d² / (σ² + σ_d²),  c_out = σ σ_d / sqrt(σ² + σ_d²),  c_in = 1 / sqrt(σ² + σ_d²),  c_noise = ln(σ) / 4
with μ = ``data_mean`` (the centre of the data range) and σ_d = ``sigma_data``; ``preconditioning: none`` is
D(x, σ) = F(x, ln(σ) / 4). F is a GroupNorm/SiLU U-Net (smooth activations: training differentiates ∇ₓE again).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .architectures import ARCHITECTURES
from .debm import ResBlock

PRECONDITIONINGS = ("edm", "none")


class FourierSigmaEmbedding(nn.Module):
    """c_noise(σ) -> sin/cos features at fixed log-spaced frequencies -> a two-layer SiLU MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(64.0), dim // 2)), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        angles = c_noise.view(-1, 1) * self.freqs
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class UNet(nn.Module):
    """F(x, c_noise): ``len(channel_mult)`` resolutions with ``num_res_blocks`` ResBlocks each on the way down, one in
    the middle, one per resolution on the way up after concatenating the skip; 2x average-pool down, nearest up.
    ``input_shape`` [C, H, W] is checked against the sizes (one ValueError)."""

    def __init__(self, input_shape: list[int], channels: int, channel_mult: list[int], num_res_blocks: int):
        super().__init__()
        in_channels, size, _ = input_shape
        if channels < 1 or num_res_blocks < 1 or not channel_mult or min(channel_mult) < 1:
            raise ValueError("channels, num_res_blocks and every channel_mult must be >= 1")
        if size % 2 ** (len(channel_mult) - 1):
            raise ValueError(f"image size {size} must be divisible by {2 ** (len(channel_mult) - 1)}")
        emb = 4 * channels
        self.embed = FourierSigmaEmbedding(emb)
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down, widths, c = nn.ModuleList(), [], channels
        for mult in channel_mult:
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(c, channels * mult, emb))
                c = channels * mult
            self.down.append(blocks)
            widths.append(c)
        self.mid = ResBlock(c, c, emb)
        self.up = nn.ModuleList()
        for skip in reversed(widths):
            self.up.append(ResBlock(c + skip, skip, emb))
            c = skip
        self.out_norm = nn.GroupNorm(math.gcd(8, c), c)
        self.out = nn.Conv2d(c, in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        emb = self.embed(c_noise)
        h, skips = self.inp(x), []
        for level, blocks in enumerate(self.down):
            if level:
                h = F.avg_pool2d(h, 2)
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
        h = self.mid(h, emb)
        for level, block in enumerate(self.up):
            if level:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))


@ARCHITECTURES.register("NoiseConditionalEnergy")
class NoiseConditionalEnergy(nn.Module):
    """E(x, σ) -> (B,) for images (B, *input_shape); σ a float or one value per image. ``default_sigma`` is the σ
    used when none is given (the smallest noise level of the model's samplers: E at that σ ranks clean images)."""

    noise_conditional = True

    def __init__(self, input_shape: list[int], channels: int = 32, channel_mult: list | None = None,
                 num_res_blocks: int = 1, preconditioning: str = "edm", sigma_data: float = 0.5,
                 data_mean: float = 0.5, default_sigma: float = 0.01):
        super().__init__()
        if preconditioning not in PRECONDITIONINGS:
            raise ValueError(f"preconditioning must be one of {PRECONDITIONINGS}, got {preconditioning!r}")
        if not (sigma_data > 0 and default_sigma > 0):
            raise ValueError("sigma_data and default_sigma must be > 0")
        self.preconditioning, self.sigma_data, self.data_mean = preconditioning, sigma_data, data_mean
        self.default_sigma = default_sigma
        self.unet = UNet(input_shape, channels, list(channel_mult or [1, 2, 2]), num_res_blocks)

    def _sigma(self, sigma, x: torch.Tensor) -> torch.Tensor:
        sigma = self.default_sigma if sigma is None else sigma
        return torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0]).reshape(-1, 1, 1, 1)

    def denoiser(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """D(x, σ), with the preconditioning of the module docstring."""
        s = self._sigma(sigma, x)
        if self.preconditioning == "none":
            return self.unet(x, s.flatten().log() / 4)
        var = s**2 + self.sigma_data**2
        c_skip, c_out, c_in = self.sigma_data**2 / var, s * self.sigma_data / var.sqrt(), 1 / var.sqrt()
        centred = x - self.data_mean
        return self.data_mean + c_skip * centred + c_out * self.unet(c_in * centred, s.flatten().log() / 4)

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """E(x, σ) = ||x - D(x, σ)||² / (2σ²)  (Salimans & Ho 2021; Zeng eq. 7's form)."""
        s = self._sigma(sigma, x)
        return (x - self.denoiser(x, sigma)).pow(2).flatten(1).sum(1) / (2 * s.flatten() ** 2)
