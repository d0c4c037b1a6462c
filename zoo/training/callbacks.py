"""What the loop does on the side: the metrics log (JSON lines, no repeats after a resume) and sample grids."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch


class MetricsLog:
    """``metrics.jsonl``: one record per log step. A fresh run starts it empty; on resume at step s, records after s
    are dropped first (they belong to the part of the interrupted run that the resume replays)."""

    def __init__(self, path: Path, resumed_at: int, enabled: bool):
        self.path, self.enabled = path, enabled
        if enabled and path.is_file():
            keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= resumed_at]
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in keep))
            os.replace(tmp, path)

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def save_sample_grid(model, path: Path, n: int, preset: str | None, seed: int) -> torch.Tensor | None:
    """n samples from the model's sampler (``preset``) as a PNG grid, with a progress bar; returns the samples. A
    diverging chain is reported and skipped (None): it says something about the model, but must not end a long
    training run."""
    from ..data import grid_image
    from ..errors import ChainDivergedError

    try:
        with torch.autocast(model.device.type, enabled=False):
            samples = model.sample(n, preset=preset, seed=seed, progress=True)
    except ChainDivergedError as err:
        print(f"warning: no sample grid {path.name}: {err}")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(samples, model.data_range, nrow=int(math.ceil(math.sqrt(n)))).save(path)
    return samples


def checkpoint_ranking(model, real: torch.Tensor, samples: torch.Tensor | None, step: int, seed: int) -> dict:
    """The energy-ranking diagnostic (``zoo.evaluation.ranking``) of a checkpoint on a training batch and the grid's
    samples, as a metrics.jsonl record: a run shows whether real images come to rank below blank / thin ones."""
    from ..evaluation.ranking import energy_ranking

    was_training = model.net.training
    model.net.eval()
    with torch.autocast(model.device.type, enabled=False):
        ranking = energy_ranking(model.net, real.float(), model.data_range, samples,
                                 torch.Generator().manual_seed(seed))
    model.net.train(was_training)
    return {"step": step, "ranking": {k: round(v, 4) for k, v in ranking.items()}}
