"""The recipe's command line -> the typed ``RunConfig`` of a run: every flag parsed and validated before step 1, the
entry with ``--set`` overrides re-validated through the schema (so a misspelt key is rejected, not ignored), and the
entry's recipe filling what the flags leave open."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..argtypes import OneLineParser, non_negative_float, non_negative_int, number, positive_float, positive_int
from ..errors import ConfigError
from ..registry import get_entry
from ..schema import Entry, parse_entry


_decay = number(float, 0, strict=False, below=1)


def build_parser(family: str) -> argparse.ArgumentParser:
    p = OneLineParser(
        description=f"Train a zoo entry of the {family!r} family with Accelerate.",
        epilog=f"example: accelerate launch recipes/{family}.py --entry <entry> --data-dir ../shared/datasets")
    p.add_argument("--entry", required=True, help="registry entry (see `zoo list`)")
    p.add_argument("--output-dir", default=None, help="default: runs/<entry>")
    p.add_argument("--data-dir", default=None, help="local dataset mirror (Hub repo layout); default $ZOO_DATA_DIR or the Hub")
    p.add_argument("--max-steps", type=positive_int, default=None, help="optimizer updates = cosine length (default: the entry's)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="global batch size (default: the entry's)")
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (default: the entry's)")
    p.add_argument("--checkpoint-every", type=positive_int, default=None)
    p.add_argument("--keep-checkpoints", type=positive_int, default=2)
    p.add_argument("--resume", default=None, help="'latest' or a checkpoint folder; the run's settings must match")
    p.add_argument("--mixed-precision", default=None, choices=["no", "fp16", "bf16"],
                   help="default: accelerate config; bf16 recommended (fp16 can underflow grad E)")
    p.add_argument("--grad-accum", type=positive_int, default=1)
    p.add_argument("--ema", type=_decay, default=None,
                   help="EMA decay in [0, 1) (timm ModelEmaV3); 0 = off; default: the entry's recipe.ema. Export uses EMA weights if on")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster convs on GPU)")
    p.add_argument("--time-limit", type=non_negative_float, default=None, metavar="SECONDS",
                   help="stop early (checkpoint + export) once this much wall time has passed")
    p.add_argument("--init-from", default=None, metavar="PATH_OR_REPO",
                   help="start from these weights (a Hub-layout folder or repo id) instead of random init")
    p.add_argument("--lr-warmup", type=non_negative_int, default=0, metavar="STEPS",
                   help="linear LR warm-up from lr/100 over this many updates (e.g. a warm start: fresh optimizer on "
                        "trained weights); default 0")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--log-every", type=positive_int, default=100)
    p.add_argument("--grid-preset", default=None, help="sampler preset of the sample grid at each checkpoint "
                   "(default: the entry's recipe.grid_preset)")
    p.add_argument("--grid-n", type=non_negative_int, default=None,
                   help="samples in the grid at each checkpoint (0 = none; default 64 on a GPU, 16 on a CPU)")
    p.add_argument("--limit-data", type=positive_int, default=None, help="use only the first N training images")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an entry field, e.g. --set model.architecture.width=8 (value parsed as YAML)")
    p.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="upload the export with huggingface_hub")
    return p


def apply_overrides(entry: Entry, overrides: list[str]) -> Entry:
    """``--set a.b.c=value`` on the entry's mapping, then re-validated as a whole (unknown keys are rejected).
    ``--set recipe.objective.name=X`` switches objective and drops the previous objective's options."""
    raw = entry.to_dict()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        *path, last = key.split(".")
        target = raw
        for part in path:
            if not isinstance(target.get(part), dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section of the entry")
            target = target[part]
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {key}: the value {value!r} is not valid YAML: {err}") from None
        if key == "recipe.objective.name" and parsed != target.get("name"):
            target.clear()  # another objective: the old one's options do not apply (set its own after this)
        target[last] = parsed
    return parse_entry(raw, f"{entry.source} with --set") if overrides else entry


def launch_command(family: str, argv: list[str]) -> str:
    """The command as the user ran it: `accelerate launch ...` under accelerate/torchrun, else `python ...`."""
    launched = "ACCELERATE_MIXED_PRECISION" in os.environ or "LOCAL_RANK" in os.environ
    prefix = "accelerate launch" if launched else "python"
    return " ".join([prefix, f"recipes/{family}.py", *(shlex.quote(a) for a in argv)])


@dataclass(frozen=True)
class RunConfig:
    """One training run: the entry (with overrides) and every setting, resolved from the flags and the entry's recipe."""

    family: str
    entry: Entry
    command: str  # the command as the user ran it (for the card)
    output_dir: Path
    data_dir: str | None
    max_steps: int  # optimizer updates = the cosine schedule's length
    batch_size: int  # global
    lr: float
    lr_warmup: int
    grad_accum: int
    ema: float  # 0 = off
    seed: int
    checkpoint_every: int
    keep_checkpoints: int
    log_every: int
    resume: str | None
    time_limit: float | None
    init_from: str | None
    mixed_precision: str | None
    channels_last: bool
    grid_preset: str | None
    grid_n: int | None  # None: 64 on a GPU, 16 on a CPU
    limit_data: int | None
    push_to_hub: str | None

    def settings(self) -> dict:
        """What a checkpoint must agree on to be resumed (stored with it, compared on --resume)."""
        e = self.entry
        return {"config": e.config_json(), "objective": e.recipe.objective,
                "optimizer": dataclasses.asdict(e.recipe.optimizer), "lr": self.lr, "lr_min": e.recipe.lr_min,
                "lr_warmup": self.lr_warmup, "max_steps": self.max_steps, "batch_size": self.batch_size,
                "grad_accum": self.grad_accum, "seed": self.seed, "ema": self.ema, "data": dataclasses.asdict(e.data),
                "limit_data": self.limit_data}


def parse_args(family: str, argv: list[str] | None = None) -> RunConfig:
    """Parse and validate every flag into the run's config (the entry with its overrides applied)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(family).parse_args(argv)
    entry = apply_overrides(get_entry(args.entry), args.overrides)
    if entry.family != family:
        raise ConfigError(f"entry {args.entry!r} is a {entry.family!r} model; use recipes/{entry.family}.py")
    recipe = entry.recipe
    grid_preset = args.grid_preset or recipe.grid_preset
    presets = entry.sampler.presets
    if grid_preset is not None and grid_preset not in presets:
        raise ConfigError(f"--grid-preset {grid_preset!r} is not a sampler preset of {entry.name} ({sorted(presets)})")
    if args.push_to_hub:
        from ..hub import check_repo_id

        check_repo_id(args.push_to_hub)
    return RunConfig(
        family=family, entry=entry, command=launch_command(family, argv),
        output_dir=Path(args.output_dir or Path("runs") / entry.name), data_dir=args.data_dir,
        max_steps=args.max_steps or recipe.max_steps, batch_size=args.batch_size or recipe.batch_size,
        lr=args.lr or recipe.optimizer.lr, lr_warmup=args.lr_warmup, grad_accum=args.grad_accum,
        ema=recipe.ema if args.ema is None else args.ema, seed=args.seed,
        checkpoint_every=args.checkpoint_every or recipe.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every, resume=args.resume, time_limit=args.time_limit, init_from=args.init_from,
        mixed_precision=args.mixed_precision, channels_last=args.channels_last, grid_preset=grid_preset,
        grid_n=args.grid_n if recipe.sample_grid else 0, limit_data=args.limit_data, push_to_hub=args.push_to_hub)
