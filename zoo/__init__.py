"""ebm-zoo: a declarative model zoo of energy-based generative models.

    import zoo
    zoo.list(); m = zoo.load("mdsm-mnist-small"); x = m.sample(16, seed=0)

Names are imported lazily (PEP 562), so ``import zoo.cli`` / ``zoo --help`` do not pay for importing torch.
"""
import importlib

__version__ = "0.3.0"

_EXPORTS = {
    "load": "loading", "EnergyModel": "model", "compose": "model", "get_entry": "registry", "info": "listing",
    "list_models": "listing", "list": "listing:list_models", "SamplerOutput": "sampling",
    **{name: "errors" for name in (
        "ChainDivergedError", "ConfigError", "DatasetNotFoundError", "HubError", "InputError", "NoPretrainedWeightsError",
        "TrainingDivergedError", "UnknownEntryError", "WeightsIntegrityError", "WeightsNotFoundError", "ZooError")},
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    module, _, attr = _EXPORTS[name].partition(":")
    value = getattr(importlib.import_module(f".{module}", __name__), attr or name)
    globals()[name] = value
    return value
