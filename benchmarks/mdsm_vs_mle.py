"""Seconds per training step: MDSM vs maximum likelihood with K Langevin steps, same network, same batch, one run.

    python benchmarks/mdsm_vs_mle.py [--entry mdsm-mnist] [--batch 128] [--langevin-steps 30] [--width 16]

The MDSM paper (Li, Chen, Sommer 2023, Sec. 5) reports 0.3 s vs 3 s per batch on its GPU (ratio ~10). Both steps go
through the zoo's objectives (``mdsm``; ``ml`` with ``mode: replay``), so the ratio is what a user of the recipes gets.
"""
from __future__ import annotations

import argparse

import torch
from train_step import seconds_per_call  # benchmarks/ is on sys.path when run as a script

from zoo.hardware import describe
from zoo.model import EnergyModel
from zoo.objectives import ObjectiveContext, build_objective
from zoo.registry import get_entry
from zoo.training.args import apply_overrides


def seconds_per_step(entry, spec: dict, batch: int, steps: int, warmup: int, device: torch.device) -> float:
    torch.manual_seed(0)
    config = entry.config_json()
    net = EnergyModel(config).net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=5e-5)
    objective = build_objective(spec, config["sigma0"])
    x = torch.rand(batch, *config["input_shape"], device=device)
    gen = torch.Generator(device).manual_seed(0)

    def step():
        loss = objective(net, x, ObjectiveContext(generator=gen)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return seconds_per_call(step, steps, warmup, device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entry", default="mdsm-mnist")
    p.add_argument("--batch", type=int, default=None, help="default: the entry's batch size")
    p.add_argument("--width", type=int, default=None, help="override the architecture width (small = quick CPU run)")
    p.add_argument("--langevin-steps", type=int, default=30)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    entry = get_entry(args.entry)
    if args.width:
        entry = apply_overrides(entry, [f"model.architecture.width={args.width}"])
    batch = args.batch or entry.recipe.batch_size
    device = torch.device(args.device)
    ml = {"name": "ml", "mode": "replay", "steps": args.langevin_steps, "step_size": 0.01, "buffer_size": 10 * batch}
    t_mdsm = seconds_per_step(entry, entry.recipe.objective, batch, args.steps, args.warmup, device)
    t_ml = seconds_per_step(entry, ml, batch, args.steps, args.warmup, device)
    print(f"\n{args.entry} ({entry.model.architecture}), batch {batch}, {describe(device)}")
    print("| objective | s / step | ratio to MDSM |\n|---|---|---|")
    print(f"| mdsm | {t_mdsm:.3f} | 1.00 |")
    print(f"| ml, replay, {args.langevin_steps} Langevin steps | {t_ml:.3f} | {t_ml / t_mdsm:.2f} |")
    print("paper (GPU): mdsm 0.3 s, ML with 30 Langevin steps 3 s (ratio 10)")


if __name__ == "__main__":
    main()
