"""Baselines used only by experiments/deen_paper.py (and its tests): a direct score MLP, its DSM loss, CD with
one Langevin step from the data (through the zoo's shared Langevin kernel), and a minimal Adam loop."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from zoo.energies import tanh_mlp
from zoo.objectives import Objective, ObjectiveContext, ObjectiveOutput
from zoo.sampling import Langevin, StepParams


class MLPScore(nn.Module):
    """A direct score network psi(x) -> (B, *input_shape): not a gradient field (DEEN's curl baseline)."""

    def __init__(self, input_shape: list[int], hidden: list[int]):
        super().__init__()
        self.input_shape = list(input_shape)
        d = int(torch.Size(input_shape).numel())
        self.mlp = tanh_mlp(d, list(hidden), d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.flatten(1)).view(x.shape[0], *self.input_shape)


@dataclass
class DirectScoreObjective(Objective):
    """(1/B) sum_i || x_i - xi_i - sigma^2 psi(xi_i) ||^2 on a *score* network psi (DEEN Fig. 1 g-h)."""

    sigma: float

    def __call__(self, score_fn, x, ctx: ObjectiveContext) -> ObjectiveOutput:
        xi = x + self.sigma * torch.randn(x.shape, generator=ctx.generator, dtype=x.dtype)
        loss = (x - xi - self.sigma**2 * score_fn(xi)).pow(2).flatten(1).sum(1).mean()
        return ObjectiveOutput(loss, {"loss": loss.detach()})


@dataclass
class LangevinCDObjective(Objective):
    """CD with one Langevin step from the data (DEEN Sec. 4, after Hyvarinen 2007):
    x- = x - sigma^2 grad E(x) + sqrt(2) sigma nu, i.e. the Langevin kernel with eps = sqrt(2) sigma at T = 1;
    loss = mean E(x) - mean E(x-)."""

    sigma: float

    def __call__(self, energy_fn, x, ctx: ObjectiveContext) -> ObjectiveOutput:
        negatives, _ = Langevin().step(energy_fn, x, StepParams(2**0.5 * self.sigma, 1.0), ctx.generator)
        loss = energy_fn(x).mean() - energy_fn(negatives.detach()).mean()
        return ObjectiveOutput(loss, {"loss": loss.detach()})


def fit(net: nn.Module, objective, data: torch.Tensor, *, steps: int, batch_size: int, lr: float, seed: int = 0) -> list[float]:
    """A minimal single-process Adam loop for these small experiments (recipes use zoo.training)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        x = data[torch.randint(0, len(data), (batch_size,), generator=gen)]
        out = objective(net, x, ObjectiveContext(step=step, generator=gen))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    return losses
