"""``zoo.load``: an entry name, a local Hub-layout folder, or ``hf-hub:org/repo[@revision]`` -> EnergyModel."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import ConfigError, InputError, NoPretrainedWeightsError
from .hub import CONFIG_NAME, load_published
from .model import EnergyModel
from .listing import list_models
from .registry import get_entry

HF_HUB_PREFIX = "hf-hub:"
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    raise InputError(f"unknown dtype {dtype!r}; use a torch.dtype or one of {sorted(DTYPES)}")


def _device(device):
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"unknown device {device!r}: {err}") from None
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise InputError(f"device {str(device)!r} is not available here ({torch.cuda.device_count()} CUDA devices)")
    if device.type == "meta":
        raise InputError("the meta device holds no weights: use cpu or cuda")
    return device


def _no_weights_message(entry) -> str:
    trained = [r["name"] for r in list_models(entry.family) if not r["weights"].startswith("none")]
    return (
        f"zoo entry {entry.name!r} has no published weights yet (`zoo campaign status` says whether the weights "
        f"campaign is training it). "
        f"Pretrained {entry.family} entries: {', '.join(trained) or 'none'}. Train it with "
        f"`accelerate launch {entry.recipe.script} --entry {entry.name} --data-dir ../shared/datasets`, then "
        f"zoo.load('runs/{entry.name}/export'); or zoo.load({entry.name!r}, pretrained=False) for a randomly "
        f"initialised network."
    )


def load(name: str | os.PathLike, revision: str | None = None, device=None, dtype=None, *, pretrained: bool = True,
         mirror: str | os.PathLike | None = None, cache_dir: str | None = None, seed: int = 0) -> EnergyModel:
    """Build a model and load its weights (timm's ``create_model`` / diffusers' ``from_pretrained`` habits).

    * an entry name (``zoo.list()``): its pinned revision + sha256-verified weights; ``revision=`` asks the Hub for
      another revision (unverified: the sha256 pins belong to the pinned one). ``pretrained=False`` gives the
      entry's architecture randomly initialised (seeded by ``seed``, without touching the global RNG).
    * a local folder with config.json (e.g. a recipe's ``runs/<entry>/export``);
    * ``hf-hub:org/repo`` or ``hf-hub:org/repo@revision``: weights anyone pushed with ``push_to_hub``.
    """
    device, dtype = _device(device), _dtype(dtype)
    name = os.fspath(name)
    if name.startswith(HF_HUB_PREFIX):
        repo, _, rev = name[len(HF_HUB_PREFIX):].partition("@")
        if revision is not None and rev and revision != rev:
            raise ConfigError(f"{name!r} names revision {rev!r} but revision={revision!r} was given")
        return EnergyModel.from_pretrained(repo, revision=rev or revision, mirror=mirror, device=device, dtype=dtype,
                                           cache_dir=cache_dir)
    if (Path(name) / CONFIG_NAME).is_file():
        return EnergyModel.from_pretrained(name, device=device, dtype=dtype)
    entry = get_entry(name)
    if not pretrained:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = EnergyModel(entry.config_json(), sampler_config=entry.sampler_config_json())
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    if entry.weights is None:
        raise NoPretrainedWeightsError(_no_weights_message(entry))
    return load_published(EnergyModel, entry, revision=revision, mirror=mirror, device=device, dtype=dtype,
                          cache_dir=cache_dir)
