import pytest
import torch

import zoo
from conftest import tiny_model
from test_sampling import gaussian_model


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return EnergyModelTiny()


def EnergyModelTiny():
    return tiny_model().double().eval()


def test_score_is_minus_grad_energy_finite_differences(tiny):
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    score = tiny.score(x)
    h = 1e-6
    for idx in [(0, 0, 3, 4), (1, 0, 7, 0), (1, 0, 2, 2)]:
        e = torch.zeros_like(x)
        e[idx] = h
        fd = (tiny.energy(x + e) - tiny.energy(x - e))[idx[0]] / (2 * h)
        assert torch.isclose(-fd, score[idx], rtol=1e-5, atol=1e-8), (idx, -fd, score[idx])


def test_denoising_jump_is_tweedie_for_gaussian_prior():
    """Prior N(mu, s^2 I); y = x + sigma0 n; E = -log p_sigma0(y) gives E[x|y] = y - sigma0^2 grad E(y)."""
    s2, sigma0 = 0.5, 0.4
    mu = torch.tensor([0.3, -0.2], dtype=torch.float64)
    model = gaussian_model(mu, torch.eye(2, dtype=torch.float64) * (s2 + sigma0**2), sigma0=sigma0)
    g = torch.Generator().manual_seed(0)
    x = mu + s2**0.5 * torch.randn(20000, 2, generator=g, dtype=torch.float64)
    y = x + sigma0 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    posterior_mean = mu + s2 / (s2 + sigma0**2) * (y - mu)
    torch.testing.assert_close(model.denoise(y), posterior_mean, rtol=0, atol=1e-12)
    # and it is the MMSE estimate: lower error than the noisy input
    assert ((model.denoise(y) - x) ** 2).mean() < 0.8 * ((y - x) ** 2).mean()


def test_inpainting_never_changes_known_pixels(tiny):
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    mask[..., :4] = 1
    out = tiny.inpaint(x, mask, seed=0, progress=False)
    assert torch.equal(out[..., :4], x[..., :4])
    assert not torch.equal(out[..., 4:], x[..., 4:])
    assert torch.isfinite(out).all()


def test_inpaint_runs_the_models_inpaint_preset_unless_told_otherwise(tiny):
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    mask[..., :4] = 1
    default = tiny.inpaint(x, mask, seed=0, progress=False)  # no inpaint preset: the default sampler
    short = tiny.inpaint(x, mask, seed=0, progress=False, preset="short")
    assert not torch.equal(default, short)
    tiny.sampler_config["presets"]["inpaint"] = dict(tiny.sampler_config["presets"]["short"])
    assert tiny.inpaint_preset() == "inpaint" and tiny.inpaint_preset("short") == "short"
    torch.testing.assert_close(tiny.inpaint(x, mask, seed=0, progress=False), short, rtol=0, atol=0)
    # an explicit preset or sampler wins; overrides apply on top of the inpaint preset
    torch.testing.assert_close(tiny.inpaint(x, mask, seed=0, progress=False, sampler=tiny.sampler()), default,
                               rtol=0, atol=0)
    longer = tiny.inpaint(x, mask, seed=0, progress=False, n_anneal=3)
    torch.testing.assert_close(longer, tiny.inpaint(x, mask, seed=0, progress=False, preset="short", n_anneal=3),
                               rtol=0, atol=0)
    assert not torch.equal(longer, short)


def test_sample_shape_seed_and_traces(tiny):
    a = tiny.sample(4, seed=3, progress=False)
    b = tiny.sample(4, seed=3, progress=False)
    c = tiny.sample(4, seed=4, progress=False)
    assert a.shape == (4, 1, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    out = tiny.sample(2, seed=0, preset="short", progress=False, return_trajectory=True, return_energy_trace=True,
                      trajectory_every=2)
    assert out.energy_trace.shape == (4, 2) and len(out.temperatures) == 4
    assert len(out.trajectory) == 3 and out.samples.shape == (2, 1, 8, 8)
    with pytest.raises(zoo.ConfigError, match="unknown sampler preset"):
        tiny.sample(2, preset="nope")


@pytest.mark.parametrize("bad, message", [
    (torch.rand(2, 1, 8, 7), "shape"),
    (torch.rand(2, 8, 8), "shape"),
    (torch.randint(0, 255, (2, 1, 8, 8), dtype=torch.uint8), "dtype"),
    (torch.full((2, 1, 8, 8), float("nan")), "NaN"),
    (torch.rand(2, 1, 8, 8) * 255, "data range"),
    ([[0.0]], "torch.Tensor"),
])
def test_bad_inputs_raise_one_clear_error(tiny, bad, message):
    for method in (tiny.energy, tiny.score, tiny.denoise):
        with pytest.raises(zoo.InputError, match=message):
            method(bad)


def test_bad_mask(tiny):
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(zoo.InputError, match="only 0"):
        tiny.inpaint(x, torch.full((1, 1, 8, 8), 0.5))
    with pytest.raises(zoo.InputError, match="broadcast"):
        tiny.inpaint(x, torch.ones(1, 1, 4, 4))


def test_unknown_entry_lists_closest_names():
    with pytest.raises(zoo.UnknownEntryError, match="Did you mean: mdsm-mnist") as err:
        zoo.load("mdsm-mnst")
    assert "Known entries" in str(err.value)


def test_list_shows_mdsm_entries_and_weights_status():
    rows = {r["name"]: r for r in zoo.list()}
    for name in ("mdsm-mnist", "mdsm-fashion-mnist", "mdsm-cifar10", "mdsm-celeba", "mdsm-cifar10-resnet18"):
        assert rows[name]["family"] == "mdsm"
    assert rows["mdsm-cifar10-resnet18"]["weights"].startswith("none")
    assert not any(name.startswith("_") for name in rows)  # bases for `extends` are not entries
    assert rows["mdsm-mnist"]["weights"] == "mirror"


def test_entry_without_weights_is_an_error_unless_random_init_is_asked_for():
    with pytest.raises(zoo.NoPretrainedWeightsError, match="no published weights") as err:
        zoo.load("mdsm-cifar10-resnet18")
    assert "--data-dir" in str(err.value) and "pretrained=False" in str(err.value)
    before = torch.random.get_rng_state()
    m = zoo.load("mdsm-celeba-resnet18", pretrained=False)
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert m.input_shape == (3, 64, 64)
    assert sum(p.numel() for p in m.parameters()) > 60_000_000


def test_info_has_paper_numbers():
    info = zoo.info("mdsm-cifar10-resnet18")
    assert info["reported"]["fid"]["value"] == 31.7 and info["reported"]["inception_score"]["value"] == 8.31
    assert info["recipe"]["objective"] == {"name": "mdsm", "sigma_min": 0.05, "sigma_max": 1.2, "spacing": "linear"}
    assert set(info["sampler"]["presets"]) == {"paper", "fast", "medium", "steps300", "lin", "langevin"}
    assert info["model"]["architecture"] == {"class": "MDSMResNet", "width": 128, "depth": 18}
    for name in ("mdsm-cifar10", "mdsm-celeba"):  # the campaign's CPU sizes say so and do not claim the paper's numbers
        small = zoo.info(name)
        assert small["model"]["architecture"]["class"] == "UNetEnergy" and not small["reported"]
        assert "not the paper's model" in small["description"].lower()


def test_device_and_dtype_aware(tiny):
    m = tiny.to(torch.float32)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert m.denoise(x).dtype == torch.float32 and m.sample(2, preset="short", progress=False).dtype == torch.float32


def test_huge_sample_requests_and_bad_compositions_are_refused_before_any_work(tmp_path):
    import torch

    m = zoo.load("mdsm-mnist-small")
    with pytest.raises(zoo.InputError, match=r"would hold .* GiB"):
        m.sample(10**9)
    with pytest.raises(zoo.InputError, match="one device and dtype"):
        zoo.compose(m, zoo.load("mdsm-mnist-small").to(torch.float64))
    with pytest.raises(zoo.InputError, match="no folder of its own"):
        zoo.compose(m, m).save_pretrained(tmp_path / "both")
    assert not (tmp_path / "both").exists()
