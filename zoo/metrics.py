"""Evaluation metrics: PSNR (torchmetrics), Parzen-window log-likelihood and sigma selection (DEEN Sec. 3),
the 2-D curl diagnostic of a score field (DEEN Sec. 4), and OOD AUROC (Denoising-EBM Table 4)."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

from .errors import InputError


def psnr(preds: torch.Tensor, target: torch.Tensor, data_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """Mean per-image PSNR in dB; predictions are clamped to the data range first."""
    lo, hi = data_range
    dims = tuple(range(1, target.dim()))
    values = peak_signal_noise_ratio(preds.clamp(lo, hi), target, data_range=hi - lo, reduction="none", dim=dims)
    return values.mean().item()


def parzen_log_likelihood(centers: torch.Tensor, x: torch.Tensor, sigmas, chunk: int = 500) -> dict[float, torch.Tensor]:
    """log P_sigma(x) per row of x (nats) for the Parzen density P_sigma = (1/n) sum_i N(x; c_i, sigma^2 I),
    for every sigma in ``sigmas`` (squared distances are computed once per chunk)."""
    c = centers.flatten(1).float()
    n, d = c.shape
    c_sq = (c * c).sum(1)
    sigmas = [float(s) for s in sigmas]
    out: dict[float, list[torch.Tensor]] = {s: [] for s in sigmas}
    for part in x.flatten(1).float().split(chunk):
        sq = ((part * part).sum(1, keepdim=True) - 2 * part @ c.T + c_sq).clamp_min(0).double()
        for s in sigmas:
            out[s].append(torch.logsumexp(-sq / (2 * s**2), dim=1) - math.log(n) - d / 2 * math.log(2 * math.pi * s**2))
    return {s: torch.cat(v) for s, v in out.items()}


def select_parzen_sigma(train: torch.Tensor, valid: torch.Tensor, sigmas) -> tuple[float, dict[float, float]]:
    """The sigma maximising the mean validation Parzen log-likelihood (how DEEN picks its sigma)."""
    scores = {s: ll.mean().item() for s, ll in parzen_log_likelihood(train, valid, sigmas).items()}
    return max(scores, key=scores.get), scores


def curl_2d(score_fn: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    """(curl psi)_3 = d psi_2 / d x_1 - d psi_1 / d x_2 at each point (N, 2); zero iff psi is a gradient field."""
    with torch.enable_grad():
        x = points.detach().clone().requires_grad_(True)
        psi = score_fn(x)
        (d_psi1,) = torch.autograd.grad(psi[:, 0].sum(), x, create_graph=False, retain_graph=True)
        (d_psi2,) = torch.autograd.grad(psi[:, 1].sum(), x)
    return (d_psi2[:, 0] - d_psi1[:, 1]).detach()


def ood_auroc(energy_fn: Callable[[torch.Tensor], torch.Tensor], in_dist: torch.Tensor, ood: torch.Tensor,
              batch_size: int = 256) -> float:
    """AUROC (torchmetrics) of the score -E(x) separating in-distribution (positive) from OOD (negative) inputs
    (Denoising-EBM Table 4 uses E = U_c(x, 0.05)). 1 = perfect, 0.5 = chance."""
    from torchmetrics.functional.classification import binary_auroc

    with torch.no_grad():
        scores = torch.cat([-energy_fn(b) for b in (*in_dist.split(batch_size), *ood.split(batch_size))]).double().cpu()
    if not torch.isfinite(scores).all():
        raise InputError("OOD scores contain NaN/inf energies")
    # torchmetrics squashes scores outside [0, 1] with a sigmoid (saturating energies of 1e4): map them monotonically
    scores = (scores - scores.min()) / (scores.max() - scores.min()).clamp_min(1e-300)
    labels = torch.cat([torch.ones(len(in_dist)), torch.zeros(len(ood))]).long()
    return binary_auroc(scores, labels).item()


def to_shape(x: torch.Tensor, src_range, shape, dst_range) -> torch.Tensor:
    """Images from another dataset in this model's shape and range: channels repeated or averaged, resized
    (bilinear) to the model's size, values mapped between the two data ranges."""
    from torch.nn import functional as F

    (slo, shi), (dlo, dhi) = src_range, dst_range
    x = (x - slo) / (shi - slo)
    c, h, w = shape
    if x.shape[1] != c:
        x = x.mean(1, keepdim=True).expand(-1, c, -1, -1) if c in (1, 3) else x
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return (dlo + (dhi - dlo) * x).contiguous()
