"""A small CNN classifier, the zoo's in-domain feature extractor for classifier-FID/KID/IS (``zoo eval``).

It is also an energy in the zoo's sense (Grathwohl et al. 2020, "JEM"): E(x) = -logsumexp_y f(x)[y], so it loads,
saves and ships through the same Hub layout as every other entry. ``features(x)`` is the penultimate layer (the
FID/KID feature), ``logits(x)`` the class logits (the IS input).
"""
from __future__ import annotations

import torch
from torch import nn

from .architectures import ARCHITECTURES


@ARCHITECTURES.register("SmallCNNClassifier")
class SmallCNNClassifier(nn.Module):
    """conv(w) -> conv(w) -> pool -> conv(2w) -> conv(2w) -> pool -> global average -> linear(features) -> classes."""

    def __init__(self, input_shape: list[int], num_classes: int = 10, width: int = 32, features: int = 128):
        super().__init__()
        c, w = input_shape[0], width

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(*block(c, w), *block(w, w), nn.MaxPool2d(2), *block(w, 2 * w), *block(2 * w, 2 * w),
                                  nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(2 * w, features), nn.ReLU())
        self.head = nn.Linear(features, num_classes)
        self.num_features = features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def forward(self, x: torch.Tensor, output: str = "energy") -> torch.Tensor:
        """``output``: "energy" (-logsumexp of the logits, shape (B,)), "logits" or "features" (through forward, so
        that a DDP-wrapped model trains with it)."""
        if output == "features":
            return self.features(x)
        logits = self.logits(x)
        return logits if output == "logits" else -torch.logsumexp(logits, dim=1)
