"""The noise-conditional energy family: E(x, sigma), its DSM objective over sigma, and its samplers (pf_ode,
annealed_sigma) checked against analytic Gaussian energies. Training, resuming and exporting a tiny ncebm entry
through the recipe is tests/test_campaign.py's first test."""
import math

import pytest
import torch
from torch import nn

import zoo
from zoo.objectives import ObjectiveContext, build_objective
from zoo.sampling import ChainOptions, build_sampler


class GaussianNC(nn.Module):
    """E(x, sigma) = |x - mu|^2 / (2 (s^2 + sigma^2)): the sigma-smoothed N(mu, s^2 I) up to a constant."""

    noise_conditional = True

    def __init__(self, dim=2, mu=None, log_s=0.0):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(dim) if mu is None else torch.tensor(mu, dtype=torch.float32))
        self.log_s = nn.Parameter(torch.tensor(float(log_s)))

    def forward(self, x, sigma=0.01):
        var = self.log_s.exp() ** 2 + torch.as_tensor(sigma, dtype=x.dtype).expand(x.shape[0]) ** 2
        return (x - self.mu).pow(2).sum(1) / (2 * var)


class Flipped(GaussianNC):
    def forward(self, x, sigma=0.01):
        return -super().forward(x, sigma)


class GMMNC(nn.Module):
    """The sigma-smoothed 2-D Gaussian mixture: -log sum_k pi_k N(x; mu_k, (s^2 + sigma^2) I)."""

    noise_conditional = True
    MU, S, PI = torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.5, torch.tensor([0.3, 0.7])

    def forward(self, x, sigma=0.01):
        var = (self.S**2 + torch.as_tensor(sigma, dtype=x.dtype).expand(x.shape[0]) ** 2).view(-1, 1)
        log_p = self.PI.log() - (x[:, None, :] - self.MU).pow(2).sum(2) / (2 * var) - torch.log(var)
        return -torch.logsumexp(log_p, dim=1)


def _model(net, shape=(2,)):
    config = {"entry": "analytic", "family": "ncebm", "input_shape": list(shape), "data_range": [-4.0, 4.0],
              "sigma0": 0.01, "architecture": {"class": "analytic"}}
    return zoo.EnergyModel(config, net)


def test_the_score_is_minus_the_energy_gradient_at_each_sigma():
    net = zoo.load("ncebm-mnist", pretrained=False).net.eval()
    m = _model(net, (1, 32, 32))
    x = torch.rand(3, 1, 32, 32)
    for sigma in (0.01, 0.3, 5.0):
        xx = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(xx, sigma).sum(), xx)
        assert torch.allclose(m.score(x, sigma=sigma), -grad, atol=1e-6)
    assert not torch.allclose(m.score(x, sigma=0.01), m.score(x, sigma=1.0))  # the energy depends on sigma


def _fit(net, sigma_range, steps=400, seed=0):
    """DSM (ncdsm, log-uniform in sigma_range) on data ~ N((1, -2), 0.5^2 I)."""
    torch.manual_seed(seed)
    objective = build_objective({"name": "ncdsm", "sigma_distribution": "loguniform", "sigma_min": sigma_range[0],
                                 "sigma_max": sigma_range[1]}, 0.1)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        x = torch.tensor([1.0, -2.0]) + 0.5 * torch.randn(512, 2, generator=g)
        loss = objective(net, x, ObjectiveContext(step=step, generator=g)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


@pytest.mark.parametrize("sigma", [0.05, 0.5, 2.0])
def test_dsm_recovers_a_gaussian_at_each_sigma_and_fails_with_the_sign_flipped(sigma):
    net = _fit(GaussianNC(), (sigma, sigma * 1.001))
    assert torch.allclose(net.mu.detach(), torch.tensor([1.0, -2.0]), atol=0.1)
    assert abs(net.log_s.exp().item() - 0.5) < 0.1 * max(1.0, sigma / 0.5)
    flipped = _fit(Flipped(), (sigma, sigma * 1.001))
    assert not (torch.allclose(flipped.mu.detach(), torch.tensor([1.0, -2.0]), atol=0.1)
                and abs(flipped.log_s.exp().item() - 0.5) < 0.1)


def test_tweedie_denoising_of_a_gaussian_is_exact_at_any_sigma():
    mu, s = torch.tensor([1.0, -2.0]), 0.5
    m = _model(GaussianNC(mu=[1.0, -2.0], log_s=math.log(s)))
    x = torch.randn(5, 2)
    for sigma in (0.1, 1.0, 3.0):
        posterior_mean = mu + s**2 / (s**2 + sigma**2) * (x - mu)
        assert torch.allclose(m.denoise(x, sigma=sigma), posterior_mean, atol=1e-5)


@pytest.mark.parametrize("config", [
    {"name": "pf_ode", "steps": 40, "sigma_min": 0.002, "sigma_max": 20.0, "init_mean": 0.8},
    {"name": "edm_stochastic", "steps": 40, "sigma_min": 0.002, "sigma_max": 20.0, "init_mean": 0.8,
     "s_churn": 40.0, "s_tmin": 0.0, "s_tmax": 20.0},
    {"name": "annealed_sigma", "n_levels": 20, "n_steps_each": 30, "step_lr": 1e-3, "sigma_min": 0.05,
     "sigma_max": 20.0, "init_mean": 0.8, "denoise_jump": False},
    {"name": "annealed_sigma", "n_levels": 20, "n_steps_each": 30, "step_lr": 1e-3, "sigma_min": 0.05,
     "sigma_max": 20.0, "init_mean": 0.8, "denoise_jump": False, "kernel": "mala"},
], ids=["pf_ode", "edm_stochastic", "annealed_langevin", "annealed_mala"])
def test_samplers_reproduce_a_gaussian_mixtures_moments(config):
    """Chains start at the data mean + sigma_max N(0, I), sigma_max well above the modes' distance (4)."""
    out = build_sampler(config).run(GMMNC(), 2000, (2,), options=ChainOptions(
        generator=torch.Generator().manual_seed(0), bounds=(-20.0, 20.0), progress=False))
    x = out.samples
    right = (x[:, 0] > 0).float().mean().item()
    assert abs(right - 0.7) < 0.05  # the mixture weights
    assert abs(x[:, 0].mean().item() - 0.8) < 0.1 and abs(x[:, 1].mean().item()) < 0.1
    within = x[x[:, 0] > 0] - torch.tensor([2.0, 0.0])
    assert abs(within.std(0).mean().item() - 0.5) < 0.1  # each mode's spread
    if config.get("kernel") == "mala":
        assert 0.2 < out.accept_rate <= 1.0


def test_edm_stochastic_is_the_ode_without_churn_and_noisier_with_it():
    def samples(config):
        return build_sampler({"name": config.pop("name"), "steps": 10, "sigma_max": 20.0, "init_mean": 0.8, **config}).run(
            GMMNC(), 500, (2,), options=ChainOptions(generator=torch.Generator().manual_seed(0), progress=False)).samples

    ode = samples({"name": "pf_ode"})
    assert torch.equal(ode, samples({"name": "edm_stochastic", "s_churn": 0.0}))
    churned = build_sampler({"name": "edm_stochastic", "steps": 10, "s_churn": 40.0, "s_tmin": 0.1, "s_tmax": 20.0})
    assert churned.churn(1.0) == pytest.approx(math.sqrt(2) - 1) and churned.churn(0.05) == 0 == churned.churn(30.0)
    assert not torch.equal(ode, samples({"name": "edm_stochastic", "s_churn": 40.0, "s_tmin": 0.1, "s_tmax": 20.0}))
    with pytest.raises(zoo.ConfigError, match="s_churn must be a finite number >= 0"):
        build_sampler({"name": "edm_stochastic", "s_churn": -1.0})


def test_model_api_for_noise_conditional_energies():
    m = zoo.load("ncebm-mnist", pretrained=False)
    assert m.noise_conditional
    x = torch.rand(2, 1, 32, 32)
    assert m.energy(x).shape == (2,) and not torch.allclose(m.energy(x, sigma=0.01), m.energy(x, sigma=2.0))
    with pytest.raises(zoo.InputError, match="sigma must be a finite number"):
        m.energy(x, sigma=float("nan"))
    samples = m.sample(2, seed=0, steps=2, progress=False)
    assert samples.shape == (2, 1, 32, 32) and samples.min() >= 0 and samples.max() <= 1
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 16:] = 0
    filled = m.inpaint(x, mask, seed=0, steps=2, progress=False)
    assert torch.equal(filled[..., :16], x[..., :16])
    both = zoo.compose(m, zoo.load("ncebm-mnist", pretrained=False), weights=[1.0, 0.5])
    assert both.energy(x, sigma=0.1).shape == (2,)
    with pytest.raises(zoo.InputError, match="cannot mix noise-conditional"):
        zoo.compose(m, zoo.load("mdsm-mnist", pretrained=False))
    with pytest.raises(zoo.InputError, match="sigma= is for noise-conditional"):
        zoo.load("mdsm-mnist", pretrained=False).energy(x, sigma=0.1)
    with pytest.raises(zoo.ConfigError, match="needs a noise-conditional energy"):
        zoo.load("mdsm-mnist", pretrained=False).sample(1, sampler=build_sampler({"name": "pf_ode", "steps": 2}))
