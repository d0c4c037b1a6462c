"""Out-of-distribution detection for any entry and any source: AUROC of -E(x) (``zoo.metrics.ood_auroc``) of the
entry's test images against OOD images brought to the model's shape and range (Denoising-EBM Table 4)."""
from __future__ import annotations

import torch

from ..data import load_tensor
from ..errors import InputError
from ..metrics import ood_auroc, to_shape

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
