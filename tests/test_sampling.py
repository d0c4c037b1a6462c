"""Sampling components: kernels on analytic targets, the chain driver (constraints, micro-batching, divergence),
the rebuilt MDSM sampler against the 0.1 loop, and composition."""
import math

import pytest
import torch

import zoo
from conftest import tiny_model
from legacy_sampler import legacy_inpaint, legacy_sample
from zoo.sampling import (HMC, KERNELS, MALA, SAMPLERS, AnnealedLangevinSampler, ChainOptions, StepParams, build_sampler,
                          leapfrog, register_kernel, run_chain, temperature_schedule)


class GaussianEnergy(torch.nn.Module):
    """E(x) = 1/2 (x - mu)^T P (x - mu), the energy of N(mu, P^-1)."""

    def __init__(self, mu, cov):
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(mu, dtype=torch.float64))
        self.register_buffer("prec", torch.linalg.inv(torch.as_tensor(cov, dtype=torch.float64)))
        self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        d = x - self.mu
        return 0.5 * ((d @ self.prec) * d).sum(-1) + 0 * self.dummy


class MixtureEnergy(torch.nn.Module):
    """-log of an equal mixture of N(-m, s^2 I) and N(+m, s^2 I) in 2-D."""

    def __init__(self, m=1.5, s=0.5):
        super().__init__()
        self.m, self.s = torch.tensor([m, 0.0], dtype=torch.float64), s

    def forward(self, x):
        a = -((x - self.m) ** 2).sum(-1) / (2 * self.s**2)
        b = -((x + self.m) ** 2).sum(-1) / (2 * self.s**2)
        return -torch.logsumexp(torch.stack([a, b]), 0)


def gaussian_model(mu, cov, sigma0=0.1):
    config = {"entry": "gauss", "family": "test", "input_shape": [2], "data_range": [-5.0, 5.0], "sigma0": sigma0,
              "architecture": {"class": "analytic"}}
    return zoo.EnergyModel(config, GaussianEnergy(mu, cov), {"default": {"name": "annealed_langevin"}}).double()


MU = [1.0, -2.0]
COV = [[1.0, 0.6], [0.6, 0.5]]


def check_moments(x, mu=MU, cov=COV, tol_mean=0.06, tol_cov=0.08):
    x = x.double()
    torch.testing.assert_close(x.mean(0), torch.as_tensor(mu, dtype=torch.float64), atol=tol_mean, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), torch.as_tensor(cov, dtype=torch.float64), atol=tol_cov, rtol=0)


def run_kernel(kernel, energy, n=4000, steps=600, eps=0.3, seed=0, x0=None):
    g = torch.Generator().manual_seed(seed)
    init = (lambda b: torch.randn(b, 2, generator=g, dtype=torch.float64)) if x0 is None else (lambda b: x0.clone())
    return run_chain(kernel, energy, init, n, [StepParams(eps, 1.0)] * steps, ChainOptions(generator=g, progress=False))


PLAIN = dict(schedule="constant", temperature=1.0, denoise_jump=False, init_mean=0.0, init_std=1.0, progress=False)


@pytest.mark.parametrize("kernel, eps, steps", [("langevin", 0.1, 1500), ("mala", 0.5, 500), ("hmc", 0.3, 150)])
def test_kernels_sample_an_anisotropic_gaussian(kernel, eps, steps):
    model = gaussian_model(MU, COV)
    x = model.sample(4000, seed=0, kernel=kernel, n_steps=steps, step_size=eps, **PLAIN)
    check_moments(x)


@pytest.mark.parametrize("kernel", [MALA(), HMC(n_leapfrog=5)])
def test_metropolis_kernels_sample_a_mixture_with_sane_acceptance(kernel):
    energy = MixtureEnergy()
    out = run_kernel(kernel, energy, n=3000, steps=400, eps=0.4)
    x = out.samples
    assert 0.3 < out.accept_rate < 0.99, out.accept_rate
    # both modes equally weighted; within a mode mean +-1.5 and variance 0.25 -> overall var(x0) = 2.25 + 0.25
    assert abs((x[:, 0] > 0).double().mean().item() - 0.5) < 0.06
    assert abs(x[:, 0].var().item() - 2.5) < 0.25 and abs(x[:, 1].var().item() - 0.25) < 0.04


def test_moment_check_can_fail():
    """Too few steps from a far start do not reach the target: the moment check is not trivially satisfied."""
    model = gaussian_model(MU, COV)
    x = model.sample(2000, seed=0, n_steps=5, step_size=0.1, **{**PLAIN, "init_mean": 4.0, "init_std": 0.1})
    with pytest.raises(AssertionError):
        check_moments(x)


def test_mala_rejects_too_large_steps_and_hmc_is_reversible():
    energy = GaussianEnergy(MU, COV)
    assert run_kernel(MALA(), energy, n=500, steps=20, eps=3.0).accept_rate < 0.2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    p = torch.randn(50, 2, generator=g, dtype=torch.float64)
    x1, p1 = leapfrog(energy, x, p, 0.1, 20, 1.0)
    x2, p2 = leapfrog(energy, x1, -p1, 0.1, 20, 1.0)
    torch.testing.assert_close(x2, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(-p2, p, atol=1e-12, rtol=0)
    assert not torch.allclose(x1, x)


def test_annealed_langevin_cools_to_target():
    model = gaussian_model(MU, COV)
    x = model.sample(4000, seed=1, progress=False, schedule="exp", t_max=25.0, n_hold=100, n_anneal=4000, n_final=0,
                     step_size=0.2, denoise_jump=False)
    check_moments(x, tol_cov=0.1)


def test_rebuilt_mdsm_sampler_equals_the_01_loop_bit_for_bit():
    torch.manual_seed(0)
    model = tiny_model().double().eval()
    new = model.sample(3, seed=7, clip=False, progress=False)
    assert torch.equal(new, legacy_sample(model, 3, seed=7))
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    mask[..., :4] = 1
    assert torch.equal(model.inpaint(x, mask, seed=3, clip=False, progress=False), legacy_inpaint(model, x, mask, seed=3))
    # and with the bundled weights, the entry's default sampler (float32)
    small = zoo.load("mdsm-mnist-small")
    assert torch.equal(small.sample(2, seed=0, clip=False, progress=False, n_hold=5, n_anneal=10, n_final=5),
                       legacy_sample(small, 2, seed=0, n_hold=5, n_anneal=10, n_final=5))


def test_samples_are_clipped_to_the_data_range_unless_asked():
    torch.manual_seed(0)
    model = tiny_model().double().eval()
    raw = model.sample(4, seed=0, clip=False, progress=False)
    clipped = model.sample(4, seed=0, progress=False)
    assert raw.min() < 0 or raw.max() > 1  # a random net's chain leaves [0, 1] ...
    assert clipped.min() >= 0 and clipped.max() <= 1  # ... and sample() returns the data range
    torch.testing.assert_close(clipped, raw.clamp(0, 1), rtol=0, atol=0)


def test_micro_batches_give_the_right_shape_traces_and_independent_chains():
    torch.manual_seed(0)
    model = tiny_model().double().eval()
    out = model.sample(5, batch_size=2, seed=0, preset="short", progress=False, return_trajectory=True,
                       return_energy_trace=True, trajectory_every=2)
    assert out.samples.shape == (5, 1, 8, 8) and out.energy_trace.shape == (4, 5)
    assert len(out.trajectory) == 3 and out.trajectory[0].shape == (5, 1, 8, 8)
    assert len({tuple(s.flatten()[:4].tolist()) for s in out.samples}) == 5
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    mask = torch.ones(5, 1, 8, 8, dtype=torch.float64)
    mask[:, :, 2:6, 2:6] = 0
    filled = model.inpaint(x, mask, batch_size=2, seed=0, preset="short", progress=False)
    assert torch.equal(filled[mask.bool()], x[mask.bool()])


def test_diverging_chain_raises_with_the_step():
    model = zoo.load("mdsm-mnist-small")
    with pytest.raises(zoo.ChainDivergedError, match=r"diverged at step \d+ of 200.*step size \(1\)"):
        model.sample(2, seed=0, step_size=1.0, progress=False)


def test_registries_pick_any_kernel_by_name_and_reject_unknown_ones():
    assert {"langevin", "mala", "hmc"} <= set(KERNELS) and "annealed_langevin" in SAMPLERS

    @register_kernel("frozen")
    class Frozen:
        def step(self, energy_fn, x, params, generator=None):
            return x, {"energy": energy_fn(x).detach()}

    try:
        model = gaussian_model(MU, COV)
        x = model.sample(3, seed=0, kernel="frozen", n_steps=5, **PLAIN)
        g = torch.Generator().manual_seed(0)
        torch.testing.assert_close(x, torch.randn(3, 2, generator=g, dtype=torch.float64))
    finally:
        KERNELS.pop("frozen")
    with pytest.raises(zoo.ConfigError, match="unknown sampling kernel"):
        build_sampler({"name": "annealed_langevin", "kernel": "gibbs"})
    with pytest.raises(zoo.ConfigError, match="unknown sampler option"):
        build_sampler({"name": "annealed_langevin", "stepsize": 0.1})
    with pytest.raises(zoo.ConfigError, match="unknown sampler 'ddpm'"):
        build_sampler({"name": "ddpm"})
    s = AnnealedLangevinSampler(step_size=0.03, schedule="lin", kernel="hmc", kernel_args={"n_leapfrog": 3})
    assert build_sampler(s.to_config()) == s


def test_exp_schedule_matches_paper_shape_and_bad_options_are_config_errors():
    t = temperature_schedule("exp")
    assert len(t) == 2700 and (t[:500] == 100).all()
    assert math.isclose(t[2499].item(), 1.0, rel_tol=1e-9)
    assert math.isclose(t[1500].item(), 100 * math.exp(-1001 * math.log(100) / 2000), rel_tol=1e-9)
    assert t[-1].item() == 0.0 and (t[2500:].diff() < 0).all()
    for bad in ({"schedule": "cosine"}, {"t_max": 0}, {"n_hold": -1}, {"n_hold": 1.5}, {"step_size": 0},
                {"step_size": math.inf}, {"step_size": math.nan}, {"step_size": True},
                {"n_hold": 0, "n_anneal": 0, "n_final": 0}):
        with pytest.raises(zoo.ConfigError):
            build_sampler({"name": "annealed_langevin", **bad})


def test_geometric_sigmas_run_from_sigma_max_to_sigma_min_at_a_constant_ratio():
    from zoo.sampling.schedules import geometric_sigmas
    s = geometric_sigmas(3.0, 0.1, 14)
    assert len(s) == 14 and s.dtype == torch.float64
    assert math.isclose(s[0].item(), 3.0, rel_tol=1e-12) and math.isclose(s[-1].item(), 0.1, rel_tol=1e-12)
    ratios = s[1:] / s[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, (0.1 / 3.0) ** (1 / 13)), rtol=1e-12)


def test_the_clamp_noises_known_pixels_at_the_sigma_the_step_evaluates_the_energy_at():
    """Under EDM's churn the heun step starts from sigma_hat = sigma (1 + gamma), then evaluates E at sigma_next: the
    energy sees the known pixels at exactly the noise of each evaluation (one eps per step); MDSM's at sqrt(T)."""
    from zoo.sampling.chain import Clamp
    from zoo.sampling.kernels import Heun

    clamp = Clamp(torch.ones(200_000, dtype=torch.bool), torch.zeros(200_000), noise_scale=0.1)
    g = torch.Generator().manual_seed(0)
    assert math.isclose(clamp.draw(StepParams(0.5, sigma=2.0), g)[0].std().item(), 2.0, rel_tol=0.01)
    assert math.isclose(clamp.draw(StepParams(0.5, temperature=4.0), g)[0].std().item(), 0.2, rel_tol=0.01)

    known = torch.rand(4000, 8, generator=g)
    mask = torch.rand(4000, 8, generator=g) < 0.5
    clamp, params = Clamp(mask, known, noise_scale=0.1), StepParams(0.5, sigma=2.0, sigma_next=1.0, churn=0.4)
    seen = []

    def energy(x, sigma):
        seen.append((x.detach().clone(), sigma.detach().clone()))
        return x.pow(2).sum(1) / (2 * (1 + sigma**2))

    known_t, eps = clamp.draw(params, g)
    assert math.isclose((known_t - known)[mask].std().item(), 2.8, rel_tol=0.02)
    Heun().step(clamp.energy(energy, known_t, eps), clamp.apply(torch.zeros_like(known), known_t), params, g)
    assert [s[0].item() for _, s in seen] == pytest.approx([2.8, 1.0])  # sigma_hat, then sigma_next
    for x, sigma in seen:
        torch.testing.assert_close(x[mask], (known + sigma[0] * eps)[mask])


def test_compose_samples_the_product_of_two_gaussians():
    mu1, cov1 = torch.tensor([1.0, 0.0]), torch.tensor([[1.0, 0.3], [0.3, 0.5]])
    mu2, cov2 = torch.tensor([-1.0, 2.0]), torch.tensor([[0.5, 0.0], [0.0, 2.0]])
    w = [1.0, 2.0]
    p1, p2 = torch.linalg.inv(cov1.double()), torch.linalg.inv(cov2.double())
    prec = w[0] * p1 + w[1] * p2
    cov = torch.linalg.inv(prec)
    mu = cov @ (w[0] * p1 @ mu1.double() + w[1] * p2 @ mu2.double())
    both = zoo.compose(gaussian_model(mu1, cov1), gaussian_model(mu2, cov2), weights=w)
    x = torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(both.energy(x), w[0] * GaussianEnergy(mu1, cov1)(x) + w[1] * GaussianEnergy(mu2, cov2)(x))
    samples = both.sample(4000, seed=0, kernel="mala", n_steps=400, step_size=0.4, **PLAIN)
    check_moments(samples, mu, cov, tol_cov=0.05)
    known = torch.zeros(4000, 2, dtype=torch.float64)
    mask = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    cond = both.inpaint(known, mask, seed=0, n_steps=600, step_size=0.2, **PLAIN)  # x2 | x1 = 0 is Gaussian
    cond_mean = mu[1] + cov[1, 0] / cov[0, 0] * (0 - mu[0])
    cond_var = cov[1, 1] - cov[1, 0] ** 2 / cov[0, 0]
    assert torch.equal(cond[:, 0], known[:, 0])
    assert abs(cond[:, 1].mean() - cond_mean) < 0.05 and abs(cond[:, 1].var() - cond_var) < 0.05 * cond_var + 0.01
    with pytest.raises(zoo.InputError, match="one positive weight"):
        zoo.compose(gaussian_model(mu1, cov1), gaussian_model(mu2, cov2), weights=[1.0])


def test_compiled_chain_gives_the_eager_samples_and_auto_skips_short_cpu_chains():
    model = zoo.load("ebm-2d-gmm-dsm")  # a bundled MLP energy: compiles in seconds
    kw = dict(schedule="constant", temperature=1.0, n_steps=40, denoise_jump=True, seed=0, clip=False, progress=False)
    eager = model.sample(8, compile=False, **kw)
    model.sample(8, **kw)  # "auto" on a CPU: 41 gradient steps < AUTO_MIN_STEPS, so nothing is compiled
    assert model.__dict__.get("_compiled_net") is None
    compiled = model.sample(8, compile=True, **kw)
    assert model.__dict__.get("_compiled_net") is not None
    assert not torch.equal(eager, model.sample(8, compile=False, **{**kw, "seed": 1}))
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)  # same seed: the same chain up to rounding
    x, mask = torch.zeros(8, 2), torch.tensor([1.0, 0.0])  # inpainting: x_1 known, x_2 drawn
    torch.testing.assert_close(model.inpaint(x, mask, compile=True, **kw), model.inpaint(x, mask, compile=False, **kw),
                               rtol=1e-4, atol=1e-5)
    assert set(model.state_dict()) == set(zoo.load("ebm-2d-gmm-dsm").state_dict())  # the compiled copy is no submodule
    with pytest.raises(zoo.InputError, match="compile must be True, False or 'auto'"):
        model.sample(2, compile="yes", progress=False)
    # a trainable network (zoo.load freezes them): the chain freezes the parameters (grad_x only) and gives them back
    # trainable, also after a failing chain
    model.requires_grad_(True)
    model.sample(2, compile=True, **kw)
    assert all(p.requires_grad for p in model.parameters())
    from zoo.sampling.compiled import frozen_parameters
    with pytest.raises(RuntimeError, match="chain failed"), frozen_parameters(model.net):
        assert not any(p.requires_grad for p in model.parameters())
        raise RuntimeError("chain failed")
    assert all(p.requires_grad for p in model.parameters())


def test_a_registry_refuses_a_second_component_under_a_taken_name():
    from zoo.sampling import KERNELS, register_kernel

    with pytest.raises(zoo.ConfigError, match="'langevin' is already registered"):
        @register_kernel("langevin")
        class Other:  # noqa: F811 - the point of the test
            pass
    assert KERNELS["langevin"].__name__ == "Langevin"
