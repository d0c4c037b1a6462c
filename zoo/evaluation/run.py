"""``zoo eval``: measure an entry's bundled (or any loaded) weights and write the results JSON that its model card is
generated from (``<weights folder>/eval_results.json`` -> ``python -m zoo.cards``).

The metrics (``--metrics``; default: every one that applies to the entry) are components registered in
``zoo.evaluation.metric.METRICS``, one file each: quality (``quality.py``), accuracy (``accuracy.py``), likelihood
(``likelihood.py``), denoising and inpainting (``restoration.py``), ood (``ood.py``), ranking (``ranking.py``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..hardware import describe
from ..hub import write_atomic
from ..results import published_results_path, read_results  # noqa: F401  (re-exported: zoo.evaluation.read_results)
from .likelihood import AISSettings
from .metric import EvalContext, metrics


@dataclass
class EvalSettings:
    metrics: tuple = ()  # empty: every metric that applies
    num_samples: int = 64
    n_real: int = 2000  # training images of the FID/KID reference set
    n_test: int = 500  # test images for denoising, OOD, ranking and bits/dim
    n_inpaint: int = 8
    preset: str | None = None  # sampler preset of the generated samples (default: the entry's default sampler)
    sample_batch: int = 64
    sigmas: tuple = (0.1, 0.3, 0.5)  # denoising noise levels (in units of the data range 0..1; scaled for others)
    ais: AISSettings = field(default_factory=lambda: AISSettings(n_distributions=100, n_leapfrog=5, step_size=0.01))
    ais_chains: int = 16
    seed: int = 0
    data_dir: str | None = None


def applicable(entry) -> tuple[str, ...]:
    """The metrics that make sense for an entry (images vs 2-D toys, generative models vs classifiers), in order."""
    return tuple(name for name, metric in metrics() if metric.applies(entry))


def evaluate(model, entry, settings: EvalSettings, log=print) -> dict:
    """Run the metrics on ``model`` (weights of ``entry``); returns {"sampling": how the samples were drawn (when they
    were), metric name: its results group}."""
    chosen = metrics(tuple(settings.metrics) or applicable(entry))
    ctx = EvalContext(model, entry, settings, log)
    out = {name: metric.run(ctx) for name, metric in chosen}
    return {"sampling": ctx.sampling, **out} if ctx.sampling else out


def environment(model) -> dict:
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "hardware": describe(model.device),
            "torch": torch.__version__}


def write_results(name: str, results: dict, command: str, model, path: Path | None = None) -> Path:
    """The results JSON (atomically): the command, the environment and every measured number. The published file
    (``path`` None: ``eval_results.json`` in the entry's bundled weights folder) is merged by metric group: a partial evaluation replaces only
    the groups it measured, and ``provenance`` says which command and environment measured each group."""
    env = environment(model)
    published = path is None
    path = Path(path) if path else published_results_path(name)
    old = json.loads(path.read_text()) if published and path.is_file() else {"results": {}}
    provenance = old.get("provenance") or {k: {"command": old["command"], "environment": old["environment"]}
                                            for k in old["results"]}
    provenance.update({k: {"command": command, "environment": env} for k in results})
    payload = {"entry": name, "command": command, "environment": env, "results": {**old["results"], **results},
               "provenance": provenance}
    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n"))
    return path
