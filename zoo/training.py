"""The shared Accelerate training loop behind every recipe in ``recipes/``.

Recipes are thin: ``recipes/mdsm.py`` calls ``main("mdsm")``. Hyper-parameters come from the entry
(``recipe`` block), overridable by flags or ``--set dotted.key=value``. Determinism: the data order
and the noise of every step are drawn from generators seeded by (seed, step, rank), so a resumed run
replays exactly the batches and noise an uninterrupted run would have seen.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from .data import dataset_name, load_tensor, random_hflip
from .hub import push_folder_to_hub
from .model import EnergyModel
from .objectives import build_objective
from .registry import entry_config, get_entry

CHECKPOINT_PREFIX = "step_"


def parse_args(family: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"Train a zoo entry of the {family!r} family with Accelerate.")
    p.add_argument("--entry", required=True, help="registry entry, e.g. mdsm-mnist")
    p.add_argument("--output-dir", default=None, help="default: runs/<entry>")
    p.add_argument("--data-dir", default=None, help="local dataset mirror (Hub repo layout); default $ZOO_DATA_DIR or the Hub")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer updates (default: the entry's)")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size (default: the entry's)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--keep-checkpoints", type=int, default=2)
    p.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
    p.add_argument("--mixed-precision", default=None, choices=["no", "fp16", "bf16"],
                   help="default: accelerate config; bf16 recommended (fp16 can underflow grad E)")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay (timm ModelEmaV3); 0 = off. Export uses EMA weights if on")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster convs on GPU)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop early (checkpoint + export) once this much wall time has passed")
    p.add_argument("--init-from", default=None, metavar="PATH_OR_REPO",
                   help="start from these weights (a Hub-layout folder or repo id) instead of random init")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--grid-preset", default=None, help="sampler preset for the sample grid at each checkpoint (default: the entry's sampler)")
    p.add_argument("--grid-n", type=int, default=64, help="samples in the grid at each checkpoint (0 = none)")
    p.add_argument("--limit-data", type=int, default=None, help="use only the first N training images")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an entry field, e.g. --set model.architecture.width=8 (value parsed as YAML)")
    p.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="upload the export with huggingface_hub")
    args = p.parse_args(argv)
    args.family = family
    args.command = " ".join(["accelerate launch", f"recipes/{family}.py",
                             *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))])
    return args


def apply_overrides(entry: dict, overrides: list[str]) -> dict:
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        node, *path = key.split(".")
        target = entry
        for part in [node, *path][:-1]:
            if not isinstance(target.get(part), dict):
                raise SystemExit(f"--set {key}: {part!r} is not a section of the entry")
            target = target[part]
        target[key.split(".")[-1]] = yaml.safe_load(value)
    return entry


class BatchOrder:
    """Global batch for update ``step`` from a per-epoch permutation seeded by (seed, epoch)."""

    def __init__(self, n: int, batch: int, seed: int):
        if n < batch:
            raise ValueError(f"the dataset has {n} images, fewer than one batch of {batch}")
        self.n, self.batch, self.seed = n, batch, seed
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.n // self.batch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        return self._perm[i * self.batch:(i + 1) * self.batch]


def checkpoints(folder: Path) -> list[Path]:
    found = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(accelerator, folder: Path, step: int, keep: int) -> Path:
    """accelerator.save_state into a temp folder, renamed into place once complete (atomic)."""
    final = folder / f"{CHECKPOINT_PREFIX}{step:08d}"
    tmp = folder / f".tmp_{CHECKPOINT_PREFIX}{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoints(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _hardware(accelerator) -> str:
    if accelerator.device.type == "cuda":
        return f"{accelerator.num_processes} x {torch.cuda.get_device_name(accelerator.device)}"
    return f"{accelerator.num_processes} process(es) on CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def training_card(entry: dict, command: str, stats: dict) -> str:
    """A model card (HF YAML front matter) recording how these weights were produced."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in stats.items())
    return (
        f"---\nlibrary_name: ebm-zoo\nlicense: mit\ntags:\n- energy-based-model\n- {entry['family']}\n"
        f"datasets:\n- {dataset_name(entry['data'])}\n---\n\n# {entry['name']}\n\n{entry['description']}\n\n"
        f"Paper: {entry['paper']}\n\n## Training\n\n```bash\n{command}\n```\n\n| | |\n|---|---|\n{rows}\n"
    )


def train(args: argparse.Namespace) -> Path:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from timm.utils import ModelEmaV3
    from torchvision.utils import save_image

    entry = apply_overrides(get_entry(args.entry), args.overrides)
    if entry["family"] != args.family:
        raise SystemExit(f"entry {args.entry!r} is a {entry['family']!r} model; use recipes/{entry['family']}.py")
    recipe = entry["recipe"]
    max_steps = args.max_steps or recipe["max_steps"]
    global_batch = args.batch_size or recipe["batch_size"]
    lr = args.lr or recipe["optimizer"]["lr"]
    ckpt_every = args.checkpoint_every or recipe["checkpoint_every"]
    out = Path(args.output_dir or Path("runs") / entry["name"])
    ckpt_dir = out / "checkpoints"

    accelerator = Accelerator(mixed_precision=args.mixed_precision, gradient_accumulation_steps=args.grad_accum)
    world, rank = accelerator.num_processes, accelerator.process_index
    micro_batch = global_batch // (world * args.grad_accum)
    if micro_batch * world * args.grad_accum != global_batch:
        raise SystemExit(f"batch {global_batch} is not divisible by processes x grad-accum = {world * args.grad_accum}")
    set_seed(args.seed)
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    with accelerator.main_process_first():
        data = load_tensor(entry, "train", args.data_dir, limit=args.limit_data)
    data = data.to(accelerator.device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

    config = entry_config(entry)
    model = EnergyModel(config)
    if args.init_from:
        model.net.load_state_dict(EnergyModel.from_pretrained(args.init_from).net.state_dict(), strict=True)
    net = model.net.to(accelerator.device, memory_format=memory_format)
    opt_cfg = recipe["optimizer"]
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, betas=tuple(opt_cfg.get("betas", (0.9, 0.999))),
                                 fused=accelerator.device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_steps, eta_min=recipe.get("lr_min", 0.0))
    net, optimizer, scheduler = accelerator.prepare(net, optimizer, scheduler)
    ema = None
    if args.ema > 0:
        ema = ModelEmaV3(accelerator.unwrap_model(net), decay=args.ema)
        accelerator.register_for_checkpointing(ema)
    objective = build_objective(recipe["objective"], config["sigma0"])

    step = 0
    if args.resume:
        found = checkpoints(ckpt_dir) if args.resume == "latest" else [Path(args.resume)]
        if found:
            accelerator.load_state(str(found[-1]))
            step = json.loads((found[-1] / "trainer_state.json").read_text())["step"]
            accelerator.print(f"resumed from {found[-1]} at step {step}")
        else:
            accelerator.print(f"--resume {args.resume}: no checkpoint in {ckpt_dir}, starting from scratch")

    order = BatchOrder(len(data), global_batch, args.seed)
    log_file = out / "metrics.jsonl"
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    start, first_step, last_logs = time.time(), step, {}
    bar = tqdm(total=max_steps, initial=step, desc=entry["name"], disable=not accelerator.is_local_main_process)
    net.train()
    while step < max_steps:
        batch_idx = order(step)
        for j in range(args.grad_accum):
            micro = (step * args.grad_accum + j) * world + rank
            idx = batch_idx[(j * world + rank) * micro_batch:(j * world + rank + 1) * micro_batch]
            gen = torch.Generator(accelerator.device).manual_seed(args.seed * 1_000_003 + micro)
            x = data[idx.to(data.device)]
            if entry["data"].get("hflip"):
                x = random_hflip(x, gen)
            x = x.contiguous(memory_format=memory_format)
            with accelerator.accumulate(net), accelerator.autocast():
                result = objective(net, x, gen)
                accelerator.backward(result.loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        step += 1
        if ema is not None:
            ema.update(accelerator.unwrap_model(net), step=step)
        bar.update(1)
        if step % args.log_every == 0 or step == max_steps:
            with torch.no_grad():
                unwrapped = accelerator.unwrap_model(net)
                noise = 0.5 + torch.randn(x.shape, generator=gen, device=x.device)
                e_data, e_noise = unwrapped(x).mean(), unwrapped(noise).mean()
            logs = {k: accelerator.reduce(v.float(), "mean").item() for k, v in result.logs.items()}
            logs.update(step=step, lr=scheduler.get_last_lr()[0], E_data=e_data.item(), E_noise=e_noise.item(),
                        steps_per_s=(step - first_step) / (time.time() - start))
            last_logs = logs
            bar.set_postfix(loss=f"{logs['loss']:.4g}", E_data=f"{logs['E_data']:.3g}", E_noise=f"{logs['E_noise']:.3g}")
            if accelerator.is_main_process:
                with open(log_file, "a") as f:
                    f.write(json.dumps(logs) + "\n")
            if not math.isfinite(logs["loss"]):
                raise FloatingPointError(f"loss became {logs['loss']} at step {step}")
        out_of_time = args.time_limit is not None and accelerator.gather(
            torch.tensor([time.time() - start > args.time_limit], device=accelerator.device)).any().item()
        if out_of_time:
            accelerator.print(f"--time-limit {args.time_limit:.0f}s reached at step {step} of {max_steps}: stopping")
        if step % ckpt_every == 0 or step == max_steps or out_of_time:
            save_checkpoint(accelerator, ckpt_dir, step, args.keep_checkpoints)
            if accelerator.is_main_process and args.grid_n > 0 and len(config["input_shape"]) == 3:
                grid_model = EnergyModel(config, (ema.module if ema is not None else accelerator.unwrap_model(net)))
                with torch.autocast(accelerator.device.type, enabled=False):
                    samples = grid_model.sample(args.grid_n, preset=args.grid_preset, seed=args.seed, progress=False)
                (out / "samples").mkdir(exist_ok=True)
                lo, hi = config["data_range"]
                save_image(((samples.float() - lo) / (hi - lo)).clamp(0, 1), out / "samples" / f"step_{step:08d}.png",
                           nrow=int(math.sqrt(args.grid_n)))
        if out_of_time:
            break
    bar.close()
    wall = time.time() - start
    # every process must hold the same weights after DDP training
    checksum = torch.stack([p.detach().double().sum() for p in accelerator.unwrap_model(net).parameters()]).sum()
    checksums = accelerator.gather(checksum.reshape(1)).tolist()

    export = out / "export"
    if accelerator.is_main_process:
        final_net = ema.module if ema is not None else accelerator.unwrap_model(net)
        stats = {"steps": step, "planned steps (cosine schedule length)": max_steps, "steps this run": step - first_step, "wall time this run (s)": f"{wall:.0f}",
                 "hardware": _hardware(accelerator), "processes": world,
                 "parameter checksum per process": checksums, "global batch": global_batch, "mixed precision": accelerator.mixed_precision,
                 "EMA decay": args.ema or "off", "initialised from": args.init_from or "random init", "final normalised loss": f"{last_logs.get('loss', float('nan')):.5g}",
                 "final E(data) / E(noise)": f"{last_logs.get('E_data', float('nan')):.4g} / {last_logs.get('E_noise', float('nan')):.4g}"}
        final_model = EnergyModel(config, final_net.float())
        final_model.save_pretrained(export, card=training_card(entry, args.command, stats))
        (out / "train_stats.json").write_text(json.dumps(stats, indent=2))
        accelerator.print(f"exported {export}")
        if args.push_to_hub:
            accelerator.print(f"pushed: {push_folder_to_hub(export, args.push_to_hub)}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return export


def main(family: str, argv: list[str] | None = None) -> Path:
    return train(parse_args(family, argv))
