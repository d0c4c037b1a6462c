"""Evaluation of zoo models (``zoo eval``): sample quality, accuracy, likelihood (AIS / reverse AIS), denoising,
inpainting, OOD detection and the energy-ranking diagnostic, each a registered metric (``metric.py``); the results
JSON the model cards are written from. Importing this package registers every metric."""
from . import accuracy, likelihood, ood, quality, ranking, restoration  # noqa: F401  (each registers its metric)
from .likelihood import AISSettings, GaussianReference, ais_log_z, bits_per_dim, reverse_ais_log_z
from .metric import METRICS, Metric, metrics
from .run import EvalSettings, applicable, evaluate, read_results, write_results

__all__ = ["AISSettings", "EvalSettings", "GaussianReference", "METRICS", "Metric", "ais_log_z", "applicable",
           "bits_per_dim", "evaluate", "metrics", "read_results", "reverse_ais_log_z", "write_results"]
