"""What the zoo has: each entry beside where its weights are and its headline measured number (``zoo.list()``,
``zoo.info(name)``, ``zoo list``, ``zoo info``). Sits above the catalog (``registry``), the weights (``hub``) and the
measurements (``results``)."""
from __future__ import annotations

import os

from .hub import mirror_roots
from . import registry
from .registry import get_entry
from .schema import Entry


def weights_status(entry: Entry, mirror: str | os.PathLike | None = None) -> str:
    if entry.weights is None:
        return "none (train it: see `zoo info`)"
    if any((root / entry.weights.repo_id / "config.json").is_file() for root in mirror_roots(mirror)):
        return "mirror"
    return "hub"


def list_models(family: str | None = None) -> list[dict]:
    """One row per entry: name, family, dataset, architecture, weights status, headline measured number."""
    from .results import headline

    return [
        {"name": name, "family": e.family, "dataset": e.dataset_name(), "architecture": e.model.architecture["class"],
         "weights": weights_status(e), "measured": headline(name)}
        for name, e in sorted(registry._all().items()) if family is None or e.family == family
    ]


def info(name: str) -> dict:
    """The whole entry as a dict (architecture, sampler, recipe, weights location, reported numbers) + weights status."""
    entry = get_entry(name)
    return {**entry.to_dict(), "weights_status": weights_status(entry), "source": entry.source}
