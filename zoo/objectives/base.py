"""The objective interface, its context, and the registry by name."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..argtypes import is_positive
from ..errors import ConfigError
from ..components import Registry

OBJECTIVES = Registry("objective")
register_objective = OBJECTIVES.register  # an objective usable as ``recipe.objective: {name: ..., **options}``


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor  # scalar to back-propagate
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # detached scalars (no GPU sync until logged)


@dataclass
class ObjectiveContext:
    """What an objective may use besides the network and the batch. The network is the bare one (the training loop's
    ``Trainable`` calls the objective inside the DDP-wrapped forward), so MCMC may run on it directly."""

    step: int = 0
    generator: torch.Generator | None = None  # seeded by (seed, step, rank): resumable bit-exactly
    sampler: Any = None  # the entry's sampler, for objectives that need negatives
    sigma0: float | None = None
    labels: torch.Tensor | None = None  # class labels of the batch, for objectives with ``needs_labels = True``


class Objective:
    """Base class: stateless unless a subclass overrides ``state_dict`` / ``load_state_dict``."""

    needs_labels = False  # True: the loop loads the data's labels and passes the batch's in ``ctx.labels``

    def __call__(self, model, batch: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:  # pragma: no cover
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def contrastive_loss(e_data: torch.Tensor, e_neg: torch.Tensor, energy_l2: float = 0.0) -> torch.Tensor:
    """The maximum-likelihood gradient estimator (Song & Kingma eq. 3 with MCMC negatives): mean E(data) - mean E(neg),
    plus the opt-in energy-magnitude penalty ``energy_l2`` * mean(E(data)² + E(neg)²) (Du & Mordatch 2019, Sec. 3.3),
    which keeps the energies from running off when the chains lag behind the model."""
    loss = e_data.mean() - e_neg.mean()
    if energy_l2:
        loss = loss + energy_l2 * (e_data.pow(2).mean() + e_neg.pow(2).mean())
    return loss


# option names whose values must be finite and > 0 (noise levels, step sizes, counts) or >= 0 (penalties, warm-ups)
POSITIVE = {"sigma", "sigma0", "sigma_min", "sigma_max", "sigma_data", "p_std", "step_size", "latent_step_size",
            "data_step_size", "n_sigmas", "steps", "latent_steps", "data_steps", "n_projections",
            "buffer_size"}
NON_NEGATIVE = {"temperature", "energy_l2", "label_smoothing", "reconstruction_steps", "reconstruction_warmup", "reinit", "bounds_slack"}


def check_options(name: str, objective: Objective) -> None:
    """One ConfigError for a number no objective can train with (a negative step size, sigma_min >= sigma_max, ...),
    before step 1."""
    if not dataclasses.is_dataclass(objective):
        return
    values = {f.name: getattr(objective, f.name) for f in dataclasses.fields(objective)}
    for key, value in values.items():
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        bad = (key in POSITIVE and not is_positive(value)) or \
              (key in NON_NEGATIVE and not (math.isfinite(value) and value >= 0))
        if bad:
            bound = "> 0" if key in POSITIVE else ">= 0"
            raise ConfigError(f"objective {name!r}: {key} must be a finite number {bound}, got {value!r}")
    if values.get("sigma_min") is not None and values.get("sigma_max") is not None \
            and not values["sigma_min"] < values["sigma_max"]:
        raise ConfigError(f"objective {name!r}: sigma_min ({values['sigma_min']}) must be below sigma_max "
                          f"({values['sigma_max']})")


def build_objective(spec: dict, sigma0: float) -> Objective:
    """The objective named in an entry's ``recipe.objective`` block; objectives with a ``sigma0`` field default to the
    model's sigma0. Its numbers are checked (``check_options``)."""
    options = dict(spec)
    name = options.pop("name", None)
    cls = OBJECTIVES.get(name)
    if dataclasses.is_dataclass(cls) and "sigma0" in {f.name for f in dataclasses.fields(cls)}:
        options.setdefault("sigma0", sigma0)
    objective = OBJECTIVES.build(name, **options)
    check_options(name, objective)
    return objective
