"""Typed entries: validation with errors that name the file and key, `extends`, and hostile arguments."""
import pytest
import torch

import zoo
from conftest import tiny_model
from zoo.registry import load_entries

BASE = """
name: base-a
family: mdsm
paper: p
description: d
model: {input_shape: [1, 8, 8], data_range: [0, 1], sigma0: 0.1, architecture: {class: MDSMResNet, width: 4}}
sampler: {default: {name: annealed_langevin, n_hold: 1, n_anneal: 1, n_final: 1}, presets: {fast: {step_size: 0.03}}}
data: {hub_id: ylecun/mnist}
recipe: {script: recipes/mdsm.py, objective: {name: mdsm, sigma_min: 0.1, sigma_max: 3.0}, batch_size: 8,
         optimizer: {name: adam, lr: 1.0e-3}, max_steps: 10, checkpoint_every: 5}
weights: null
"""


def write(folder, name, text):
    (folder / f"{name}.yaml").write_text(text)


def test_extends_merges_blocks_but_not_weights(tmp_path):
    write(tmp_path, "base-a", BASE)
    write(tmp_path, "child-b", "extends: base-a\nname: child-b\ndescription: c\nmodel: {architecture: {width: 8}}\n"
                               "sampler: {presets: {slow: {step_size: 0.01}}}\nweights: null\n")
    entries = load_entries(tmp_path)
    child = entries["child-b"]
    assert child.model.architecture == {"class": "MDSMResNet", "width": 8} and child.model.sigma0 == 0.1
    assert set(child.sampler.presets) == {"fast", "slow"} and child.recipe.max_steps == 10


@pytest.mark.parametrize("edit, message", [
    (("sigma0: 0.1", "sigma0: 0.1, sigmaa: 2"), r"base-a.yaml.model: unknown key\(s\) \['sigmaa'\]"),
    (("batch_size: 8", "batch_size: eight"), r"recipe.batch_size must be int"),
    (("batch_size: 8", "batch_size: 0"), r"recipe.batch_size must be >= 1"),
    (("data_range: [0, 1]", "data_range: [1, 0]"), r"model.data_range must be \[low, high\]"),
    (("weights: null", "weights: {revision: main}"), r"weights.repo_id is missing"),
    (("family: mdsm\n", "family: mdsm\nfamly: x\n"), r"unknown key\(s\) \['famly'\]"),
    (("name: base-a", "name: other"), r"file and name must agree"),
    (("model: {", "model: [{"), r"not valid YAML|must be a mapping"),
])
def test_malformed_entries_name_the_file_and_key(tmp_path, edit, message):
    write(tmp_path, "base-a", BASE.replace(*edit))
    with pytest.raises(zoo.ConfigError, match=message):
        load_entries(tmp_path)


def test_extends_of_an_unknown_or_circular_entry(tmp_path):
    write(tmp_path, "base-a", "extends: nowhere\n" + BASE)
    with pytest.raises(zoo.ConfigError, match="extends unknown entry 'nowhere'"):
        load_entries(tmp_path)
    write(tmp_path, "base-a", "extends: base-a\n" + BASE)
    with pytest.raises(zoo.ConfigError, match="circular"):
        load_entries(tmp_path)


def test_every_bundled_entry_validates():
    entries = load_entries()
    assert {"mdsm-mnist", "mdsm-cifar10", "deen-mnist", "deen-2d-gmm"} <= set(entries)
    assert entries["mdsm-fashion-mnist"].model.architecture == entries["mdsm-mnist"].model.architecture
    assert entries["mdsm-celeba-resnet18"].model.input_shape == [3, 64, 64]


@pytest.mark.parametrize("call, message", [
    (lambda m: m.sample(2.5), "n must be an integer"),
    (lambda m: m.sample("4"), "n must be an integer"),
    (lambda m: m.sample(2, batch_size=0), "batch_size must be an integer"),
    (lambda m: m.sample(2, return_trajectory=True, trajectory_every=0), "trajectory_every must be an integer"),
    (lambda m: m.sample(2, t_max=0), "t_max must be >= 1"),
    (lambda m: m.energy(torch.zeros(0, 1, 8, 8)), "empty batch"),
    (lambda m: zoo.load("mdsm-mnist-small", dtype="float8"), "unknown dtype"),
    (lambda m: zoo.load("mdsm-mnist-small", device="bogus"), "unknown device"),
])
def test_hostile_arguments_get_one_clear_zoo_error(call, message):
    with pytest.raises(zoo.ZooError, match=message):
        call(tiny_model().eval())
