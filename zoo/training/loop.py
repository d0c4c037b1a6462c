"""The one training loop behind every recipe (``recipes/<family>.py`` call ``main(family)``).

Determinism: the data order and the noise of every step come from generators seeded by (seed, step, rank), so a
resumed run replays exactly the batches and noise an uninterrupted run would have seen; optimizer, scheduler, EMA
and objective state are restored from the checkpoint.
"""
from __future__ import annotations

import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data import load_tensor, random_hflip
from ..errors import ConfigError, TrainingDivergedError, ZooError
from ..model import EnergyModel
from ..objectives import ObjectiveContext, build_objective
from .args import parse_args, run_settings
from .callbacks import MetricsLog, checkpoint_ranking, save_sample_grid
from .checkpoint import check_finite, check_settings, find_resume, lock_run_folder, save_checkpoint
from .export import export_run
from .state import read_state


class BatchOrder:
    """Global batch for update ``step`` from a per-epoch permutation seeded by (seed, epoch)."""

    def __init__(self, n: int, batch: int, seed: int):
        if n < batch:
            raise ZooError(f"the dataset has {n} images, fewer than one batch of {batch}")
        self.n, self.batch, self.seed = n, batch, seed
        self._epoch, self._perm = -1, None

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.n // self.batch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        return self._perm[i * self.batch:(i + 1) * self.batch]


def _hardware(accelerator) -> str:
    if accelerator.device.type == "cuda":
        return f"{accelerator.num_processes} x {torch.cuda.get_device_name(accelerator.device)}"
    return f"{accelerator.num_processes} process(es) on CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _build_optimizer(net, objective, args, accelerator):
    """timm's create_optimizer_v2 with the entry's optimizer name and options (over the network and the objective's
    own parameters, e.g. NCE's log Z); timm's cosine schedule per update."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    spec = args.entry_spec.recipe.optimizer
    extra = {"betas": tuple(spec.betas)} if spec.betas else {}
    if accelerator.device.type == "cuda" and spec.name in ("adam", "adamw"):
        extra["fused"] = True
    try:
        trained = torch.nn.ModuleDict({"net": net, "objective": objective}) if _own_parameters(objective) else net
        optimizer = create_optimizer_v2(trained, opt=spec.name, lr=args.lr, weight_decay=spec.weight_decay, **extra)
    except (ValueError, AssertionError, TypeError) as err:
        raise ZooError(f"recipe.optimizer {spec}: {err}") from None
    scheduler = CosineLRScheduler(optimizer, t_initial=args.max_steps, lr_min=args.entry_spec.recipe.lr_min,
                                  warmup_t=args.lr_warmup, warmup_lr_init=args.lr / 100, t_in_epochs=False)
    return optimizer, scheduler


def _own_parameters(objective) -> list:
    return list(objective.parameters()) if isinstance(objective, torch.nn.Module) else []


def train_step(net, optimizer, objective, data, batch_idx, args, step, accelerator, micro_batch, memory_format,
               labels=None):
    """One optimizer update (``grad_accum`` micro-batches per process); returns the last result and its generator.
    ``labels``: the training set's class labels, for objectives that need them."""
    world, rank = accelerator.num_processes, accelerator.process_index
    for j in range(args.grad_accum):
        part = j * world + rank
        micro = (step * args.grad_accum + j) * world + rank
        idx = batch_idx[part * micro_batch:(part + 1) * micro_batch]
        gen = torch.Generator(accelerator.device).manual_seed(args.seed * 1_000_003 + micro)
        x = data[idx.to(data.device)]
        if args.entry_spec.data.hflip:
            x = random_hflip(x, gen)
        x = x.contiguous(memory_format=memory_format)
        ctx = ObjectiveContext(step=step, generator=gen, unwrapped=accelerator.unwrap_model(net),
                               sigma0=args.entry_spec.model.sigma0,
                               labels=labels[idx.to(labels.device)] if labels is not None else None)
        with accelerator.accumulate(net), accelerator.autocast():
            result = objective(net, x, ctx)
            accelerator.backward(result.loss)
            if world > 1:  # DDP syncs the network's gradients; the objective's own parameters are synced here
                for p in _own_parameters(objective):
                    p.grad = accelerator.reduce(p.grad, "mean")
            if args.entry_spec.recipe.grad_clip:
                accelerator.clip_grad_norm_(net.parameters(), args.entry_spec.recipe.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return result, x, gen


def _log_step(accelerator, net, optimizer, result, x, gen, bad_loss_step, step: int, steps_per_s: float) -> dict:
    """At a log step: stop on a non-finite loss or weights (naming the step), then the logged record (the objective's
    logs averaged over processes, E of the last batch and of noise)."""
    if int(bad_loss_step.item()) >= 0:
        raise TrainingDivergedError(f"training diverged: the loss became non-finite at step {int(bad_loss_step)}; "
                                    f"nothing after the last good checkpoint was saved. Lower --lr.")
    unwrapped = accelerator.unwrap_model(net)
    check_finite(unwrapped, step)
    was_training = unwrapped.training
    unwrapped.eval()  # no BatchNorm statistics from the noise batch
    with torch.no_grad():
        noise = 0.5 + torch.randn(x.shape, generator=gen, device=x.device)
        e_data, e_noise = unwrapped(x).mean(), unwrapped(noise).mean()
    unwrapped.train(was_training)
    logs = {k: accelerator.reduce(v.float(), "mean").item() for k, v in result.logs.items()}
    logs.update(step=step, lr=optimizer.param_groups[0]["lr"], E_data=e_data.item(), E_noise=e_noise.item(),
                steps_per_s=steps_per_s)
    return logs


def _export(accelerator, final_net, args, out: Path, step: int, first_step: int, wall: float, last_logs: dict) -> Path:
    """The run's stats (with a per-process parameter checksum: DDP must keep them equal) and the export."""
    checksum = torch.stack([p.detach().double().sum() for p in final_net.parameters()]).sum()
    checksums = accelerator.gather(checksum.reshape(1).to(accelerator.device)).tolist()
    if accelerator.is_main_process:
        stats = {"steps": step, "planned steps (cosine schedule length)": args.max_steps,
                 "steps this run": step - first_step, "wall time this run (s)": f"{wall:.0f}",
                 "hardware": _hardware(accelerator), "processes": accelerator.num_processes,
                 "parameter checksum per process": checksums, "global batch": args.batch_size,
                 "mixed precision": accelerator.mixed_precision, "EMA decay": args.ema or "off",
                 "initialised from": args.init_from or "random init"}
        if last_logs:
            stats["final normalised loss"] = f"{last_logs['loss']:.5g}"
            stats["final E(data) / E(noise)"] = f"{last_logs['E_data']:.4g} / {last_logs['E_noise']:.4g}"
        export_run(final_net, args, stats, out)
        accelerator.print(f"exported {out / 'export'}")
    return out / "export"


def _prepare(accelerator, args):
    """Data on the device, the network (random or --init-from), optimizer + schedule, objective and EMA, all
    registered for checkpointing in a fixed order."""
    from timm.utils import ModelEmaV3

    entry = args.entry_spec
    objective = build_objective(entry.recipe.objective, entry.model.sigma0)
    with accelerator.main_process_first():
        loaded = load_tensor(entry, "train", args.data_dir, limit=args.limit_data, labels=objective.needs_labels)
    data, labels = loaded if objective.needs_labels else (loaded, None)
    data, labels = data.to(accelerator.device), labels.to(accelerator.device) if labels is not None else None
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = EnergyModel(entry.config_json(), sampler_config=entry.sampler_config_json())
    if args.init_from:
        source = EnergyModel.from_pretrained(args.init_from)
        if source.config["architecture"] != model.config["architecture"]:
            raise ConfigError(f"--init-from {args.init_from}: its architecture {source.config['architecture']} is not "
                              f"this entry's {model.config['architecture']}")
        model.net.load_state_dict(source.net.state_dict(), strict=True)
    net = model.net.to(accelerator.device, memory_format=memory_format)
    objective = objective.to(accelerator.device) if _own_parameters(objective) else objective
    optimizer, scheduler = _build_optimizer(net, objective, args, accelerator)
    net, optimizer = accelerator.prepare(net, optimizer)
    ema = ModelEmaV3(accelerator.unwrap_model(net), decay=args.ema) if args.ema > 0 else None
    return data, labels, net, optimizer, scheduler, objective, ema, memory_format


def train(args) -> Path:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    entry = args.entry_spec
    out = Path(args.output_dir or Path("runs") / entry.name)
    ckpt_dir = out / "checkpoints"
    accelerator = Accelerator(mixed_precision=args.mixed_precision, gradient_accumulation_steps=args.grad_accum)
    world = accelerator.num_processes
    micro_batch = args.batch_size // (world * args.grad_accum)
    if micro_batch * world * args.grad_accum != args.batch_size:
        raise ZooError(f"batch {args.batch_size} is not divisible by processes x grad-accum = {world * args.grad_accum}")
    set_seed(args.seed)
    # DDP compares each grad's strides with its bucket's; double backprop gives the head's [1, F] weight grads strides
    # (1, 1) instead of (F, 1): the same memory layout (a size-1 dim), so the warning is a false alarm here.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    settings = run_settings(args)
    resume_from = find_resume(args.resume, ckpt_dir)
    step = check_settings(resume_from, settings) if resume_from else 0
    if resume_from and step >= args.max_steps:
        accelerator.print(f"{resume_from} is already at step {step} of {args.max_steps}: nothing to train; the export "
                          f"in {out / 'export'} is left as it is.")
        return out / "export"

    data, labels, net, optimizer, scheduler, objective, ema, memory_format = _prepare(accelerator, args)
    # the run folder is written from here on: one writer at a time (released at return, on an error, on kill -9)
    lock = lock_run_folder(out) if accelerator.is_main_process else None
    # the checkpointed state (zoo.training.state: safetensors + JSON, never unpickled)
    parts = {"model": accelerator.unwrap_model(net), "ema": ema, "optimizer": optimizer, "scheduler": scheduler,
             "objective": objective, "scaler": accelerator.scaler}
    if resume_from:
        read_state(resume_from, parts, accelerator.device)
        accelerator.print(f"resumed from {resume_from} at step {step}")
    log = MetricsLog(out / "metrics.jsonl", step, accelerator.is_main_process)
    ranking_log = MetricsLog(out / "ranking.jsonl", step, accelerator.is_main_process)  # per checkpoint

    grid_n = args.grid_n if args.grid_n is not None else (64 if accelerator.device.type == "cuda" else 16)
    grid_n = grid_n if entry.recipe.sample_grid else 0
    order = BatchOrder(len(data), args.batch_size, args.seed)
    start, first_step, last_logs = time.time(), step, {}
    bad_loss_step = torch.full((), -1, dtype=torch.long, device=accelerator.device)
    bar = tqdm(total=args.max_steps, initial=step, desc=entry.name, disable=not accelerator.is_local_main_process)
    net.train()
    while step < args.max_steps:
        scheduler.step_update(step)
        result, x, gen = train_step(net, optimizer, objective, data, order(step), args, step, accelerator, micro_batch,
                                    memory_format, labels)
        bad = ~torch.isfinite(result.loss.detach())
        bad_loss_step = torch.where(bad & (bad_loss_step < 0), step + 1, bad_loss_step)
        step += 1
        if ema is not None:
            ema.update(accelerator.unwrap_model(net), step=step)
        bar.update(1)
        out_of_time = args.time_limit is not None and accelerator.gather(
            torch.tensor([time.time() - start > args.time_limit], device=accelerator.device)).any().item()
        checkpoint_now = step % args.checkpoint_every == 0 or step == args.max_steps or out_of_time
        if step % args.log_every == 0 or checkpoint_now:
            last_logs = _log_step(accelerator, net, optimizer, result, x, gen, bad_loss_step, step,
                                  (step - first_step) / (time.time() - start))
            bar.set_postfix(loss=f"{last_logs['loss']:.4g}", E_data=f"{last_logs['E_data']:.3g}")
            log.write(last_logs)
        if out_of_time:
            accelerator.print(f"--time-limit {args.time_limit:.0f}s reached at step {step} of {args.max_steps}: stopping")
        if checkpoint_now:
            if ema is not None:
                check_finite(ema.module, step)
            save_checkpoint(accelerator, ckpt_dir, step, args.keep_checkpoints, settings, parts)
            if accelerator.is_main_process and grid_n > 0 and len(entry.model.input_shape) == 3:
                grid_net = ema.module if ema is not None else accelerator.unwrap_model(net)
                grid_model = EnergyModel(entry.config_json(), grid_net, entry.sampler_config_json())
                samples = save_sample_grid(grid_model, out / "samples" / f"step_{step:08d}.png", grid_n,
                                           args.grid_preset, args.seed)
                ranking_log.write(checkpoint_ranking(grid_model, x, samples, step, args.seed))
        if out_of_time:
            break
    bar.close()
    final_net = ema.module if ema is not None else accelerator.unwrap_model(net)
    export = _export(accelerator, final_net, args, out, step, first_step, time.time() - start, last_logs)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if lock is not None:
        lock.close()
    return export


def main(family: str, argv: list[str] | None = None) -> Path:
    """Entry point of ``recipes/<family>.py``: user errors end with one line and exit status 2."""
    try:
        return train(parse_args(family, argv))
    except ZooError as err:
        if argv is not None:  # called from Python (tests): let the caller see the exception
            raise
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
