"""Denoising-EBM: energies against hand computation, Algorithm 1, the two-stage sampler, OOD AUROC, the recipe."""
import json
import os
import subprocess
import sys

import pytest
import torch

import zoo
from conftest import REPO_ROOT
from zoo.energies import DenoisingEBM
from zoo.metrics import ood_auroc
from zoo.objectives import DenoisingEBMObjective, ObjectiveContext, contrastive_loss
from zoo.sampling import ChainOptions, build_sampler
from zoo.training import main

TINY = ["--set", "model.architecture={class: DenoisingEBM, width: 8, latent_dim: 8}", "--batch-size", "8",
        "--set", "recipe.objective.latent_steps=2", "--set", "recipe.objective.data_steps=2", "--grid-n", "0",
        "--set", "recipe.objective.reconstruction_warmup=2", "--log-every", "1"]  # the entry's warm-up is 2,000


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return DenoisingEBM([1, 8, 8], width=8, latent_dim=4).double()


def test_energies_equal_the_papers_formulas_on_a_fixed_noise_draw():
    net = tiny_net()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64) * 2 - 1
    sigma = 0.3
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    r = net.reconstruct(x + sigma * eps, sigma)
    expected = ((x - r) ** 2).flatten(1).sum(1) / (2 * sigma**2)  # eq. 7
    torch.testing.assert_close(net.texture_energy(x, sigma, torch.Generator().manual_seed(5)), expected)
    z = torch.randn(3, 4, dtype=torch.float64)
    h = net.decoder(z)
    eps = torch.randn(h.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    expected = ((h - net.reconstruct(h + sigma * eps, sigma)) ** 2).flatten(1).sum(1) / (2 * sigma**2)  # eq. 8
    torch.testing.assert_close(net.semantic_energy(z, sigma, torch.Generator().manual_seed(6)), expected)


def test_one_contrastive_update_lowers_data_energy_relative_to_samples():
    net = tiny_net()
    objective = DenoisingEBMObjective(latent_steps=3, data_steps=3, reconstruction_steps=1)
    x = (torch.rand(16, 1, 8, 8, dtype=torch.float64) > 0.7).double() * 2 - 1
    g = torch.Generator().manual_seed(0)
    sigma = torch.full((16,), 0.3, dtype=torch.float64)
    z_neg, x_neg = objective.negatives(net, sigma, x.shape, g)

    def gap():
        with torch.no_grad():
            data = net.texture_energy(x, sigma, torch.Generator().manual_seed(1)).mean()
            samples = net.texture_energy(x_neg, sigma, torch.Generator().manual_seed(1)).mean()
        return (data - samples).item()

    before = gap()
    opt = torch.optim.SGD(net.parameters(), lr=1e-4)
    energies = objective.contrastive_energies(net, x, sigma, torch.Generator().manual_seed(2), z_neg, x_neg)
    sum(contrastive_loss(*pair) for pair in energies.values()).backward()
    opt.step()
    assert gap() < before


def test_energy_l2_penalty_adds_the_squared_energies_and_pulls_a_runaway_negative_energy_down():
    e_data, e_neg = torch.tensor([1.0, 3.0]), torch.tensor([10.0, 30.0], requires_grad=True)
    plain = contrastive_loss(e_data, e_neg)
    assert plain.item() == pytest.approx(2.0 - 20.0)
    penalised = contrastive_loss(e_data, e_neg, energy_l2=0.1)
    assert penalised.item() == pytest.approx(-18.0 + 0.1 * ((1 + 9) / 2 + (100 + 900) / 2))
    penalised.backward()
    # without the penalty the gradient pushes E(neg) up without bound (d/dE = -1/2); with it, E(neg) = 30 is pulled down
    assert (e_neg.grad > 0).all()


def test_objective_alternates_reconstruction_and_contrastive_phases():
    net = tiny_net()
    objective = DenoisingEBMObjective(latent_steps=2, data_steps=2, reconstruction_steps=3)
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64) * 2 - 1
    keys = [set(objective(net, x, ObjectiveContext(step=s, generator=torch.Generator().manual_seed(s))).logs)
            for s in range(5)]
    assert [("dae" in k, "U_c_gap" in k) for k in keys] == [(True, False)] * 3 + [(False, True)] + [(True, False)]
    warm = DenoisingEBMObjective(reconstruction_steps=3, reconstruction_warmup=5)
    assert [warm.contrastive_phase(s) for s in range(14)] == [False] * 8 + [True] + [False] * 3 + [True, False]


def test_two_stage_sampler_shapes_range_seed_and_trajectories():
    model = zoo.load("denoising-ebm-mnist", pretrained=False)
    kw = dict(preset="paper", latent_steps=3, data_steps=4, progress=False)
    a, b = model.sample(3, seed=1, **kw), model.sample(3, seed=1, **kw)
    assert a.shape == (3, 1, 32, 32) and torch.equal(a, b) and not torch.equal(a, model.sample(3, seed=2, **kw))
    assert a.min() >= -1 and a.max() <= 1
    out = model.sample(2, seed=0, return_trajectory=True, trajectory_every=2, return_energy_trace=True, **kw)
    assert len(out.extras["semantic_trajectory"]) == 2 and out.extras["semantic"].shape == (2, 1, 32, 32)
    assert len(out.trajectory) == 3 and out.energy_trace.shape == (4, 2)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 16:] = 0
    filled = model.inpaint(x, mask, seed=0, **kw)
    assert torch.equal(filled[..., :16], x[..., :16]) and not torch.equal(filled[..., 16:], x[..., 16:])
    assert model.denoise(x, sigma=0.2).shape == x.shape and model.energy(x).shape == (2,)


def test_compiled_two_stage_chain_gives_the_eager_samples():
    base = zoo.load("denoising-ebm-mnist", pretrained=False)
    arch = {"class": "DenoisingEBM", "width": 8, "latent_dim": 4}
    torch.manual_seed(0)
    model = zoo.EnergyModel({**base.config, "input_shape": [1, 8, 8], "architecture": arch}, None, base.sampler_config)
    # sigma 0.5, not the default 0.1: U_s and U_c scale float rounding by 1 / (2 sigma^2) each step, 50 at sigma 0.1,
    # where compiled and eager chains drifted 1e-4 to 1.3e-2 apart over three random networks and 1 or 2 threads
    kw = dict(preset="paper", latent_steps=4, data_steps=4, sigma=0.5, seed=0, progress=False)
    eager = model.sample(4, compile=False, **kw)
    compiled = model.sample(4, compile=True, **kw)
    view = model.__dict__["_compiled_net"]  # the DAE and the decoder compiled, the network itself shared
    assert view is not model.net and view.dae is not model.net.dae and model.net.dae is model.net._modules["dae"]
    assert view.dae._orig_mod is model.net.dae and view.decoder._orig_mod is model.net.decoder
    # at sigma 0.5 the chains agree to 1.4e-4 of the [-1, 1] range (measured over the same three networks and threads)
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-3)


def test_ood_auroc_is_one_for_noise_and_a_half_for_the_same_data():
    torch.manual_seed(0)
    data = (torch.rand(64, 1, 8, 8) > 0.8).float() * 2 - 1
    data[:, :, 2:6, 3:5] = 1.0  # a shared bar: the structure a DAE learns
    net = DenoisingEBM([1, 8, 8], width=8, latent_dim=4)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        loss = sum(DenoisingEBMObjective.reconstruction_terms(net, data, torch.full((64,), 0.3), g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    noise = torch.rand(64, 1, 8, 8) * 2 - 1
    assert ood_auroc(net, data, noise) > 0.95
    assert ood_auroc(net, data, data) == pytest.approx(0.5, abs=1e-6)


def test_recipe_trains_resumes_bit_exactly_and_exports(tmp_path, synthetic_mnist):
    def run(out, *extra):
        return main("denoising_ebm", ["--entry", "denoising-ebm-mnist", "--data-dir", str(synthetic_mnist),
                                      "--output-dir", str(out), *TINY, *extra])

    from safetensors.torch import load_file

    straight = run(tmp_path / "a", "--max-steps", "8", "--checkpoint-every", "3")
    run(tmp_path / "b", "--max-steps", "8", "--checkpoint-every", "3", "--time-limit", "0")
    resumed = run(tmp_path / "b", "--max-steps", "8", "--checkpoint-every", "3", "--resume", "latest")
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    logs = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    # 2 warm-up + L = 3 reconstruction updates, then a contrastive one (the resume at step 3 or 6 crosses both phases)
    assert all("dae" in log for log in logs[:5]) and "U_c_gap" in logs[5]
    model = zoo.load(str(straight))
    assert model.config["architecture"]["class"] == "DenoisingEBM" and "recipes/denoising_ebm.py" in model.card


def test_recipe_under_the_two_process_cpu_launch(tmp_path, synthetic_mnist):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO_ROOT / "recipes" / "denoising_ebm.py"),
           "--entry", "denoising-ebm-mnist", "--data-dir", str(synthetic_mnist), "--output-dir", str(tmp_path / "ddp"),
           "--max-steps", "4", "--checkpoint-every", "4", *TINY,
           "--set", "recipe.objective.reconstruction_warmup=0"]  # step 3 is a contrastive update, under DDP
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = json.loads((tmp_path / "ddp" / "train_stats.json").read_text())["parameter checksum per process"]
    assert first == second


def test_ood_cli_prints_aurocs(tmp_path, synthetic_mnist, capsys):
    from zoo.cli import main as cli

    export = main("denoising_ebm", ["--entry", "denoising-ebm-mnist", "--data-dir", str(synthetic_mnist),
                                    "--output-dir", str(tmp_path / "r"), *TINY, "--max-steps", "1"])
    (synthetic_mnist / "ylecun" / "mnist" / "mnist" / "train-00000-of-00001.parquet").rename(
        synthetic_mnist / "ylecun" / "mnist" / "mnist" / "test-00000-of-00001.parquet")
    assert cli(["ood", "denoising-ebm-cifar10-paper", "--data-dir", str(synthetic_mnist), "-n", "16", "--ood",
                "noise:uniform"]) == 2  # no weights published: the clear error
    assert "no published weights" in capsys.readouterr().err
    for model in (str(export), "denoising-ebm-mnist"):  # a recipe's export, the bundled weights
        assert cli(["ood", model, "--data-dir", str(synthetic_mnist), "-n", "16", "--ood", "noise:uniform",
                    "interp"]) == 0
        out = capsys.readouterr().out
        assert "| noise:uniform | " in out and "| interp | " in out


def test_the_decoder_loss_updates_only_the_decoder_and_the_contrastive_phase_updates_the_dae():
    """Algorithm 1 line 5 updates the decoder gamma alone with ||h(f(x~, sigma)) - x||^2; phi learns from the DAE loss
    and from U_c in the contrastive phase."""
    torch.manual_seed(0)
    net = DenoisingEBM([1, 8, 8], width=8, latent_dim=4)
    x, sigma, g = torch.rand(4, 1, 8, 8) * 2 - 1, torch.full((4,), 0.3), torch.Generator().manual_seed(0)
    _, decoder_loss = DenoisingEBMObjective.reconstruction_terms(net, x, sigma, g)
    decoder_loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in net.dae.parameters())
    assert any(p.grad is not None and p.grad.any() for p in net.decoder.parameters())
    net.zero_grad(set_to_none=True)
    energies = DenoisingEBMObjective.contrastive_energies(net, x, sigma, g, torch.randn(4, 4), torch.rand_like(x))
    (energies["U_c"][0].mean() - energies["U_c"][1].mean()).backward()
    assert any(p.grad is not None and p.grad.any() for p in net.dae.parameters())


def test_latent_chains_start_at_n01_by_default_and_at_the_training_codes_gaussian_when_asked():
    """Algorithm 1 starts z^0 ~ N(0, I); the opt-in latent_init="codes" starts at N(code_mean, diag code_std^2), the
    running statistics that the reconstruction phase keeps of the DAE's codes."""
    net = tiny_net()
    e = torch.randn((5, 4), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z0 = net.latent_start(5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(z0, e)  # the paper's start: unchanged by the running statistics
    x, sigma = torch.rand(16, 1, 8, 8, dtype=torch.float64) * 2 - 1, torch.full((16,), 0.3, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for _ in range(600):  # momentum 0.01: the statistics converge to the batch codes'
        DenoisingEBMObjective.reconstruction_terms(net, x, sigma, g)
    with torch.no_grad():  # the batch statistics over 200 more noise draws
        codes = [net.dae.encode(x + 0.3 * torch.randn(x.shape, generator=g, dtype=torch.float64), sigma)[0]
                 for _ in range(200)]
    mean, std = torch.stack([c.mean(0) for c in codes]).mean(0), torch.stack([c.std(0) for c in codes]).mean(0)
    torch.testing.assert_close(net.code_mean, mean, atol=0.25 * std.min().item(), rtol=0)
    torch.testing.assert_close(net.code_std, std, atol=0, rtol=0.25)
    net.code_mean.fill_(50.0)
    net.code_std.fill_(2.0)
    z0 = net.latent_start(5, "codes", generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(z0, 50.0 + 2.0 * e)
    paper = DenoisingEBMObjective(latent_steps=1, data_steps=1, latent_step_size=1e-12)
    remedy = DenoisingEBMObjective(latent_steps=1, data_steps=1, latent_step_size=1e-12, latent_init="codes")
    z_paper, _ = paper.negatives(net, sigma[:5], (5, 1, 8, 8), torch.Generator().manual_seed(3))
    z_codes, _ = remedy.negatives(net, sigma[:5], (5, 1, 8, 8), torch.Generator().manual_seed(3))
    assert z_paper.abs().mean() < 3 and (z_codes.mean() - 50).abs() < 3  # the training negatives start there too
    sampler = build_sampler({"name": "two_stage", "latent_init": "codes", "latent_steps": 1, "data_steps": 1,
                             "latent_step_size": 1e-12})
    out = sampler.run(net, 5, (1, 8, 8), sigma0=0.05, dtype=torch.float64,
                      options=ChainOptions(generator=torch.Generator().manual_seed(3), progress=False))
    assert (out.extras["latent"].mean() - 50).abs() < 3  # and so do the sampler's
    with pytest.raises(zoo.ConfigError, match="latent_init"):
        DenoisingEBMObjective(latent_init="data")
    with pytest.raises(zoo.ConfigError, match="latent_init"):
        build_sampler({"name": "two_stage", "latent_init": "data"})


class GaussianDAE(torch.nn.Module):
    """The optimal DAE of data N(mu, s² I): r(x̃, σ) = (s² x̃ + σ² mu) / (s² + σ²), the posterior mean (Tweedie)."""

    def __init__(self, mu: float, s: float):
        super().__init__()
        self.mu, self.s2 = mu, s**2

    def forward(self, x, sigma):
        v = sigma.view(-1, 1, 1, 1) ** 2
        return (self.s2 * x + v * self.mu) / (self.s2 + v)


def test_dae_score_energy_gradient_is_minus_the_daes_score_and_leaves_the_dae_untouched():
    net = tiny_net()
    x = (torch.rand(3, 1, 8, 8, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    sigma = 0.3
    net.dae_score_energy(x, sigma).sum().backward()
    with torch.no_grad():
        score = (net.reconstruct(x, sigma) - x) / sigma**2  # Theorem 1: r(x, σ) - x ≈ σ² ∇ log q_σ(x)
    torch.testing.assert_close(x.grad, -score)
    assert all(p.grad is None for p in net.dae.parameters())


def test_dae_score_data_stage_samples_the_gaussian_its_optimal_dae_denoises():
    """With the exact DAE of N(mu, s² I), the annealed data stage ends at the σ-smoothed Gaussian N(mu, s² + σ²) and
    its denoising jump at the posterior means (variance s⁴ / (s² + σ²)); the paper's U_c stage does not apply here."""
    mu, s, sigma = 0.3, 0.5, 0.1
    net = tiny_net()
    net.dae = GaussianDAE(mu, s)
    kw = dict(latent_steps=1, data_steps=40, data_step_size=0.004, sigma=sigma, data_score="dae",
              data_sigma_max=2.0, data_levels=10)
    options = ChainOptions(generator=torch.Generator().manual_seed(0), progress=False)
    x = build_sampler({"name": "two_stage", **kw}).run(net, 400, (1, 8, 8), sigma0=0.05, dtype=torch.float64,
                                                       options=options).samples
    assert abs(x.mean().item() - mu) < 0.01
    assert x.var().item() == pytest.approx(s**2 + sigma**2, rel=0.04)
    jumped = build_sampler({"name": "two_stage", **kw, "denoise_jump": True}).run(
        net, 400, (1, 8, 8), sigma0=0.05, dtype=torch.float64,
        options=ChainOptions(generator=torch.Generator().manual_seed(0), progress=False)).samples
    torch.testing.assert_close(jumped, net.reconstruct(x, sigma))
    assert jumped.var().item() == pytest.approx(s**4 / (s**2 + sigma**2), rel=0.04)


def test_dae_score_options_are_checked_and_inpainting_keeps_the_known_pixels():
    model = zoo.load("denoising-ebm-mnist", pretrained=False)
    kw = dict(latent_steps=2, data_steps=3, data_score="dae", data_sigma_max=1.0, data_levels=2, denoise_jump=True,
              progress=False)
    assert model.sampler(**{k: v for k, v in kw.items() if k != "progress"}).chain_length() == 2 + 2 * 3 + 1
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    mask = torch.ones(1, 1, 32, 32)
    mask[..., 16:] = 0
    filled = model.inpaint(x, mask, seed=0, **kw)
    assert torch.equal(filled[..., :16], x[..., :16]) and not torch.equal(filled[..., 16:], x[..., 16:])
    for bad, match in [(dict(data_sigma_max=1.0), "needs data_score: dae"), (dict(data_levels=3), "needs data_score"),
                       (dict(data_score="dae", kernel="mala"), "kernel: langevin"),
                       (dict(data_score="dae", data_sigma_max=0.05), "must be >= sigma"),
                       (dict(data_score="score"), "data_score must be one of")]:
        with pytest.raises(zoo.ConfigError, match=match):
            build_sampler({"name": "two_stage", **bad})
