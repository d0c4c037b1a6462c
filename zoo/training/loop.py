"""The one training loop behind every recipe (``recipes/<family>.py`` call ``main(family)``): a ``RunConfig`` from the
flags, a ``TrainState`` built once, and ``train_step(state, batch, ctx)`` until the run's end, with logs, checkpoints
and sample grids on the side.

Determinism: the data order and the noise of every step come from generators seeded by (seed, step, rank), so a
resumed run replays exactly the batches and noise an uninterrupted run would have seen; optimizer, scheduler, EMA
and objective state are restored from the checkpoint.
"""
from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data import load_tensor, random_hflip
from ..errors import ConfigError, TrainingDivergedError, ZooError
from ..hardware import describe
from ..model import EnergyModel
from ..objectives import ObjectiveContext, build_objective
from .args import RunConfig, parse_args
from .callbacks import MetricsLog, checkpoint_ranking, save_sample_grid
from .checkpoint import check_finite, check_settings, find_resume, lock_run_folder, save_checkpoint
from .export import export_run
from .state import Trainable, TrainState, read_state


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


@dataclass
class StepContext:
    """What every update reads and none changes: the run's config, the data on the device, the accelerator."""

    accelerator: Any
    config: RunConfig
    data: torch.Tensor
    labels: torch.Tensor | None  # the training set's class labels, for objectives that need them
    micro_batch: int  # per process and gradient-accumulation step
    memory_format: torch.memory_format


@dataclass
class StepResult:
    loss: torch.Tensor  # of the last micro-batch
    logs: dict
    x: torch.Tensor  # the last micro-batch and its generator (for the logged E(data), E(noise))
    generator: torch.Generator


def train_step(state: TrainState, batch_idx: torch.Tensor, ctx: StepContext) -> StepResult:
    """One optimizer update of ``state`` on the global batch ``batch_idx`` (``grad_accum`` micro-batches per process),
    then the EMA; ``state.step`` counts it. The noise of micro-batch m comes from a generator seeded by (seed, m)."""
    acc, config = ctx.accelerator, ctx.config
    world, rank = acc.num_processes, acc.process_index
    state.scheduler.step_update(state.step)
    for j in range(config.grad_accum):
        part = j * world + rank
        micro = (state.step * config.grad_accum + j) * world + rank
        idx = batch_idx[part * ctx.micro_batch:(part + 1) * ctx.micro_batch]
        gen = torch.Generator(acc.device).manual_seed(config.seed * 1_000_003 + micro)
        x = ctx.data[idx.to(ctx.data.device)]
        if config.entry.data.hflip:
            x = random_hflip(x, gen)
        x = x.contiguous(memory_format=ctx.memory_format)
        labels = ctx.labels[idx.to(ctx.labels.device)] if ctx.labels is not None else None
        octx = ObjectiveContext(step=state.step, generator=gen, sigma0=config.entry.model.sigma0, labels=labels)
        with acc.accumulate(state.trainable), acc.autocast():
            loss, logs = state.trainable(x, octx)
            acc.backward(loss)
            if config.entry.recipe.grad_clip:
                acc.clip_grad_norm_(state.model.net.parameters(), config.entry.recipe.grad_clip)
            state.optimizer.step()
            state.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    if state.ema is not None:
        state.ema.update(state.model.net, step=state.step)
    return StepResult(loss, logs, x, gen)


def _hardware(accelerator) -> str:
    return f"{accelerator.num_processes} process(es) x {describe(accelerator.device)}"


def _build_optimizer(trainable: torch.nn.Module, config: RunConfig, accelerator):
    """timm's create_optimizer_v2 with the entry's optimizer name and options (over the network and the objective's
    own parameters, e.g. NCE's log Z); timm's cosine schedule per update."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler

    spec = config.entry.recipe.optimizer
    extra = {"betas": tuple(spec.betas)} if spec.betas else {}
    if accelerator.device.type == "cuda" and spec.name in ("adam", "adamw"):
        extra["fused"] = True
    try:
        optimizer = create_optimizer_v2(trainable, opt=spec.name, lr=config.lr, weight_decay=spec.weight_decay, **extra)
    except (ValueError, AssertionError, TypeError) as err:
        raise ZooError(f"recipe.optimizer {spec}: {err}") from None
    scheduler = CosineLRScheduler(optimizer, t_initial=config.max_steps, lr_min=config.entry.recipe.lr_min,
                                  warmup_t=config.lr_warmup, warmup_lr_init=config.lr / 100, t_in_epochs=False)
    return optimizer, scheduler


def _log_step(state: TrainState, ctx: StepContext, result: StepResult, bad_loss_step, steps_per_s: float) -> dict:
    """At a log step: stop on a non-finite loss or weights (naming the step), then the logged record (the objective's
    logs averaged over processes, E of the last batch and of noise)."""
    if int(bad_loss_step.item()) >= 0:
        raise TrainingDivergedError(f"training diverged: the loss became non-finite at step {int(bad_loss_step)}; "
                                    f"nothing after the last good checkpoint was saved. Lower --lr.")
    net = state.model.net
    check_finite(net, state.step)
    was_training = net.training
    net.eval()  # no BatchNorm statistics from the noise batch
    with torch.no_grad():
        noise = 0.5 + torch.randn(result.x.shape, generator=result.generator, device=result.x.device)
        e_data, e_noise = net(result.x).mean(), net(noise).mean()
    net.train(was_training)
    logs = {k: ctx.accelerator.reduce(v.float(), "mean").item() for k, v in result.logs.items()}
    logs.update(step=state.step, lr=state.optimizer.param_groups[0]["lr"], E_data=e_data.item(),
                E_noise=e_noise.item(), steps_per_s=steps_per_s)
    return logs


def _export(state: TrainState, ctx: StepContext, first_step: int, wall: float, last_logs: dict) -> Path:
    """The run's stats (with a per-process checksum of the exported network's and the objective's parameters: DDP
    must keep them equal) and the export."""
    acc, config, final = ctx.accelerator, ctx.config, state.sampling_model
    own = state.objective.parameters() if isinstance(state.objective, torch.nn.Module) else []
    checksum = torch.stack([p.detach().double().sum() for p in (*final.net.parameters(), *own)]).sum()
    checksums = acc.gather(checksum.reshape(1).to(acc.device)).tolist()
    if acc.is_main_process:
        stats = {"steps": state.step, "planned steps (cosine schedule length)": config.max_steps,
                 "steps this run": state.step - first_step, "wall time this run (s)": f"{wall:.0f}",
                 "hardware": _hardware(acc), "processes": acc.num_processes,
                 "parameter checksum per process": checksums, "global batch": config.batch_size,
                 "mixed precision": acc.mixed_precision, "EMA decay": config.ema or "off",
                 "initialised from": config.init_from or "random init"}
        if last_logs:
            stats["final normalised loss"] = f"{last_logs['loss']:.5g}"
            stats["final E(data) / E(noise)"] = f"{last_logs['E_data']:.4g} / {last_logs['E_noise']:.4g}"
        export_run(final, config, stats)
        acc.print(f"exported {config.output_dir / 'export'}")
    return config.output_dir / "export"


def _prepare(accelerator, config: RunConfig) -> tuple[TrainState, StepContext]:
    """The data on the device, then the state: the model built once (random or --init-from), the network and the
    objective as one prepared module, optimizer + schedule, EMA."""
    from timm.utils import ModelEmaV3

    entry = config.entry
    objective = build_objective(entry.recipe.objective, entry.model.sigma0)
    with accelerator.main_process_first():
        loaded = load_tensor(entry, "train", config.data_dir, limit=config.limit_data, labels=objective.needs_labels)
    data, labels = loaded if objective.needs_labels else (loaded, None)
    data, labels = data.to(accelerator.device), labels.to(accelerator.device) if labels is not None else None
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = EnergyModel(entry.config_json(), sampler_config=entry.sampler_config_json())
    if config.init_from:
        source = EnergyModel.from_pretrained(config.init_from)
        if source.config["architecture"] != model.config["architecture"]:
            raise ConfigError(f"--init-from {config.init_from}: its architecture {source.config['architecture']} is "
                              f"not this entry's {model.config['architecture']}")
        model.net.load_state_dict(source.net.state_dict(), strict=True)
    model.net.to(accelerator.device, memory_format=memory_format)
    trainable = Trainable(model.net, objective).to(accelerator.device)
    optimizer, scheduler = _build_optimizer(trainable, config, accelerator)
    trainable, optimizer = accelerator.prepare(trainable, optimizer)
    ema = ModelEmaV3(model.net, decay=config.ema) if config.ema > 0 else None
    sampling_model = EnergyModel(entry.config_json(), ema.module, entry.sampler_config_json()) if ema else model
    state = TrainState(model, trainable, objective, optimizer, scheduler, ema, accelerator.scaler, sampling_model)
    world = accelerator.num_processes
    ctx = StepContext(accelerator, config, data, labels, config.batch_size // (world * config.grad_accum), memory_format)
    return state, ctx


def train(config: RunConfig) -> Path:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    entry, out = config.entry, config.output_dir
    ckpt_dir = out / "checkpoints"
    accelerator = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum)
    world = accelerator.num_processes
    if config.batch_size % (world * config.grad_accum):
        raise ZooError(f"batch {config.batch_size} is not divisible by processes x grad-accum = "
                       f"{world * config.grad_accum}")
    set_seed(config.seed)
    # DDP compares each grad's strides with its bucket's; double backprop gives the head's [1, F] weight grads strides
    # (1, 1) instead of (F, 1): the same memory layout (a size-1 dim), so the warning is a false alarm here.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    settings = config.settings()
    resume_from = find_resume(config.resume, ckpt_dir)
    step = check_settings(resume_from, settings) if resume_from else 0
    if resume_from and step >= config.max_steps:
        accelerator.print(f"{resume_from} is already at step {step} of {config.max_steps}: nothing to train; the "
                          f"export in {out / 'export'} is left as it is.")
        return out / "export"

    state, ctx = _prepare(accelerator, config)
    # the run folder is written from here on: one writer at a time (released at return, on an error, on kill -9)
    lock = lock_run_folder(out) if accelerator.is_main_process else None
    if resume_from:  # the checkpointed state (zoo.training.state: safetensors + JSON, never unpickled)
        state.step = read_state(resume_from, state.parts(), accelerator.device)
        accelerator.print(f"resumed from {resume_from} at step {state.step}")
    log = MetricsLog(out / "metrics.jsonl", state.step, accelerator.is_main_process)
    ranking_log = MetricsLog(out / "ranking.jsonl", state.step, accelerator.is_main_process)  # per checkpoint

    grid_n = config.grid_n if config.grid_n is not None else (64 if accelerator.device.type == "cuda" else 16)
    order = BatchOrder(len(ctx.data), config.batch_size, config.seed)
    start, first_step, last_logs = time.time(), state.step, {}
    bad_loss_step = torch.full((), -1, dtype=torch.long, device=accelerator.device)
    bar = tqdm(total=config.max_steps, initial=state.step, desc=entry.name,
               disable=not accelerator.is_local_main_process)
    state.trainable.train()
    while state.step < config.max_steps:
        result = train_step(state, order(state.step), ctx)
        bad = ~torch.isfinite(result.loss.detach())
        bad_loss_step = torch.where(bad & (bad_loss_step < 0), state.step, bad_loss_step)
        bar.update(1)
        out_of_time = config.time_limit is not None and accelerator.gather(
            torch.tensor([time.time() - start > config.time_limit], device=accelerator.device)).any().item()
        checkpoint_now = state.step % config.checkpoint_every == 0 or state.step == config.max_steps or out_of_time
        if state.step % config.log_every == 0 or checkpoint_now:
            last_logs = _log_step(state, ctx, result, bad_loss_step, (state.step - first_step) / (time.time() - start))
            bar.set_postfix(loss=f"{last_logs['loss']:.4g}", E_data=f"{last_logs['E_data']:.3g}")
            log.write(last_logs)
        if out_of_time:
            accelerator.print(f"--time-limit {config.time_limit:.0f}s reached at step {state.step} of "
                              f"{config.max_steps}: stopping")
        if checkpoint_now:
            if state.ema is not None:
                check_finite(state.ema.module, state.step)
            save_checkpoint(accelerator, ckpt_dir, state.step, config.keep_checkpoints, settings, state.parts())
            if accelerator.is_main_process and grid_n > 0 and len(entry.model.input_shape) == 3:
                samples = save_sample_grid(state.sampling_model, out / "samples" / f"step_{state.step:08d}.png",
                                           grid_n, config.grid_preset, config.seed)
                ranking_log.write(checkpoint_ranking(state.sampling_model, result.x, samples, state.step, config.seed))
        if out_of_time:
            break
    bar.close()
    export = _export(state, ctx, first_step, time.time() - start, last_logs)
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
