"""Inpainting masks: their names and the 0/1 tensors they stand for. torch is imported only when a mask is made, so
that the command line can offer the names without loading it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch

MASK_NAMES = ("centre", "center", "left", "right", "top", "bottom", "random50")


def make_mask(kind: str, shape, generator: torch.Generator | None = None) -> torch.Tensor:
    """A 0/1 mask of ``shape`` (B, C, H, W); 1 = known pixel, 0 = to fill (the same pixels in every channel):
    ``centre`` (= ``center``, the central square of half the side), ``left`` / ``right`` / ``top`` / ``bottom``
    halves, ``random50`` (each pixel missing with probability 1/2, from ``generator``)."""
    import torch

    b, c, h, w = shape
    mask = torch.ones(b, 1, h, w)
    if kind in ("centre", "center"):
        mask[:, :, h // 4:h - h // 4, w // 4:w - w // 4] = 0
    elif kind == "left":
        mask[..., : w // 2] = 0
    elif kind == "right":
        mask[..., w // 2:] = 0
    elif kind == "top":
        mask[..., : h // 2, :] = 0
    elif kind == "bottom":
        mask[..., h // 2:, :] = 0
    elif kind == "random50":
        mask = (torch.rand(b, 1, h, w, generator=generator) >= 0.5).float()
    else:
        raise InputError(f"unknown mask {kind!r}; known: {list(MASK_NAMES)}")
    return mask.expand(b, c, h, w).contiguous()
