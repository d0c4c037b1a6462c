"""Test accuracy of the zoo's evaluation classifiers (the feature extractors of classifier-FID/KID/IS)."""
from __future__ import annotations

import torch

from .metric import METRICS, Metric


@METRICS.register("accuracy")
class Accuracy(Metric):
    """Top-1 accuracy on the whole test split."""

    order = 20

    def applies(self, entry) -> bool:
        return entry.family == "classifier"

    def run(self, ctx) -> dict:
        ctx.log("[eval] test accuracy")
        x, y = ctx.split("test", labels=True)
        model = ctx.model
        with torch.no_grad():
            pred = torch.cat([model.net(b.to(model.device, model.dtype), output="logits").argmax(1).cpu()
                              for b in x.split(500)])
        return {"n": len(y), "accuracy": float((pred == y).double().mean())}

    def card(self, result: dict, entry) -> list[str]:
        return [f"**Test accuracy**: {result['accuracy']:.4f} on {result['n']} test images.", ""]

    def eval_results(self, result: dict, entry, common: dict) -> list:
        from huggingface_hub import EvalResult

        return [EvalResult(task_type="image-classification", metric_type="accuracy", metric_name="test accuracy",
                           metric_value=round(result["accuracy"], 4), **common)]

    def headline(self, result: dict) -> str:
        return f"test accuracy {result['accuracy']:.4f}"
