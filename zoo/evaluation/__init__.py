"""Evaluation of zoo models (``zoo eval``): sample quality, likelihood (AIS / reverse AIS), denoising, inpainting,
OOD detection and the energy-ranking diagnostic; the results JSON the model cards are written from."""
from .likelihood import AISSettings, GaussianReference, ais_log_z, bits_per_dim, reverse_ais_log_z
from .run import METRICS, EvalSettings, applicable, evaluate, read_results, write_results

__all__ = ["AISSettings", "EvalSettings", "GaussianReference", "METRICS", "ais_log_z", "applicable", "bits_per_dim",
           "evaluate", "read_results", "reverse_ais_log_z", "write_results"]
