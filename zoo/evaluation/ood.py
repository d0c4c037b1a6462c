"""Out-of-distribution detection for any entry and any source: AUROC of -E(x) (``zoo.metrics.ood_auroc``) of the
entry's test images against OOD images brought to the model's shape and range (Denoising-EBM Table 4)."""
from __future__ import annotations

import torch

from ..data import load_tensor
from ..errors import InputError
from ..metrics import ood_auroc, to_shape
from .metric import METRICS, Metric, fmt, generates_images

SOURCES_HELP = "another entry's name (its test images), noise:gaussian, noise:uniform, interp"


def ood_inputs(source: str, model, in_test: torch.Tensor, data_dir=None, seed: int = 0) -> torch.Tensor:
    """OOD images: ``noise:gaussian``, ``noise:uniform``, ``interp`` (mixes of two in-distribution test images, as the
    Denoising-EBM paper), or another zoo entry's test split brought to this model's shape and range."""
    from ..registry import get_entry

    g = torch.Generator().manual_seed(seed)
    lo, hi = model.data_range
    n = len(in_test)
    if source == "noise:gaussian":
        return ((lo + hi) / 2 + (hi - lo) / 4 * torch.randn(n, *model.input_shape, generator=g)).clamp(lo, hi)
    if source == "noise:uniform":
        return lo + (hi - lo) * torch.rand(n, *model.input_shape, generator=g)
    if source == "interp":
        return 0.5 * in_test + 0.5 * in_test[torch.randperm(n, generator=g)]
    other = get_entry(source)
    split = "test" if "test" in other.data.splits else "train"
    x = load_tensor(other, split, data_dir, limit=n)
    return to_shape(x, other.model.data_range, model.input_shape, model.data_range)


def scoring_sigma(entry) -> float:
    """The noise added before an image is scored: sigma0 for an energy of the sigma0-smoothed density alone (MDSM scores
    x + sigma0 n, as its paper does), else 0."""
    return float(entry.model.sigma0) if entry.family == "mdsm" else 0.0


def ood_table(model, entry, sources, n: int = 1000, data_dir=None, seed: int = 0) -> dict:
    """{"split", "n_in", "scoring_sigma", "auroc": {source: AUROC}} for the entry's test split against each source;
    every image is scored at x + scoring_sigma(entry) n (seeded)."""
    split = "test" if "test" in entry.data.splits else "train"
    in_test = load_tensor(entry, split, data_dir, limit=n)
    if len(in_test) < 2:
        raise InputError(f"the {split!r} split of {entry.name} has fewer than 2 images")
    sigma = scoring_sigma(entry)

    def scored(x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 7), dtype=x.dtype)
        return (x + sigma * noise).to(model.device, model.dtype)

    x_in = scored(in_test)
    aurocs = {s: ood_auroc(model.energy, x_in, scored(ood_inputs(s, model, in_test, data_dir, seed))) for s in sources}
    return {"split": split, "n_in": len(in_test), "scoring_sigma": sigma, "auroc": aurocs}


# The other dataset each dataset's models are tested against. Denoising-EBM Table 4 tests CIFAR-10 models against
# SVHN, CelebA, CIFAR-100 and interpolations; of those, ../shared has the CelebA face crops. MNIST <-> Fashion-MNIST and
# CelebA -> CIFAR-10 are the zoo's choice in the same spirit: a dataset of the same size with other content.
OOD_PARTNER = {"ylecun/mnist": "zalando-datasets/fashion_mnist", "zalando-datasets/fashion_mnist": "ylecun/mnist",
               "uoft-cs/cifar10": "nielsr/CelebA-faces", "nielsr/CelebA-faces": "uoft-cs/cifar10"}


def partner_entry(entry) -> str | None:
    """An entry on the OOD partner dataset with the same input shape and padding (its images are mapped to this
    model's range by ``ood_inputs``), preferring the same family, then the same range: only the content differs."""
    from ..registry import load_entries

    target = OOD_PARTNER.get(entry.data.hub_id)
    candidates = [e for e in load_entries().values()
                  if e.data.hub_id == target and e.model.input_shape == entry.model.input_shape
                  and e.data.pad_to == entry.data.pad_to]
    candidates.sort(key=lambda e: (e.family != entry.family, e.model.data_range != entry.model.data_range, e.name))
    return candidates[0].name if candidates else None


@METRICS.register("ood")
class OOD(Metric):
    """AUROC of -E(x): ``n_test`` test images against the partner dataset (where the zoo has one at the model's shape),
    uniform and Gaussian noise and interpolations of test images."""

    order = 60

    def applies(self, entry) -> bool:
        return generates_images(entry)

    def run(self, ctx) -> dict:
        ctx.log("[eval] OOD AUROC")
        sources = [s for s in (partner_entry(ctx.entry),) if s] + ["noise:uniform", "noise:gaussian", "interp"]
        s = ctx.settings
        return ood_table(ctx.model, ctx.entry, sources, n=s.n_test, data_dir=s.data_dir, seed=s.seed)

    def card(self, result: dict, entry) -> list[str]:
        scored = f"-E(x + {result['scoring_sigma']:g} n)" if result.get("scoring_sigma") else "-E(x)"
        return ([f"**OOD detection** (AUROC of {scored}, {result['n_in']} {result['split']} images "
                 f"in-distribution; 0.5 = chance):", "", "| OOD source | AUROC |", "|---|---|"]
                + [f"| {k} | {fmt(v)} |" for k, v in result["auroc"].items()] + [""])

    def eval_results(self, result: dict, entry, common: dict) -> list:
        from huggingface_hub import EvalResult

        return [EvalResult(task_type="out-of-distribution-detection", metric_type="auroc",
                           metric_name=f"AUROC vs {source}", metric_value=round(auroc, 4), **common)
                for source, auroc in result["auroc"].items()]
