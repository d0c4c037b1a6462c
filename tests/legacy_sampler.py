"""The annealed Langevin loop of ebm-zoo 0.1 (zoo/samplers.py before the sampling package), kept verbatim as the
reference the rebuilt sampler must reproduce bit for bit."""
import math

import torch


def legacy_annealed_langevin(energy_fn, x, temps, eps, sigma0, denoise_jump, generator, known=None, mask=None):
    def energy_and_grad(fn, x):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            energy = fn(x)
            (grad,) = torch.autograd.grad(energy.sum(), x)
        return energy, grad

    for temp in temps.tolist():
        if mask is not None:
            clamp_noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = mask * (known + sigma0 * math.sqrt(temp) * clamp_noise) + (1 - mask) * x
        energy, grad = energy_and_grad(energy_fn, x)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        step = -(eps**2 / 2) * grad + eps * math.sqrt(temp) * noise
        x = x + (step if mask is None else (1 - mask) * step)
    if mask is not None:
        x = mask * known + (1 - mask) * x
    if denoise_jump:
        jumped = x - sigma0**2 * energy_and_grad(energy_fn, x)[1]
        x = jumped if mask is None else mask * known + (1 - mask) * jumped
    if mask is not None:
        x = torch.where(mask.bool(), known, x)
    return x.detach()


def legacy_sample(model, n, seed, **overrides):
    """What EnergyModel.sample(n, seed=seed) returned in 0.1 (no clipping)."""
    sampler = model.sampler(**overrides)
    g = torch.Generator(device=model.device).manual_seed(seed)
    x0 = sampler.init_mean + sampler.init_std * torch.randn((n, *model.input_shape), generator=g, device=model.device,
                                                            dtype=model.dtype)
    return legacy_annealed_langevin(model.net, x0, sampler.temperatures(), sampler.step_size, model.sigma0,
                                    sampler.denoise_jump, g)


def legacy_inpaint(model, x, mask, seed, **overrides):
    sampler = model.sampler(**overrides)
    g = torch.Generator(device=model.device).manual_seed(seed)
    x0 = sampler.init_mean + sampler.init_std * torch.randn(x.shape, generator=g, device=model.device, dtype=model.dtype)
    mask = torch.broadcast_to(mask, x.shape).to(x.dtype)
    x0 = mask * x + (1 - mask) * x0
    return legacy_annealed_langevin(model.net, x0, sampler.temperatures(), sampler.step_size, model.sigma0,
                                    sampler.denoise_jump, g, known=x, mask=mask)
