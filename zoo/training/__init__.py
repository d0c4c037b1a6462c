"""Training split by concern: ``args`` (flags + validation), ``loop`` (one step function, the loop), ``checkpoint``,
``export`` (with its card), ``callbacks`` (metrics log, sample grids)."""
from .loop import main, train

__all__ = ["main", "train"]
