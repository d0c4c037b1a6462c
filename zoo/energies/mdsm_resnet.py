"""MDSM energy networks: ResNet-12 / ResNet-18 with a quadratic head (Li, Chen, Sommer 2023, App. D).

No normalisation, ELU activations, 2x2 mean-pool down-sampling and a 1x1 shortcut conv in every
block (also when c_in == c_out), exactly as the reference code. The head is paper eq. (A4):
E = (a.h + b1)(c.h + b2) + d.(h*h) + b3 on the flattened last feature map h.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .architectures import ARCHITECTURES

# Block plans: "down" blocks double the width and halve the resolution; "same" blocks keep both.
DEPTH_PLANS = {
    12: ["down", "same", "down", "same", "down", "same"],
    18: ["down", "same", "same", "down", "same", "same", "down", "same", "same"],
}


class ResBlock(nn.Module):
    """ELU -> conv3x3 (c_in->c_in, no bias) -> ELU -> conv3x3 (c_in->c_out) [-> mean-pool], plus shortcut
    [mean-pool ->] conv1x1 (c_in->c_out)."""

    def __init__(self, c_in: int, c_out: int, down: bool):
        super().__init__()
        self.down = down
        self.conv_1 = nn.Conv2d(c_in, c_in, 3, padding=1, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_2(F.elu(self.conv_1(F.elu(x))))
        shortcut = x
        if self.down:
            h = F.avg_pool2d(h, 2)
            shortcut = F.avg_pool2d(shortcut, 2)
        return h + self.conv_shortcut(shortcut)


class QuadraticHead(nn.Module):
    """Paper eq. (A4): E = ln1(h) * ln2(h) + lq(h^2), each a Linear(F, 1)."""

    def __init__(self, features: int):
        super().__init__()
        self.ln1 = nn.Linear(features, 1)
        self.ln2 = nn.Linear(features, 1)
        self.lq = nn.Linear(features, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h.flatten(1)
        return (self.ln1(h) * self.ln2(h) + self.lq(h * h)).squeeze(1)


@ARCHITECTURES.register("MDSMResNet")
class MDSMResNet(nn.Module):
    """Energy E(x) -> (B,) for square images of shape (B, *input_shape), input_shape = [C, H, W]."""

    def __init__(self, input_shape: list[int], width: int = 64, depth: int = 12):
        super().__init__()
        in_channels, image_size, _ = input_shape
        if depth not in DEPTH_PLANS:
            raise ValueError(f"MDSMResNet depth must be one of {sorted(DEPTH_PLANS)}, got {depth}")
        plan = DEPTH_PLANS[depth]
        n_down = plan.count("down")
        if image_size % (2**n_down):
            raise ValueError(f"image_size {image_size} must be divisible by {2**n_down}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        blocks, c = [], width
        for kind in plan:
            c_out = 2 * c if kind == "down" else c
            blocks.append(ResBlock(c, c_out, down=kind == "down"))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        spatial = image_size // (2**n_down)
        self.head = QuadraticHead(c * spatial * spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.conv1(x)))
