"""Hostile inputs, property-style: every public API call and every numeric flag of the CLI and the recipes gets a
table of bad values (NaN, inf, 0, negative, huge, wrong type, dtype, shape or device). Each must end in one ZooError
(CLI: exit status 2 and one line) or a finite result: never a raw exception, a hang or a silent non-finite output."""
import math

import pytest
import torch

import zoo
from conftest import tiny_model
from zoo.errors import ZooError

NUMBERS = [math.nan, math.inf, -math.inf, 0, -1, 0.0, -0.5, 1e30, 10**12, 2.5, "3", None, True, [1],
           torch.tensor(math.nan)]
TENSORS = {
    "nan": torch.full((2, 1, 8, 8), math.nan), "inf": torch.full((2, 1, 8, 8), math.inf),
    "huge": torch.full((2, 1, 8, 8), 1e30), "negative": -torch.ones(2, 1, 8, 8),
    "int64": torch.ones(2, 1, 8, 8, dtype=torch.int64), "float16": torch.rand(2, 1, 8, 8).half(),
    "bfloat16": torch.rand(2, 1, 8, 8).bfloat16(), "float64": torch.rand(2, 1, 8, 8).double(),
    "complex": torch.rand(2, 1, 8, 8, dtype=torch.complex64), "channels": torch.rand(2, 3, 8, 8),
    "empty": torch.rand(0, 1, 8, 8), "meta": torch.empty(2, 1, 8, 8, device="meta"), "list": [[0.0]],
    "strided": torch.rand(2, 1, 8, 16)[..., ::2], "requires_grad": torch.rand(2, 1, 8, 8, requires_grad=True),
}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return tiny_model().eval(), zoo.load("ncebm-mnist")


def tensor_calls(m):
    good = torch.rand(2, 1, 8, 8)
    return {
        "energy": lambda v: m.energy(v),
        "score": lambda v: m.score(v),
        "denoise": lambda v: m.denoise(v),
        "inpaint x": lambda v: m.inpaint(v, torch.ones(1, 1, 8, 8), preset="short", progress=False),
        "inpaint mask": lambda v: m.inpaint(good, v, preset="short", progress=False),
        "compose": lambda v: zoo.compose(m, m).energy(v),
    }


def number_calls(m, nc):
    good, image = torch.rand(2, 1, 8, 8), torch.rand(1, 1, 32, 32)
    return {
        "denoise sigma": lambda v: m.denoise(good, sigma=v),
        "nc energy sigma": lambda v: nc.energy(image, sigma=v),
        "nc score sigma": lambda v: nc.score(image, sigma=v),
        "nc denoise sigma": lambda v: nc.denoise(image, sigma=v),
        "sample n": lambda v: m.sample(v, preset="short", progress=False),
        "sample seed": lambda v: m.sample(2, seed=v, preset="short", progress=False),
        "sample batch_size": lambda v: m.sample(2, batch_size=v, preset="short", progress=False),
        "sample step_size": lambda v: m.sample(2, step_size=v, preset="short", progress=False),
        "sample trajectory_every": lambda v: m.sample(2, return_trajectory=True, trajectory_every=v, preset="short",
                                                      progress=False),
        "nc sample steps": lambda v: nc.sample(1, steps=v, progress=False),
        "nc sample sigma_max": lambda v: nc.sample(1, steps=3, sigma_max=v, progress=False),
        "nc sample sigma_min": lambda v: nc.sample(1, steps=3, sigma_min=v, progress=False),
        "compose weight": lambda v: zoo.compose(m, m, weights=[1.0, v]).energy(good),
        "load dtype": lambda v: zoo.load("ncebm-mnist", dtype=v),
        "load device": lambda v: zoo.load("ncebm-mnist", device=v),
    }


def finite(result) -> bool:
    result = getattr(result, "samples", result)
    if isinstance(result, torch.Tensor) and result.is_floating_point():
        return bool(torch.isfinite(result).all())
    return True


def outcome(call, value) -> str | None:
    """None when the call ends well (one ZooError or a finite result), else what went wrong."""
    try:
        result = call(value)
    except ZooError:
        return None
    except Exception as err:  # the failure this test exists to catch
        return f"raw {type(err).__name__}: {str(err)[:120]}"
    return None if finite(result) else "a non-finite result, silently"


def test_every_api_call_survives_every_hostile_tensor(models):
    m, _ = models
    bad = [f"{name}({label}): {what}" for name, call in tensor_calls(m).items() for label, value in TENSORS.items()
           if (what := outcome(call, value))]
    assert not bad, "\n".join(bad)


def test_every_api_call_survives_every_hostile_number(models):
    bad = [f"{name}({value!r}): {what}" for name, call in number_calls(*models).items() for value in NUMBERS
           if (what := outcome(call, value))]
    assert not bad, "\n".join(bad)


def test_the_table_catches_a_raw_exception_and_a_silent_nan():
    """The harness itself can fail: a raw error and a NaN output are both reported."""
    assert outcome(lambda v: 1 / v, 0).startswith("raw ZeroDivisionError")
    assert outcome(lambda v: torch.tensor([v]), math.nan) == "a non-finite result, silently"
    assert outcome(lambda v: torch.tensor([v]), 1.0) is None


BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e400", "abc", "2.5x", ""]
CLI_FLAGS = [  # (argv before the flag, flag, values that are bad for it): every numeric flag of the zoo command
    (["sample", "ncebm-mnist", "-o", "x.png"], "-n", BAD_NUMBERS),
    (["sample", "ncebm-mnist", "-o", "x.png"], "--nrow", BAD_NUMBERS),
    (["sample", "ncebm-mnist", "-o", "x.png"], "--step-size", BAD_NUMBERS),
    (["sample", "ncebm-mnist", "-o", "x.png"], "--batch-size", BAD_NUMBERS),
    (["sample", "ncebm-mnist", "-o", "x.png"], "--seed", ["-1", "nan", "1.5", "abc"]),
    (["denoise", "ncebm-mnist", "-o", "x.png"], "--noise", BAD_NUMBERS),
    (["denoise", "ncebm-mnist", "-o", "x.png"], "--sigma", BAD_NUMBERS),
    (["denoise", "ncebm-mnist", "-o", "x.png"], "--index", ["-1", "nan", "abc"]),
    (["inpaint", "ncebm-mnist", "-o", "x.png"], "-n", BAD_NUMBERS),
    (["ood", "ncebm-mnist", "--ood", "noise:uniform"], "-n", BAD_NUMBERS),
    (["eval", "ncebm-mnist"], "--num-samples", BAD_NUMBERS),
    (["eval", "ncebm-mnist"], "--n-test", BAD_NUMBERS),
    (["eval", "ncebm-mnist"], "--ais-step-size", BAD_NUMBERS),
    (["parzen", "deen-mnist"], "--sigmas", BAD_NUMBERS),
    (["parzen", "deen-mnist"], "--n-centers", BAD_NUMBERS),
    (["campaign", "run", "--until", "1m"], "--threads", BAD_NUMBERS),
    (["campaign", "adopt", "ncebm-mnist", "runs/x", "--command", "c"], "--hours", BAD_NUMBERS),
    (["demo"], "--port", BAD_NUMBERS + ["65536"]),
]


@pytest.mark.parametrize("argv, flag, values", CLI_FLAGS, ids=[f"{a[0]} {f}" for a, f, _ in CLI_FLAGS])
def test_every_numeric_flag_refuses_bad_numbers_in_one_line(argv, flag, values, tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    for value in values:
        try:
            code = main([*argv, f"{flag}={value}"])
        except SystemExit as exit_:  # argparse
            code = exit_.code
        err = capsys.readouterr().err
        assert code == 2, (flag, value)
        assert err.count("\n") == 1 and flag.lstrip("-") in err, (flag, value, err)


RECIPE_FLAGS = ["--max-steps", "--batch-size", "--lr", "--checkpoint-every", "--seed", "--grad-clip"]


@pytest.mark.parametrize("flag", RECIPE_FLAGS)
def test_the_recipes_refuse_bad_numbers_in_one_line(flag, capsys):
    from zoo.training.args import build_parser

    parser = build_parser("ebm")
    for value in ["nan", "inf", "-1", "abc", "1e400"]:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["--entry", "ebm-2d-gmm-ml", f"{flag}={value}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and flag in err, (flag, value, err)


# ---------------------------------------------------------------------------- hostile files and configs
@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    return tiny_model().eval().save_pretrained(tmp_path / "tiny")


def edit_config(folder, **changes):
    import json

    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        target = config
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    (folder / "config.json").write_text(json.dumps(config))


def test_weights_holding_nan_are_refused(folder):
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    name = sorted(state)[0]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = math.nan
    save_file(state, folder / "model.safetensors")
    with pytest.raises(zoo.WeightsIntegrityError, match=f"NaN or inf values in \\['{name}'\\]"):
        zoo.load(folder)


@pytest.mark.parametrize("key, value", [("data_range", [0, math.inf]), ("data_range", [1, 0]), ("sigma0", math.nan),
                                        ("sigma0", True)])
def test_a_config_with_non_finite_or_inverted_numbers_is_refused(folder, key, value):
    edit_config(folder, **{key: value})
    with pytest.raises(zoo.ConfigError, match=key):
        zoo.load(folder)


def test_an_architecture_larger_than_its_weights_is_refused_before_allocating(folder):
    import time

    edit_config(folder, **{"architecture.width": 4096})  # ~1000x the parameters: gigabytes if it were built
    start = time.time()
    with pytest.raises(zoo.WeightsIntegrityError, match="does not fit the architecture.*shapes differ"):
        zoo.load(folder)
    assert time.time() - start < 2


@pytest.mark.parametrize("hidden, message", [([-8], "negative dimension"), ([0], "empty layer")])
def test_impossible_sizes_are_one_config_error(hidden, message):
    from zoo.energies import build_network

    with pytest.raises(zoo.ConfigError, match=message):
        build_network({"class": "MLPEnergy", "hidden": hidden}, [2])


def test_init_from_another_architecture_is_refused(tmp_path):
    from conftest import REPO_ROOT
    from zoo.training import main

    with pytest.raises(zoo.ConfigError, match="its architecture"):  # an MLP of widths 32 where the entry has 64
        main("ebm", ["--entry", "ebm-2d-gmm-ml", "--max-steps", "1", "--output-dir", str(tmp_path / "run"),
                     "--init-from", str(REPO_ROOT / "hub_mirror" / "ebm-zoo" / "deen-2d-gmm")])


@pytest.mark.parametrize("spec, message", [
    ({"name": "debm", "data_step_size": -1}, "data_step_size must be a finite number > 0"),
    ({"name": "debm", "latent_steps": 0}, "latent_steps must be"),
    ({"name": "mdsm", "sigma_min": 5.0, "sigma_max": 3.0}, "sigma_min .* must be below sigma_max"),
    ({"name": "ncdsm", "p_std": math.nan}, "p_std must be"),
    ({"name": "dsm", "sigma": math.inf}, "sigma must be"),
    ({"name": "ml", "energy_l2": -0.1}, "energy_l2 must be a finite number >= 0"),
    ({"name": "cross_entropy", "label_smoothing": -1}, "label_smoothing"),
])
def test_objective_numbers_no_objective_can_train_with_are_refused_before_step_1(spec, message):
    from zoo.objectives import build_objective

    with pytest.raises(zoo.ConfigError, match=message):
        build_objective(spec, 0.1)


def test_every_entry_objective_passes_the_checks():
    from zoo.objectives import build_objective
    from zoo.registry import _all

    for entry in _all().values():
        build_objective(entry.recipe.objective, entry.model.sigma0)


def test_denoise_refuses_a_noise_level_that_leaves_no_image(models):
    m, nc = models
    with pytest.raises(zoo.InputError, match="times the data range"):
        m.denoise(torch.rand(2, 1, 8, 8), sigma=1e6)
    assert torch.isfinite(nc.denoise(torch.rand(1, 1, 32, 32), sigma=50.0)).all()  # large, but an ODE's start
