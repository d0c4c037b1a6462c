"""The optimised sampling path: the energy network under ``torch.compile`` (inductor).

Every chain step is a forward and a first-order backward (grad_x E) of the same network at a fixed shape, so the
compiled forward and its AOT-compiled backward are reused for the whole chain; the kernels, the schedule and the
random numbers are unchanged, so a seeded chain gives the eager samples up to float rounding (tested: within 1e-4
relative / 1e-5 absolute after 40 steps; ~2e-6 relative measured on mdsm-mnist-small after 20 steps). Compilation
costs seconds to a minute per network and batch shape (less from inductor's on-disk cache), so ``compile="auto"``
compiles only where that pays back: always on CUDA, on a CPU for chains of at least ``AUTO_MIN_STEPS`` steps
(``benchmarks/sample.py`` measures both paths). Samplers that call other methods of the network (the Denoising-EBM
two-stage chain: U_s, U_c) get a view of the network whose heavy submodules (``compiled_parts``: the DAE and the
semantic decoder) are compiled, while the methods around them (the per-step noise draw) stay eager. Its energies
scale float rounding by 1/(2 sigma^2) per step, so its chains drift from eager faster: 5e-3 absolute after 4 + 4 steps
(tested), more over the full 35 + 100.
A chain needs grad_x E only: ``frozen_parameters`` turns the parameters' requires_grad off for its length, so the
compiled backward is traced without the weight gradients (eager autograd prunes them anyway). ``zoo.load`` already
returns frozen parameters; this covers networks in training (checkpoint grids, a model built from a config).
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from ..errors import InputError

AUTO_MIN_STEPS = 1000  # CPU: the compiled step is ~1.1-1.3x faster; below this a one-off compile does not pay back


def should_compile(option, device: torch.device, chain_length: int) -> bool:
    """Resolve the ``compile`` switch: True, False or "auto" (see the module docstring)."""
    if option == "auto":
        return device.type == "cuda" or chain_length >= AUTO_MIN_STEPS
    if isinstance(option, bool):
        return option
    raise InputError(f"compile must be True, False or 'auto', got {option!r}")


def compile_network(net: nn.Module) -> nn.Module:
    """``torch.compile(net)``; for a network naming ``compiled_parts`` (submodule names), a shallow copy of it with
    those submodules compiled instead, so that samplers calling its methods run the compiled parts. Either way the
    parameters are shared with ``net``."""
    parts = getattr(net, "compiled_parts", ())
    if not parts:
        return torch.compile(net, dynamic=False)
    view = copy.copy(net)
    view._modules = dict(net._modules)  # copy.copy shares the submodule dict: give the view its own
    for name in parts:
        view._modules[name] = torch.compile(net._modules[name], dynamic=False)
    return view


@contextlib.contextmanager
def frozen_parameters(net: nn.Module):
    """Parameters with requires_grad=False inside the block (restored after, also on error)."""
    params = [p for p in net.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
