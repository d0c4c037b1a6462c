"""Seconds for 64 Denoising-EBM samples with the paper's 35 latent + 100 data steps (paper: 8.67 s on its GPU; NCSN
120.11 s in the same setting), per entry architecture, with random weights (the time does not depend on them).

    python benchmarks/debm_sampling.py [--entries denoising-ebm-mnist denoising-ebm-cifar10] [--device cuda] [-n 64]
"""
from __future__ import annotations

import argparse
import time

import torch

import zoo

PAPER_S, NCSN_S = 8.67, 120.11


def seconds(model, n: int, device: torch.device, **kw) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.sample(n, seed=0, progress=False, preset="paper", **kw)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", nargs="+", default=["denoising-ebm-mnist", "denoising-ebm-cifar10"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("-n", type=int, default=64)
    args = p.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.n} samples, 35 latent + 100 data steps, {name}")
    print("| entry | parameters | s (measured) | x paper's 8.67 s | x NCSN's 120.11 s |\n|---|---|---|---|---|")
    for entry in args.entries:
        model = zoo.load(entry, pretrained=False, device=device)
        seconds(model, 2, device, latent_steps=2, data_steps=2)  # warm-up
        s = seconds(model, args.n, device)
        params = sum(p.numel() for p in model.parameters())
        print(f"| {entry} | {params:,} | {s:.2f} | {s / PAPER_S:.2f} | {s / NCSN_S:.3f} |")


if __name__ == "__main__":
    main()
