"""The chain driver: runs a one-step kernel over a schedule of (step size, temperature).

It is the ONLY place that applies constraints (the inpainting clamp), records traces, splits a large n into
micro-batches and checks for divergence. Kernels (``kernels.py``) know nothing of any of this.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch
from tqdm.auto import tqdm

from ..errors import ChainDivergedError
from ..tensors import randn_like, rows
from .kernels import EnergyFn, StepParams, per_chain

CHECK_EVERY = 50  # steps between the (host-syncing) divergence checks; the failing step itself is tracked on device


@dataclass
class SamplerOutput:
    samples: torch.Tensor
    trajectory: list[torch.Tensor] | None = None  # snapshots (on CPU): x0, then every `trajectory_every` steps
    energy_trace: torch.Tensor | None = None  # (n_steps, B) energies along the chain, on CPU
    temperatures: torch.Tensor | None = None
    accept_rate: float | None = None  # Metropolis kernels: the mean acceptance over steps and chains
    extras: dict = field(default_factory=dict)


@runtime_checkable
class Sampler(Protocol):
    """What ``EnergyModel.sample`` / ``inpaint`` need of a sampler (every registered sampler is one)."""

    def chain_length(self) -> int:
        """Energy-gradient evaluations per chain: the sampler's cost."""

    def run(self, energy_fn, n: int, shape: tuple[int, ...], *, sigma0: float, device=None, dtype=None,
            options: "ChainOptions" = ...) -> SamplerOutput:
        """n chains of the given shape."""


@dataclass
class Clamp:
    """Inpainting constraint (MDSM Sec. 4): pixels where ``mask`` is True keep the ``known`` values and are never
    updated; at temperature T the energy sees them with noise of std ``noise_scale * sqrt(T)``, a noise-conditional
    energy E(x, sigma) at the sigma it is evaluated at."""

    mask: torch.Tensor  # bool, the shape of known
    known: torch.Tensor
    noise_scale: float

    def rows(self, sl: slice) -> "Clamp":
        return Clamp(self.mask[sl], self.known[sl], self.noise_scale)

    def draw(self, params: StepParams, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(the known pixels as the chain's x carries them at this step, the noise eps they were drawn with): for a
        noise-conditional energy noised at the std the step starts from (``params.sigma_hat``: sigma, raised by a
        step's churn), else ``noise_scale * sqrt(T)``."""
        eps = randn_like(self.known, generator)
        std = params.sigma_hat if params.sigma is not None else self.noise_scale * math.sqrt(params.temperature)
        return self.known + std * eps, eps

    def apply(self, x: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        return torch.where(self.mask, self.known if known is None else known, x)

    def energy(self, energy_fn: EnergyFn, known: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> EnergyFn:
        """E(x with the known pixels clamped): a new EnergyFn whose gradient is zero on the known pixels. Called with a
        sigma (a noise-conditional energy E(x, sigma)) and the step's ``eps``, it sees the known pixels at exactly that
        noise, known + sigma eps, at every evaluation of a step (a Heun step evaluates at sigma_hat, then at
        sigma_next); else it sees ``known`` (default: the clean values)."""
        def clamped(x, *sigma):
            if sigma and eps is not None:
                return energy_fn(self.apply(x, self.known + rows(sigma[0], x) * eps), *sigma)
            return energy_fn(self.apply(x, known), *sigma)

        return clamped


def _check(first_bad: torch.Tensor, n_steps: int, step_size: float, bounds) -> None:
    bad = int(first_bad.item())
    if bad >= 0:
        lo, hi = bounds
        raise ChainDivergedError(
            f"the sampling chain diverged at step {bad + 1} of {n_steps}: samples became NaN/inf or left [{lo:g}, {hi:g}], "
            f"far outside the data range. The step size ({step_size:g}) is probably too large for this energy: "
            f"lower step_size (e.g. {step_size / 3:g}) or use one of the entry's presets."
        )


def _at_sigma(kernel, energy_fn: EnergyFn, params: StepParams) -> EnergyFn:
    """The energy as the kernel calls it: E(., sigma) bound to this step's sigma for a noise-conditional energy,
    unless the kernel takes sigma itself (``noise_conditional`` kernels, e.g. the ODE's)."""
    if params.sigma is None or getattr(kernel, "noise_conditional", False):
        return energy_fn
    return lambda x, sigma=params.sigma: energy_fn(x, per_chain(sigma, x))


def _run_one(kernel, energy_fn: EnergyFn, x: torch.Tensor, schedule: Sequence[StepParams], generator, clamp, final,
             bounds, trajectory_every, record_energy, bar) -> SamplerOutput:
    trajectory = [x.detach()] if trajectory_every else None
    trace, accepts = [], []
    first_bad = torch.full((), -1, dtype=torch.long, device=x.device)
    for t, params in enumerate(schedule):
        fn = _at_sigma(kernel, energy_fn, params)
        if clamp is not None:
            known_t, eps = clamp.draw(params, generator)
            x, fn = clamp.apply(x, known_t), clamp.energy(fn, known_t, eps)
        x, stats = kernel.step(fn, x, params, generator)
        if clamp is not None:
            x = clamp.apply(x, known_t)
        if record_energy:
            trace.append(stats["energy"].float())
        if "accept" in stats:
            accepts.append(stats["accept"].float().mean())
        if trajectory_every and (t + 1) % trajectory_every == 0:
            trajectory.append(x.detach())
        if bounds is not None:
            bad = ~((x >= bounds[0]) & (x <= bounds[1])).all()
            first_bad = torch.where(bad & (first_bad < 0), t, first_bad)
            if (t + 1) % CHECK_EVERY == 0:
                _check(first_bad, len(schedule), params.step_size, bounds)
        if bar is not None:
            bar.update(1)
    if clamp is not None:
        x = clamp.apply(x)
    if final is not None:
        x = final(clamp.energy(energy_fn) if clamp is not None else energy_fn, x)
        if clamp is not None:
            x = clamp.apply(x)
    if bounds is not None and schedule:
        bad = ~((x >= bounds[0]) & (x <= bounds[1])).all()
        first_bad = torch.where(bad & (first_bad < 0), len(schedule) - 1, first_bad)
        _check(first_bad, len(schedule), schedule[-1].step_size, bounds)
    return SamplerOutput(
        samples=x.detach(),
        trajectory=[s.cpu() for s in trajectory] if trajectory is not None else None,
        energy_trace=torch.stack(trace).cpu() if trace else None,
        accept_rate=torch.stack(accepts).mean().item() if accepts else None,
    )


@dataclass(frozen=True)
class ChainOptions:
    """How chains run, whatever the sampler: the noise source, micro-batches, the inpainting clamp, the divergence
    check, what is recorded and whether a progress bar shows."""

    generator: torch.Generator | None = None
    batch_size: int | None = None  # chains per micro-batch (None: all at once)
    clamp: Clamp | None = None  # rows aligned with the chains
    bounds: tuple[float, float] | None = None  # None: no divergence check
    trajectory_every: int | None = None  # None: no trajectory
    record_energy: bool = False
    progress: bool = True


def run_chain(
    kernel, energy_fn: EnergyFn, init: Callable[[int], torch.Tensor], n: int, schedule: Sequence[StepParams],
    options: ChainOptions = ChainOptions(), *, final: Callable[[EnergyFn, torch.Tensor], torch.Tensor] | None = None,
    desc: str = "MCMC",
) -> SamplerOutput:
    """Run ``kernel`` over ``schedule`` for n chains, as ``options`` say (micro-batches, clamp, divergence check
    naming the step (ChainDivergedError), recording).

    ``init(b)`` gives the initial states of the next b chains; ``final(energy_fn, x)`` is applied once after the last
    step (e.g. the denoising jump).
    """
    o = options
    batch_size = n if o.batch_size is None else o.batch_size
    starts = range(0, n, batch_size)
    outputs = []
    with tqdm(total=len(schedule) * len(starts), desc=desc, disable=not o.progress, leave=False) as bar:
        for start in starts:
            rows = slice(start, min(start + batch_size, n))
            x0 = init(rows.stop - rows.start)
            outputs.append(_run_one(kernel, energy_fn, x0, schedule, o.generator,
                                    o.clamp.rows(rows) if o.clamp else None, final, o.bounds, o.trajectory_every,
                                    o.record_energy, bar))
    if len(outputs) == 1:
        return outputs[0]
    first = outputs[0]
    return SamplerOutput(
        samples=torch.cat([o.samples for o in outputs]),
        trajectory=[torch.cat(snaps) for snaps in zip(*(o.trajectory for o in outputs))] if first.trajectory else None,
        energy_trace=torch.cat([o.energy_trace for o in outputs], 1) if first.energy_trace is not None else None,
        accept_rate=sum(o.accept_rate for o in outputs) / len(outputs) if first.accept_rate is not None else None,
    )
