"""Sample quality on torchmetrics: FID, KID and IS with a pluggable feature extractor.

* ``inception``: torchmetrics' Inception-v3 (needs ``torch-fidelity`` and its downloaded FID weights; offline,
  pass the weights file). Comparable with the papers' FID / IS.
* ``classifier``: the zoo's in-domain evaluation classifier for the dataset (entries ``classifier-<dataset>``,
  bundled like any weights): "classifier-FID / classifier-KID / classifier-IS", comparable *within the zoo only*.

Every number is reported beside the real-data ceiling: the same metric for held-out test images against training
images, at the same n (``real_data_ceiling``), so that a reader knows what "good" is.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import ConfigError, ZooError

# the evaluation classifier of each dataset (by the dataset's hub id)
CLASSIFIERS = {"ylecun/mnist": "classifier-mnist", "zalando-datasets/fashion_mnist": "classifier-fashion-mnist",
               "uoft-cs/cifar10": "classifier-cifar10"}


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


def classifier_for(entry, mirror=None):
    """The bundled evaluation classifier for an entry's dataset (an ``EnergyModel`` in eval mode)."""
    from ..loading import load

    name = CLASSIFIERS.get(entry.data.hub_id)
    if name is None:
        raise ConfigError(f"no evaluation classifier for dataset {entry.dataset_name()!r} (have: {sorted(CLASSIFIERS)}); "
                          f"train one with recipes/classifier.py or use --features inception")
    return load(name, mirror=mirror).eval()


def inception_features(weights_path: str | None = None) -> str | int:
    """The torchmetrics Inception feature spec, or one clear error saying how to provide it offline."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise ZooError("Inception FID/KID/IS need torch-fidelity and the FID Inception weights "
                       "(pt_inception-2015-12-05-6726825d.pth): `pip install torch-fidelity`, then either let it "
                       "download them (internet) or pass --inception-weights PATH. Offline, use --features classifier "
                       "(the zoo's in-domain classifier; numbers not comparable with the papers').") from None
    return 2048


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
