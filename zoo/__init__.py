"""ebm-zoo: a declarative model zoo of energy-based generative models.

    import zoo
    zoo.list(); m = zoo.load("mdsm-mnist"); x = m.sample(64)
"""
from .errors import (DatasetNotFoundError, InputError, UnknownEntryError, WeightsIntegrityError,
                     WeightsNotFoundError, ZooError)
from .model import EnergyModel
from .registry import RandomWeightsWarning, get_entry, info, list_models, load
from .samplers import AnnealedLangevinSampler, SamplerOutput, build_sampler, temperature_schedule

list = list_models  # noqa: A001  (zoo.list() as in timm.list_models)

__version__ = "0.1.0"
__all__ = [
    "AnnealedLangevinSampler", "DatasetNotFoundError", "EnergyModel", "InputError", "RandomWeightsWarning",
    "SamplerOutput", "UnknownEntryError", "WeightsIntegrityError", "WeightsNotFoundError", "ZooError",
    "build_sampler", "get_entry", "info", "list", "list_models", "load", "temperature_schedule",
]
