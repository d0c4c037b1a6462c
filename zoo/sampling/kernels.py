"""One-step MCMC kernels for a tempered target p_T(x) ∝ exp(-E(x)/T), registered by name.

Each kernel is ``kernel.step(energy_fn, x, params, generator) -> (x_new, stats)`` for a batch of independent
chains (one per row of x); ``stats["energy"]`` is E at the input x, shape (B,). ``params`` holds the step size
eps and the temperature T of this step. The chain driver (``chain.py``) owns the loop around them.

* ``langevin`` (unadjusted), MDSM eq. (8):  x' = x - (eps^2/2) grad E(x) + eps sqrt(T) z
* ``mala``: the same proposal with a Metropolis-Hastings correction (Roberts & Tweedie 1996)
* ``hmc``: leapfrog on H(x, p) = E(x)/T + |p|^2/2 with ``n_leapfrog`` steps of size eps, then a
  Metropolis test on H (Neal 2011)
* ``heun``: one step of the probability-flow ODE of a noise-conditional energy from sigma to sigma_next (Karras et
  al. 2022, Algorithm 1); with a step's ``churn`` gamma > 0 it first raises sigma to sigma (1 + gamma) by fresh noise
  (their Algorithm 2, the stochastic sampler)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import ConfigError
from ..components import Registry
from ..tensors import randn_like, rows, sq_norm

EnergyFn = Callable[[torch.Tensor], torch.Tensor]
KERNELS = Registry("sampling kernel")
register_kernel = KERNELS.register


def build_kernel(name: str, **options):
    return KERNELS.build(name, **options)


@dataclass(frozen=True)
class StepParams:
    """One step's parameters. ``sigma``: the noise level of a noise-conditional energy E(x, sigma) at this step (the
    chain binds it for the kernel); ``sigma_next``: the level the step moves to (the probability-flow ODE);
    ``churn``: Karras et al.'s gamma_i, the share by which a ``heun`` step first raises sigma with fresh noise."""

    step_size: float
    temperature: float = 1.0
    sigma: float | None = None
    sigma_next: float | None = None
    churn: float = 0.0

    @property
    def sigma_hat(self) -> float | None:
        """σ̂ = σ(1 + γ): the level a step evaluates the energy at after its churn (Karras et al., Algorithm 2)."""
        return None if self.sigma is None else self.sigma * (1 + self.churn)


def energy_and_grad(energy_fn: EnergyFn, x: torch.Tensor, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) of shape (B,) and grad_x E(x), computed with autograd (no parameter gradients kept)."""
    with torch.enable_grad():
        x = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        energy = energy_fn(x)
        (grad,) = torch.autograd.grad(energy.sum(), x, create_graph=create_graph)
    return energy, grad


def per_chain(sigma: float, x: torch.Tensor) -> torch.Tensor:
    """A noise level as one value per chain (B,): a tensor, so that a compiled network is not recompiled per sigma."""
    return x.new_full((x.shape[0],), sigma)


def _metropolis(log_ratio: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Accept each chain with probability min(1, exp(log_ratio)); NaN ratios reject."""
    u = torch.rand(log_ratio.shape, generator=generator, device=log_ratio.device, dtype=log_ratio.dtype)
    return torch.log(u) < log_ratio


@register_kernel("langevin")
@dataclass
class Langevin:
    """Unadjusted Langevin dynamics, MDSM eq. (8)."""

    def step(self, energy_fn: EnergyFn, x: torch.Tensor, params: StepParams, generator=None):
        eps, temp = params.step_size, params.temperature
        energy, grad = energy_and_grad(energy_fn, x)
        noise = randn_like(x, generator)
        step = -(eps**2 / 2) * grad + eps * math.sqrt(temp) * noise
        return x + step, {"energy": energy.detach()}


@register_kernel("mala")
@dataclass
class MALA:
    """Metropolis-adjusted Langevin: the Langevin proposal y, accepted with
    min(1, exp(-(E(y) - E(x))/T) q(x|y) / q(y|x)),  q(y|x) = N(y; x - (eps^2/2) grad E(x), eps^2 T I).
    At T = 0 the move is kept only where it lowers E (the T -> 0 limit of the test on E)."""

    def step(self, energy_fn: EnergyFn, x: torch.Tensor, params: StepParams, generator=None):
        eps, temp = params.step_size, params.temperature
        e_x, g_x = energy_and_grad(energy_fn, x)
        y = x - (eps**2 / 2) * g_x + eps * math.sqrt(temp) * randn_like(x, generator)
        e_y, g_y = energy_and_grad(energy_fn, y)
        if temp > 0:
            log_q_fwd = -sq_norm(y - x + (eps**2 / 2) * g_x) / (2 * eps**2 * temp)
            log_q_bwd = -sq_norm(x - y + (eps**2 / 2) * g_y) / (2 * eps**2 * temp)
            accept = _metropolis(-(e_y - e_x) / temp + log_q_bwd - log_q_fwd, generator)
        else:
            accept = e_y <= e_x
        x_new = torch.where(rows(accept, x), y, x)
        return x_new.detach(), {"energy": e_x.detach(), "accept": accept.to(x.dtype)}


def leapfrog(energy_fn: EnergyFn, x: torch.Tensor, p: torch.Tensor, step_size: float, n_steps: int,
             temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """n_steps leapfrog steps of Hamilton's equations for H = E(x)/T + |p|^2/2 (time-reversible, volume-preserving)."""
    p = p - (step_size / 2) * energy_and_grad(energy_fn, x)[1] / temperature
    for i in range(n_steps):
        x = x + step_size * p
        if i < n_steps - 1:
            p = p - step_size * energy_and_grad(energy_fn, x)[1] / temperature
    p = p - (step_size / 2) * energy_and_grad(energy_fn, x)[1] / temperature
    return x.detach(), p.detach()


@register_kernel("hmc")
@dataclass
class HMC:
    """Hamiltonian Monte Carlo: p ~ N(0, I), ``n_leapfrog`` leapfrog steps of size eps on H = E/T + |p|^2/2,
    accept with min(1, exp(H_0 - H_1)). Needs T > 0."""

    n_leapfrog: int = 10

    def __post_init__(self):
        if not isinstance(self.n_leapfrog, int) or self.n_leapfrog < 1:
            raise ConfigError(f"hmc n_leapfrog must be an integer >= 1, got {self.n_leapfrog!r}")

    def step(self, energy_fn: EnergyFn, x: torch.Tensor, params: StepParams, generator=None):
        eps, temp = params.step_size, params.temperature
        if not temp > 0:
            raise ConfigError(f"hmc needs a temperature > 0, got {temp}; end the schedule above 0 (n_final: 0)")
        p0 = randn_like(x, generator)
        with torch.no_grad():
            e0 = energy_fn(x)
        x1, p1 = leapfrog(energy_fn, x, p0, eps, self.n_leapfrog, temp)
        with torch.no_grad():
            e1 = energy_fn(x1)
        h0 = e0 / temp + sq_norm(p0) / 2
        h1 = e1 / temp + sq_norm(p1) / 2
        accept = _metropolis(h0 - h1, generator)
        x_new = torch.where(rows(accept, x), x1, x)
        return x_new, {"energy": e0.detach(), "accept": accept.to(x.dtype)}


@register_kernel("heun")
@dataclass
class Heun:
    """Probability-flow ODE dx/dσ = σ ∇ₓE(x, σ) (= (x - D(x, σ)) / σ with the Tweedie denoiser D = x - σ² ∇E), one
    Heun step from σ to σ_next; Euler when σ_next = 0 (that last step is the Tweedie jump x - σ² ∇E). Karras et al.
    2022, Algorithm 1. With the step's churn γ > 0, first σ̂ = σ(1 + γ) and x̂ = x + sqrt(σ̂² - σ²) s_noise ε, then
    the Heun step from σ̂ (their Algorithm 2, lines 4-6). The energy is called as E(x, σ) (``noise_conditional``)."""

    s_noise: float = 1.0  # Karras et al.'s S_noise: the churn's noise is a little above unit variance

    noise_conditional = True

    def step(self, energy_fn: EnergyFn, x: torch.Tensor, params: StepParams, generator=None):
        sigma, sigma_next = params.sigma, params.sigma_next
        if sigma is None or sigma_next is None:
            raise ConfigError("the heun kernel needs a sigma schedule (a noise-conditional sampler such as pf_ode)")
        if params.churn > 0:
            sigma_hat = params.sigma_hat
            x = x + math.sqrt(sigma_hat**2 - sigma**2) * self.s_noise * randn_like(x, generator)
            sigma = sigma_hat
        energy, grad = energy_and_grad(lambda z: energy_fn(z, per_chain(sigma, z)), x)
        d = sigma * grad
        y = x + (sigma_next - sigma) * d
        if sigma_next > 0:
            d_next = sigma_next * energy_and_grad(lambda z: energy_fn(z, per_chain(sigma_next, z)), y)[1]
            y = x + (sigma_next - sigma) * (d + d_next) / 2
        return y.detach(), {"energy": energy.detach()}
