"""Named samplers built from a schedule, a kernel and the chain driver, registered by name.

``annealed_langevin`` (MDSM Sec. 3.2): x0 = init_mean + init_std N(0, I), then a kernel (default: unadjusted
Langevin, eq. 8) over the temperature schedule, then one denoising jump x - sigma0^2 grad E(x) (eq. 9).
``schedule="constant"`` with ``temperature=1`` and ``denoise_jump=False`` is plain Langevin; ``kernel="mala"`` or
``"hmc"`` swaps the one-step kernel under the same schedule.
``two_stage`` (Denoising-EBM): latent chain on the semantic energy, decode, data chain on the texture energy.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

import torch

from ..argtypes import is_positive
from ..components import Registry
from ..energies.debm import LATENT_INITS
from ..errors import ConfigError
from ..tensors import randn_like
from .chain import ChainOptions, SamplerOutput, run_chain
from .kernels import EnergyFn, StepParams, build_kernel, energy_and_grad
from .schedules import geometric_sigmas, temperature_schedule

SAMPLERS = Registry("sampler")
register_sampler = SAMPLERS.register


def build_sampler(config: dict):
    """Build a sampler from ``{"name": ..., **options}``; unknown names or options raise ConfigError."""
    config = dict(config)
    return SAMPLERS.build(config.pop("name", "annealed_langevin"), **config)


def denoise_jump(energy_fn: EnergyFn, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Eq. (9): x - sigma^2 grad E(x), the posterior mean E[x_clean | x] when E is -log p_sigma (Tweedie)."""
    return x - sigma**2 * energy_and_grad(energy_fn, x)[1]


def _positive(name: str, value, integer: bool = False) -> None:
    if not is_positive(value, integer):
        raise ConfigError(f"sampler option {name} must be a {'positive integer' if integer else 'finite number > 0'}, "
                          f"got {value!r}")


@register_sampler("annealed_langevin")
@dataclass
class AnnealedLangevinSampler:
    """Annealed MCMC (MDSM eq. 8) over a temperature schedule + optional final denoising jump (eq. 9)."""

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
    kernel: str = "langevin"
    kernel_args: dict = field(default_factory=dict)

    def __post_init__(self):
        _positive("step_size", self.step_size)
        self._kernel = build_kernel(self.kernel, **self.kernel_args)
        self._temps = temperature_schedule(self.schedule, self.t_max, self.n_hold, self.n_anneal, self.n_final,
                                           self.n_steps, self.temperature)

    def to_config(self) -> dict:
        return {"name": self.registered_name, **asdict(self)}

    def temperatures(self) -> torch.Tensor:
        return self._temps

    def chain_length(self) -> int:
        """Energy-gradient evaluations per chain (the steps plus the denoising jump)."""
        return len(self._temps) + int(self.denoise_jump)

    def run(self, energy_fn: EnergyFn, n: int, shape: tuple[int, ...], *, sigma0: float, device=None, dtype=None,
            options: ChainOptions = ChainOptions()) -> SamplerOutput:
        """n chains of shape ``shape`` from x0 = init_mean + init_std N(0, I); see ``run_chain`` for the rest."""
        def init(b: int) -> torch.Tensor:
            return self.init_mean + self.init_std * torch.randn((b, *shape), generator=options.generator,
                                                                 device=device, dtype=dtype)

        schedule = [StepParams(self.step_size, t) for t in self._temps.tolist()]
        final = (lambda fn, x: denoise_jump(fn, x, sigma0)) if self.denoise_jump else None
        out = run_chain(self._kernel, energy_fn, init, n, schedule, options, final=final,
                        desc=f"{self.kernel} ({len(schedule)} steps)")
        out.temperatures = self._temps
        return out


DATA_SCORES = ("texture_energy", "dae")  # what the two_stage sampler's data stage follows


@register_sampler("two_stage")
@dataclass
class TwoStageSampler:
    """Denoising-EBM sampling (Zeng, Algorithm 1 lines 7-13): ``latent_steps`` Langevin steps on the semantic energy
    U_s(z, σ) from z0 ~ N(0, I) (eq. 15), decode x0 = h(z), then ``data_steps`` Langevin steps on the texture energy
    U_c(x, σ) (eq. 16). The paper's update z - η∇U + sqrt(2η) e is the Langevin kernel with eps = sqrt(2η) at T = 1.
    The energy must be a ``DenoisingEBM`` (it provides U_s, U_c and h). σ of both stages is ``sigma`` (the paper does
    not state the σ used at generation; 0.1 = sqrt(η2) is the zoo's choice). For inpainting the known pixels are
    clamped clean in the data stage (U_c adds its own noise). ``latent_init="codes"`` (opt-in, not in the paper)
    starts the latent chain at the Gaussian of the training codes instead of N(0, I) (``DenoisingEBM.latent_start``).

    Opt-in, not in the paper (``data_score: dae``): the data stage follows the DAE's own score estimate
    (r(x, σ) - x) / σ² (Theorem 1; ``DenoisingEBM.dae_score_energy``) instead of -∇U_c, annealed NCSN-style (Song &
    Ermon 2019, Algorithm 1) over ``data_levels`` geometric σ levels from ``data_sigma_max`` down to ``sigma``,
    ``data_steps`` steps at each with η_i = η2 σ_i² / σ², from x0 = h(z^K) + data_sigma_max ε (the semantic image
    noised to the first level, as SDEdit does; the known pixels of an inpainting are noised to each level).
    ``denoise_jump`` ends with one DAE reconstruction x = r(x^T, σ) (Tweedie's posterior mean at σ)."""

    latent_steps: int = 35
    data_steps: int = 100
    latent_step_size: float = 0.1  # η1
    data_step_size: float = 0.01  # η2
    sigma: float = 0.1
    latent_init: str = "normal"
    data_score: str = "texture_energy"
    data_sigma_max: float | None = None  # None: sigma (one level)
    data_levels: int = 1
    denoise_jump: bool = False
    kernel: str = "langevin"
    kernel_args: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.latent_init not in LATENT_INITS:
            raise ConfigError(f"two_stage sampler: latent_init must be one of {LATENT_INITS}, got {self.latent_init!r}")
        if self.data_score not in DATA_SCORES:
            raise ConfigError(f"two_stage sampler: data_score must be one of {DATA_SCORES}, got {self.data_score!r}")
        for name in ("latent_steps", "data_steps", "data_levels"):
            _positive(name, getattr(self, name), integer=True)
        for name in ("latent_step_size", "data_step_size", "sigma"):
            _positive(name, getattr(self, name))
        if self.data_sigma_max is not None:
            _positive("data_sigma_max", self.data_sigma_max)
            if self.data_sigma_max < self.sigma:
                raise ConfigError(f"two_stage sampler: data_sigma_max ({self.data_sigma_max}) must be >= sigma "
                                  f"({self.sigma})")
        if self.data_score == "texture_energy" and (self.data_levels > 1 or self.data_sigma_max is not None):
            raise ConfigError("two_stage sampler: data_sigma_max and data_levels anneal the data stage's noise level, "
                              "which needs data_score: dae (U_c adds its own noise to x)")
        self._kernel = build_kernel(self.kernel, **self.kernel_args)
        if self.data_score == "dae" and self.kernel != "langevin":
            raise ConfigError(f"two_stage sampler: data_score: dae follows a score, not an energy's gradient: no "
                              f"Metropolis test applies, so it needs kernel: langevin (got {self.kernel!r})")

    def to_config(self) -> dict:
        return {"name": self.registered_name, **asdict(self)}

    def data_sigmas(self) -> list[float] | None:
        """The data stage's noise levels, σ_max down to σ (geometric), or None for the paper's stage on U_c."""
        if self.data_score == "texture_energy":
            return None
        top = self.sigma if self.data_sigma_max is None else self.data_sigma_max
        return geometric_sigmas(top, self.sigma, self.data_levels).tolist()

    def chain_length(self) -> int:
        return self.latent_steps + self.data_levels * self.data_steps + int(self.denoise_jump)

    def run(self, net, n: int, shape: tuple[int, ...], *, sigma0: float, device=None, dtype=None,
            options: ChainOptions = ChainOptions()) -> SamplerOutput:
        if not hasattr(net, "semantic_energy"):
            raise ConfigError("the two_stage sampler needs a DenoisingEBM energy (semantic + texture energy)")
        if options.clamp is not None and self.data_score == "texture_energy":  # U_c adds its own noise: clamp clean
            options = dataclasses.replace(options, clamp=dataclasses.replace(options.clamp, noise_scale=0.0))
        return two_stage_chain(
            net, n, self.sigma, self.latent_steps, self.data_steps, self.latent_step_size, self.data_step_size,
            kernel=self._kernel, latent_init=self.latent_init, data_sigmas=self.data_sigmas(),
            denoise_jump=self.denoise_jump, device=device, dtype=dtype, options=options)


def two_stage_chain(net, n: int, sigma, latent_steps: int, data_steps: int, eta1: float, eta2: float, *, kernel=None,
                    latent_init: str = "normal", data_sigmas: list[float] | None = None, denoise_jump: bool = False,
                    device=None, dtype=None, options: ChainOptions = ChainOptions(progress=False)) -> SamplerOutput:
    """Zeng Algorithm 1 lines 7-13 (used by the sampler and by training): z^K by the kernel on U_s(., sigma) from
    N(0, I) (eq. 15, eps = sqrt(2 eta1); or the opt-in ``latent_init``), x0 = h(z^K), x^T by the kernel on
    U_c(., sigma) (eq. 16, eps = sqrt(2 eta2)); the clamp and the divergence check apply to the data stage.
    ``sigma`` is a float or one value per chain. The output's ``extras`` hold the semantic image x0 (paper Fig. 5).
    ``data_sigmas`` (opt-in, a float ``sigma`` only): the data stage follows the DAE's score instead, ``data_steps``
    steps at each of these levels from x0 = h(z^K) + data_sigmas[0] ε (``TwoStageSampler``); ``denoise_jump``: then
    x = r(x^T, sigma)."""
    kernel = kernel or build_kernel("langevin")
    generator = options.generator
    latent = run_chain(
        kernel, lambda z: net.semantic_energy(z, sigma, generator),
        lambda b: net.latent_start(b, latent_init, generator=generator, device=device, dtype=dtype), n,
        [StepParams((2 * eta1) ** 0.5, 1.0)] * latent_steps, dataclasses.replace(options, clamp=None, bounds=None),
        desc="latent (U_s)")
    with torch.no_grad():
        semantic = net.decoder(latent.samples)
    starts = iter(semantic.split(options.batch_size or n))
    if data_sigmas is None:
        energy, init = (lambda x: net.texture_energy(x, sigma, generator)), (lambda b: next(starts))
        schedule, desc = [StepParams((2 * eta2) ** 0.5, 1.0)] * data_steps, "data (U_c)"
    else:
        def init(b: int) -> torch.Tensor:
            x0 = next(starts)
            return x0 + data_sigmas[0] * randn_like(x0, generator)

        energy, desc = net.dae_score_energy, "data (DAE score)"
        schedule = [StepParams((2 * eta2) ** 0.5 * s / sigma, 1.0, sigma=s) for s in data_sigmas
                    for _ in range(data_steps)]
    final = (lambda fn, x: net.reconstruct(x, sigma)) if denoise_jump else None
    out = run_chain(kernel, energy, init, n, schedule, options, final=final, desc=desc)
    with torch.no_grad():
        decoded = [net.decoder(s.to(semantic.device)).cpu() for s in latent.trajectory] if latent.trajectory else None
    out.extras = {"semantic": semantic, "latent": latent.samples, "semantic_trajectory": decoded,
                  "latent_energy_trace": latent.energy_trace}
    return out
