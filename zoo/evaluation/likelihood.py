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
from .metric import METRICS, Metric, fmt

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


@METRICS.register("likelihood")
class Likelihood(Metric):
    """AIS and reverse AIS log Z (HMC transitions) and the bits/dim of test images (2-D toys: NLL per point, log Z
    also by quadrature). Only for energies that grow at infinity (MDSM's quadratic head, ML-trained EBMs): DEEN's tanh
    MLP is bounded, so exp(-E) has no finite Z on R^D and AIS estimates just grow with the chains' reach."""

    order = 30

    def applies(self, entry) -> bool:
        return entry.family in ("mdsm", "ebm")

    def run(self, ctx) -> dict:
        import math
        import time
        from dataclasses import asdict

        model, s = ctx.model, ctx.settings
        ctx.log(f"[eval] likelihood: AIS and reverse AIS ({s.ais.n_distributions} distributions x {s.ais.hmc_steps} "
                f"HMC steps x {s.ais.n_leapfrog} leapfrog, {s.ais_chains} chains)")
        reference = GaussianReference.fit(ctx.train.to(model.device, model.dtype))
        shape, dim, test = model.input_shape, math.prod(model.input_shape), ctx.test
        start_time = time.time()
        fwd = ais_log_z(model.net, reference, shape, s.ais_chains, s.ais,
                        torch.Generator(model.device).manual_seed(s.seed), progress=True)
        rev = reverse_ais_log_z(model.net, reference, test[:s.ais_chains].to(model.device, model.dtype), s.ais,
                                torch.Generator(model.device).manual_seed(s.seed + 1), progress=True)
        seconds = time.time() - start_time
        e_test = model.energy(test.to(model.device, model.dtype)).cpu()
        log_z = {"ais": fwd.log_z, "reverse_ais": rev.log_z}
        if dim == 2:  # 2-D toys: the exact answer by quadrature, and NLL in nats per point (no pixels here)
            log_z["quadrature"] = log_z_quadrature(model.net, reference)
            per_point = {"nll_nats": {k: e_test.double().mean().item() + v for k, v in log_z.items()}}
        else:
            per_point = {"bits_per_dim": {k: bits_per_dim(e_test, v, dim, model.data_range) for k, v in log_z.items()}}
        return {
            "log_z": log_z, **per_point,
            "accept_rate": {"ais": fwd.accept_rate, "reverse_ais": rev.accept_rate},
            # AIS' lower bound on log Z holds whatever the mixing; reverse AIS' upper bound only from exact model
            # samples: a reverse estimate below the forward one shows the test images are not model samples
            "bracket_consistent": fwd.log_z <= rev.log_z,
            "settings": {**asdict(s.ais), "chains": s.ais_chains, "reference": "isotropic Gaussian fit "
                         "to training images (per-pixel mean, one std)", "reverse_start": "test images",
                         "n_test_images": len(test)},
            "seconds": round(seconds, 1),
            "measures": "the density exp(-E(x))/Z of the model (for MDSM/DEEN: of the sigma0-smoothed data) at clean "
                        "test images; bits/dim for pixel values in [0, 255]. AIS gives the lower end (log Z "
                        "underestimated), reverse AIS from test images the upper end of the bits/dim bracket."}

    def card(self, lik: dict, entry) -> list[str]:
        st = lik["settings"]
        paper = entry.reported.get("bits_per_dim", {}).get("value") if entry is not None else None
        exact = "quadrature" in lik["log_z"]
        per_point, unit = (("nll_nats", "NLL (nats per point)") if "nll_nats" in lik else ("bits_per_dim", "bits/dim"))
        last = "quadrature (exact up to the grid)" if exact else "paper"
        parts = [f"**Likelihood**: {lik['measures']}", "",
                 f"Settings: {st['n_distributions']} intermediate distributions x {st['hmc_steps']} HMC step(s) x "
                 f"{st['n_leapfrog']} leapfrog steps, {st['chains']} chains, {st['reference']}; {lik['seconds']} s.", "",
                 f"| | AIS | reverse AIS | {last} |", "|---|---|---|---|",
                 f"| log Z (nats) | {fmt(lik['log_z']['ais'], 6)} | {fmt(lik['log_z']['reverse_ais'], 6)} | "
                 f"{fmt(lik['log_z']['quadrature'], 6) if exact else ''} |",
                 f"| {unit} | {fmt(lik[per_point]['ais'])} | {fmt(lik[per_point]['reverse_ais'])} | "
                 f"{fmt(lik[per_point]['quadrature']) if exact else (fmt(paper) if paper is not None else '')} |",
                 f"| HMC acceptance | {fmt(lik['accept_rate']['ais'], 2)} | {fmt(lik['accept_rate']['reverse_ais'], 2)} | |",
                 ""]
        if not lik.get("bracket_consistent", True):
            parts += ["The bracket is inverted (reverse AIS log Z < AIS log Z). AIS' lower bound on log Z holds however "
                      "poorly the chains mix, so bits/dim >= the AIS value is the number to trust; reverse AIS is an "
                      "upper bound only when started from exact model samples, and test images are evidently not "
                      "(the model puts mass where the test images are not). More distributions narrow both.", ""]
        return parts

    def eval_results(self, lik: dict, entry, common: dict) -> list:
        from huggingface_hub import EvalResult

        if "bits_per_dim" in lik:
            return [EvalResult(task_type="density-estimation", metric_type="bits-per-dim",
                               metric_name="bits/dim, AIS (lower end)", metric_value=round(lik["bits_per_dim"]["ais"], 4),
                               **common)]
        return [EvalResult(task_type="density-estimation", metric_type="nll",
                           metric_name="NLL nats per test point (log Z by quadrature)",
                           metric_value=round(lik["nll_nats"]["quadrature"], 4), **common)]

    def headline(self, lik: dict) -> str:
        if "bits_per_dim" in lik:
            return f"bits/dim >= {lik['bits_per_dim']['ais']:.3f} (AIS)"
        return f"NLL {lik['nll_nats']['quadrature']:.3f} nats/point"
