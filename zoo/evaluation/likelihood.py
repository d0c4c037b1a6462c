"""Log partition function and likelihood by annealed importance sampling (Neal 2001) and reverse AIS (Burda, Grosse &
Salakhutdinov 2015), the MDSM paper's protocol (App. D): an isotropic Gaussian reference p_0, a roughly exponential
schedule of inverse temperatures, HMC transitions (the shared ``hmc`` kernel), bits/dim for pixel values in [0, 255].

Intermediate distributions  f_b(x) = exp(-[(1 - b) E_0(x) + b E(x)]),  E_0(x) = |x - mu|^2 / (2 s^2),  b: 0 -> 1.
One annealing pass from b_0 to b_K (either direction) accumulates  log w = -sum_k (b_k - b_{k-1}) (E - E_0)(x_{k-1})
and then moves x by HMC leaving f_{b_k} invariant; E[w] = Z_{b_K} / Z_{b_0}.

* AIS runs 0 -> 1 from exact reference samples: log Z = log Z_0 + logmeanexp(log w), a stochastic *lower* bound.
* Reverse AIS runs 1 -> 0 from samples of the model (in practice test images, as the paper does):
  log Z = log Z_0 - logmeanexp(log w), a stochastic *upper* bound when the start is exact.

The HMC step size is adapted between distributions towards an acceptance rate of 0.65 (a common practice, e.g. Wu et
al. 2017); each transition still leaves its own distribution invariant.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..errors import ChainDivergedError, ConfigError
from ..sampling.kernels import HMC, StepParams

TARGET_ACCEPT = 0.65


@dataclass
class AISSettings:
    n_distributions: int = 1000  # K intermediate distributions (the paper: 10,000)
    hmc_steps: int = 1  # HMC transitions per distribution (the paper: 10)
    n_leapfrog: int = 10
    step_size: float = 0.01  # initial leapfrog step, adapted towards TARGET_ACCEPT
    beta_min: float = 1e-4  # the geometric schedule starts here after b_0 = 0 ("roughly exponential")

    def __post_init__(self):
        for name in ("n_distributions", "hmc_steps", "n_leapfrog"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"AIS {name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not (self.step_size > 0 and 0 < self.beta_min < 1):
            raise ConfigError(f"AIS needs step_size > 0 and 0 < beta_min < 1, got {self.step_size}, {self.beta_min}")

    def betas(self) -> torch.Tensor:
        geometric = torch.logspace(math.log10(self.beta_min), 0.0, self.n_distributions, dtype=torch.float64)
        return torch.cat([torch.zeros(1, dtype=torch.float64), geometric])


@dataclass
class GaussianReference:
    """The isotropic Gaussian p_0 = N(mean, std^2 I) (mean: a scalar or one value per dimension)."""

    mean: torch.Tensor
    std: float

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean).flatten(1).pow(2).sum(1) / (2 * self.std**2)

    def log_z(self, dim: int) -> float:
        return 0.5 * dim * math.log(2 * math.pi * self.std**2)

    def sample(self, n: int, shape, generator=None) -> torch.Tensor:
        mean = torch.as_tensor(self.mean)
        return mean + self.std * torch.randn((n, *shape), generator=generator, device=mean.device, dtype=mean.dtype)

    @classmethod
    def fit(cls, data: torch.Tensor) -> "GaussianReference":
        """Per-dimension mean of ``data`` and one (isotropic) std around it."""
        mean = data.mean(0)
        return cls(mean, float((data - mean).std()))


@dataclass
class AISResult:
    log_z: float  # the estimate of log Z (nats)
    log_weights: torch.Tensor  # per chain
    direction: str  # "forward" (lower bound) or "reverse" (upper bound)
    accept_rate: float
    settings: AISSettings
    extras: dict = field(default_factory=dict)


def anneal(energy_fn: Callable[[torch.Tensor], torch.Tensor], reference: GaussianReference, x: torch.Tensor,
           betas: torch.Tensor, settings: AISSettings, generator=None, progress: bool = False) -> tuple[torch.Tensor, float]:
    """One annealing pass along ``betas`` from states ``x``: the per-chain log importance weights and the mean HMC
    acceptance rate."""
    kernel, eps = HMC(settings.n_leapfrog), settings.step_size
    log_w = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    accepts = []

    def gap(y):  # E(y) - E_0(y)
        with torch.no_grad():
            return (energy_fn(y) - reference.energy(y)).double()

    for k in tqdm(range(1, len(betas)), desc="AIS", disable=not progress, leave=False):
        b = float(betas[k])
        log_w -= (b - float(betas[k - 1])) * gap(x)

        def energy_b(y, b=b):
            return (1 - b) * reference.energy(y) + b * energy_fn(y)

        for _ in range(settings.hmc_steps):
            x, stats = kernel.step(energy_b, x, StepParams(eps, 1.0), generator)
            rate = stats["accept"].mean()
            accepts.append(rate)
            eps *= 1.02 if rate > TARGET_ACCEPT else 0.98  # one host sync per transition: fine for AIS' cost
        if not torch.isfinite(log_w).all():
            raise ChainDivergedError(f"AIS weights became non-finite at distribution {k} of {len(betas) - 1} "
                                     f"(beta = {b:.3g}); lower the initial step_size ({settings.step_size})")
    return log_w, float(torch.stack(accepts).mean())


def _logmeanexp(v: torch.Tensor) -> float:
    return float(torch.logsumexp(v, 0) - math.log(v.numel()))


def ais_log_z(energy_fn, reference: GaussianReference, shape, n_chains: int, settings: AISSettings | None = None,
              generator=None, progress: bool = False) -> AISResult:
    """Forward AIS from the reference: a stochastic lower bound on log Z."""
    settings = settings or AISSettings()
    x = reference.sample(n_chains, shape, generator)
    dim = math.prod(shape)
    log_w, acc = anneal(energy_fn, reference, x, settings.betas(), settings, generator, progress)
    return AISResult(reference.log_z(dim) + _logmeanexp(log_w), log_w, "forward", acc, settings)


def reverse_ais_log_z(energy_fn, reference: GaussianReference, start: torch.Tensor,
                      settings: AISSettings | None = None, generator=None, progress: bool = False) -> AISResult:
    """Reverse AIS from ``start`` (samples of the model, or test images as an approximation): a stochastic upper
    bound on log Z when ``start`` is exact."""
    settings = settings or AISSettings()
    dim = math.prod(start.shape[1:])
    log_w, acc = anneal(energy_fn, reference, start, settings.betas().flip(0), settings, generator, progress)
    return AISResult(reference.log_z(dim) - _logmeanexp(log_w), log_w, "reverse", acc, settings)


def bits_per_dim(energy: torch.Tensor, log_z: float, dim: int, data_range: tuple[float, float]) -> float:
    """Mean negative log-likelihood in bits per dimension for pixel values in [0, 255]: the density on the model's
    data range [lo, hi] is rescaled to [0, 255] (log p_255 = log p - D log(255 / (hi - lo))); the mean is of the
    log density over images (the paper's convention), not the log of the mean density."""
    lo, hi = data_range
    nll = energy.double().mean().item() + log_z + dim * math.log(255.0 / (hi - lo))
    return nll / (dim * math.log(2))


@torch.no_grad()
def log_z_quadrature(energy_fn, reference: GaussianReference, half_width_stds: float = 12.0, n: int = 1201) -> float:
    """log Z of a 2-D energy by the trapezoid-free midpoint rule on an n x n grid spanning the reference's mean
    +- ``half_width_stds`` reference stds (a check on AIS where the answer can be computed)."""
    center = torch.as_tensor(reference.mean).double().flatten().cpu()
    half = half_width_stds * reference.std
    axis = torch.linspace(-half, half, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1) + center
    param = next(iter(getattr(energy_fn, "parameters", lambda: iter(()))()), None)
    dtype, device = (param.dtype, param.device) if param is not None else (torch.float64, "cpu")
    energies = torch.cat([energy_fn(b.to(device, dtype)).double().cpu() for b in pts.split(65536)])
    cell = float(axis[1] - axis[0]) ** 2
    return float(torch.logsumexp(-energies, 0)) + math.log(cell)
