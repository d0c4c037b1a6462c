"""Samplers of a noise-conditional energy E(x, σ) (``-∇ₓE(x, σ)`` is the score of the σ-smoothed density), built from
the shared kernels and chain driver:

``pf_ode`` (default of the ncebm entries): the deterministic probability-flow ODE from σ_max to 0 on EDM's σ schedule
    σ_i = (σ_max^(1/ρ) + i/(N-1) (σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ, σ_N = 0  (Karras et al. 2022, eq. 5),
    ``heun`` steps (2N - 1 gradient evaluations), x_0 = init_mean + σ_max N(0, I).
``edm_stochastic``: the same steps with EDM's churn (Karras et al. 2022, Algorithm 2): at every σ_i in
    [s_tmin, s_tmax] the step first adds noise that raises σ_i by γ = min(s_churn / N, sqrt(2) - 1), which corrects
    errors of earlier steps (an SDE sampler; same cost).
``annealed_sigma``: annealed Langevin over ``n_levels`` geometric σ levels, ``n_steps_each`` steps per level with
    step size eps_i = sqrt(step_lr) σ_i / σ_L (Song & Ermon 2019, Algorithm 1: α_i = step_lr σ_i² / σ_L²), then the
    Tweedie jump x - σ_L² ∇ₓE(x, σ_L) (``denoise_jump``). ``kernel: mala`` or ``hmc`` adds a Metropolis test on
    E(., σ_i) at every step, which only an energy (not a score network) allows.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch

from ..argtypes import is_positive
from ..errors import ConfigError
from .chain import ChainOptions, SamplerOutput, run_chain
from .kernels import StepParams, build_kernel, energy_and_grad, per_chain
from .samplers import _positive, register_sampler
from .schedules import geometric_sigmas

# Chains start at init_mean + sigma_max N(0, I): the divergence check allows this many sigma_max around the data range.
INIT_SLACK = 8.0


def edm_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """Karras et al. 2022, eq. 5: n levels from sigma_max down to sigma_min, spaced uniformly in sigma^(1/rho)."""
    i = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    return ((sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho).tolist()


def _check_sigmas(sigma_min, sigma_max) -> None:
    _positive("sigma_min", sigma_min)
    _positive("sigma_max", sigma_max)
    if not sigma_min < sigma_max:
        raise ConfigError(f"sampler needs sigma_min < sigma_max, got {sigma_min} and {sigma_max}")


def _tweedie(sigma: float):
    """The final jump x - sigma² ∇ₓE(x, sigma) (Tweedie's posterior mean at sigma)."""
    return lambda fn, x: x - sigma**2 * energy_and_grad(lambda z: fn(z, per_chain(sigma, z)), x)[1]


@dataclass
class _NoiseConditionalSampler:
    """What both samplers share: the start x_0 = init_mean + sigma_max N(0, I) and the chain run."""

    sigma_min: float = 0.002
    sigma_max: float = 10.0
    init_mean: float = 0.5

    def to_config(self) -> dict:
        return {"name": self.registered_name, **asdict(self)}

    def _run(self, kernel, energy_fn, n, shape, schedule, final, *, device, dtype, options: ChainOptions, desc):
        def init(b: int) -> torch.Tensor:
            return self.init_mean + self.sigma_max * torch.randn((b, *shape), generator=options.generator,
                                                                  device=device, dtype=dtype)
        if not getattr(energy_fn, "noise_conditional", False):
            raise ConfigError(f"the {self.registered_name} sampler needs a noise-conditional energy E(x, sigma) "
                              f"(e.g. an ncebm entry)")
        if options.bounds is not None:
            lo, hi = options.bounds
            options = replace(options, bounds=(lo - INIT_SLACK * self.sigma_max, hi + INIT_SLACK * self.sigma_max))
        return run_chain(kernel, energy_fn, init, n, schedule, options, final=final, desc=desc)


@register_sampler("pf_ode")
@dataclass
class ProbabilityFlowODESampler(_NoiseConditionalSampler):
    """Heun on the probability-flow ODE over EDM's σ schedule (module docstring)."""

    steps: int = 18
    rho: float = 7.0

    def __post_init__(self):
        _positive("steps", self.steps, integer=True)
        _positive("rho", self.rho)
        _check_sigmas(self.sigma_min, self.sigma_max)
        self._kernel = build_kernel("heun")

    def sigmas(self) -> list[float]:
        return edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho) + [0.0]

    def chain_length(self) -> int:
        """Gradient evaluations per chain: two per Heun step, one for the last (Euler) step."""
        return 2 * self.steps - 1

    def churn(self, sigma: float) -> float:
        """γ_i at σ_i: none on the ODE (``edm_stochastic`` adds it)."""
        return 0.0

    def run(self, energy_fn, n, shape, *, sigma0=None, device=None, dtype=None,
            options: ChainOptions = ChainOptions()) -> SamplerOutput:
        s = self.sigmas()
        schedule = [StepParams(s[i] - s[i + 1], sigma=s[i], sigma_next=s[i + 1], churn=self.churn(s[i]))
                    for i in range(self.steps)]
        return self._run(self._kernel, energy_fn, n, shape, schedule, None, device=device, dtype=dtype,
                         options=options, desc=f"{self.registered_name} heun ({self.steps} steps)")


@register_sampler("edm_stochastic")
@dataclass
class EDMStochasticSampler(ProbabilityFlowODESampler):
    """EDM's stochastic sampler: ``pf_ode``'s Heun steps with churn (module docstring). Defaults: the best of the
    settings measured on ncebm-mnist (``experiments/sampler_sweep.py --churn``, ``model_cards/ncebm-mnist.sampler_sweep.json``);
    at 18 steps any s_churn >= 7.5 gives the cap γ = sqrt(2) - 1."""

    s_churn: float = 80.0
    s_tmin: float = 0.05
    s_tmax: float = 50.0
    s_noise: float = 1.003

    def __post_init__(self):
        super().__post_init__()
        for name in ("s_churn", "s_tmin", "s_tmax"):
            value = getattr(self, name)
            if not (value == 0 or is_positive(value)):
                raise ConfigError(f"sampler option {name} must be a finite number >= 0, got {value!r}")
        _positive("s_noise", self.s_noise)
        self._kernel = build_kernel("heun", s_noise=self.s_noise)

    def churn(self, sigma: float) -> float:
        """γ_i of Algorithm 2 at σ_i."""
        return min(self.s_churn / self.steps, math.sqrt(2) - 1) if self.s_tmin <= sigma <= self.s_tmax else 0.0


@register_sampler("annealed_sigma")
@dataclass
class AnnealedSigmaLangevinSampler(_NoiseConditionalSampler):
    """NCSN-style annealed Langevin over σ with any registered kernel (module docstring)."""

    n_levels: int = 10
    n_steps_each: int = 10
    step_lr: float = 2e-5
    denoise_jump: bool = True
    kernel: str = "langevin"
    kernel_args: dict = field(default_factory=dict)

    def __post_init__(self):
        _positive("n_levels", self.n_levels, integer=True)
        _positive("n_steps_each", self.n_steps_each, integer=True)
        _positive("step_lr", self.step_lr)
        _check_sigmas(self.sigma_min, self.sigma_max)
        self._kernel = build_kernel(self.kernel, **self.kernel_args)
        if getattr(self._kernel, "noise_conditional", False):
            raise ConfigError(f"kernel {self.kernel!r} is an ODE step; annealed_sigma needs an MCMC kernel "
                              f"(langevin, mala, hmc)")

    def sigmas(self) -> list[float]:
        return geometric_sigmas(self.sigma_max, self.sigma_min, self.n_levels).tolist()

    def chain_length(self) -> int:
        return self.n_levels * self.n_steps_each + int(self.denoise_jump)

    def run(self, energy_fn, n, shape, *, sigma0=None, device=None, dtype=None,
            options: ChainOptions = ChainOptions()) -> SamplerOutput:
        levels = self.sigmas()
        schedule = [StepParams(math.sqrt(self.step_lr) * s / levels[-1], sigma=s)
                    for s in levels for _ in range(self.n_steps_each)]
        out = self._run(self._kernel, energy_fn, n, shape, schedule,
                        _tweedie(levels[-1]) if self.denoise_jump else None, device=device, dtype=dtype,
                        options=options, desc=f"{self.kernel} over {self.n_levels} sigmas")
        out.extras["sigmas"] = levels
        return out
