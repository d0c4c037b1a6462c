"""Samplers for energy models, separate from the models (like diffusers' schedulers).

* Annealed Langevin dynamics, MDSM paper eq. (8):
      x_{t+1} = x_t - (eps^2 / 2) grad E(x_t) + eps * sqrt(T_t) * N(0, I)
  with the paper's "exp" temperature schedule (hold T_max, exponential decay to 1, linear to 0),
  the alternative "lin" schedule, or a "constant" temperature (plain Langevin, T = 1 by default).
* The single-step denoising jump, eq. (9): x_clean = x - sigma0^2 grad E(x) (Tweedie / empirical Bayes).
* Inpainting (paper Sec. 4): known pixels are clamped; at temperature T they get noise of std
  sigma0 * sqrt(T) before E is evaluated; only unknown pixels are updated; final jump on the unknown ones.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Callable

import torch
from tqdm.auto import tqdm

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


def energy_and_grad(energy_fn: EnergyFn, x: torch.Tensor, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) of shape (B,) and grad_x E(x), computed with autograd (no parameter gradients kept)."""
    with torch.enable_grad():
        x = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        energy = energy_fn(x)
        (grad,) = torch.autograd.grad(energy.sum(), x, create_graph=create_graph)
    return energy, grad


def denoise_jump(energy_fn: EnergyFn, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Eq. (9): x - sigma^2 grad E(x), the posterior mean E[x_clean | x] when E is -log p_sigma."""
    return x - sigma**2 * energy_and_grad(energy_fn, x)[1]


def temperature_schedule(
    schedule: str, t_max: float = 100.0, n_hold: int = 500, n_anneal: int = 2000, n_final: int = 200,
    n_steps: int = 1000, temperature: float = 1.0,
) -> torch.Tensor:
    """Per-step temperatures T_t.

    "exp" (paper Fig. A7B): n_hold steps at t_max, n_anneal steps T = t_max exp(-k ln(t_max)/n_anneal)
    for k = 1..n_anneal (ends at 1), then n_final steps linearly from 1 to 0.
    "lin": as "exp" but the middle part decays linearly from t_max to 1.
    "constant": n_steps steps at `temperature` (plain Langevin).
    """
    if schedule == "constant":
        return torch.full((n_steps,), float(temperature), dtype=torch.float64)
    hold = torch.full((n_hold,), float(t_max), dtype=torch.float64)
    k = torch.arange(1, n_anneal + 1, dtype=torch.float64)
    if schedule == "exp":
        anneal = t_max * torch.exp(-k * math.log(t_max) / n_anneal)
    elif schedule == "lin":
        anneal = t_max + (1.0 - t_max) * k / n_anneal
    else:
        raise ValueError(f"unknown temperature schedule {schedule!r}; use 'exp', 'lin' or 'constant'")
    final = torch.linspace(1.0, 0.0, n_final + 1, dtype=torch.float64)[1:]
    return torch.cat([hold, anneal, final])


@dataclass
class SamplerOutput:
    samples: torch.Tensor
    trajectory: list[torch.Tensor] | None = None  # snapshots (on CPU) every `trajectory_every` steps
    energy_trace: torch.Tensor | None = None  # (n_steps, B) energies along the chain, on CPU
    temperatures: torch.Tensor | None = None


@dataclass
class AnnealedLangevinSampler:
    """Annealed Langevin dynamics (MDSM eq. 8) + optional final denoising jump (eq. 9).

    ``schedule="constant"`` with ``temperature=1`` and ``denoise_jump=False`` is plain Langevin.
    """

    step_size: float = 0.02
    schedule: str = "exp"
    t_max: float = 100.0
    n_hold: int = 500
    n_anneal: int = 2000
    n_final: int = 200
    n_steps: int = 1000
    temperature: float = 1.0
    denoise_jump: bool = True
    init_mean: float = 0.5
    init_std: float = 1.0

    @classmethod
    def from_config(cls, config: dict) -> "AnnealedLangevinSampler":
        known = {f.name for f in fields(cls)}
        unknown = set(config) - known - {"name"}
        if unknown:
            raise ValueError(f"unknown sampler option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: v for k, v in config.items() if k in known})

    def to_config(self) -> dict:
        return {"name": "annealed_langevin", **asdict(self)}

    def temperatures(self) -> torch.Tensor:
        return temperature_schedule(self.schedule, self.t_max, self.n_hold, self.n_anneal, self.n_final,
                                    self.n_steps, self.temperature)

    def initial_state(self, shape: tuple[int, ...], device, dtype, generator: torch.Generator | None) -> torch.Tensor:
        """x0 = init_mean + init_std * N(0, I) (the paper: 0.5 + N(0, I))."""
        noise = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        return self.init_mean + self.init_std * noise

    @torch.no_grad()
    def run(
        self, energy_fn: EnergyFn, x: torch.Tensor, *, sigma0: float, known: torch.Tensor | None = None,
        mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
        return_trajectory: bool = False, trajectory_every: int = 100, return_energy_trace: bool = False,
        progress: bool = True,
    ) -> SamplerOutput:
        """Run the chain from x. With ``mask`` (1 = known) and ``known`` (the clean known pixels) this is
        the paper's inpainting: known pixels are clamped to ``known + sigma0 sqrt(T) noise`` when E is
        evaluated and never updated."""
        temps = self.temperatures()
        eps = self.step_size
        trajectory, trace = ([x.detach().cpu()] if return_trajectory else None), ([] if return_energy_trace else None)
        for t, temp in enumerate(tqdm(temps.tolist(), desc="Langevin", disable=not progress, leave=False)):
            if mask is not None:
                clamp_noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = mask * (known + sigma0 * math.sqrt(temp) * clamp_noise) + (1 - mask) * x
            energy, grad = energy_and_grad(energy_fn, x)
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            step = -(eps**2 / 2) * grad + eps * math.sqrt(temp) * noise
            x = x + (step if mask is None else (1 - mask) * step)
            if trace is not None:
                trace.append(energy.detach().float().cpu())
            if trajectory is not None and (t + 1) % trajectory_every == 0:
                trajectory.append(x.detach().cpu())
        if mask is not None:
            x = mask * known + (1 - mask) * x
        if self.denoise_jump:
            jumped = denoise_jump(energy_fn, x, sigma0)
            x = jumped if mask is None else mask * known + (1 - mask) * jumped
        return SamplerOutput(
            samples=x.detach(), trajectory=trajectory,
            energy_trace=torch.stack(trace) if trace else None, temperatures=temps,
        )


SAMPLERS = {"annealed_langevin": AnnealedLangevinSampler}


def build_sampler(config: dict) -> AnnealedLangevinSampler:
    """Build a sampler from a config dict ``{"name": ..., **options}``."""
    name = config.get("name", "annealed_langevin")
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known: {sorted(SAMPLERS)}")
    return SAMPLERS[name].from_config(config)
