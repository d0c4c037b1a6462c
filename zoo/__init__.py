"""ebm-zoo: a declarative model zoo of energy-based generative models.

    import zoo
    zoo.list(); m = zoo.load("mdsm-mnist-small"); x = m.sample(16, seed=0)
"""
from .errors import (ChainDivergedError, ConfigError, DatasetNotFoundError, HubError, InputError, NoPretrainedWeightsError,
                     TrainingDivergedError, UnknownEntryError, WeightsIntegrityError, WeightsNotFoundError, ZooError)
from .loading import load
from .model import EnergyModel, compose
from .registry import get_entry, info, list_models
from .sampling import SamplerOutput

list = list_models  # noqa: A001  (zoo.list() as in timm.list_models)

__version__ = "0.2.0"
__all__ = [
    "ChainDivergedError", "ConfigError", "DatasetNotFoundError", "EnergyModel", "HubError", "InputError",
    "NoPretrainedWeightsError", "SamplerOutput", "TrainingDivergedError", "UnknownEntryError", "WeightsIntegrityError",
    "WeightsNotFoundError", "ZooError", "compose", "get_entry", "info", "list", "list_models", "load",
]
