"""The energy-ranking diagnostic: does the model give real images lower energy than things that are not?

Mean E at the model's own sigma0 of real test images vs blank images (the background value everywhere), "half-ink"
images (the test images eroded by a 3x3 min-filter of the ink: thinner strokes), the model's own samples, and noise
(uniform in the data range). A model whose blank or eroded images get *lower* energy than real ones has a defect no
sampler can fix: its chains drift towards them. Logged by the training loop at every checkpoint.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .metric import METRICS, Metric, fmt, generates_images


def eroded(x: torch.Tensor, data_range) -> torch.Tensor:
    """Thinner strokes: a 3x3 minimum filter of the ink (bright on a dark background, as MNIST / Fashion)."""
    lo, _ = data_range
    ink = x - lo
    return lo + -F.max_pool2d(-ink, 3, stride=1, padding=1)


@torch.no_grad()
def energy_ranking(energy_fn, real: torch.Tensor, data_range, samples: torch.Tensor | None = None,
                   generator: torch.Generator | None = None, batch_size: int = 256) -> dict[str, float]:
    """Mean energy of each kind of input (lower = more probable under the model); ``real_minus_<kind>`` < 0 means the
    real images rank first, as they should."""
    lo, hi = data_range

    def mean_e(x):
        return float(torch.cat([energy_fn(b) for b in x.split(batch_size)]).double().mean())

    kinds = {"real": real, "blank": torch.full_like(real, lo),
             "noise": lo + (hi - lo) * torch.rand(real.shape, generator=generator, dtype=real.dtype).to(real.device)}
    if real.dim() == 4:
        kinds["half_ink"] = eroded(real, data_range)
    if samples is not None:
        kinds["samples"] = samples.to(real.device, real.dtype)
    energies = {k: mean_e(v) for k, v in kinds.items()}
    out = {f"E_{k}": v for k, v in energies.items()}
    out.update({f"real_minus_{k}": energies["real"] - v for k, v in energies.items() if k != "real"})
    return out


@METRICS.register("ranking")
class Ranking(Metric):
    """The energy-ranking diagnostic on ``n_test`` test images and the model's samples."""

    order = 70

    def applies(self, entry) -> bool:
        return generates_images(entry)

    def run(self, ctx) -> dict:
        samples = ctx.samples
        ctx.log("[eval] energy ranking")
        model = ctx.model
        return energy_ranking(model.energy, ctx.test.to(model.device, model.dtype), model.data_range, samples,
                              ctx.generator)

    def card(self, rk: dict, entry) -> list[str]:
        return (["**Energy ranking** (mean E; real test images should have the lowest):", "",
                 "| input | mean E | E(real) - E(input) (< 0: real ranks first) |", "|---|---|---|"]
                + [f"| {k[2:]} | {fmt(v, 6)} | {fmt(rk.get('real_minus_' + k[2:], 0.0), 4) if k != 'E_real' else ''} |"
                   for k, v in rk.items() if k.startswith("E_")] + [""])
