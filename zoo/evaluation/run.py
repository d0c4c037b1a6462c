"""``zoo eval``: measure an entry's bundled (or any loaded) weights and write the results JSON that its model card is
generated from (``model_cards/<entry>.eval.json`` -> ``python -m zoo.cards``).

Metrics (``--metrics``; default: every one that applies to the entry):
  quality     classifier-FID / classifier-KID / classifier-IS and the confident-class share of ``n`` samples,
              beside the real-data ceiling (n test images vs the same training images)
  likelihood  AIS / reverse AIS log Z with HMC and bits/dim of test images (pixels in [0, 255])
  denoising   PSNR / SSIM of denoise() across sigma, beside the noisy input's PSNR
  inpainting  PSNR of the filled pixels for the centre / left / random-50% masks
  ood         AUROC of -E(x): test images vs the other dataset, noise and interpolations
  ranking     mean E of real vs blank, half-ink, own samples and noise images (the energy-ranking diagnostic)
  accuracy    test accuracy (the evaluation classifiers)
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..data import load_tensor
from ..errors import ConfigError
from ..hub import write_atomic
from ..results import read_results, results_path  # noqa: F401  (re-exported: zoo.evaluation.read_results)
from .likelihood import (AISSettings, GaussianReference, ais_log_z, bits_per_dim, log_z_quadrature,
                         reverse_ais_log_z)

METRICS = ("quality", "likelihood", "denoising", "inpainting", "ood", "ranking", "accuracy")
OOD_PARTNER = {"ylecun/mnist": "zalando-datasets/fashion_mnist", "zalando-datasets/fashion_mnist": "ylecun/mnist"}
GENERATIVE = ("mdsm", "deen", "denoising_ebm", "ebm", "ncebm")


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
    """The metrics that make sense for an entry (images vs 2-D toys, generative models vs classifiers)."""
    from .quality import CLASSIFIERS

    images = len(entry.model.input_shape) == 3
    generative = entry.family in GENERATIVE
    out = []
    if generative and ((images and entry.data.hub_id in CLASSIFIERS) or entry.data.toy is not None):
        out.append("quality")
    # energies that grow at infinity (MDSM's quadratic head; ML-trained EBMs): DEEN's tanh MLP is bounded, so
    # exp(-E) has no finite Z on R^D and AIS estimates just grow with the chains' reach
    if entry.family in ("mdsm", "ebm"):
        out.append("likelihood")
    if images and generative:
        out += ["denoising", "inpainting", "ranking"]
    if images and entry.data.hub_id in OOD_PARTNER:
        out.append("ood")
    if entry.family == "classifier":
        out.append("accuracy")
    return tuple(m for m in METRICS if m in out)


def _partner_entry(entry) -> str | None:
    """An entry on the OOD partner dataset with the same shape and range (so only the content differs)."""
    from ..registry import load_entries

    target = OOD_PARTNER.get(entry.data.hub_id)
    for e in load_entries().values():
        if (e.data.hub_id == target and e.model.input_shape == entry.model.input_shape
                and e.model.data_range == entry.model.data_range and e.data.pad_to == entry.data.pad_to):
            return e.name
    return None


def _seconds(fn, *args, **kwargs):
    start = time.time()
    out = fn(*args, **kwargs)
    return out, time.time() - start


def evaluate(model, entry, settings: EvalSettings, log=print) -> dict:
    """Run the metrics on ``model`` (weights of ``entry``); returns the results dict (see module docstring)."""
    wanted = tuple(settings.metrics) or applicable(entry)
    unknown = sorted(set(wanted) - set(METRICS))
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    g = torch.Generator().manual_seed(settings.seed)
    lo, hi = model.data_range
    test = load_tensor(entry, "test", settings.data_dir, limit=settings.n_test)
    out: dict = {}
    samples = None
    if "quality" in wanted or "ranking" in wanted:
        from .generate import generate

        log(f"[eval] sampling {settings.num_samples} images (preset {settings.preset or 'default'})")
        samples, secs = _seconds(generate, model, settings.num_samples, batch_size=settings.sample_batch,
                                 seed=settings.seed, preset=settings.preset)
        out["sampling"] = {"n": settings.num_samples, "preset": settings.preset or "default", "seconds": round(secs, 1),
                           "device": str(model.device)}
    if "quality" in wanted:
        from .quality import (ClassifierFeatures, Coordinates, classifier_for, confident_share, real_data_ceiling,
                              sample_quality)

        train = load_tensor(entry, "train", settings.data_dir, limit=settings.n_real)
        full_test = load_tensor(entry, "test", settings.data_dir)
        if entry.data.toy is not None:
            log("[eval] quality: FID / KID on the 2-D coordinates")
            feats, logits, name = Coordinates(train.shape[1]), None, "coordinates"
            note = "FID / KID computed on the raw 2-D points (Frechet distance of Gaussian fits; polynomial-kernel MMD)"
        else:
            log("[eval] quality: classifier-FID / KID / IS")
            clf = classifier_for(entry)
            feats, logits, name = ClassifierFeatures(clf, (lo, hi)), ClassifierFeatures(clf, (lo, hi), "logits"), \
                clf.config["entry"]
            note = ("classifier-FID/KID/IS use the zoo's in-domain classifier: comparable within the zoo only, not "
                    "with the papers' Inception FID/IS")
        model_q = sample_quality(samples, train, feats, logits)
        ceiling = real_data_ceiling(full_test, train, len(samples), feats, logits, g)
        if logits is not None:
            model_q["confident_share"] = confident_share(samples, logits)
            ceiling["confident_share"] = confident_share(full_test[:len(samples)], logits)
        out["quality"] = {"features": name, "n": len(samples), "n_real": len(train), "model": model_q,
                          "real_data_ceiling": ceiling, "note": note}
    if "likelihood" in wanted:
        log(f"[eval] likelihood: AIS and reverse AIS ({settings.ais.n_distributions} distributions x "
            f"{settings.ais.hmc_steps} HMC steps x {settings.ais.n_leapfrog} leapfrog, {settings.ais_chains} chains)")
        train = load_tensor(entry, "train", settings.data_dir, limit=settings.n_real)
        reference = GaussianReference.fit(train.to(model.device, model.dtype))
        shape, dim = model.input_shape, math.prod(model.input_shape)
        fwd, t_f = _seconds(ais_log_z, model.net, reference, shape, settings.ais_chains, settings.ais,
                            torch.Generator(model.device).manual_seed(settings.seed), progress=True)
        start = test[:settings.ais_chains].to(model.device, model.dtype)
        rev, t_r = _seconds(reverse_ais_log_z, model.net, reference, start, settings.ais,
                            torch.Generator(model.device).manual_seed(settings.seed + 1), progress=True)
        e_test = model.energy(test.to(model.device, model.dtype)).cpu()
        log_z = {"ais": fwd.log_z, "reverse_ais": rev.log_z}
        if dim == 2:  # 2-D toys: the exact answer by quadrature, and NLL in nats per point (no pixels here)
            log_z["quadrature"] = log_z_quadrature(model.net, reference)
            per_point = {"nll_nats": {k: e_test.double().mean().item() + v for k, v in log_z.items()}}
        else:
            per_point = {"bits_per_dim": {k: bits_per_dim(e_test, v, dim, (lo, hi)) for k, v in log_z.items()}}
        out["likelihood"] = {
            "log_z": log_z, **per_point,
            "accept_rate": {"ais": fwd.accept_rate, "reverse_ais": rev.accept_rate},
            # AIS' lower bound on log Z holds whatever the mixing; reverse AIS' upper bound only from exact model
            # samples: a reverse estimate below the forward one shows the test images are not model samples
            "bracket_consistent": fwd.log_z <= rev.log_z,
            "settings": {**asdict(settings.ais), "chains": settings.ais_chains, "reference": "isotropic Gaussian fit "
                         "to training images (per-pixel mean, one std)", "reverse_start": "test images",
                         "n_test_images": len(test)},
            "seconds": round(t_f + t_r, 1),
            "measures": "the density exp(-E(x))/Z of the model (for MDSM/DEEN: of the sigma0-smoothed data) at clean "
                        "test images; bits/dim for pixel values in [0, 255]. AIS gives the lower end (log Z "
                        "underestimated), reverse AIS from test images the upper end of the bits/dim bracket."}
    if "denoising" in wanted:
        from .restoration import denoising

        log("[eval] denoising PSNR / SSIM")
        sigmas = sorted({model.sigma0, *(s * (hi - lo) for s in settings.sigmas)})
        jump = model.sigma0 if entry.family == "mdsm" else None  # MDSM models the sigma0-smoothed density only
        out["denoising"] = {"n": len(test), "jump_sigma": jump or "the noise sigma",
                            "results": denoising(model, test.to(model.dtype), sigmas, g, jump_sigma=jump)}
    if "inpainting" in wanted:
        from .restoration import MASKS, inpainting

        log(f"[eval] inpainting PSNR ({settings.n_inpaint} images, preset {settings.preset or 'default'})")
        res, secs = _seconds(inpainting, model, test[:settings.n_inpaint].to(model.dtype), MASKS, settings.seed,
                             preset=settings.preset)
        out["inpainting"] = {"n": settings.n_inpaint, "preset": settings.preset or "default", "psnr_filled": res,
                             "seconds": round(secs, 1)}
    if "ood" in wanted:
        from .ood import ood_table

        log("[eval] OOD AUROC")
        sources = [s for s in (_partner_entry(entry),) if s] + ["noise:uniform", "noise:gaussian", "interp"]
        out["ood"] = ood_table(model, entry, sources, n=settings.n_test, data_dir=settings.data_dir, seed=settings.seed)
    if "accuracy" in wanted:
        log("[eval] test accuracy")
        x, y = load_tensor(entry, "test", settings.data_dir, labels=True)
        with torch.no_grad():
            pred = torch.cat([model.net(b.to(model.device, model.dtype), output="logits").argmax(1).cpu()
                              for b in x.split(500)])
        out["accuracy"] = {"n": len(y), "accuracy": float((pred == y).double().mean())}
    if "ranking" in wanted:
        from .ranking import energy_ranking

        log("[eval] energy ranking")
        out["ranking"] = energy_ranking(model.energy, test.to(model.device, model.dtype), (lo, hi), samples, g)
    return out


def environment(model) -> dict:
    device = model.device
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                     f"{torch.get_num_threads()} threads)")
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "hardware": hardware,
            "torch": torch.__version__}


def write_results(name: str, results: dict, command: str, model, path: Path | None = None) -> Path:
    """The results JSON (atomically): the command, the environment and every measured number. The published file
    (``path`` None: ``model_cards/<entry>.eval.json``) is merged by metric group: a partial evaluation replaces only
    the groups it measured, and ``provenance`` says which command and environment measured each group."""
    env = environment(model)
    published = path is None
    path = Path(path) if path else results_path(name)
    old = json.loads(path.read_text()) if published and path.is_file() else {"results": {}}
    provenance = old.get("provenance") or {k: {"command": old["command"], "environment": old["environment"]}
                                            for k in old["results"]}
    provenance.update({k: {"command": command, "environment": env} for k in results})
    payload = {"entry": name, "command": command, "environment": env, "results": {**old["results"], **results},
               "provenance": provenance}
    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n"))
    return path
