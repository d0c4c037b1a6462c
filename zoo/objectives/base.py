"""The objective interface, its context, and the registry by name."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError

OBJECTIVES: dict[str, type] = {}


def register_objective(name: str):
    """Class decorator: an objective usable from any entry as ``recipe.objective: {name: ..., **options}``."""
    def wrap(cls):
        OBJECTIVES[name] = cls
        cls.objective_name = name
        return cls
    return wrap


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor  # scalar to back-propagate
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # detached scalars (no GPU sync until logged)


@dataclass
class ObjectiveContext:
    """What an objective may use besides the (possibly DDP-wrapped) model and the batch."""

    step: int = 0
    generator: torch.Generator | None = None  # seeded by (seed, step, rank): resumable bit-exactly
    unwrapped: torch.nn.Module | None = None  # the bare network: run MCMC on it, not on the DDP wrapper
    sampler: Any = None  # the entry's sampler, for objectives that need negatives
    sigma0: float | None = None


class Objective:
    """Base class: stateless unless a subclass overrides ``state_dict`` / ``load_state_dict``."""

    def __call__(self, model, batch: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:  # pragma: no cover
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def build_objective(spec: dict, sigma0: float) -> Objective:
    """The objective named in an entry's ``recipe.objective`` block; options not known to it are rejected."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; known: {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    known = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"recipe.objective: unknown option(s) {sorted(unknown)} for {name!r}; known: {sorted(known)}")
    if "sigma0" in known and "sigma0" not in spec:
        spec["sigma0"] = sigma0
    return cls(**spec)
