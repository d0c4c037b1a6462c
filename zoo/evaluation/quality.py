"""Sample quality on torchmetrics: FID, KID and IS with a pluggable feature extractor: the zoo's in-domain evaluation
classifier for the dataset (entries ``classifier-<dataset>``, bundled like any weights): "classifier-FID /
classifier-KID / classifier-IS", comparable *within the zoo only*, not with the papers' Inception FID / IS (which need
torch-fidelity's downloaded Inception weights: not available offline, so not offered).

Every number is reported beside the real-data ceiling: the same metric for held-out test images against training
images, at the same n (``real_data_ceiling``), so that a reader knows what "good" is.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import ConfigError, ZooError
from .metric import GENERATIVE, METRICS, Metric, fmt

# the evaluation classifier of each dataset (by the dataset's hub id). Faces have no class labels here: their samples
# are measured in the CIFAR-10 classifier's features, a generic natural-image feature space that sees colour, texture
# and layout statistics (a face-like image and a face differ little there; a blur or a smear differ much), not whether
# a person would call it a face.
CLASSIFIERS = {"ylecun/mnist": "classifier-mnist", "zalando-datasets/fashion_mnist": "classifier-fashion-mnist",
               "uoft-cs/cifar10": "classifier-cifar10", "nielsr/CelebA-faces": "classifier-cifar10"}


class ClassifierFeatures(nn.Module):
    """Images in a model's shape and range -> the classifier's penultimate features (``output="features"``) or
    logits (``output="logits"``). Inputs are mapped to the classifier's range; smaller images are centre-padded with
    the background value (MNIST 28x28 -> 32x32, as the padded entries are), others resized."""

    def __init__(self, classifier, src_range: tuple[float, float], output: str = "features"):
        super().__init__()
        self.classifier, self.src_range, self.output = classifier, src_range, output
        self.num_features = classifier.net.num_features if output == "features" else classifier.net.head.out_features

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        c, h, w = self.classifier.input_shape
        (slo, shi), (dlo, dhi) = self.src_range, self.classifier.data_range
        x = dlo + (dhi - dlo) * (x.float().clamp(slo, shi) - slo) / (shi - slo)
        if x.shape[1] != c:
            x = x.mean(1, keepdim=True).expand(-1, c, -1, -1).contiguous()
        dh, dw = h - x.shape[2], w - x.shape[3]
        if dh >= 0 and dw >= 0 and dh % 2 == 0 and dw % 2 == 0:
            return F.pad(x, (dw // 2, dw // 2, dh // 2, dh // 2), value=dlo)
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.adapt(x).to(self.classifier.device)
        return self.classifier.net(x, output=self.output).double()


class Coordinates(nn.Module):
    """The identity feature map of low-dimensional (e.g. 2-D toy) data: FID / KID on the points themselves."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).double()


def classifier_for(entry, model_class, mirror=None):
    """The published evaluation classifier for an entry's dataset, as ``model_class`` (``zoo.EnergyModel``, or the
    class of the model under evaluation) in eval mode."""
    from ..hub import load_published
    from ..registry import get_entry

    name = CLASSIFIERS.get(entry.data.hub_id)
    if name is None:
        raise ConfigError(f"no evaluation classifier for dataset {entry.dataset_name()!r} (have: {sorted(CLASSIFIERS)}); "
                          f"train one with recipes/classifier.py")
    classifier = get_entry(name)
    if classifier.weights is None:
        raise ConfigError(f"the evaluation classifier {name} has no weights yet: train it with "
                          f"`python {classifier.recipe.script} --entry {name} --data-dir ../shared/datasets`")
    return load_published(model_class, classifier, mirror=mirror).eval()


def _batches(x: torch.Tensor, size: int = 256):
    return x.split(size)


def sample_quality(fake: torch.Tensor, real: torch.Tensor, features: nn.Module, logits: nn.Module | None = None,
                   kid_subset: int | None = None) -> dict[str, float]:
    """FID and KID of ``fake`` against ``real`` through ``features`` (torchmetrics), and IS of ``fake`` through
    ``logits`` (if given). Both sets are in the same model's shape and range."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    n = min(len(fake), len(real))
    if n < 2:
        raise ZooError(f"FID/KID need at least 2 images per set, got {len(fake)} fake and {len(real)} real")
    subset = min(kid_subset or 1000, n)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Metric `(Kernel Inception Distance|InceptionScore)` will save")
        warnings.filterwarnings("ignore", message="std\\(\\): degrees of freedom")  # IS with one split has no std
        fid = FrechetInceptionDistance(feature=features)
        kid = KernelInceptionDistance(feature=features, subsets=10, subset_size=subset)
        for metric in (fid, kid):
            for b in _batches(real):
                metric.update(b, real=True)
            for b in _batches(fake):
                metric.update(b, real=False)
        out = {"fid": float(fid.compute()), "kid": float(kid.compute()[0])}
        if logits is not None:
            inception = InceptionScore(feature=logits, splits=1)
            for b in _batches(fake):
                inception.update(b)
            out["is"] = float(inception.compute()[0])
    return out


def real_data_ceiling(test: torch.Tensor, train: torch.Tensor, n: int, features, logits=None,
                      generator: torch.Generator | None = None) -> dict[str, float]:
    """The same metrics for n held-out test images against the training images: the best a model can hope for."""
    idx = torch.randperm(len(test), generator=generator)[:n]
    return sample_quality(test[idx], train, features, logits)


def confident_share(x: torch.Tensor, logits: nn.Module, threshold: float = 0.9) -> float:
    """The share of images the evaluation classifier assigns to one class with probability >= ``threshold``."""
    probs = torch.cat([logits(b).softmax(1) for b in _batches(x)])
    return float((probs.max(1).values >= threshold).double().mean())


@METRICS.register("quality")
class Quality(Metric):
    """classifier-FID / classifier-KID / classifier-IS and the confident-class share of the model's samples (2-D toys:
    FID / KID of the points), beside the real-data ceiling: n test images against the same training images."""

    order = 10

    def applies(self, entry) -> bool:
        images = len(entry.model.input_shape) == 3
        return entry.family in GENERATIVE and ((images and entry.data.hub_id in CLASSIFIERS) or entry.data.toy is not None)

    def run(self, ctx) -> dict:
        samples, train, full_test = ctx.samples, ctx.train, ctx.full_test
        if ctx.entry.data.toy is not None:
            ctx.log("[eval] quality: FID / KID on the 2-D coordinates")
            feats, logits, name = Coordinates(train.shape[1]), None, "coordinates"
            note = "FID / KID computed on the raw 2-D points (Frechet distance of Gaussian fits; polynomial-kernel MMD)"
        else:
            ctx.log("[eval] quality: classifier-FID / KID / IS")
            clf = classifier_for(ctx.entry, type(ctx.model))
            feats, logits = ClassifierFeatures(clf, ctx.model.data_range), ClassifierFeatures(clf, ctx.model.data_range, "logits")
            name = clf.config["entry"]
            note = ("classifier-FID/KID/IS use the zoo's in-domain classifier: comparable within the zoo only, not "
                    "with the papers' Inception FID/IS")
        model_q = sample_quality(samples, train, feats, logits)
        ceiling = real_data_ceiling(full_test, train, len(samples), feats, logits, ctx.generator)
        if logits is not None:
            model_q["confident_share"] = confident_share(samples, logits)
            ceiling["confident_share"] = confident_share(full_test[:len(samples)], logits)
        return {"features": name, "n": len(samples), "n_real": len(train), "model": model_q,
                "real_data_ceiling": ceiling, "note": note}

    @staticmethod
    def _prefix(result: dict) -> str:
        return "classifier-" if result["features"].startswith("classifier") else ""

    def card(self, result: dict, entry) -> list[str]:
        prefix = self._prefix(result)
        names = {"fid": f"{prefix}FID (lower is better)", "kid": f"{prefix}KID (lower is better)",
                 "is": f"{prefix}IS (higher is better)", "confident_share": "share of samples classified with p >= 0.9"}
        return ([f"**Sample quality** (features: `{result['features']}`, n = {result['n']} against {result['n_real']} "
                 f"training images). {result['note']}.", "", "| metric | this model | real-data ceiling (n test images) |",
                 "|---|---|---|"]
                + [f"| {names[k]} | {fmt(result['model'][k])} | {fmt(result['real_data_ceiling'][k])} |" for k in names
                   if k in result["model"]] + [""])

    def eval_results(self, result: dict, entry, common: dict) -> list:
        from huggingface_hub import EvalResult

        prefix = self._prefix(result)
        return [EvalResult(task_type="unconditional-image-generation", metric_type=label.lower(),
                           metric_name=f"{label} ({result['features']}, n={result['n']})",
                           metric_value=round(result["model"][key], 4), **common)
                for key, label in (("fid", f"{prefix}FID"), ("kid", f"{prefix}KID"), ("is", f"{prefix}IS"))
                if key in result["model"]]

    def headline(self, result: dict) -> str:
        return (f"cFID {result['model']['fid']:.3g} (real data {result['real_data_ceiling']['fid']:.3g}, "
                f"n={result['n']})")
