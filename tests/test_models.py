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


def test_unet_energy_is_the_blind_residual_norm_and_takes_no_sigma():
    """UNetEnergy: E(x) = |F(x - mu)|^2 / (2 s^2), per image (GroupNorm normalises within an image), no sigma input."""
    torch.manual_seed(0)
    net = build_network({"class": "UNetEnergy", "channels": 8, "channel_mult": [1, 2], "scale": 0.1}, [3, 8, 8])
    assert not getattr(net, "noise_conditional", False)
    x = torch.rand(4, 3, 8, 8)
    e = net(x)
    assert e.shape == (4,)
    torch.testing.assert_close(e, net.residual(x).pow(2).flatten(1).sum(1) / (2 * 0.1**2))
    torch.testing.assert_close(net(x[1:2]), e[1:2])
    half = build_network({"class": "UNetEnergy", "channels": 8, "channel_mult": [1, 2], "scale": 0.05}, [3, 8, 8])
    half.load_state_dict(net.state_dict())
    torch.testing.assert_close(half(x), 4 * e)
    for bad, match in [({"scale": 0.0}, "scale"), ({"channels": 0}, ">= 1"), ({"channel_mult": [1, 2, 2, 2]}, "divisible")]:
        with pytest.raises(zoo.ConfigError, match=match):
            build_network({"class": "UNetEnergy", **bad}, [3, 12, 12])


def test_unet_energy_learns_a_blind_denoiser_under_mdsm():
    """MDSM (eq. 7) on images that are all one grey level: after training, the denoising jump x~ - sigma0^2 grad E(x~)
    (MDSM eq. 9) brings noisy images at every trained sigma closer to that grey (measured: 0.3x the squared error at
    sigma 0.05, 0.06x at 0.2, 0.02x at 0.5)."""
    from zoo.objectives import ObjectiveContext, build_objective
    from zoo.sampling.kernels import energy_and_grad

    torch.manual_seed(0)
    sigma0, grey = 0.1, 0.3
    net = build_network({"class": "UNetEnergy", "channels": 8, "channel_mult": [1, 2], "scale": sigma0}, [1, 8, 8])
    objective = build_objective({"name": "mdsm", "sigma_min": 0.05, "sigma_max": 0.5, "spacing": "linear"}, sigma0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x = torch.full((16, 1, 8, 8), grey)
    for step in range(300):
        loss = objective(net, x, ObjectiveContext(step=step, generator=torch.Generator().manual_seed(step))).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    for sigma in (0.05, 0.2, 0.5):
        noisy = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(99))
        _, grad = energy_and_grad(net, noisy.requires_grad_(True))
        jumped = noisy - sigma0**2 * grad
        assert (jumped - grey).pow(2).mean() < 0.5 * (noisy - grey).pow(2).mean()
