"""The training state: what one update changes (network, EMA, optimizer, schedule, objective state, step), and its
storage as ``state.safetensors`` + ``state.json`` (with the RNG): nothing is unpickled when a checkpoint is read back,
so a resume (also the campaign's automatic one) cannot execute code from a file.

Each part's ``state_dict()`` is a tree of dicts, lists, numbers, strings and tensors; the tensors go to safetensors
under their path in the tree, the rest to JSON with ``{"__tensor__": key}`` in their place. Dicts with non-string keys
(an optimizer's per-parameter state) are stored as ``{"__items__": [[key, value], ...]}``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..model import EnergyModel
from ..objectives import Objective, ObjectiveContext

TENSORS, TREE = "state.safetensors", "state.json"


def _flatten(obj, path: str, tensors: dict):
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _flatten(v, f"{path}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[k, _flatten(v, f"{path}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ConfigError(f"training state {path}: {type(obj).__name__} is not storable as safetensors + JSON")


def _unflatten(obj, tensors: dict, device=None):
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]].to(device) if device is not None else tensors[obj["__tensor__"]].clone()
        if set(obj) == {"__items__"}:
            return {k: _unflatten(v, tensors, device) for k, v in obj["__items__"]}
        return {k: _unflatten(v, tensors, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors, device) for v in obj]
    return obj


def write_state(folder: Path, parts: dict, step: int) -> None:
    """``parts``: name -> object with ``state_dict()`` (None entries are skipped); plus the torch RNG state."""
    from safetensors.torch import save_file

    tensors: dict = {}
    tree = {name: _flatten(part.state_dict(), name, tensors) for name, part in parts.items() if part is not None}
    tree["rng"] = _flatten({"torch": torch.get_rng_state()}, "rng", tensors)
    tree["step"] = step
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / TENSORS))
    (folder / TREE).write_text(json.dumps(tree))


def read_state(folder: Path, parts: dict, device: torch.device | None = None) -> int:
    """Load what ``write_state`` wrote into ``parts`` (tensors moved to ``device``, except the optimizer's: torch's
    ``load_state_dict`` places those itself); returns the step. A checkpoint without these files (e.g. an older pickled one) is refused."""
    from safetensors.torch import load_file

    if not (folder / TENSORS).is_file() or not (folder / TREE).is_file():
        raise ConfigError(f"{folder} is not a zoo training checkpoint ({TENSORS} + {TREE} missing); pickled checkpoints "
                          f"are not read (they could execute code)")
    try:
        tensors, tree = load_file(str(folder / TENSORS)), json.loads((folder / TREE).read_text())
    except Exception as err:
        raise ConfigError(f"{folder}: unreadable training checkpoint: {err}") from None
    missing = [name for name, part in parts.items() if part is not None and name not in tree]
    if missing:
        raise ConfigError(f"{folder}: the checkpoint has no state for {missing}")
    for name, part in parts.items():
        if part is None:
            continue
        part.load_state_dict(_unflatten(tree[name], tensors, None if name == "optimizer" else device))
    torch.set_rng_state(_unflatten(tree["rng"], tensors)["torch"])
    return int(tree["step"])


class Trainable(nn.Module):
    """The network and the objective as one module: its forward is the objective's loss, so DDP (which wraps this
    module) synchronises the gradients of the network and of the objective's own parameters (NCE's log Z) alike."""

    def __init__(self, net: nn.Module, objective: Objective):
        super().__init__()
        self.net = net
        self.objective = objective  # an nn.Module objective becomes a submodule: trained and synchronised with the net

    def forward(self, x: torch.Tensor, ctx: ObjectiveContext):
        out = self.objective(self.net, x, ctx)
        return out.loss, out.logs


@dataclass
class TrainState:
    """Everything one update reads and writes. ``model`` is built once and holds the trained network
    (``model.net``); ``trainable`` is that network with the objective, as accelerate prepared it (DDP-wrapped with
    more than one process); ``sampling_model`` is what grids and the export sample from (the EMA weights if on)."""

    model: EnergyModel
    trainable: nn.Module
    objective: Objective
    optimizer: Any
    scheduler: Any
    ema: Any  # timm ModelEmaV3 or None
    scaler: Any  # accelerate's GradScaler (fp16) or None
    sampling_model: EnergyModel
    step: int = 0

    def parts(self) -> dict:
        """The checkpointed parts, by their names in ``state.json`` (fixed: saved states of earlier runs resume)."""
        return {"model": self.model.net, "ema": self.ema, "optimizer": self.optimizer, "scheduler": self.scheduler,
                "objective": self.objective, "scaler": self.scaler}
