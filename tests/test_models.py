import pytest

import zoo
import torch

from zoo.energies import MDSMResNet, MLPEnergy, build_network


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_resnet12_width64_mnist_parameter_count():
    assert n_params(MDSMResNet([1, 32, 32], width=64, depth=12)) == 9_060_483


def test_resnet18_width128_cifar_parameter_count():
    assert n_params(MDSMResNet([3, 32, 32], width=128, depth=18)) == 62_339_075


def test_energy_shape_and_no_normalisation_layers():
    net = MDSMResNet([3, 16, 16], width=4, depth=18)
    assert net(torch.rand(5, 3, 16, 16)).shape == (5,)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm)) for m in net.modules())
    # every block has a 1x1 shortcut conv, also same-width blocks
    assert all(b.conv_shortcut.kernel_size == (1, 1) for b in net.blocks)


def test_quadratic_head_matches_eq_A4():
    net = MDSMResNet([1, 8, 8], width=2, depth=12)
    h = torch.randn(3, net.head.ln1.in_features)
    a, c, d = net.head.ln1, net.head.ln2, net.head.lq
    expected = (h @ a.weight.T + a.bias) * (h @ c.weight.T + c.bias) + (h * h) @ d.weight.T + d.bias
    torch.testing.assert_close(net.head(h), expected.squeeze(1))


def test_bad_architecture_arguments():
    with pytest.raises(ValueError, match="depth"):
        MDSMResNet([1, 32, 32], depth=7)
    with pytest.raises(ValueError, match="divisible"):
        MDSMResNet([1, 30, 30])
    with pytest.raises(zoo.ConfigError, match="unknown architecture"):
        build_network({"class": "Nope"}, [1, 8, 8])


def test_mlp_energy():
    net = build_network({"class": "MLPEnergy", "hidden": [8, 8]}, [2])
    assert isinstance(net, MLPEnergy) and net(torch.randn(4, 2)).shape == (4,)


def test_conv_energy_is_per_image_and_has_the_gaussian_term():
    torch.manual_seed(0)
    net = build_network({"class": "ConvEnergy", "width": 4}, [1, 28, 28])
    x = torch.rand(5, 1, 28, 28)
    e = net(x)
    assert e.shape == (5,)
    torch.testing.assert_close(net(x[2:3]), e[2:3])  # no normalisation layer: E(x) does not see the rest of the batch
    with_base = build_network({"class": "ConvEnergy", "width": 4, "base_precision": 2.0}, [1, 28, 28])
    with_base.load_state_dict(net.state_dict())
    torch.testing.assert_close(with_base(x), e + x.flatten(1).pow(2).sum(1))  # + base_precision |x|^2 / 2
    with pytest.raises(zoo.ConfigError, match="image shape"):
        build_network({"class": "ConvEnergy"}, [784])
