"""What the zoo has: each entry beside where its weights are and its headline measured number (``zoo.list()``,
``zoo.info(name)``, ``zoo list``, ``zoo info``). Sits above the catalog (``registry``), the weights (``hub``) and the
measurements (``results``)."""
from __future__ import annotations

import os

from .hub import mirror_roots
from . import registry
from .registry import get_entry
from .results import read_results
from .schema import Entry


def weights_status(entry: Entry, mirror: str | os.PathLike | None = None) -> str:
    if entry.weights is None:
        return "none (train it: see `zoo info`)"
    if any((root / entry.weights.repo_id / "config.json").is_file() for root in mirror_roots(mirror)):
        return "mirror"
    return "hub"


def headline(name: str) -> str:
    """One measured number per entry, beside its ceiling where there is one: the first metric (in order) that has a
    headline for the published results."""
    from .evaluation import metrics

    payload = read_results(name)
    results = payload["results"] if payload else {}
    lines = (metric.headline(results[key]) for key, metric in metrics() if key in results)
    return next((line for line in lines if line), "-")


def list_models(family: str | None = None) -> list[dict]:
    """One row per entry: name, family, dataset, architecture, weights status, headline measured number."""
    return [
        {"name": name, "family": e.family, "dataset": e.dataset_name(), "architecture": e.model.architecture["class"],
         "weights": weights_status(e), "measured": headline(name)}
        for name, e in sorted(registry._all().items()) if family is None or e.family == family
    ]


def info(name: str) -> dict:
    """The whole entry as a dict (architecture, sampler, recipe, weights location, reported numbers), its weights
    status and its headline measured number (from the weights' ``eval_results.json``)."""
    entry = get_entry(name)
    return {**entry.to_dict(), "weights_status": weights_status(entry), "measured": headline(name),
            "source": entry.source}
