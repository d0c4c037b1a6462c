import pytest
import torch

import zoo
from zoo.data import load_tensor, random_hflip


def test_mnist_from_local_mirror_padded_to_32(shared_data):
    x = load_tensor(zoo.get_entry("mdsm-mnist"), "test", shared_data)
    assert x.shape == (10000, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1
    assert x[:, :, :2].abs().sum() == 0 and x[:, :, :, -2:].abs().sum() == 0  # zero padding
    assert abs(x[:, :, 2:30, 2:30].mean().item() - 0.1325) < 1e-3  # the README's test-split mean


def test_cache_gives_identical_tensor(shared_data):
    entry = zoo.get_entry("mdsm-fashion-mnist")
    first = load_tensor(entry, "test", shared_data)
    second = load_tensor(entry, "test", shared_data)  # from the decoded-array cache
    assert torch.equal(first, second)


def test_cifar_and_celeba_preprocessing(shared_data):
    cifar = load_tensor(zoo.get_entry("mdsm-cifar10"), "test", shared_data, limit=20)
    assert cifar.shape == (20, 3, 32, 32) and 0 <= cifar.min() and cifar.max() <= 1
    celeba = load_tensor(zoo.get_entry("mdsm-celeba-resnet18"), "train", shared_data, limit=5)
    assert celeba.shape == (5, 3, 64, 64)


def test_a_split_can_be_a_slice_of_one_and_each_slice_has_its_own_cache(shared_data):
    """ncebm-celeba holds out the last 500 of the 4,000 faces (splits train[:3500] / train[3500:]): the two splits
    are disjoint, their union is the whole set, and neither is confused with another entry's cache of the full set."""
    entry = zoo.get_entry("ncebm-celeba")
    test = load_tensor(entry, "test", shared_data)
    train = load_tensor(entry, "train", shared_data)
    everything = load_tensor(zoo.get_entry("mdsm-celeba-resnet18"), "train", shared_data)  # 64x64: another cache
    assert (len(train), len(test), len(everything)) == (3500, 500, 4000)
    assert not any(torch.equal(test[0], t) for t in train[-20:])
    assert torch.equal(load_tensor(entry, "test", shared_data), test)  # read back from its own cache


def test_missing_dataset_says_where_it_looked(tmp_path, hub):
    from zoo.training.args import apply_overrides

    entry = apply_overrides(zoo.get_entry("mdsm-mnist"), ["data.hub_id=nobody/missing-dataset"])
    with pytest.raises(zoo.DatasetNotFoundError, match="nobody/missing-dataset") as err:
        load_tensor(entry, "train", tmp_path)
    assert str(tmp_path) in str(err.value) and "--data-dir" in str(err.value)


def test_random_hflip_flips_about_half():
    x = torch.arange(8.0).view(1, 1, 1, 8).repeat(1000, 1, 1, 1)
    y = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = (y[:, 0, 0, 0] == 7).float().mean().item()
    assert 0.4 < flipped < 0.6 and torch.equal(y.sort(-1).values, x)
