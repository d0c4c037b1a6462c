"""Denoising score matching objectives: MDSM (multiscale) and DEEN (single scale)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..sampling import energy_and_grad
from .base import Objective, ObjectiveContext, ObjectiveOutput, register_objective


def noise_levels(batch: int, sigma_min: float, sigma_max: float, spacing: str) -> torch.Tensor:
    """One noise level per batch position (MDSM Sec. 4): linearly or geometrically spaced in [sigma_min, sigma_max]."""
    if spacing == "linear":
        return torch.linspace(sigma_min, sigma_max, batch)
    if spacing == "geometric":
        return torch.logspace(torch.log10(torch.tensor(sigma_min)), torch.log10(torch.tensor(sigma_max)), batch)
    raise ConfigError(f"unknown noise spacing {spacing!r}; use 'linear' or 'geometric'")


def _gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _check_batch(x: torch.Tensor) -> None:
    if x.shape[0] == 0:
        raise ConfigError("the objective got an empty batch")


@register_objective("mdsm")
@dataclass
class MDSMObjective(Objective):
    """Multiscale denoising score matching, MDSM eq. (7) with l(sigma) = 1/sigma^2:

        L = (1/B) sum_i || (x_i - x~_i) / (sigma_i sigma0^2) + grad E(x~_i) / sigma_i ||^2,  x~_i = x_i + sigma_i n_i

    (double backprop). ``logs["loss"]`` is the normalised loss sigma0^4 L, as the paper reports.
    Batch position i gets the i-th of B noise levels spanning [sigma_min, sigma_max].
    """

    sigma0: float
    sigma_min: float
    sigma_max: float
    spacing: str = "linear"

    def __call__(self, model, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        _check_batch(x)
        sigmas = noise_levels(x.shape[0], self.sigma_min, self.sigma_max, self.spacing)
        sigmas = sigmas.to(x.device, x.dtype).view(-1, *[1] * (x.dim() - 1))
        x_noisy = (x + sigmas * _gaussian_like(x, ctx.generator)).requires_grad_(True)
        energy, grad = energy_and_grad(model, x_noisy, create_graph=True)
        residual = (x - x_noisy) / (sigmas * self.sigma0**2) + grad / sigmas
        loss = residual.pow(2).flatten(1).sum(1).mean()
        # 0 * E keeps every parameter (e.g. the head's constant bias) in the graph, so DDP sees a gradient for all.
        loss = loss + 0.0 * energy.sum()
        return ObjectiveOutput(loss, {"loss": loss.detach() * self.sigma0**4, "E_noisy": energy.detach().mean()})


@register_objective("deen")
@dataclass
class DEENObjective(Objective):
    """DEEN (Saremi et al. 2018, eq. 9): L = (1/B) sum_i || x_i - xi_i + sigma^2 grad E(xi_i) ||^2, xi_i = x_i + sigma n_i."""

    sigma0: float

    def __call__(self, model, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        _check_batch(x)
        xi = (x + self.sigma0 * _gaussian_like(x, ctx.generator)).requires_grad_(True)
        energy, grad = energy_and_grad(model, xi, create_graph=True)
        loss = (x - xi + self.sigma0**2 * grad).pow(2).flatten(1).sum(1).mean() + 0.0 * energy.sum()
        return ObjectiveOutput(loss, {"loss": loss.detach(), "E_noisy": energy.detach().mean()})
