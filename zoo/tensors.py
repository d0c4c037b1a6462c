"""Per-sample tensor helpers shared by the energies, the samplers and the objectives (a batch is the first dim)."""
from __future__ import annotations

import torch


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of x's shape, device and dtype from ``generator``."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def rows(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample values (B,) viewed to broadcast against x (B, ...)."""
    return v.view(-1, *[1] * (x.dim() - 1))


def sq_norm(v: torch.Tensor) -> torch.Tensor:
    """The squared norm of each sample, ||v_i||² (B,)."""
    return v.flatten(1).pow(2).sum(1)
