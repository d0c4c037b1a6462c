"""``zoo eval``'s metrics as components: each metric lives in one file with what it measures, and registers a
``Metric`` in ``METRICS`` that says where it applies, runs it on an ``EvalContext`` and renders its results (the card's
rows, the Hub model-index rows, the headline of ``zoo list``). ``evaluate``, the cards, ``zoo list`` and the CLI read
the registry: adding a metric is adding one file (and importing it in ``zoo/evaluation/__init__.py``).

Metrics run and are shown in ``order``; the shared data (test and training images, the model's samples) is loaded
once per evaluation, by the first metric that asks for it."""
from __future__ import annotations

import time
from functools import cached_property

import torch

from ..data import load_tensor
from ..components import Registry

METRICS = Registry("metric")
GENERATIVE = ("mdsm", "deen", "denoising_ebm", "ebm", "ncebm")  # the families that sample (not the classifiers)


def generates_images(entry) -> bool:
    """An entry whose model samples images (restoration and energy-ranking metrics apply to it)."""
    return len(entry.model.input_shape) == 3 and entry.family in GENERATIVE


class Metric:
    """One measurement of ``zoo eval``: ``applies`` and ``run`` are required; the renderings default to nothing."""

    order: int = 100  # where it runs and is shown (lower first)

    def applies(self, entry) -> bool:
        raise NotImplementedError

    def run(self, ctx: "EvalContext") -> dict:
        """The results group (JSON-able) written under the metric's name in ``eval_results.json``."""
        raise NotImplementedError

    def card(self, result: dict, entry) -> list[str]:
        """Markdown lines of the card's "Measured" section."""
        return []

    def eval_results(self, result: dict, entry, common: dict) -> list:
        """huggingface_hub ``EvalResult`` rows of the card's model-index (``common``: the dataset fields)."""
        return []

    def headline(self, result: dict) -> str | None:
        """The one number ``zoo list`` shows (the first metric in order that has one wins)."""
        return None


def metrics(names=None) -> list[tuple[str, Metric]]:
    """(name, metric) in order; ``names`` restricts them (unknown names are a ConfigError)."""
    from ..errors import ConfigError

    if names is not None:
        unknown = sorted(set(names) - set(METRICS))
        if unknown:
            raise ConfigError(f"unknown metric(s) {unknown}; known: {[n for n, _ in metrics()]}")
    chosen = [(name, cls()) for name, cls in METRICS.items() if names is None or name in names]
    return sorted(chosen, key=lambda item: item[1].order)


def fmt(v, digits: int = 4) -> str:
    """A number as a card shows it."""
    return f"{v:.{digits}g}" if isinstance(v, (int, float)) else str(v)


class EvalContext:
    """What the metrics of one evaluation share: the model, its entry, the settings, one seeded generator (drawn from
    in metric order), and the data, loaded once on first use."""

    def __init__(self, model, entry, settings, log=print):
        self.model, self.entry, self.settings, self.log = model, entry, settings, log
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.sampling: dict | None = None  # how the samples were drawn, once they are

    def split(self, split: str, limit: int | None = None, labels: bool = False):
        return load_tensor(self.entry, split, self.settings.data_dir, limit=limit, labels=labels)

    @cached_property
    def test(self) -> torch.Tensor:
        """The first ``n_test`` test images."""
        return self.split("test", self.settings.n_test)

    @cached_property
    def full_test(self) -> torch.Tensor:
        return self.split("test")

    @cached_property
    def train(self) -> torch.Tensor:
        """The first ``n_real`` training images (the reference set of FID/KID, the AIS reference fit)."""
        return self.split("train", self.settings.n_real)

    @cached_property
    def samples(self) -> torch.Tensor:
        """``num_samples`` samples of the model's default sampler (or ``preset``), drawn once."""
        from .generate import generate

        s = self.settings
        self.log(f"[eval] sampling {s.num_samples} images (preset {s.preset or 'default'})")
        start = time.time()
        x = generate(self.model, s.num_samples, batch_size=s.sample_batch, seed=s.seed, preset=s.preset)
        self.sampling = {"n": s.num_samples, "preset": s.preset or "default", "seconds": round(time.time() - start, 1),
                         "device": str(self.model.device)}
        return x
