"""Denoising score matching of a noise-conditional energy E(x, σ) over a continuous σ distribution.

Song & Kingma eq. (10) at one σ per example, x~ = x + σ n, residual r = ∇ₓE(x~, σ) - (x~ - x) / σ² (double backprop):

    L = E_σ E_x,n [ λ(σ) σ⁴ |r|² / d ]

σ⁴ |r|² = |D_E(x~, σ) - x|² is the squared error of the energy's Tweedie denoiser D_E = x~ - σ² ∇ₓE (per pixel: / d).
Weightings ``weighting`` (named options):
  * ``edm``:  λ(σ) = (σ² + σ_d²) / (σ σ_d)²  (Karras et al. 2022, Table 1: unit loss at every σ at initialisation)
  * ``sigma2``: λ(σ) = 1 / σ², i.e. σ² |r|²  (NCSN, Song & Ermon 2019; MDSM eq. 7's l(σ) = 1/σ² likewise)
σ distributions ``sigma_distribution``: ``lognormal`` ln σ ~ N(p_mean, p_std²) (EDM) or ``loguniform`` in
[sigma_min, sigma_max].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .base import Objective, ObjectiveContext, ObjectiveOutput, register_objective
from ..tensors import sq_norm
from .score_matching import _check_batch, _output, denoising_residual

WEIGHTINGS = ("edm", "sigma2")
DISTRIBUTIONS = ("lognormal", "loguniform")


@register_objective("ncdsm")
@dataclass
class NoiseConditionalDSMObjective(Objective):
    """DSM over a continuous σ distribution for a noise-conditional energy (module docstring)."""

    sigma_distribution: str = "lognormal"
    p_mean: float = -1.9  # EDM's -1.2 for data in [-1, 1]; -1.2 - ln 2 for data in [0, 1]
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 40.0
    weighting: str = "edm"
    sigma_data: float = 0.5

    def __post_init__(self):
        if self.sigma_distribution not in DISTRIBUTIONS:
            raise ConfigError(f"ncdsm sigma_distribution must be one of {DISTRIBUTIONS}, got {self.sigma_distribution!r}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"ncdsm weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")

    def sample_sigmas(self, n: int, generator, device, dtype) -> torch.Tensor:
        u = torch.randn(n, generator=generator, device=device, dtype=dtype) if self.sigma_distribution == "lognormal" \
            else torch.rand(n, generator=generator, device=device, dtype=dtype)
        if self.sigma_distribution == "lognormal":
            return (self.p_mean + self.p_std * u).exp()
        return (math.log(self.sigma_min) + u * (math.log(self.sigma_max) - math.log(self.sigma_min))).exp()

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        if self.weighting == "edm":
            return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        return 1 / sigma**2

    def __call__(self, model, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        _check_batch(x)
        sigma = self.sample_sigmas(x.shape[0], ctx.generator, x.device, x.dtype)
        energy, residual = denoising_residual(model, x, sigma, sigma, ctx.generator, conditional=True)
        loss = (self.weight(sigma) * sigma**4 * sq_norm(residual) / x[0].numel()).mean()
        return _output(loss, energy)
