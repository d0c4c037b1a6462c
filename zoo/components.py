"""Components registered by name (score_sde's ``register_predictor`` idea): kernels, samplers, objectives."""
from __future__ import annotations

import dataclasses

from .errors import ConfigError


class Registry(dict):
    """``@REG.register("name")`` on a class; ``REG.build(name, **options)`` builds it, rejecting unknown names and,
    for dataclasses, unknown options with one ConfigError."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str):
        def wrap(cls):
            if name in self and self[name] is not cls:
                raise ConfigError(f"{self.kind} {name!r} is already registered ({self[name].__qualname__}); pick "
                                  f"another name")
            self[name] = cls
            cls.registered_name = name
            return cls
        return wrap

    def build(self, name: str, **options):
        if name not in self:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {sorted(self)}")
        cls = self[name]
        if dataclasses.is_dataclass(cls):
            known = {f.name for f in dataclasses.fields(cls) if f.init}
            unknown = set(options) - known
            if unknown:
                raise ConfigError(f"unknown {self.kind} option(s) {sorted(unknown)} for {name!r}; known: {sorted(known)}")
        try:
            return cls(**options)
        except TypeError as err:
            raise ConfigError(f"bad options {options} for {self.kind} {name!r}: {err}") from None
