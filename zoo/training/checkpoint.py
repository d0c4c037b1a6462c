"""Checkpoints: written atomically (temp folder renamed into place), never with non-finite weights, with the
run's settings beside them so that a resume refuses a run that differs and says how."""
from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import torch

from ..errors import ConfigError, TrainingDivergedError, ZooError
from .state import write_state

PREFIX = "step_"
SETTINGS = "run_settings.json"


def checkpoints(folder: Path) -> list[Path]:
    found = [p for p in folder.glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def check_finite(module: torch.nn.Module, step: int) -> None:
    """Raise TrainingDivergedError if any parameter or buffer is NaN/inf (one host sync)."""
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    if tensors and not torch.stack([torch.isfinite(t).all() for t in tensors]).all():
        bad = [n for n, t in (*module.named_parameters(), *module.named_buffers())
               if t.is_floating_point() and not torch.isfinite(t).all()]
        raise TrainingDivergedError(
            f"training diverged: non-finite weights at step {step} ({', '.join(bad[:4])}...). Nothing was saved at "
            f"this step; the last good checkpoint is kept. Lower --lr or try --mixed-precision no.")


def save_checkpoint(accelerator, folder: Path, step: int, keep: int, settings: dict, parts: dict) -> Path:
    """The training state (``zoo.training.state``: safetensors + JSON, of ``parts``) into a temp folder, renamed into
    place once complete; a full disk says so and leaves nothing half-written."""
    final, tmp = folder / f"{PREFIX}{step:08d}", folder / f".tmp_{PREFIX}{step:08d}"
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        if accelerator.is_main_process:
            write_state(tmp, parts, step)
            (tmp / "trainer_state.json").write_text(json.dumps({"step": step}))
            (tmp / SETTINGS).write_text(json.dumps(settings, indent=1, sort_keys=True))
    except (OSError, RuntimeError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        free = shutil.disk_usage(folder).free
        full = getattr(err, "errno", None) == errno.ENOSPC or "unexpected pos" in str(err) or free < (64 << 20)
        reason = f"the disk is full ({free / 2**20:.0f} MiB free in {folder})" if full else f"{type(err).__name__}: {err}"
        raise ZooError(f"could not write the checkpoint of step {step}: {reason}. The partial checkpoint was removed; "
                       f"earlier checkpoints are intact.") from err
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in checkpoints(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def lock_run_folder(folder: Path):
    """Hold ``folder/.lock`` (an exclusive flock, released when the returned file is closed or the process dies, also
    by kill -9) so that a second run into the same folder stops with the holder named instead of mixing checkpoints
    and logs."""
    import fcntl
    import os
    import socket
    import time

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--output-dir {folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ZooError(f"{folder} is in use by another training run ({holder}); wait for it to finish or use another "
                       f"--output-dir") from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    return handle


def find_resume(resume: str | None, folder: Path) -> Path | None:
    if resume is None:
        return None
    if resume == "latest":
        found = checkpoints(folder)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(f"--resume {resume}: not a checkpoint folder (no trainer_state.json)")
    return path


def check_settings(checkpoint: Path, settings: dict) -> int:
    """The checkpoint's step, after checking it was made by a run with the same settings (a checkpoint without its
    settings file is refused)."""
    saved_file = checkpoint / SETTINGS
    if not saved_file.is_file():
        raise ConfigError(f"cannot resume from {checkpoint}: {SETTINGS} is missing, so the run's settings cannot be "
                          f"checked")
    saved = json.loads(saved_file.read_text())
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {settings.get(k)!r}"
            for k in sorted(set(saved) | set(settings)) if saved.get(k) != settings.get(k)]
    if diff:
        hint = (" A longer run is a new cosine cycle: --init-from <the export> --max-steps N into a new --output-dir."
                if any(d.startswith("max_steps") for d in diff) else
                " Use a new --output-dir for a different run.")
        raise ConfigError(f"cannot resume from {checkpoint}: the run's settings differ: " + "; ".join(diff) + "." + hint)
    return json.loads((checkpoint / "trainer_state.json").read_text())["step"]
