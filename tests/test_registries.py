"""Every registered component is exercised here: a new architecture, kernel, sampler, objective or metric without a
case in these tables fails the suite (the first assertion of each test), and each case runs the component once."""
import math

import torch

import zoo
from zoo.energies import ARCHITECTURES, build_network
from zoo.evaluation import METRICS, metrics
from zoo.objectives import OBJECTIVES, ObjectiveContext, build_objective
from zoo.registry import _all
from zoo.results import read_results
from zoo.sampling import KERNELS, SAMPLERS, ChainOptions, StepParams, build_kernel, run_chain

IMAGE = [1, 8, 8]
ARCHITECTURES_CASES = {  # class -> (input shape, tiny options)
    "MDSMResNet": (IMAGE, {"width": 4, "depth": 12}),
    "MLPEnergy": ([2], {"hidden": [8, 8]}),
    "ConvEnergy": (IMAGE, {"width": 4}),
    "DenoisingEBM": (IMAGE, {"width": 8, "latent_dim": 4}),
    "NoiseConditionalEnergy": (IMAGE, {"channels": 4, "channel_mult": [1, 2]}),
    "SmallCNNClassifier": (IMAGE, {"width": 4, "features": 8}),
    "UNetEnergy": (IMAGE, {"channels": 4, "channel_mult": [1, 2]}),
}


def test_every_architecture_builds_and_gives_a_finite_energy_and_score():
    assert set(ARCHITECTURES_CASES) == set(ARCHITECTURES), "add the new architecture to ARCHITECTURES_CASES"
    for name, (shape, options) in ARCHITECTURES_CASES.items():
        torch.manual_seed(0)
        net = build_network({"class": name, **options}, shape)
        x = torch.rand(3, *shape, requires_grad=True)
        energy = net(x)
        assert energy.shape == (3,) and torch.isfinite(energy).all(), name
        (grad,) = torch.autograd.grad(energy.sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def gaussian(x):
    return 0.5 * x.pow(2).sum(1)


KERNEL_CASES = {  # kernel -> step parameters of a few steps on a standard 2-D Gaussian
    "langevin": StepParams(0.1, 1.0),
    "mala": StepParams(0.5, 1.0),
    "hmc": StepParams(0.3, 1.0),
    "heun": StepParams(0.5, 1.0, sigma=1.0, sigma_next=0.5),
}


def test_every_kernel_moves_a_chain_and_keeps_it_finite():
    assert set(KERNEL_CASES) == set(KERNELS), "add the new kernel to KERNEL_CASES"
    for name, params in KERNEL_CASES.items():
        g = torch.Generator().manual_seed(0)
        x0 = torch.randn(64, 2, generator=g, dtype=torch.float64)
        energy = (lambda x, sigma=None: gaussian(x)) if name == "heun" else gaussian
        out = run_chain(build_kernel(name), energy, lambda b: x0.clone(), 64, [params] * 3,
                        ChainOptions(generator=g, progress=False))
        x = out.samples if hasattr(out, "samples") else out
        assert torch.isfinite(x).all() and not torch.equal(x, x0), name


SAMPLER_CASES = {  # sampler -> (a tiny model's entry-like net, options of a short chain)
    "annealed_langevin": ("MDSMResNet", {"n_hold": 2, "n_anneal": 3, "n_final": 1}),
    "two_stage": ("DenoisingEBM", {"latent_steps": 2, "data_steps": 2}),
    "pf_ode": ("NoiseConditionalEnergy", {"steps": 3}),
    "edm_stochastic": ("NoiseConditionalEnergy", {"steps": 3, "s_tmax": 100.0}),
    "annealed_sigma": ("NoiseConditionalEnergy", {"n_levels": 2, "n_steps_each": 2, "sigma_max": 1.0, "step_lr": 1e-7}),
}


def test_every_sampler_draws_finite_samples_of_the_model_shape():
    assert set(SAMPLER_CASES) == set(SAMPLERS), "add the new sampler to SAMPLER_CASES"
    for name, (arch, options) in SAMPLER_CASES.items():
        shape, arch_options = ARCHITECTURES_CASES[arch]
        config = {"entry": "tiny", "family": "test", "input_shape": shape, "data_range": [0.0, 1.0], "sigma0": 0.1,
                  "architecture": {"class": arch, **arch_options}}
        torch.manual_seed(0)
        model = zoo.EnergyModel(config, sampler_config={"default": {"name": name, **options}}).eval()
        assert model.sampler().chain_length() > 0
        x = model.sample(3, seed=0, progress=False)
        assert x.shape == (3, *shape) and torch.isfinite(x).all(), name


OBJECTIVE_CASES = {  # objective -> (network class, options)
    "sm": ("MLPEnergy", {}), "ssm": ("MLPEnergy", {}), "dsm": ("MLPEnergy", {}), "deen": ("MLPEnergy", {}),
    "mdsm": ("MLPEnergy", {"sigma_min": 0.05, "sigma_max": 0.5}), "ml": ("MLPEnergy", {"steps": 3}),
    "nce": ("MLPEnergy", {}), "cross_entropy": ("SmallCNNClassifier", {}),
    "debm": ("DenoisingEBM", {"latent_steps": 2, "data_steps": 2, "reconstruction_steps": 1}),
    "ncdsm": ("NoiseConditionalEnergy", {}),
}


def test_every_objective_gives_a_finite_loss_and_gradient_and_keeps_its_state():
    assert set(OBJECTIVE_CASES) == set(OBJECTIVES), "add the new objective to OBJECTIVE_CASES"
    for name, (arch, options) in OBJECTIVE_CASES.items():
        shape, arch_options = ARCHITECTURES_CASES[arch]
        torch.manual_seed(0)
        net = build_network({"class": arch, **arch_options}, shape)
        objective = build_objective({"name": name, **options}, 0.1)
        g = torch.Generator().manual_seed(0)
        batch = torch.rand(8, *shape, generator=g)
        labels = torch.randint(0, 10, (8,), generator=g)
        ctx = ObjectiveContext(step=0, generator=g, sigma0=0.1,
                               labels=labels if objective.needs_labels else None)
        out = objective(net, batch, ctx)
        assert out.loss.dim() == 0 and torch.isfinite(out.loss), name
        out.loss.backward()
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(gr).all() for gr in grads), name
        fresh = build_objective({"name": name, **options}, 0.1)
        fresh.load_state_dict(objective.state_dict())
        assert set(fresh.state_dict()) == set(objective.state_dict()), name


def test_every_metric_applies_somewhere_and_renders_its_published_results():
    """Each metric applies to some entry; where bundled weights carry its results, its card rows, model-index rows
    and headline render them (the metrics' runs are tested in test_eval.py)."""
    assert {"quality", "accuracy", "likelihood", "denoising", "inpainting", "ood", "ranking"} == set(METRICS), \
        "a new metric: add it here and give it a run test in test_eval.py"
    entries = _all()
    for name, metric in metrics():
        users = [e for e in entries.values() if metric.applies(e)]
        assert users, name
        published = [(e, read_results(e.name)["results"][name]) for e in users
                     if read_results(e.name) and name in read_results(e.name)["results"]]
        for entry, result in published[:2]:
            lines = metric.card(result, entry)
            assert lines and any(ch.isdigit() for ch in "".join(lines)), (name, entry.name)
            common = dict(dataset_type="d", dataset_name="d", dataset_split="test")
            for row in metric.eval_results(result, entry, common):
                assert math.isfinite(row.metric_value), (name, entry.name)
            headline = metric.headline(result)
            assert headline is None or any(ch.isdigit() for ch in headline)
