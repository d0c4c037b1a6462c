import math

import pytest
import torch

from zoo import AnnealedLangevinSampler, EnergyModel, temperature_schedule
from zoo.samplers import build_sampler


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


def gaussian_model(mu, cov, sigma0=0.1):
    config = {"entry": "gauss", "family": "test", "input_shape": [2], "data_range": [-5.0, 5.0], "sigma0": sigma0,
              "architecture": {"class": "analytic"}, "sampler": {"name": "annealed_langevin"}}
    return EnergyModel(config, GaussianEnergy(mu, cov)).double()


MU = [1.0, -2.0]
COV = [[1.0, 0.6], [0.6, 0.5]]


def check_moments(x, tol_mean=0.06, tol_cov=0.08):
    x = x.double()
    torch.testing.assert_close(x.mean(0), torch.tensor(MU, dtype=torch.float64), atol=tol_mean, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), torch.tensor(COV, dtype=torch.float64), atol=tol_cov, rtol=0)


def test_plain_langevin_reaches_gaussian_moments():
    model = gaussian_model(MU, COV)
    x = model.sample(4000, seed=0, progress=False, schedule="constant", temperature=1.0, n_steps=1500,
                     step_size=0.1, denoise_jump=False, init_mean=0.0, init_std=1.0)
    check_moments(x)


def test_annealed_langevin_cools_to_target():
    """Hold at T=25, anneal exponentially to T=1 (n_final=0): the chain ends at the T=1 distribution."""
    model = gaussian_model(MU, COV)
    x = model.sample(4000, seed=1, progress=False, schedule="exp", t_max=25.0, n_hold=100, n_anneal=4000, n_final=0,
                     step_size=0.2, denoise_jump=False)
    check_moments(x, tol_cov=0.1)


def test_langevin_is_not_trivially_right():
    """The moment check can fail: too few steps from a far start do not reach the target."""
    model = gaussian_model(MU, COV)
    x = model.sample(2000, seed=0, progress=False, schedule="constant", n_steps=5, step_size=0.1,
                     denoise_jump=False, init_mean=5.0, init_std=0.1)
    with pytest.raises(AssertionError):
        check_moments(x)


def test_exp_schedule_matches_paper_shape():
    t = temperature_schedule("exp")
    assert len(t) == 2700
    assert (t[:500] == 100).all()
    assert math.isclose(t[2499].item(), 1.0, rel_tol=1e-9)
    assert math.isclose(t[1500].item(), 100 * math.exp(-1001 * math.log(100) / 2000), rel_tol=1e-9)
    assert t[-1].item() == 0.0 and (t[2500:].diff() < 0).all()
    lin = temperature_schedule("lin")
    assert len(lin) == 2700 and math.isclose(lin[2499].item(), 1.0) and (lin[500:2500].diff() < 0).all()
    with pytest.raises(ValueError, match="unknown temperature schedule"):
        temperature_schedule("cosine")


def test_sampler_config_round_trip_and_unknown_option():
    s = AnnealedLangevinSampler(step_size=0.03, schedule="lin")
    assert build_sampler(s.to_config()) == s
    with pytest.raises(ValueError, match="unknown sampler option"):
        build_sampler({"name": "annealed_langevin", "stepsize": 0.1})
