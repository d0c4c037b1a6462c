"""Why do Denoising-EBM's latent chains wander? Measures the latent chain of eq. 15 (Langevin on U_s from N(0, I))
against the codes of real data, step by step, on a trained ``DenoisingEBM`` (an export folder or a zoo entry).

    python experiments/debm_latent_chain.py --model runs/debm-mnist/export --entry denoising-ebm-mnist \
        --data-dir ../shared/datasets [-n 256] [--out model_cards/denoising-ebm-mnist.latent_chain.json]

Per chain step t it records the mean code norm |z_t|, the mean U_s(z_t, sigma), the mean norm of the drift
eta1 * grad U_s and of the injected noise sqrt(2 eta1) e, and the share of saturated pixels (|h(z)| > 0.95) of the
decoded images. Beside it: the same numbers for the codes f(x + sigma eps, sigma) of n test images, and the
classifier's confident-class share (p >= 0.9, the entry's zoo classifier) of the decoded chain ends h(z_K) and of the
decoded data codes h(f(x~)). Variants of the chain change one thing each. ``--samples`` also scores the whole
two-stage sampler (n samples, seed 0) under the paper's settings and the opt-in remedies: the confident-class share,
classifier-FID and -IS against 2,000 training images of the samples x_T, of their semantic images h(z_K) and of one
DAE reconstruction of them r(x_T, sigma), beside the same for n real test images. ``--data-stage`` also runs the data stage alone (T = 100 Langevin steps on U_c at
sigma) from n real test images, at the paper's eta2 and at eta2 / 10: what it does to images that are digits already.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import zoo
from zoo.data import load_tensor
from zoo.evaluation.quality import ClassifierFeatures, classifier_for, confident_share, sample_quality
from zoo.sampling import ChainOptions, StepParams, build_kernel, run_chain

PAPER_STEPS = dict(latent_step_size=0.1, data_step_size=0.01)  # eta1, eta2 of the paper (Sec. 5)
SAMPLER_VARIANTS = {"paper: N(0,I), eta1 0.1, eta2 0.01": dict(latent_init="normal", **PAPER_STEPS),
                    "latent_init codes": dict(latent_init="codes", **PAPER_STEPS),
                    "eta1 0.01": dict(latent_init="normal", latent_step_size=0.01, data_step_size=0.01),
                    "latent_init codes + eta1 0.01": dict(latent_init="codes", latent_step_size=0.01,
                                                          data_step_size=0.01),
                    "eta1 0.01 + eta2 0.001": dict(latent_init="normal", latent_step_size=0.01, data_step_size=0.001),
                    "latent_init codes + eta1 0.01 + eta2 0.001": dict(latent_init="codes", latent_step_size=0.01,
                                                                       data_step_size=0.001),
                    "latent_init codes + eta1 0.01, semantic image only": dict(latent_init="codes",
                                                                               latent_step_size=0.01, data_steps=1)}
# the opt-in data stage on the DAE's score (TwoStageSampler's data_score: dae), from the codes' latent chain; the
# first level data_sigma_max sets how much of h(z_K) survives the noising (3: almost none)
DAE_STAGE = dict(latent_init="codes", latent_step_size=0.01, data_score="dae", data_steps=20, data_step_size=0.002,
                 denoise_jump=True)
SAMPLER_VARIANTS.update({
    "dae score at sigma only (1 level x 20)": dict(DAE_STAGE, data_levels=1),
    "dae score 0.5 -> sigma (7 levels x 20)": dict(DAE_STAGE, data_sigma_max=0.5, data_levels=7),
    "dae score 1 -> sigma (10 levels x 20)": dict(DAE_STAGE, data_sigma_max=1.0, data_levels=10),
    "dae score 3 -> sigma (14 levels x 20)": dict(DAE_STAGE, data_sigma_max=3.0, data_levels=14),
    "dae score 3 -> sigma (14 levels x 40)": dict(DAE_STAGE, data_sigma_max=3.0, data_levels=14, data_steps=40),
    "dae score 3 -> sigma (14 levels x 20), eta2 0.004": dict(DAE_STAGE, data_sigma_max=3.0, data_levels=14,
                                                              data_step_size=0.004),
    "dae score 3 -> sigma (14 levels x 20), eta2 0.001": dict(DAE_STAGE, data_sigma_max=3.0, data_levels=14,
                                                              data_step_size=0.001),
    "dae score 3 -> sigma (14 levels x 20), eta2 0.0005": dict(DAE_STAGE, data_sigma_max=3.0, data_levels=14,
                                                               data_step_size=0.0005),
    "dae score 2 -> sigma (12 levels x 20)": dict(DAE_STAGE, data_sigma_max=2.0, data_levels=12),
    "dae score 3 -> sigma (10 levels x 10), 10 latent steps": dict(DAE_STAGE, data_sigma_max=3.0, data_levels=10,
                                                                   data_steps=10, latent_steps=10)})


def chain(net, z, sigma, eta, steps, generator, prior: float = 0.0, noise: bool = True):
    """Eq. 15 from ``z``; ``prior`` > 0 adds prior * |z|^2 / 2 to U_s (a Gaussian reference). Returns per-step stats."""
    rows = []
    for t in range(steps + 1):
        z = z.detach().requires_grad_(True)
        u = net.semantic_energy(z, sigma, generator)
        total = u + prior * z.pow(2).sum(1) / 2
        (grad,) = torch.autograd.grad(total.sum(), z)
        with torch.no_grad():
            h = net.decoder(z)
            rows.append({"t": t, "z_norm": z.norm(dim=1).mean().item(), "U_s": u.mean().item(),
                         "drift": (eta * grad).norm(dim=1).mean().item(),
                         "saturated": (h.abs() > 0.95).float().mean().item()})
        if t == steps:
            break
        e = torch.randn(z.shape, generator=generator) if noise else torch.zeros_like(z)
        z = z - eta * grad + (2 * eta) ** 0.5 * e
    return z.detach(), rows


def load(where: str, entry) -> zoo.EnergyModel:
    """An export folder, a training checkpoint (``state.safetensors``: its ``model.*`` tensors) or a zoo entry."""
    folder = Path(where)
    if (folder / "state.safetensors").is_file():
        from safetensors.torch import load_file

        model = zoo.EnergyModel(entry.config_json(), sampler_config=entry.sampler_config_json())
        state = load_file(str(folder / "state.safetensors"))
        model.net.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
        return model
    return zoo.EnergyModel.from_pretrained(folder) if folder.is_dir() else zoo.load(where)


def sampler_quality(model, entry, data_dir, n: int, logits, variants=tuple(SAMPLER_VARIANTS)) -> dict:
    """The two-stage sampler's samples under each of ``SAMPLER_VARIANTS``, scored as ``zoo eval`` scores samples."""
    feats = ClassifierFeatures(logits.classifier, model.data_range)
    train = load_tensor(entry, "train", data_dir, limit=2000)
    test = load_tensor(entry, "test", data_dir)[:n]
    real = sample_quality(test, train, feats, logits)
    rows = {"real test images": {"confident_share": confident_share(test, logits), "fid": real["fid"], "is": real["is"]}}
    for name in variants:
        options = SAMPLER_VARIANTS[name]
        out = model.sample(n, seed=0, progress=False, return_energy_trace=True, **options)
        sigma = torch.full((n,), float(model.sampler(**options).sigma))
        with torch.no_grad():
            outputs = {"x_T": out.samples, "h(z_K)": out.extras["semantic"].clamp(-1, 1),
                       "r(x_T, sigma)": model.net.reconstruct(out.samples, sigma).clamp(-1, 1)}
        rows[name] = {}
        for label, y in outputs.items():
            q = sample_quality(y, train, feats, logits)
            rows[name][label] = {"confident_share": confident_share(y, logits), "fid": q["fid"], "is": q["is"]}
    for name, r in rows.items():
        for label, v in (r.items() if "fid" not in r else [("", r)]):
            print(f"{name:50s} {label:14s} confident {v['confident_share']:.2f}  cFID {v['fid']:8.2f}  cIS {v['is']:.2f}")
    return rows


def data_stage_from_real(net, x: torch.Tensor, sigma: float, eta2: float, steps: int, logits) -> dict:
    """The data stage (eq. 16) started at real images instead of h(z_K), at eta2 and eta2 / 10."""
    rows = {}
    for eta in (eta2, eta2 / 10):
        g = torch.Generator().manual_seed(0)
        out = run_chain(build_kernel("langevin"), lambda v: net.texture_energy(v, sigma, g), lambda b: x.clone(),
                        len(x), [StepParams((2 * eta) ** 0.5, 1.0)] * steps,
                        ChainOptions(generator=g, progress=False, record_energy=True))
        e = out.energy_trace
        rows[f"eta2 {eta:g}"] = {"U_c": [e[0].mean().item(), e[-1].mean().item()],
                                 "mean pixel": [x.mean().item(), out.samples.mean().item()],
                                 "confident_share": [confident_share(x, logits),
                                                     confident_share(out.samples.clamp(-1, 1), logits)]}
        r = rows[f"eta2 {eta:g}"]
        print(f"data stage from {len(x)} real test images, eta2 {eta:g}, {steps} steps: U_c {r['U_c'][0]:.0f} -> "
              f"{r['U_c'][1]:.0f}, mean pixel {r['mean pixel'][0]:.2f} -> {r['mean pixel'][1]:.2f}, confident "
              f"{r['confident_share'][0]:.2f} -> {r['confident_share'][1]:.2f}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="export folder, training checkpoint folder or zoo entry")
    p.add_argument("--entry", required=True, help="the zoo entry (data, classifier)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("-n", type=int, default=256)
    p.add_argument("--sigma", type=float, default=None, help="default: the entry's sampler sigma")
    p.add_argument("--steps", type=int, default=None, help="default: the entry's sampler latent_steps")
    p.add_argument("--samples", action="store_true", help="also score the whole sampler's samples (see above)")
    p.add_argument("--variant", action="append", choices=list(SAMPLER_VARIANTS),
                   help="with --samples: only these sampler variants (default: all)")
    p.add_argument("--samples-only", action="store_true", help="only the sampler scores of --samples")
    p.add_argument("--data-stage", action="store_true", help="only the data stage from real images (see above)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.manual_seed(0)
    entry = zoo.get_entry(args.entry)
    model = load(args.model, entry)
    net = model.net.eval()
    cfg = model.sampler_config["default"]
    sigma, eta = args.sigma or cfg["sigma"], cfg["latent_step_size"]
    steps = args.steps or cfg["latent_steps"]
    logits = ClassifierFeatures(classifier_for(entry, zoo.EnergyModel), model.data_range, "logits")
    x = load_tensor(entry, "test", args.data_dir)[:args.n]
    g = torch.Generator().manual_seed(0)
    s = torch.full((args.n,), sigma)
    with torch.no_grad():
        z_data = net.dae.encode(x + sigma * torch.randn(x.shape, generator=g), s)[0]
        h_data = net.decoder(z_data)
    mu, std = z_data.mean(0), z_data.std(0)
    data = {"z_norm": z_data.norm(dim=1).mean().item(), "z_dim_std_mean": std.mean().item(),
            "z_mean_norm": mu.norm().item(), "U_s": net.semantic_energy(z_data, sigma, g).mean().item(),
            "U_c": net.texture_energy(x, sigma, g).mean().item(),
            "confident_share h(f(x~))": confident_share(h_data, logits),
            "confident_share x": confident_share(x, logits)}
    d = net.latent_dim
    if args.samples_only:
        rows = sampler_quality(model, entry, args.data_dir, args.n, logits, args.variant or tuple(SAMPLER_VARIANTS))
        if args.out:
            Path(args.out).write_text(json.dumps({"model": args.model, "n": args.n, "sampler": rows}, indent=1))
        return
    if args.data_stage:
        rows = data_stage_from_real(net, x, sigma, cfg["data_step_size"], cfg["data_steps"], logits)
        if args.out:
            Path(args.out).write_text(json.dumps({"model": args.model, "n": args.n, "sigma": sigma, "data stage": rows},
                                                 indent=1))
        return
    cov = torch.cov(z_data.T) + 1e-4 * torch.eye(z_data.shape[1])
    fitted = torch.distributions.MultivariateNormal(mu, cov)
    starts = {"N(0,I)": lambda: torch.randn((args.n, d), generator=g),
              "N(mu, diag) of data codes": lambda: mu + std * torch.randn((args.n, d), generator=g),
              "N(mu, cov) of data codes": lambda: fitted.sample((args.n,)),
              "the data codes": lambda: z_data.clone()}
    variants = {  # name: (start, eta, prior, noise)
        "paper: N(0,I), eta1": ("N(0,I)", eta, 0.0, True),
        "no noise (gradient descent)": ("N(0,I)", eta, 0.0, False),
        "eta1 / 10": ("N(0,I)", eta / 10, 0.0, True),
        "Gaussian reference |z|^2/2": ("N(0,I)", eta, 1.0, True),
        "start N(mu, diag) of codes": ("N(mu, diag) of data codes", eta, 0.0, True),
        "start N(mu, cov) of codes": ("N(mu, cov) of data codes", eta, 0.0, True),
        "start at the data codes": ("the data codes", eta, 0.0, True),
    }
    results = {"model": args.model, "entry": args.entry, "n": args.n, "sigma": sigma, "eta1": eta, "steps": steps,
               "latent_dim": d, "noise_norm_per_step": (2 * eta) ** 0.5 * d ** 0.5, "data_codes": data, "variants": {}}
    for name, (start, step_eta, prior, noise) in variants.items():
        z0 = starts[start]()
        z_end, rows = chain(net, z0, sigma, step_eta, steps, g, prior, noise)
        with torch.no_grad():
            share0, share = confident_share(net.decoder(z0), logits), confident_share(net.decoder(z_end), logits)
        results["variants"][name] = {"confident_share h(z_0)": share0, "confident_share h(z_K)": share, "rows": rows}
        r0, rk = rows[0], rows[-1]
        print(f"{name:32s} |z| {r0['z_norm']:6.2f} -> {rk['z_norm']:6.2f}  U_s {r0['U_s']:9.1f} -> {rk['U_s']:9.1f}  "
              f"drift {rows[1]['drift']:7.2f} / noise {results['noise_norm_per_step']:.2f}  "
              f"saturated {rk['saturated']:.2f}  confident {share0:.2f} -> {share:.2f}")
    print("data codes:", json.dumps(data))
    if args.samples:
        results["sampler"] = sampler_quality(model, entry, args.data_dir, args.n, logits,
                                             args.variant or tuple(SAMPLER_VARIANTS))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
