"""Seconds for ``sample(n)`` per entry and preset, eager against the compiled chain (``compile=True``), in one run.

    python benchmarks/sample.py [--entries mdsm-mnist-small ncebm-mnist ...] [--presets default fast medium paper]
                                [-n 64] [--measure-steps 10] [--device cuda] [--full] [--quality ../shared/datasets]
                                [--json out.json]
    python benchmarks/sample.py --variants mdsm-mnist-small   # one chain step under each CPU/GPU setting tried

Every step of an annealed-Langevin chain costs the same (one grad_x E at batch n), so by default each path is timed
once per entry over ``--measure-steps`` steps (after a warm-up call that compiles) and each preset's seconds are that
per-step time x the preset's length plus the denoising jump (column "timed": "per step"); ``--full`` runs every chain
whole instead (what a GPU can afford). The compile time (first call minus a steady call) is reported apart: it is paid
once per process and batch shape. Entries without weights use random weights (the time does not depend on them).
The Denoising-EBM rows run the chain whole and compare the paper's 35 latent + 100 data steps with its 8.67 s for 64
CIFAR-10 samples (NCSN: 120.11 s), measured on its own GPU; their chain calls the network through U_s / U_c, which
the compiled path does not reach yet, so they are timed eager only. The noise-conditional (ncebm) rows time their
samplers whole (the probability-flow ODE: 2 x steps - 1 gradient evaluations). Every row's seconds are also given as a
ratio to the first row's, and ``--quality`` adds the classifier-FID of the samples beside real test images at the
same n.

``--variants ENTRY`` times one energy-gradient evaluation (the work of a chain step) at batch n under each setting
the switch was chosen from: eager, channels_last, bf16 autocast, torch.compile, compile + channels_last, and (CPU)
one thread instead of all; it prints each against eager and the relative error of the gradient.
"""
from __future__ import annotations

import argparse
import copy
import json

import torch
from train_step import seconds_per_call  # benchmarks/ is on sys.path when run as a script

import zoo
from zoo.errors import NoPretrainedWeightsError
from zoo.hardware import describe
from zoo.sampling import energy_and_grad

PAPER_DEBM_S, NCSN_S = 8.67, 120.11


def _seconds(fn, device: torch.device) -> float:
    return seconds_per_call(fn, 1, 0, device)  # one call, CUDA synchronised


def per_step_seconds(model, n: int, compile: bool, steps: int, device: torch.device) -> tuple[float, float]:
    """(seconds per annealed-Langevin step at batch n, compile seconds) for one path."""
    kw = dict(schedule="constant", temperature=1.0, n_steps=steps, denoise_jump=False, seed=0, progress=False,
              compile=compile)
    first = _seconds(lambda: model.sample(n, **kw), device)  # includes compilation when compile=True
    steady = _seconds(lambda: model.sample(n, **kw), device)
    return steady / steps, max(first - steady, 0.0) if compile else 0.0


def whole_chain_seconds(model, preset: str | None, n: int, compile: bool, device: torch.device) -> tuple[float, float]:
    kw = dict(preset=preset, seed=0, progress=False, compile=compile)
    first = _seconds(lambda: model.sample(n, **kw), device)
    steady = _seconds(lambda: model.sample(n, **kw), device)
    return steady, max(first - steady, 0.0) if compile else 0.0


def classifier_fid(model, name: str, preset: str | None, n: int, data_dir: str) -> tuple[float, float]:
    """(classifier-FID of sample(n) with this preset, the real-data ceiling at the same n), as ``zoo eval``."""
    from zoo.data import load_tensor
    from zoo.evaluation.quality import ClassifierFeatures, classifier_for, real_data_ceiling, sample_quality

    entry = zoo.get_entry(name)
    features = ClassifierFeatures(classifier_for(entry, zoo.EnergyModel), model.data_range)
    train = load_tensor(entry, "train", data_dir, limit=2000)
    samples = model.sample(n, preset=preset, seed=0, progress=False).cpu()
    ceiling = real_data_ceiling(load_tensor(entry, "test", data_dir), train, n, features,
                                generator=torch.Generator().manual_seed(0))
    return sample_quality(samples, train, features)["fid"], ceiling["fid"]


def load(name: str, device: torch.device):
    try:
        return zoo.load(name, device=device, dtype=torch.float32), "pretrained"
    except NoPretrainedWeightsError:
        return zoo.load(name, device=device, dtype=torch.float32, pretrained=False), "random weights"


def variants(name: str, n: int, device: torch.device, steps: int = 5) -> None:
    """One grad_x E(x) at batch n under each setting, against eager (see the module docstring)."""
    model, weights = load(name, device)
    x = torch.rand(n, *model.input_shape, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    net_cl = copy.deepcopy(model.net).to(memory_format=torch.channels_last)
    reference = energy_and_grad(model.net, x)[1]

    def autocast_bf16(xx):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return energy_and_grad(model.net, xx)[1].float()

    settings = {"eager": (lambda xx: energy_and_grad(model.net, xx)[1], x),
                "channels_last": (lambda xx: energy_and_grad(net_cl, xx)[1], x_cl),
                "bf16 autocast": (autocast_bf16, x),
                "torch.compile": (lambda xx: energy_and_grad(model.compiled_net(), xx)[1], x),
                "torch.compile + channels_last": (lambda xx, c=torch.compile(net_cl): energy_and_grad(c, xx)[1], x_cl)}
    print(f"one grad_x E at batch {n}, {name} ({weights}), {device}")
    print("| setting | ms per step | x eager | relative error of grad |\n|---|---|---|---|")
    base = None
    for label, (fn, xx) in settings.items():
        secs = seconds_per_call(lambda: fn(xx), steps, 2, device)
        base = base or secs
        err = ((fn(xx) - reference).norm() / reference.norm()).item()
        print(f"| {label} | {1000 * secs:.0f} | {base / secs:.2f} | {err:.1e} |", flush=True)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        secs = seconds_per_call(lambda: energy_and_grad(model.net, x), steps, 1, device)
        torch.set_num_threads(threads)
        print(f"| eager, 1 thread (of {threads}) | {1000 * secs:.0f} | {base / secs:.2f} | 0 |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", nargs="+", default=["mdsm-mnist-small", "ncebm-mnist", "mdsm-mnist",
                                                    "denoising-ebm-mnist", "denoising-ebm-cifar10"])
    p.add_argument("--presets", nargs="+", default=["default", "fast", "medium", "paper"],
                   help="'default' = the entry's default sampler; presets an entry lacks are skipped")
    p.add_argument("--quality", metavar="DATA_DIR", default=None,
                   help="also classifier-FID of each eager sample(n), beside real test images at the same n")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--measure-steps", type=int, default=10)
    p.add_argument("--full", action="store_true", help="run every chain whole instead of timing steps")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None)
    p.add_argument("--variants", metavar="ENTRY", default=None, help="time one chain step under each setting tried")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.variants:
        return variants(args.variants, args.n, device)
    print(f"sample({args.n}) on {describe(device)}, torch {torch.__version__}")
    print("| entry | weights | sampler | NFE | timed | eager s | x first row | compiled s | speed-up | compile s (once) "
          "| cFID (real data) | note |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows, baseline = [], None
    for name in args.entries:
        model, weights = load(name, device)
        presets = [p for p in args.presets if p in model.sampler_config.get("presets", {}) or p == "default"]
        debm = model.config["family"] == "denoising_ebm"
        # the two-stage chain (two chains + a decode) and the noise-conditional samplers (a sigma per step) are timed
        # whole; annealed Langevin chains per step
        whole = debm or model.noise_conditional or args.full
        if not whole:
            step = {c: per_step_seconds(model, args.n, c, args.measure_steps, device) for c in (False, True)}
        for label in presets:
            preset = None if label == "default" else label
            sampler = model.sampler(preset)
            length = sampler.chain_length()
            if whole:
                secs = {c: whole_chain_seconds(model, preset, args.n, c, device) for c in (False, True)}
            else:
                secs = {c: (step[c][0] * length, step[c][1]) for c in (False, True)}
            eager, (fast, compile_s) = secs[False][0], secs[True]
            baseline = baseline or eager
            note = f"x{fast / PAPER_DEBM_S:.2f} the paper's {PAPER_DEBM_S} s (its GPU, CIFAR-10)" \
                if debm and preset == "paper" else ""
            fid = classifier_fid(model, name, preset, args.n, args.quality) if args.quality else None
            row = {"entry": name, "weights": weights, "preset": label, "sampler": sampler.registered_name,
                   "nfe": length, "timed": "whole" if whole else "per step", "seconds": eager,
                   "ratio_to_first_row": eager / baseline, "compiled_seconds": fast, "compile_s": compile_s,
                   "speedup": eager / fast, "cfid": fid, "note": note}
            rows.append(row)
            quality = f"{fid[0]:.3g} ({fid[1]:.3g})" if fid else ""
            print(f"| {name} | {weights} | {label} ({row['sampler']}) | {length} | {row['timed']} | {eager:.1f} | "
                  f"{row['ratio_to_first_row']:.2f} | {fast:.1f} | {row['speedup']:.2f}x | {compile_s:.0f} | {quality} | "
                  f"{note} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": describe(device), "n": args.n, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
