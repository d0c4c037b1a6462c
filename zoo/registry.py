"""The declarative registry: one YAML file per entry in ``zoo/entries/``.

An entry holds ``model`` (what goes into config.json: input shape, data range, sigma0, architecture,
sampler and presets), ``data`` (Hub dataset id + preprocessing), ``recipe`` (training
hyper-parameters), ``weights`` (Hub repo id, pinned revision, sha256; null = none published yet)
and ``reported`` (the paper's numbers). Adding a model = adding a file.
"""
from __future__ import annotations

import copy
import difflib
import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch
import yaml

from .data import dataset_name
from .errors import UnknownEntryError
from .hub import mirror_roots
from .model import EnergyModel

ENTRIES_DIR = Path(__file__).resolve().parent / "entries"
REQUIRED_KEYS = ("name", "family", "paper", "model", "data", "recipe", "weights", "reported")


class RandomWeightsWarning(UserWarning):
    """Raised (as a warning) when an entry without published weights is loaded with random init."""


@lru_cache(maxsize=1)
def _load_all() -> dict[str, dict]:
    entries = {}
    for path in sorted(ENTRIES_DIR.glob("*.yaml")):
        entry = yaml.safe_load(path.read_text())
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise ValueError(f"registry entry {path.name} lacks {missing}")
        if entry["name"] != path.stem:
            raise ValueError(f"registry entry {path.name} is named {entry['name']!r}; file and name must agree")
        entries[entry["name"]] = entry
    return entries


def get_entry(name: str) -> dict:
    """The entry as a (deep-copied) dict; an unknown name raises with the closest names."""
    entries = _load_all()
    if name not in entries:
        close = difflib.get_close_matches(name, entries, n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownEntryError(f"unknown zoo entry {name!r}.{hint} Known entries: {', '.join(sorted(entries))}")
    return copy.deepcopy(entries[name])


def entry_config(entry: dict) -> dict:
    """The config.json content for an entry: its ``model`` block plus name and family."""
    return {"entry": entry["name"], "family": entry["family"], **copy.deepcopy(entry["model"])}


def weights_status(entry: dict, mirror: str | os.PathLike | None = None) -> str:
    weights = entry["weights"]
    if not weights:
        return "none (random init)"
    if any((root / weights["repo_id"] / "config.json").is_file() for root in mirror_roots(mirror)):
        return "mirror"
    return "hub"


def list_models(family: str | None = None) -> list[dict]:
    """One row per entry: name, family, dataset, architecture, weights status."""
    rows = []
    for name, entry in sorted(_load_all().items()):
        if family and entry["family"] != family:
            continue
        rows.append({
            "name": name, "family": entry["family"], "dataset": dataset_name(entry["data"]),
            "architecture": entry["model"]["architecture"]["class"], "weights": weights_status(entry),
        })
    return rows


def info(name: str) -> dict:
    """The whole entry (architecture, recipe, sampler, weights location, reported numbers) plus weights status."""
    entry = get_entry(name)
    entry["weights_status"] = weights_status(entry)
    return entry


def load(
    name: str, revision: str | None = None, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
    *, mirror: str | os.PathLike | None = None, cache_dir: str | None = None,
) -> EnergyModel:
    """Build the entry's model and load its published weights (pinned revision + sha256).

    ``revision`` overrides the pinned revision (the sha256 pin then no longer applies). An entry without
    published weights loads with random weights and a RandomWeightsWarning.
    """
    entry = get_entry(name)
    weights = entry["weights"]
    if not weights:
        warnings.warn(
            f"zoo entry {name!r} has NO published weights yet: returning a RANDOMLY INITIALISED model. "
            f"Train it with `accelerate launch {entry['recipe']['script']} --entry {name}`.",
            RandomWeightsWarning, stacklevel=2,
        )
        with torch.random.fork_rng(devices=[]):  # reproducible random init without touching the caller's RNG
            torch.manual_seed(0)
            model = EnergyModel(entry_config(entry))
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    pinned = revision is None or revision == weights.get("revision")
    return EnergyModel.from_pretrained(
        weights["repo_id"], revision=revision or weights.get("revision"),
        sha256=weights.get("sha256") if pinned else None, mirror=mirror, device=device, dtype=dtype,
        cache_dir=cache_dir,
    )
