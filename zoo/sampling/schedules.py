"""Annealing schedules: per-step temperatures of annealed Langevin dynamics (MDSM paper Sec. 3.2, Fig. A7B) and the
geometric noise levels of the sigma-annealed samplers and objectives."""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError


def temperature_schedule(
    schedule: str, t_max: float = 100.0, n_hold: int = 500, n_anneal: int = 2000, n_final: int = 200,
    n_steps: int = 1000, temperature: float = 1.0,
) -> torch.Tensor:
    """Per-step temperatures T_t (float64).

    "exp" (paper Fig. A7B): n_hold steps at t_max, n_anneal steps T = t_max exp(-k ln(t_max)/n_anneal)
    for k = 1..n_anneal (ends at 1), then n_final steps linearly from 1 to 0.
    "lin": as "exp" but the middle part decays linearly from t_max to 1.
    "constant": n_steps steps at `temperature` (plain Langevin).
    """
    for name, value in (("n_hold", n_hold), ("n_anneal", n_anneal), ("n_final", n_final), ("n_steps", n_steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"sampler option {name} must be an integer >= 0, got {value!r}")
    if schedule == "constant":
        if n_steps < 1 or not temperature >= 0:
            raise ConfigError(f"constant schedule needs n_steps >= 1 and temperature >= 0, got {n_steps}, {temperature}")
        return torch.full((n_steps,), float(temperature), dtype=torch.float64)
    if schedule not in ("exp", "lin"):
        raise ConfigError(f"unknown temperature schedule {schedule!r}; use 'exp', 'lin' or 'constant'")
    if not t_max >= 1.0:
        raise ConfigError(f"sampler option t_max must be >= 1 (the schedule anneals from t_max down to 1), got {t_max!r}")
    if n_hold + n_anneal + n_final < 1:
        raise ConfigError("the schedule has no steps: n_hold + n_anneal + n_final must be >= 1")
    hold = torch.full((n_hold,), float(t_max), dtype=torch.float64)
    k = torch.arange(1, n_anneal + 1, dtype=torch.float64)
    if schedule == "exp":
        anneal = t_max * torch.exp(-k * math.log(t_max) / n_anneal)
    else:
        anneal = t_max + (1.0 - t_max) * k / n_anneal
    final = torch.linspace(1.0, 0.0, n_final + 1, dtype=torch.float64)[1:]
    return torch.cat([hold, anneal, final])


def geometric_sigmas(sigma_max: float, sigma_min: float, n: int) -> torch.Tensor:
    """``n`` noise levels from ``sigma_max`` down to ``sigma_min``, geometrically spaced (float64; NCSN's schedule)."""
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n, dtype=torch.float64)
