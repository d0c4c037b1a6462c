"""The machine a number was measured on, in words: what results files, training stats and benchmarks record."""
from __future__ import annotations

import os
import platform

import torch


def describe(device: torch.device) -> str:
    """The GPU's name, or the CPU's architecture with its cores and torch's threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return (f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} threads)")
