"""Maximum likelihood with MCMC negatives (Song & Kingma 2021, Sec. 2): the gradient of eq. (3) estimated by
E_data[grad E] - E_model[grad E], the model expectation from short Langevin chains (the shared ``langevin`` kernel via
``run_chain``) started

* ``cd``:      at the data batch (contrastive divergence, Hinton 2002; CD-K with K = ``steps``)
* ``pcd``:     where the previous update's chains ended (persistent CD, Tieleman 2008)
* ``replay``:  at samples drawn from a replay buffer of past chain ends, a fraction ``reinit`` restarted from
               uniform noise (Du & Mordatch 2019)

The chains' state (persistent chains / the buffer) is objective state, checkpointed by the training loop.
Langevin: x' = x - (eps^2/2) grad E + eps sqrt(T) z, eps = ``step_size``, T = ``temperature`` (T < 1 is the usual
"smaller noise than the step implies" of Du & Mordatch / JEM). A diverging chain raises ChainDivergedError.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from ..sampling import ChainOptions, StepParams, build_kernel, run_chain
from ..tensors import rows
from .base import Objective, ObjectiveContext, ObjectiveOutput, contrastive_loss, register_objective

MODES = ("cd", "pcd", "replay")


@register_objective("ml")
@dataclass
class MaximumLikelihoodObjective(Objective):
    mode: str = "replay"
    steps: int = 30  # K Langevin steps per update
    step_size: float = 0.01  # eps
    temperature: float = 1.0
    buffer_size: int = 10000  # replay
    reinit: float = 0.05  # replay: fraction restarted from noise
    init_range: list = field(default_factory=lambda: [0.0, 1.0])  # uniform noise of (re)starts: the data range
    energy_l2: float = 0.0  # opt-in stability aid (Du & Mordatch): energy_l2 * (E(data)^2 + E(neg)^2)
    bounds_slack: float = 16.0  # chains leaving the range by this many widths count as diverged

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"ml mode must be one of {list(MODES)}, got {self.mode!r}")
        if not isinstance(self.steps, int):  # its size and the step size: base.check_options
            raise ConfigError(f"ml steps must be an integer, got {self.steps!r}")
        if not 0 <= self.reinit <= 1:
            raise ConfigError(f"ml reinit must be in [0, 1], got {self.reinit}")
        self._kernel = build_kernel("langevin")
        self.buffer: torch.Tensor | None = None  # pcd: the chains; replay: the buffer

    def _noise(self, n: int, like: torch.Tensor, generator) -> torch.Tensor:
        lo, hi = self.init_range
        return lo + (hi - lo) * torch.rand((n, *like.shape[1:]), generator=generator, device=like.device,
                                           dtype=like.dtype)

    def _starts(self, x: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        b = x.shape[0]
        if self.mode == "cd":
            return x.detach(), None
        if self.mode == "pcd":
            if self.buffer is None or self.buffer.shape != x.shape:
                self.buffer = self._noise(b, x, generator)
            return self.buffer, None
        if self.buffer is None:
            self.buffer = self._noise(self.buffer_size, x, generator)
        idx = torch.randint(0, self.buffer.shape[0], (b,), generator=generator, device=x.device)
        starts = self.buffer[idx]
        fresh = torch.rand(b, generator=generator, device=x.device) < self.reinit
        starts = torch.where(rows(fresh, x), self._noise(b, x, generator), starts)
        return starts, idx

    def negatives(self, net, x: torch.Tensor, generator) -> torch.Tensor:
        """The chain ends of this update (and the chains' state updated)."""
        starts, idx = self._starts(x, generator)
        lo, hi = self.init_range
        slack = self.bounds_slack * (hi - lo)
        out = run_chain(self._kernel, net, lambda b: starts, x.shape[0],
                        [StepParams(self.step_size, self.temperature)] * self.steps,
                        ChainOptions(generator=generator, bounds=(lo - slack, hi + slack), progress=False),
                        desc="ml negatives")
        neg = out.samples.detach()
        if self.mode == "pcd":
            self.buffer = neg
        elif self.mode == "replay":
            self.buffer[idx] = neg
        return neg

    def __call__(self, net, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        was_training = net.training
        net.eval()
        neg = self.negatives(net, x, ctx.generator)
        net.train(was_training)
        energies = net(torch.cat([x, neg]))
        e_data, e_neg = energies[: x.shape[0]], energies[x.shape[0]:]
        loss = contrastive_loss(e_data, e_neg, self.energy_l2)
        return ObjectiveOutput(loss, {"loss": loss.detach(), "E_gap": (e_data.mean() - e_neg.mean()).detach(),
                                      "E_neg": e_neg.detach().mean()})

    def state_dict(self) -> dict:
        return {"buffer": self.buffer}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = state["buffer"]
