"""Training objectives for energy networks. Each objective is a callable
``objective(energy_fn, x, generator) -> ObjectiveOutput`` usable with any energy network in the zoo.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .samplers import EnergyFn, energy_and_grad


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor  # scalar to back-propagate
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # detached scalars (no GPU sync until logged)


def noise_levels(batch: int, sigma_min: float, sigma_max: float, spacing: str) -> torch.Tensor:
    """One noise level per batch position (MDSM Sec. 4): linearly or geometrically spaced in [sigma_min, sigma_max]."""
    if spacing == "linear":
        return torch.linspace(sigma_min, sigma_max, batch)
    if spacing == "geometric":
        return torch.logspace(torch.log10(torch.tensor(sigma_min)), torch.log10(torch.tensor(sigma_max)), batch)
    raise ValueError(f"unknown noise spacing {spacing!r}; use 'linear' or 'geometric'")


def _gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@dataclass
class MDSMObjective:
    """Multiscale denoising score matching, MDSM eq. (7) with l(sigma) = 1/sigma^2:

        L = (1/B) sum_i || (x_i - x~_i) / (sigma_i sigma0^2) + grad E(x~_i) / sigma_i ||^2,  x~_i = x_i + sigma_i n_i

    (double backprop). ``logs["loss"]`` is the normalised loss sigma0^4 L, as the paper reports.
    Batch position i gets the i-th of B noise levels spanning [sigma_min, sigma_max].
    """

    sigma0: float
    sigma_min: float
    sigma_max: float
    spacing: str = "linear"

    def __call__(self, energy_fn: EnergyFn, x: torch.Tensor, generator: torch.Generator | None = None) -> ObjectiveOutput:
        sigmas = noise_levels(x.shape[0], self.sigma_min, self.sigma_max, self.spacing)
        sigmas = sigmas.to(x.device, x.dtype).view(-1, *[1] * (x.dim() - 1))
        x_noisy = (x + sigmas * _gaussian_like(x, generator)).requires_grad_(True)
        energy, grad = energy_and_grad(energy_fn, x_noisy, create_graph=True)
        residual = (x - x_noisy) / (sigmas * self.sigma0**2) + grad / sigmas
        loss = residual.pow(2).flatten(1).sum(1).mean()
        # 0 * E keeps every parameter (e.g. the head's constant bias) in the graph, so DDP sees a gradient for all.
        loss = loss + 0.0 * energy.sum()
        return ObjectiveOutput(loss, {"loss": loss.detach() * self.sigma0**4, "E_noisy": energy.detach().mean()})


@dataclass
class DEENObjective:
    """DEEN (Saremi et al. 2018, eq. 9): L = (1/B) sum_i || x_i - xi_i + sigma^2 grad E(xi_i) ||^2, xi_i = x_i + sigma n_i."""

    sigma: float

    def __call__(self, energy_fn: EnergyFn, x: torch.Tensor, generator: torch.Generator | None = None) -> ObjectiveOutput:
        xi = (x + self.sigma * _gaussian_like(x, generator)).requires_grad_(True)
        energy, grad = energy_and_grad(energy_fn, xi, create_graph=True)
        loss = (x - xi + self.sigma**2 * grad).pow(2).flatten(1).sum(1).mean() + 0.0 * energy.sum()
        return ObjectiveOutput(loss, {"loss": loss.detach(), "E_noisy": energy.detach().mean()})


@dataclass
class DirectScoreObjective:
    """Denoising score matching on a *score* network psi (no energy): (1/B) sum_i || x_i - xi_i - sigma^2 psi(xi_i) ||^2.
    DEEN's baseline: psi need not be a gradient field (non-zero curl, DEEN Fig. 1 g-h)."""

    sigma: float

    def __call__(self, score_fn, x: torch.Tensor, generator: torch.Generator | None = None) -> ObjectiveOutput:
        xi = x + self.sigma * _gaussian_like(x, generator)
        loss = (x - xi - self.sigma**2 * score_fn(xi)).pow(2).flatten(1).sum(1).mean()
        return ObjectiveOutput(loss, {"loss": loss.detach()})


@dataclass
class LangevinCDObjective:
    """Contrastive divergence with one Langevin step from the data as negatives (DEEN Sec. 4, after Hyvarinen 2007):
    x- = x - sigma^2 grad E(x) + sqrt(2) sigma nu;  loss = mean E(x) - mean E(x-)."""

    sigma: float

    def __call__(self, energy_fn: EnergyFn, x: torch.Tensor, generator: torch.Generator | None = None) -> ObjectiveOutput:
        _, grad = energy_and_grad(energy_fn, x)
        negatives = (x - self.sigma**2 * grad + 2**0.5 * self.sigma * _gaussian_like(x, generator)).detach()
        loss = energy_fn(x).mean() - energy_fn(negatives).mean()
        return ObjectiveOutput(loss, {"loss": loss.detach()})


def fit(net: torch.nn.Module, objective, data: torch.Tensor, *, steps: int, batch_size: int, lr: float,
        seed: int = 0) -> list[float]:
    """A minimal single-process Adam loop for small experiments and tests (recipes use zoo.training instead)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x = data[torch.randint(0, len(data), (batch_size,), generator=gen)]
        out = objective(net, x, gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    return losses


def build_objective(spec: dict, sigma0: float):
    """Build the objective named in an entry's ``recipe.objective`` block."""
    spec = dict(spec)
    name = spec.pop("name")
    if name == "mdsm":
        return MDSMObjective(sigma0=sigma0, **spec)
    if name == "deen":
        return DEENObjective(sigma=sigma0, **spec)
    raise ValueError(f"unknown objective {name!r}; known: mdsm, deen")
