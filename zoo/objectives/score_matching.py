"""Score matching objectives (Song & Kingma 2021, Sec. 3), all written for E with s(x) = -grad E(x):

* ``sm``   exact score matching, eq. (8):  E_data[ 1/2 |grad E|^2 - tr(Hess E) ]  (Hessian trace by d backward passes)
* ``ssm``  sliced score matching, eq. (15): E_data E_v[ 1/2 (v . grad E)^2 - v^T Hess E v ]; ``variance_reduced``:
           eq. (17), 1/2 |grad E|^2 in closed form for v ~ N(0, I)
* ``dsm``  denoising score matching, eq. (10): E[ 1/2 |grad E(x~) - (x~ - x)/sigma^2|^2 ],  x~ = x + sigma n
* ``mdsm`` its multiscale variant (MDSM eq. 7), ``deen`` DEEN's scaling of eq. (10) (Saremi et al. 2018, eq. 9)

The eqs. (8), (15), (17) as printed in the paper (and ../shared/papers) have "+" before the second-derivative term;
with log p = -E the Fisher divergence gives "-" (Hyvarinen 2005, with psi = -grad E): the printed sign would drive
the precision of a Gaussian to -1/Var. The consistency tests (tests/test_objectives.py) pin the sign.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..sampling import energy_and_grad
from ..tensors import randn_like, rows, sq_norm
from .base import Objective, ObjectiveContext, ObjectiveOutput, register_objective


def noise_levels(batch: int, sigma_min: float, sigma_max: float, spacing: str) -> torch.Tensor:
    """One noise level per batch position (MDSM Sec. 4): linearly or geometrically spaced in [sigma_min, sigma_max]."""
    if spacing == "linear":
        return torch.linspace(sigma_min, sigma_max, batch)
    if spacing == "geometric":
        return torch.logspace(torch.log10(torch.tensor(sigma_min)), torch.log10(torch.tensor(sigma_max)), batch)
    raise ConfigError(f"unknown noise spacing {spacing!r}; use 'linear' or 'geometric'")


def _check_batch(x: torch.Tensor) -> None:
    if x.shape[0] == 0:
        raise ConfigError("the objective got an empty batch")


def denoising_residual(model, x: torch.Tensor, sigma: torch.Tensor, target_sigma: torch.Tensor, generator,
                       conditional: bool = False):
    """grad E(x~) - (x~ - x) / target_sigma^2 at x~ = x + sigma n (per-sample sigma, target_sigma: (B,) or scalars),
    with the graph kept for the parameter gradient (double backprop); returns (E(x~), residual). The one
    denoising-score-matching term behind ``dsm``, ``deen``, ``mdsm`` and ``ncdsm`` (``conditional``: the energy is
    E(x~, sigma))."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
    target_sigma = rows(torch.as_tensor(target_sigma, dtype=x.dtype, device=x.device).expand(x.shape[0]), x)
    x_noisy = (x + rows(sigma, x) * randn_like(x, generator)).requires_grad_(True)
    energy_fn = (lambda z: model(z, sigma)) if conditional else model
    energy, grad = energy_and_grad(energy_fn, x_noisy, create_graph=True)
    return energy, grad - (x_noisy - x) / target_sigma**2


def _output(loss: torch.Tensor, energy: torch.Tensor, log_scale: float = 1.0) -> ObjectiveOutput:
    # 0 * E keeps every parameter (e.g. the head's constant bias) in the graph, so DDP sees a gradient for all.
    loss = loss + 0.0 * energy.sum()
    return ObjectiveOutput(loss, {"loss": loss.detach() * log_scale, "E_noisy": energy.detach().mean()})


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
        sigmas = noise_levels(x.shape[0], self.sigma_min, self.sigma_max, self.spacing).to(x.device, x.dtype)
        energy, residual = denoising_residual(model, x, sigmas, self.sigma0, ctx.generator)
        loss = sq_norm(residual / rows(sigmas, x)).mean()
        return _output(loss, energy, self.sigma0**4)


@register_objective("deen")
@dataclass
class DEENObjective(Objective):
    """DEEN (Saremi et al. 2018, eq. 9): L = (1/B) sum_i || x_i - xi_i + sigma^2 grad E(xi_i) ||^2, xi_i = x_i + sigma n_i
    (= 2 sigma^4 times eq. (10))."""

    sigma0: float

    def __call__(self, model, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        _check_batch(x)
        energy, residual = denoising_residual(model, x, self.sigma0, self.sigma0, ctx.generator)
        return _output(sq_norm(self.sigma0**2 * residual).mean(), energy)


@register_objective("dsm")
@dataclass
class DSMObjective(Objective):
    """Denoising score matching, Song & Kingma eq. (10), at one noise level ``sigma`` (default: the entry's sigma0)."""

    sigma0: float
    sigma: float | None = None

    def __call__(self, model, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        _check_batch(x)
        sigma = self.sigma or self.sigma0
        energy, residual = denoising_residual(model, x, sigma, sigma, ctx.generator)
        return _output(0.5 * sq_norm(residual).mean(), energy)


@register_objective("sm")
@dataclass
class ScoreMatchingObjective(Objective):
    """Exact score matching, eq. (8) (sign as in the module docstring): the Hessian trace takes d extra backward
    passes, so this is for low-dimensional data (the 2-D toys)."""

    def __call__(self, model, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        _check_batch(x)
        x = x.detach().requires_grad_(True)
        energy, grad = energy_and_grad(model, x, create_graph=True)
        flat = grad.flatten(1)
        trace = sum(torch.autograd.grad(flat[:, i].sum(), x, create_graph=True)[0].flatten(1)[:, i]
                    for i in range(flat.shape[1]))
        return _output((0.5 * sq_norm(grad) - trace).mean(), energy)


@register_objective("ssm")
@dataclass
class SlicedScoreMatchingObjective(Objective):
    """Sliced score matching, eq. (15) with ``n_projections`` random directions v per sample (``distribution``
    "gaussian" or "rademacher"); ``variance_reduced``: eq. (17) (v ~ N(0, I), 1/2 |grad E|^2 in closed form)."""

    n_projections: int = 1
    variance_reduced: bool = False
    distribution: str = "gaussian"

    def __post_init__(self):
        if self.distribution not in ("gaussian", "rademacher"):
            raise ConfigError(f"ssm distribution must be 'gaussian' or 'rademacher', got {self.distribution!r}")
        if self.variance_reduced and self.distribution != "gaussian":
            raise ConfigError("ssm variance_reduced (eq. 17) needs distribution 'gaussian'")

    def __call__(self, model, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        _check_batch(x)
        x = x.detach().requires_grad_(True)
        energy, grad = energy_and_grad(model, x, create_graph=True)
        total = 0.0
        for _ in range(self.n_projections):
            v = randn_like(x, ctx.generator)
            if self.distribution == "rademacher":
                v = v.sign()
            gv = (grad * v).flatten(1).sum(1)
            hvv = (torch.autograd.grad(gv.sum(), x, create_graph=True)[0] * v).flatten(1).sum(1)
            first = 0.5 * sq_norm(grad) if self.variance_reduced else 0.5 * gv**2
            total = total + (first - hvv).mean()
        return _output(total / self.n_projections, energy)
