"""Seconds for ``sample(n)`` per entry and preset, eager against the compiled chain (``compile=True``), in one run.

    python benchmarks/sample.py [--entries mdsm-mnist-small mdsm-mnist denoising-ebm-mnist] [--presets fast paper]
                                [-n 64] [--measure-steps 10] [--device cuda] [--json out.json]

A chain's cost is linear in its steps, so chains longer than ``--full-below`` steps are timed over
``--measure-steps`` steps of the same kernel, step size and batch (held at the preset's first temperature) and
scaled to the preset's length (column "timed"); shorter ones run whole. The compile time (first call, minus one
steady call) is reported apart: it is paid once per process and batch shape. Entries without weights use random
weights (the time does not depend on them). The Denoising-EBM rows compare the paper's 35 latent + 100 data steps
with its 8.67 s for 64 CIFAR-10 samples (NCSN: 120.11 s), measured on its own GPU; their chain calls the network
through U_s / U_c, which the compiled path does not reach yet, so they are timed eager only.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

import zoo
from zoo.errors import NoPretrainedWeightsError

PAPER_DEBM_S, NCSN_S = 8.67, 120.11


def _seconds(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def chain_seconds(model, preset: str, n: int, compile: bool, measure_steps: int, full_below: int,
                  device: torch.device) -> dict:
    """Seconds for one ``sample(n, preset=preset)``: whole, or per step x the chain length (see module doc)."""
    sampler = model.sampler(preset)
    length = sampler.chain_length()
    kw: dict = {"preset": preset, "seed": 0, "progress": False, "compile": compile}
    if length > full_below:
        kw.update(n_hold=measure_steps, n_anneal=0, n_final=0, denoise_jump=False)
    first = _seconds(lambda: model.sample(n, **kw), device)  # includes compilation when compile=True
    steady = _seconds(lambda: model.sample(n, **kw), device)
    scale = length / measure_steps if length > full_below else 1.0
    return {"seconds": steady * scale, "compile_s": max(first - steady, 0.0) if compile else 0.0,
            "steps": length, "timed": f"{measure_steps} steps" if scale != 1.0 else "whole"}


def load(name: str, device: torch.device):
    try:
        return zoo.load(name, device=device, dtype=torch.float32), "pretrained"
    except NoPretrainedWeightsError:
        return zoo.load(name, device=device, dtype=torch.float32, pretrained=False), "random weights"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", nargs="+", default=["mdsm-mnist-small", "mdsm-mnist", "denoising-ebm-mnist",
                                                    "denoising-ebm-cifar10"])
    p.add_argument("--presets", nargs="+", default=["fast", "paper"])
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--measure-steps", type=int, default=10)
    p.add_argument("--full-below", type=int, default=200, help="chains up to this many steps run whole")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"sample({args.n}) on {where}, torch {torch.__version__}")
    print("| entry | weights | preset | steps | timed | eager s | compiled s | speed-up | compile s (once) | note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.entries:
        model, weights = load(name, device)
        for preset in args.presets:
            eager = chain_seconds(model, preset, args.n, False, args.measure_steps, args.full_below, device)
            note = ""
            if model.config["family"] == "denoising_ebm":  # compile reaches forward() only, not U_s / U_c
                fast = eager
                note = "compile does not reach the two-stage energies (U_s, U_c) yet"
                if preset == "paper":
                    note += f"; x{eager['seconds'] / PAPER_DEBM_S:.2f} the paper's {PAPER_DEBM_S} s (its GPU, CIFAR-10)"
            else:
                fast = chain_seconds(model, preset, args.n, True, args.measure_steps, args.full_below, device)
            row = {"entry": name, "weights": weights, "preset": preset, **eager, "compiled_seconds": fast["seconds"],
                   "compile_s": fast["compile_s"], "speedup": eager["seconds"] / fast["seconds"], "note": note}
            rows.append(row)
            print(f"| {name} | {weights} | {preset} | {row['steps']} | {row['timed']} | {row['seconds']:.1f} | "
                  f"{row['compiled_seconds']:.1f} | {row['speedup']:.2f}x | {row['compile_s']:.0f} | {note} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": where, "n": args.n, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
