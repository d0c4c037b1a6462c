"""Song & Kingma's training methods recover the parameters of an analytic EBM from its samples: a Gaussian
E(x) = lambda |x - mu|^2 / 2 with learnable mu and log lambda (and NCE's log Z). A flipped sign or a wrong scale in an
objective moves the optimum, so these fail then."""
import math

import pytest
import torch
from torch import nn

import zoo
from zoo.objectives import ObjectiveContext, build_objective

TRUE_MEAN, TRUE_STD = torch.tensor([1.0, -0.5]), 0.5
TRUE_PRECISION = 1 / TRUE_STD**2  # 4


class GaussianEnergy(nn.Module):
    def __init__(self):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(2))
        self.log_precision = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return 0.5 * self.log_precision.exp() * (x - self.mean).pow(2).sum(1)


def fit(spec: dict, steps: int = 400, lr: float = 0.05, sigma0: float = 0.3):
    torch.manual_seed(0)
    data = TRUE_MEAN + TRUE_STD * torch.randn(4000, 2)
    model, objective = GaussianEnergy(), build_objective(spec, sigma0)
    params = list(model.parameters()) + (list(objective.parameters()) if isinstance(objective, nn.Module) else [])
    opt = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)  # ends without the stochastic jitter
    for step in range(steps):
        g = torch.Generator().manual_seed(step)
        x = data[torch.randint(0, len(data), (512,), generator=g)]
        out = objective(model, x, ObjectiveContext(step=step, generator=g))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        schedule.step()
    return model, objective


def check(model, precision=TRUE_PRECISION, rel=0.1):
    assert model.log_precision.exp().item() == pytest.approx(precision, rel=rel)
    assert torch.allclose(model.mean.detach(), TRUE_MEAN, atol=0.1)


@pytest.mark.parametrize("spec", [{"name": "sm"}, {"name": "ssm"}, {"name": "ssm", "variance_reduced": True},
                                  {"name": "ssm", "distribution": "rademacher", "n_projections": 2}])
def test_score_matching_recovers_the_gaussian(spec):
    check(fit(spec)[0])


@pytest.mark.parametrize("name", ["dsm", "deen"])
def test_denoising_score_matching_recovers_the_noised_gaussian(name):
    # DSM fits the sigma-smoothed data N(m, (s^2 + sigma^2) I): precision 1 / (0.25 + 0.09) = 2.94, not 4
    check(fit({"name": name}, sigma0=0.3)[0], precision=1 / (TRUE_STD**2 + 0.3**2))


@pytest.mark.parametrize("mode", ["cd", "pcd", "replay"])
def test_maximum_likelihood_with_langevin_negatives_recovers_the_gaussian(mode):
    # (restarts from noise get only `steps` steps: with reinit 5% and 20 steps the replay estimate is biased to
    # precision ~4.7, the known short-run bias; 1% restarts and 30 steps keep it within 10%)
    spec = {"name": "ml", "mode": mode, "steps": 30, "step_size": 0.1, "buffer_size": 1000, "reinit": 0.01,
            "init_range": [-1.0, 2.0]}
    model, objective = fit(spec)
    check(model)
    if mode != "cd":
        assert objective.buffer is not None and objective.state_dict()["buffer"] is objective.buffer


def test_nce_recovers_the_gaussian_and_its_log_z():
    model, objective = fit({"name": "nce"}, steps=600)
    check(model)
    true_log_z = math.log(2 * math.pi / model.log_precision.exp().item())  # d/2 log(2 pi / lambda), d = 2
    assert objective.log_z.item() == pytest.approx(true_log_z, abs=0.1)
    fresh = build_objective({"name": "nce"}, 0.1)
    fresh.load_state_dict(objective.state_dict())  # the fitted noise distribution and log Z come back
    assert torch.equal(fresh.noise_mean, objective.noise_mean) and fresh.log_z.item() == objective.log_z.item()


def test_bad_objective_options_are_one_clear_error():
    with pytest.raises(zoo.ConfigError, match="mode"):
        build_objective({"name": "ml", "mode": "gibbs"}, 0.1)
    with pytest.raises(zoo.ConfigError, match="variance_reduced"):
        build_objective({"name": "ssm", "variance_reduced": True, "distribution": "rademacher"}, 0.1)
    with pytest.raises(zoo.ConfigError, match="unknown objective option"):
        build_objective({"name": "ml", "stepsize": 1}, 0.1)


def test_a_diverging_negative_chain_is_reported_not_trained_on():
    objective = build_objective({"name": "ml", "mode": "cd", "steps": 50, "step_size": 3.0}, 0.1)
    model = GaussianEnergy()
    with torch.no_grad():
        model.log_precision.fill_(2.0)  # eps^2 lambda / 2 = 33: the Langevin chain explodes
    x = TRUE_MEAN + TRUE_STD * torch.randn(64, 2)
    with pytest.raises(zoo.ChainDivergedError, match="diverged"):
        objective(model, x, ObjectiveContext(generator=torch.Generator().manual_seed(0)))


def test_the_ebm_recipe_trains_a_toy_entry_with_each_objective(tmp_path):
    from zoo.training import main

    for name, extra in [("sm", []), ("ssm", ["--set", "recipe.objective.variance_reduced=true"]), ("dsm", []),
                        ("nce", []), ("ml", ["--set", "recipe.objective.mode=pcd", "--set", "recipe.objective.steps=3"])]:
        out = tmp_path / name
        export = main("ebm", ["--entry", "ebm-2d-gmm-ml", "--output-dir", str(out), "--max-steps", "4",
                              "--batch-size", "32", "--log-every", "2", "--set", f"recipe.objective.name={name}", *extra])
        model = zoo.load(str(export))
        assert torch.isfinite(model.energy(torch.zeros(3, 2))).all()
        assert f"recipe.objective.name={name}" in model.card


def test_stability_aids_are_opt_in_options(tmp_path):
    from zoo.training import main

    export = main("ebm", ["--entry", "ebm-2d-gmm-cd", "--output-dir", str(tmp_path / "aids"), "--max-steps", "3",
                          "--batch-size", "32", "--set", "model.architecture.spectral_norm=true",
                          "--set", "recipe.grad_clip=0.5", "--set", "recipe.objective.energy_l2=0.1"])
    model = zoo.load(str(export))
    assert model.config["architecture"]["spectral_norm"] is True
    assert any("parametrizations" in name for name, _ in model.net.named_parameters())  # spectral norm is on
    with pytest.raises(zoo.ConfigError, match="grad_clip"):
        main("ebm", ["--entry", "ebm-2d-gmm-cd", "--output-dir", str(tmp_path / "x"), "--set", "recipe.grad_clip=-1"])


def test_mdsm_loss_is_eq_7_computed_by_hand():
    """MDSM eq. (7) with l(sigma) = 1/sigma^2, written out for E(x) = a |x|^2 / 2 (grad E = a x): the objective's loss
    equals (1/B) sum_i |(x_i - x~_i) / (sigma_i sigma0^2) + a x~_i / sigma_i|^2 with the same noise draw."""
    from zoo.objectives import noise_levels

    class Quadratic(nn.Module):
        a = 3.0

        def forward(self, x):
            return 0.5 * self.a * x.pow(2).flatten(1).sum(1)

    sigma0, x = 0.1, torch.rand(5, 1, 4, 4, dtype=torch.float64)
    objective = build_objective({"name": "mdsm", "sigma_min": 0.05, "sigma_max": 1.2, "spacing": "linear"}, sigma0)
    out = objective(Quadratic(), x, ObjectiveContext(generator=torch.Generator().manual_seed(7)))
    sigmas = noise_levels(5, 0.05, 1.2, "linear").double().view(5, 1, 1, 1)
    noisy = x + sigmas * torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    by_hand = ((x - noisy) / (sigmas * sigma0**2) + Quadratic.a * noisy / sigmas).pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(out.loss, by_hand)
    # a flipped sign of the score term is a different number
    flipped = ((x - noisy) / (sigmas * sigma0**2) - Quadratic.a * noisy / sigmas).pow(2).flatten(1).sum(1).mean()
    assert not torch.isclose(out.loss, flipped)
