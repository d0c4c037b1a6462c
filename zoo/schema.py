"""Typed registry entries, validated on load: every YAML key is read or rejected, errors name the file and key.

An entry file holds ``name, family, paper, description`` and the blocks
``model`` (-> config.json, sha-pinned), ``sampler`` (-> sampler_config.json: a default and named presets),
``data``, ``recipe``, ``weights`` (null = none published) and ``reported`` (the paper's numbers), plus
optional ``card`` (what the zoo measured, written into the model card). ``extends: <entry>`` deep-merges another
entry's blocks under this one (``name``, ``weights``, ``reported`` and ``card`` are never inherited); files whose
name starts with ``_`` are bases that are not listed.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

NOT_INHERITED = ("name", "weights", "reported", "card", "description")


def _check_type(value, hint, where: str):
    """Minimal runtime check of JSON-like values against a type hint (int, float, str, bool, list, dict, Optional)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        hint = next(h for h in options if h is not type(None))
        origin = typing.get_origin(hint)
    if hint is Any:
        return
    base = origin or hint
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return
    if base is int and isinstance(value, bool):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if isinstance(base, type) and dataclasses.is_dataclass(base):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        return
    if not isinstance(value, base):
        raise ConfigError(f"{where} must be {getattr(base, '__name__', base)}, got {type(value).__name__} {value!r}")


def build(cls, data: Any, where: str):
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and checking types; ``where`` names the place."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for name, f in names.items():
        key = f"{where}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key} is missing")
            continue
        value, hint = data[name], hints[name]
        _check_type(value, hint, key)
        inner = next((h for h in (typing.get_args(hint) or (hint,)) if dataclasses.is_dataclass(h)), None)
        kwargs[name] = build(inner, value, key) if inner is not None and value is not None else value
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate:
        validate(where)
    return obj


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class ModelSpec:
    """What goes into config.json (sha-pinned with the weights)."""

    input_shape: list
    data_range: list
    sigma0: float
    architecture: dict

    def validate(self, where: str) -> None:
        if not self.input_shape or not all(isinstance(d, int) and d > 0 for d in self.input_shape):
            raise ConfigError(f"{where}.input_shape must be a list of positive integers, got {self.input_shape}")
        if (len(self.data_range) != 2 or not all(_finite_number(v) for v in self.data_range)
                or not self.data_range[0] < self.data_range[1]):
            raise ConfigError(f"{where}.data_range must be [low, high], finite, with low < high, got {self.data_range}")
        if not (_finite_number(self.sigma0) and self.sigma0 > 0):
            raise ConfigError(f"{where}.sigma0 must be a finite number > 0, got {self.sigma0}")
        if not isinstance(self.architecture.get("class"), str):
            raise ConfigError(f"{where}.architecture.class must name an architecture, got {self.architecture}")


@dataclass
class SamplerSpec:
    """What goes into sampler_config.json (not pinned: tuning a preset never changes a pinned file)."""

    default: dict
    presets: dict = field(default_factory=dict)

    def validate(self, where: str) -> None:
        for name, preset in self.presets.items():
            if not isinstance(preset, dict):
                raise ConfigError(f"{where}.presets.{name} must be a mapping of sampler options")


@dataclass
class DataSpec:
    hub_id: str | None = None
    mirror_id: str | None = None
    config: str | None = None
    image_column: str = "image"
    label_column: str = "label"  # class labels, for objectives and metrics that need them
    splits: dict = field(default_factory=lambda: {"train": "train", "test": "test"})
    pad_to: int | None = None
    resize: int | None = None
    hflip: bool = False
    toy: str | None = None  # zoo-generated 2-D data (zoo.data.make_toy) instead of a Hub dataset
    n: dict = field(default_factory=dict)
    seed: int = 0
    note: str | None = None

    def validate(self, where: str) -> None:
        if (self.hub_id is None) == (self.toy is None):
            raise ConfigError(f"{where} needs exactly one of hub_id (a Hub dataset) or toy (generated data)")


@dataclass
class OptimizerSpec:
    """Built with timm's ``create_optimizer_v2(name, lr, weight_decay, betas=...)``."""

    name: str
    lr: float
    betas: list | None = None
    weight_decay: float = 0.0


@dataclass
class ParzenSpec:
    n_centers: int = 50000
    n_valid: int = 2000
    sigmas: list = field(default_factory=lambda: [0.05, 0.1, 0.14, 0.2, 0.3, 0.5])


@dataclass
class RecipeSpec:
    script: str
    objective: dict
    batch_size: int
    optimizer: OptimizerSpec
    max_steps: int
    checkpoint_every: int
    lr_min: float = 0.0  # cosine decay to lr_min over max_steps (lr_min = lr: constant)
    select: str = "last"
    grid_preset: str | None = None  # sampler preset of the sample grid written at each checkpoint
    sample_grid: bool = True  # False: no sample grid at checkpoints (models that are not samplers, e.g. classifiers)
    grad_clip: float | None = None  # opt-in stability aid: clip the global gradient norm to this value
    ema: float = 0.0  # EMA decay of the weights (timm ModelEmaV3; the export is the EMA); 0 = off; --ema overrides
    parzen: ParzenSpec | None = None

    def validate(self, where: str) -> None:
        for key in ("batch_size", "max_steps", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"{where}.ema must be in [0, 1), got {self.ema}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"{where}.grad_clip must be > 0 (or null), got {self.grad_clip}")
        if not isinstance(self.objective.get("name"), str):
            raise ConfigError(f"{where}.objective.name must name an objective, got {self.objective}")


@dataclass
class WeightsSpec:
    repo_id: str
    revision: str = "main"
    sha256: dict = field(default_factory=dict)
    note: str | None = None


@dataclass
class CardSpec:
    """Measured results of the bundled weights, written into the card's ``model-index`` (huggingface_hub EvalResult).
    The prose (what the zoo measured and saw) lives in ``model_cards/<entry>.md``."""

    eval_results: list = field(default_factory=list)  # [{task_type, dataset_type, dataset_name, metric_type, metric_value, ...}]


@dataclass
class Entry:
    name: str
    family: str
    paper: str
    description: str
    model: ModelSpec
    sampler: SamplerSpec
    data: DataSpec
    recipe: RecipeSpec
    weights: WeightsSpec | None
    reported: dict = field(default_factory=dict)
    card: CardSpec = field(default_factory=CardSpec)
    source: str = ""  # the YAML file (not a key of the file)

    def config_json(self) -> dict:
        """config.json: the architecture and what the energy means (shape, data range, sigma0)."""
        return {"entry": self.name, "family": self.family, **copy.deepcopy(dataclasses.asdict(self.model))}

    def sampler_config_json(self) -> dict:
        return copy.deepcopy(dataclasses.asdict(self.sampler))

    def dataset_name(self) -> str:
        return self.data.hub_id or f"toy:{self.data.toy}"

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("source")
        return out


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into ``base`` key by key; a mapping naming another ``class`` (an architecture) replaces the
    base's mapping instead of inheriting its options."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        same_kind = isinstance(v, dict) and isinstance(out.get(k), dict) and v.get("class", out[k].get("class")) == out[k].get("class")
        out[k] = deep_merge(out[k], v) if same_kind else copy.deepcopy(v)
    return out


def parse_entry(raw: dict, source: str) -> Entry:
    """An entry from its (already ``extends``-merged) mapping; errors name ``source`` and the key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: an entry must be a YAML mapping")
    return build(Entry, {**raw, "source": source}, source)


def parse_model_config(config: Any, source: str) -> dict:
    """Validate a config.json mapping (entry, family + ModelSpec keys); returns it unchanged."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source} must hold a JSON object")
    rest = {k: v for k, v in config.items() if k not in ("entry", "family")}
    build(ModelSpec, rest, source)
    return config


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not a readable JSON file: {err}") from None
