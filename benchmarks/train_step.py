"""Images/s of the MDSM training step: the recipe's settings vs a naive plain-PyTorch loop, same run.

    python benchmarks/train_step.py --entry mdsm-mnist [--steps 20] [--batch 128] [--width 64] [--json out.json]

Variants (same model, same batch, same objective):
  naive           fp32, contiguous, torch.optim.Adam (for-each), no TF32     <- the baseline
  tf32+cl+fused   TF32 matmuls/convs, channels_last, fused Adam, cudnn.benchmark (the recipe's default on GPU)
  bf16+cl+fused   the above under bf16 autocast (recipe flag --mixed-precision bf16)
torch.compile is not benchmarked: AOTAutograd has no double backward, which MDSM's loss needs.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from zoo.hardware import describe
from zoo.model import EnergyModel
from zoo.objectives import build_objective
from zoo.objectives import ObjectiveContext
from zoo.registry import get_entry
from zoo.training.args import apply_overrides


def seconds_per_call(step, steps: int, warmup: int, device: torch.device) -> float:
    """Mean wall time of ``step()`` over ``steps`` calls after ``warmup`` calls (CUDA synchronised)."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def run_variant(entry: dict, batch: int, steps: int, warmup: int, device: torch.device, *, tf32: bool,
                channels_last: bool, fused: bool, bf16: bool) -> float:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = tf32
    torch.manual_seed(0)
    config = entry.config_json()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = EnergyModel(config).net.to(device, memory_format=fmt).train()
    opt = torch.optim.Adam(net.parameters(), lr=5e-5, betas=(0.9, 0.95), fused=fused and device.type == "cuda")
    objective = build_objective(entry.recipe.objective, config["sigma0"])
    x = torch.rand(batch, *config["input_shape"], device=device).contiguous(memory_format=fmt)
    gen = torch.Generator(device).manual_seed(0)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = objective(net, x, ObjectiveContext(generator=gen)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return batch / seconds_per_call(step, steps, warmup, device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entry", default="mdsm-mnist")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--width", type=int, default=None, help="override the architecture width (small = quick CPU run)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    entry = get_entry(args.entry)
    if args.width:
        entry = apply_overrides(entry, [f"model.architecture.width={args.width}"])
    batch = args.batch or entry.recipe.batch_size
    device = torch.device(args.device)
    variants = {"naive": dict(tf32=False, channels_last=False, fused=False, bf16=False),
                "tf32+cl+fused": dict(tf32=True, channels_last=True, fused=True, bf16=False)}
    if device.type == "cuda":
        variants["bf16+cl+fused"] = dict(tf32=True, channels_last=True, fused=True, bf16=True)
    results = {name: run_variant(entry, batch, args.steps, args.warmup, device, **kw) for name, kw in variants.items()}
    n_params = sum(p.numel() for p in EnergyModel(entry.config_json()).net.parameters())
    print(f"\n{args.entry} ({entry.model.architecture.get('class')}, {n_params / 1e6:.2f}M parameters), batch {batch}, "
          f"{args.steps} steps, {describe(device)}")
    print("| variant | images/s | steps/s | x naive |\n|---|---|---|---|")
    for variant, ips in results.items():
        print(f"| {variant} | {ips:,.0f} | {ips / batch:.2f} | {ips / results['naive']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"entry": args.entry, "device": describe(device), "batch": batch, "images_per_s": results}, f, indent=2)


if __name__ == "__main__":
    main()
