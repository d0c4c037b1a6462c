"""Noise-contrastive estimation (Gutmann & Hyvarinen 2010; Song & Kingma 2021, Sec. 5, eq. 21) with a learnable
log Z and a tractable noise distribution q = N(mu, s^2 I):

    p_theta(x) = exp(-E(x) - c),  c = log Z (learned);  G(x) = log p_theta(x) - log q(x)
    L = -E_data[log sigmoid(G(x))] - E_q[log sigmoid(-G(y))]      (one noise sample per data point, nu = 1)

q is fitted to the first batch (per-dimension mean, one std times ``noise_scale``) unless ``noise_mean`` /
``noise_std`` are given, and then kept fixed (objective state). c is a parameter of the objective: the training loop
optimises it with the network (one module under DDP, so its gradient is synchronised too).
"""
from __future__ import annotations

import math
import torch
from torch import nn
from torch.nn import functional as F

from .base import Objective, ObjectiveContext, ObjectiveOutput, register_objective


@register_objective("nce")
class NCEObjective(nn.Module, Objective):
    def __init__(self, noise_mean: float | None = None, noise_std: float | None = None, noise_scale: float = 1.5):
        super().__init__()
        self.log_z = nn.Parameter(torch.zeros(()))
        self.noise_scale = noise_scale
        self.register_buffer("noise_mean", torch.tensor(float("nan")) if noise_mean is None else torch.tensor(noise_mean))
        self.register_buffer("noise_std", torch.tensor(float("nan")) if noise_std is None else torch.tensor(noise_std))

    def _fit(self, x: torch.Tensor) -> None:
        if torch.isnan(self.noise_mean).any() or torch.isnan(self.noise_std):
            mean = x.mean(0) if torch.isnan(self.noise_mean).any() else self.noise_mean
            std = (x - mean).std() * self.noise_scale if torch.isnan(self.noise_std) else self.noise_std
            self.noise_mean, self.noise_std = mean.detach().clone(), std.detach().clone()

    def log_q(self, y: torch.Tensor) -> torch.Tensor:
        d = y[0].numel()
        s = self.noise_std.to(y.dtype)
        return (-(y - self.noise_mean.to(y.dtype)).flatten(1).pow(2).sum(1) / (2 * s**2)
                - d * (torch.log(s) + 0.5 * math.log(2 * math.pi)))

    def forward(self, model, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        self.to(x.device)
        self._fit(x)
        y = self.noise_mean.to(x.dtype) + self.noise_std.to(x.dtype) * torch.randn(
            x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype)
        energies = model(torch.cat([x, y]))
        g = -energies - self.log_z - self.log_q(torch.cat([x, y]))
        g_data, g_noise = g[: x.shape[0]], g[x.shape[0]:]
        loss = -(F.logsigmoid(g_data).mean() + F.logsigmoid(-g_noise).mean())
        accuracy = ((g_data > 0).float().mean() + (g_noise < 0).float().mean()) / 2
        return ObjectiveOutput(loss, {"loss": loss.detach(), "log_z": self.log_z.detach().clone(),
                                      "nce_accuracy": accuracy.detach()})

    def load_state_dict(self, state: dict, strict: bool = True):
        """The fitted q's shape is known only after the first batch: take the saved buffers as they are."""
        self.log_z.data.copy_(state["log_z"])
        self.noise_mean, self.noise_std = state["noise_mean"].clone(), state["noise_std"].clone()
