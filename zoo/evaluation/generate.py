"""Many samples: micro-batched chains, split across processes/devices with accelerate (``accelerate launch -m zoo.cli
eval ...``), a time estimate printed after the first micro-batch, a progress bar over micro-batches."""
from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm


def generate(model, n: int, batch_size: int = 64, seed: int = 0, progress: bool = True, **sample_kwargs) -> torch.Tensor:
    """n samples on CPU, in micro-batches of ``batch_size`` chains; under accelerate each process draws its share
    (seeded by seed + 1000 * rank + batch index) and all processes get the gathered set, in rank order."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    state = PartialState()
    with state.split_between_processes(list(range(n))) as mine:
        count = len(mine)
    sizes = [min(batch_size, count - i) for i in range(0, count, batch_size)]
    parts, start = [], time.time()
    bar = tqdm(total=count, desc=f"sampling (rank {state.process_index})", disable=not progress, leave=False)
    for i, b in enumerate(sizes):
        gen = torch.Generator(model.device).manual_seed(seed + 1000 * state.process_index + i)
        parts.append(model.sample(b, generator=gen, progress=False, **sample_kwargs).cpu())
        bar.update(b)
        if i == 0 and len(sizes) > 1 and progress and state.is_main_process:
            eta = (time.time() - start) * (len(sizes) - 1)
            tqdm.write(f"sampling {n} images ({len(sizes)} micro-batches of <= {batch_size} per process, "
                       f"{state.num_processes} process(es)): about {eta:.0f} s more")
    bar.close()
    mine = torch.cat(parts) if parts else torch.empty(0, *model.input_shape)
    if state.num_processes == 1:
        return mine
    return torch.cat([p for p in gather_object([mine]) if len(p)])
