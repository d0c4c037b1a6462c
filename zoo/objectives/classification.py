"""Supervised objective for the zoo's evaluation classifiers (not an EBM training method)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..errors import ConfigError
from .base import Objective, ObjectiveContext, ObjectiveOutput, register_objective


@register_objective("cross_entropy")
@dataclass
class CrossEntropyObjective(Objective):
    """Mean cross-entropy of the logits ``model(x, output="logits")`` against ``ctx.labels``, with label smoothing."""

    label_smoothing: float = 0.0
    needs_labels = True

    def __call__(self, model, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        if ctx.labels is None:
            raise ConfigError("the cross_entropy objective needs labels (data.label_column)")
        logits = model(x, output="logits")
        loss = F.cross_entropy(logits, ctx.labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(1) == ctx.labels).float().mean()
        return ObjectiveOutput(loss, {"loss": loss.detach(), "accuracy": accuracy.detach()})
