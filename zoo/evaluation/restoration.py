"""Denoising and inpainting quality on test images.

* ``denoising``: PSNR / SSIM (torchmetrics) of ``model.denoise(x + sigma n, sigma)`` against x for each sigma, next to
  the PSNR of the noisy input itself (the "do nothing" baseline).
* ``inpainting``: PSNR on the filled region only, for the standard masks ``centre`` (the central square of half the
  side), ``left`` (the left half) and ``random50`` (each pixel missing with probability 1/2, seeded).
"""
from __future__ import annotations

import torch

from ..masks import make_mask
from ..metrics import psnr
from .metric import METRICS, Metric, fmt, generates_images

MASKS = ("centre", "left", "random50")  # the standard masks of the evaluation


def masked_psnr(preds: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range) -> float:
    """Mean per-image PSNR over the pixels where ``mask == 0`` only."""
    lo, hi = data_range
    hole = (mask == 0).float()
    mse = ((preds.clamp(lo, hi) - target).pow(2) * hole).flatten(1).sum(1) / hole.flatten(1).sum(1).clamp_min(1)
    return float((10 * torch.log10((hi - lo) ** 2 / mse.clamp_min(1e-12))).mean())


def denoising(model, x: torch.Tensor, sigmas, generator: torch.Generator | None = None,
              jump_sigma: float | None = None) -> dict[str, dict]:
    """{sigma: {psnr, ssim, psnr_noisy}} of the model's single-step denoiser on clean images ``x`` noised at each
    sigma. The jump uses the true sigma, or ``jump_sigma`` at every level: an energy of the sigma0-smoothed density
    alone (MDSM) denoises with its own jump x - sigma0^2 grad E (eq. 9), as ``zoo denoise`` does."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    lo, hi = model.data_range
    out = {}
    for sigma in sigmas:
        noisy = x + float(sigma) * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        clean = model.denoise(noisy.clamp(*model._bounds()), jump_sigma or float(sigma)).cpu().float()
        out[f"{float(sigma):g}"] = {
            "psnr": psnr(clean, x, (lo, hi)), "psnr_noisy": psnr(noisy, x, (lo, hi)),
            "ssim": float(ssim(clean.clamp(lo, hi), x, data_range=hi - lo))}
    return out


def inpainting(model, x: torch.Tensor, masks=MASKS, seed: int = 0, **sample_kwargs) -> dict[str, float]:
    """{mask: PSNR of the filled pixels} of ``model.inpaint`` (keywords as sample(), e.g. preset="fast")."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for kind in masks:
        mask = make_mask(kind, x.shape, g)
        filled = model.inpaint(x, mask, seed=seed, progress=False, **sample_kwargs).cpu().float()
        out[kind] = masked_psnr(filled, x, mask, model.data_range)
    return out


@METRICS.register("denoising")
class Denoising(Metric):
    """PSNR / SSIM of ``denoise()`` on ``n_test`` test images at each noise level, beside the noisy input's PSNR."""

    order = 40

    def applies(self, entry) -> bool:
        return generates_images(entry)

    def run(self, ctx) -> dict:
        model, (lo, hi) = ctx.model, ctx.model.data_range
        ctx.log("[eval] denoising PSNR / SSIM")
        sigmas = sorted({model.sigma0, *(s * (hi - lo) for s in ctx.settings.sigmas)})
        jump = model.sigma0 if ctx.entry.family == "mdsm" else None  # MDSM models the sigma0-smoothed density only
        return {"n": len(ctx.test), "jump_sigma": jump or "the noise sigma",
                "results": denoising(model, ctx.test.to(model.dtype), sigmas, ctx.generator, jump_sigma=jump)}

    def card(self, result: dict, entry) -> list[str]:
        jump = result.get("jump_sigma", "the noise sigma")
        return ([f"**Denoising** (`denoise()` with the jump at {jump}, {result['n']} test images):", "",
                 "| noise sigma | PSNR noisy input (dB) | PSNR denoised (dB) | SSIM denoised |", "|---|---|---|---|"]
                + [f"| {s} | {fmt(v['psnr_noisy'])} | {fmt(v['psnr'])} | {fmt(v['ssim'], 3)} |"
                   for s, v in result["results"].items()] + [""])

    def eval_results(self, result: dict, entry, common: dict) -> list:
        from huggingface_hub import EvalResult

        sigma, res = next(iter(result["results"].items()))
        return [EvalResult(task_type="image-denoising", metric_type="psnr", metric_name=f"PSNR at sigma {sigma}",
                           metric_value=round(res["psnr"], 3), **common)]


@METRICS.register("inpainting")
class Inpainting(Metric):
    """PSNR of the filled pixels of ``inpaint()`` for the centre / left / random-50% masks."""

    order = 50

    def applies(self, entry) -> bool:
        return generates_images(entry)

    def run(self, ctx) -> dict:
        import time

        s = ctx.settings
        preset = ctx.model.inpaint_preset(s.preset)
        ctx.log(f"[eval] inpainting PSNR ({s.n_inpaint} images, preset {preset or 'default'})")
        x = ctx.test[:s.n_inpaint].to(ctx.model.dtype)
        start = time.time()
        res = inpainting(ctx.model, x, MASKS, s.seed, preset=preset)
        return {"n": s.n_inpaint, "preset": preset or "default", "psnr_filled": res,
                "seconds": round(time.time() - start, 1)}

    def card(self, result: dict, entry) -> list[str]:
        return ([f"**Inpainting** (PSNR of the filled pixels only, {result['n']} test images, `{result['preset']}` "
                 f"sampler, {result['seconds']} s):", "", "| mask | PSNR (dB) |", "|---|---|"]
                + [f"| {k} | {fmt(v)} |" for k, v in result["psnr_filled"].items()] + [""])
