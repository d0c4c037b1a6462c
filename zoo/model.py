"""``EnergyModel``: one API over every energy network in the zoo, plus the input checks.

    energy(x)   E(x), shape (B,), unnormalised -log p
    score(x)    -grad_x E(x)
    denoise(x)  single-step jump x - sigma^2 grad E(x) (MDSM eq. 9 / DEEN's empirical Bayes estimator)
    sample(n)   the entry's sampler (sampler_config.json: a default + named presets), any registered sampler/kernel
    inpaint(x, mask)   the same chain with the known pixels clamped (mask: 1 = known pixel)
    save_pretrained / from_pretrained / push_to_hub   Hub layout (config.json, sampler_config.json, weights, card)
"""
from __future__ import annotations

import copy
import math
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from .argtypes import is_positive
from .energies import build_network
from .errors import ConfigError, InputError
from .hub import load_model, push_folder_to_hub, save_folder
from .sampling import ChainOptions, Clamp, Sampler, SamplerOutput, build_sampler, energy_and_grad
from .sampling.compiled import compile_network, frozen_parameters, should_compile
from .schema import parse_model_config

# Inputs (and chain states) this far outside the data range are a units mistake or a diverging chain.
RANGE_SLACK = 16.0
# sample(n) without batch_size runs chains in micro-batches of at most this many; an output larger than
# MAX_OUTPUT_BYTES is refused before any work, with the memory it would need.
AUTO_BATCH, MAX_OUTPUT_BYTES = 1024, 16 << 30
MAX_SIGMA_RANGES = 100  # denoise(): the largest noise std, in data ranges
MAX_CHAIN_LENGTH = 10**6  # gradient evaluations per chain: 370x the papers' longest (2,700)
INPAINT_PRESET = "inpaint"  # the sampler_config.json preset inpaint() runs by default, where a model has one


def _positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not is_positive(value, integer=True):
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")


def _seed(value) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63):
        raise InputError(f"seed must be an integer in [0, 2**63), got {value!r}")


def _sigma(value) -> float:
    """A noise level: a finite number > 0 (a Python or 0-d tensor number)."""
    try:
        sigma = float(value)
    except (TypeError, ValueError, RuntimeError):
        sigma = math.nan
    if isinstance(value, bool) or not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"sigma must be a finite number > 0, got {value!r}")
    return sigma


class EnergyModel(nn.Module):
    """An energy network plus what is needed to use it: config.json (shape, data range, sigma0, architecture) and
    sampler_config.json (the default sampler and named presets)."""

    def __init__(self, config: dict, net: nn.Module | None = None, sampler_config: dict | None = None):
        super().__init__()
        self.config = copy.deepcopy(parse_model_config(config, "config"))
        self.sampler_config = copy.deepcopy(sampler_config or {"default": {"name": "annealed_langevin"}, "presets": {}})
        self.net = net if net is not None else build_network(config["architecture"], config["input_shape"])
        self.card: str | None = None

    # ------------------------------------------------------------------ properties
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config["input_shape"])

    @property
    def data_range(self) -> tuple[float, float]:
        lo, hi = self.config["data_range"]
        return float(lo), float(hi)

    @property
    def sigma0(self) -> float:
        return float(self.config["sigma0"])

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)  # an energy without parameters (analytic) lives on the CPU in float32
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.parameters(), None)
        return p.dtype if p is not None else torch.float32

    def _bounds(self) -> tuple[float, float]:
        lo, hi = self.data_range
        return lo - RANGE_SLACK * (hi - lo), hi + RANGE_SLACK * (hi - lo)

    # ------------------------------------------------------------------ input checks
    def check_input(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        """Validate a batch (B, *input_shape) and move it to the model's device and dtype."""
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise InputError(f"{name} has dtype {x.dtype}; expected a floating-point tensor in the data range "
                             f"{list(self.data_range)} (e.g. x.float() / 255 for uint8 images)")
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise InputError(f"{name} has shape {tuple(x.shape)}; expected (B, {', '.join(map(str, self.input_shape))})")
        if x.shape[0] == 0:
            raise InputError(f"{name} is an empty batch (shape {tuple(x.shape)})")
        if x.device.type == "meta":
            raise InputError(f"{name} is on the meta device: it has no values")
        if not torch.isfinite(x).all():
            raise InputError(f"{name} contains NaN or inf values")
        lo, hi = self._bounds()
        if x.min() < lo or x.max() > hi:
            raise InputError(f"{name} has values in [{x.min().item():.3g}, {x.max().item():.3g}], far outside the data "
                             f"range {list(self.data_range)}; rescale the input (e.g. pixels / 255)")
        return x.to(device=self.device, dtype=self.dtype)

    def check_mask(self, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A 0/1 mask broadcast to x, as bool (True = known pixel)."""
        if not isinstance(mask, torch.Tensor):
            raise InputError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        try:
            mask = torch.broadcast_to(mask.to(x.device), x.shape)
        except RuntimeError:
            raise InputError(f"mask of shape {tuple(mask.shape)} does not broadcast to the input shape {tuple(x.shape)}") from None
        if not ((mask == 0) | (mask == 1)).all():
            raise InputError("mask must contain only 0 (to fill) and 1 (known pixel)")
        return mask.bool()

    # ------------------------------------------------------------------ the uniform API
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw energy network (no checks): used by training objectives and samplers."""
        return self.net(x)

    @property
    def noise_conditional(self) -> bool:
        """True for energies E(x, sigma) of a noise level (the ncebm family)."""
        return bool(getattr(self.net, "noise_conditional", False))

    def _energy_fn(self, sigma: float | None):
        """E(.) of the network; for a noise-conditional energy E(., sigma) (sigma defaults to sigma0)."""
        if sigma is None and not self.noise_conditional:
            return self.net
        if not self.noise_conditional:
            raise InputError(f"sigma= is for noise-conditional energies; {self.config.get('entry')} models one density")
        sigma = self.sigma0 if sigma is None else _sigma(sigma)
        return lambda x: self.net(x, sigma)

    def energy(self, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """E(x), shape (B,); noise-conditional energies: E(x, sigma) (default sigma0)."""
        fn = self._energy_fn(sigma)
        x = self.check_input(x)
        with torch.no_grad():
            return fn(x)

    def score(self, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """-grad_x E(x) (noise-conditional: at sigma), same shape as x."""
        fn = self._energy_fn(sigma)
        return -energy_and_grad(fn, self.check_input(x))[1]

    def denoise(self, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """Single-step denoising jump x - sigma^2 grad E(x) (sigma defaults to the model's sigma0); a noise-conditional
        energy takes the gradient at that sigma (Tweedie at any sigma); networks with a denoiser of their own
        (Denoising-EBM's DAE reconstruction r(x, sigma)) use it."""
        sigma = self.sigma0 if sigma is None else _sigma(sigma)
        lo, hi = self.data_range
        if sigma > MAX_SIGMA_RANGES * (hi - lo):
            raise InputError(f"sigma={sigma:g} is {sigma / (hi - lo):.3g} times the data range {list(self.data_range)}: "
                             f"no image is left to denoise at that noise (limit {MAX_SIGMA_RANGES} times)")
        x = self.check_input(x)
        if hasattr(self.net, "denoise"):
            with torch.no_grad():
                out = self.net.denoise(x, sigma)
        else:
            fn = self._energy_fn(sigma if self.noise_conditional else None)
            out = (x - sigma**2 * energy_and_grad(fn, x)[1]).detach()
        if not torch.isfinite(out).all():
            raise InputError(f"denoise at sigma={sigma:g} gives non-finite values: sigma is far outside the noise "
                             f"levels this model knows (its sigma0 is {self.sigma0:g})")
        return out

    def sampler(self, preset: str | None = None, **overrides):
        """The default sampler of sampler_config.json, or a named preset, with keyword overrides (any registered
        sampler: ``name=...``; any kernel: ``kernel="mala"``). A preset or override naming another sampler starts
        from that sampler's own defaults, not the default sampler's options."""
        cfg = dict(self.sampler_config["default"])
        layers = [overrides]
        if preset is not None:
            presets = self.sampler_config.get("presets", {})
            if preset not in presets:
                raise ConfigError(f"unknown sampler preset {preset!r}; this model has {sorted(presets)}")
            layers.insert(0, presets[preset])
        for layer in layers:
            if layer.get("name", cfg.get("name")) != cfg.get("name"):
                cfg = {}
            cfg.update(layer)
        return build_sampler(cfg)

    def compiled_net(self) -> nn.Module:
        """The network under torch.compile (built once, shares the parameters; not a submodule, so it is not in
        the state dict)."""
        if self.__dict__.get("_compiled_net") is None:
            object.__setattr__(self, "_compiled_net", compile_network(self.net))
        return self.__dict__["_compiled_net"]

    def _chain(self, n: int, *, clamp: Clamp | None = None, preset=None, sampler=None, seed=None, generator=None,
               batch_size=None, clip=True, return_trajectory=False, return_energy_trace=False, trajectory_every=100,
               progress=True, compile="auto", **overrides):
        """Shared by sample() and inpaint()."""
        _positive_int("batch_size", batch_size, allow_none=True)
        _seed(seed)
        if return_trajectory:
            _positive_int("trajectory_every", trajectory_every)
        if sampler is not None and not isinstance(sampler, Sampler):
            raise InputError(f"sampler= must be a zoo sampler (chain_length() and run(...): zoo.sampling.Sampler), "
                             f"got {type(sampler).__name__}")
        sampler = sampler or self.sampler(preset, **overrides)
        if sampler.chain_length() > MAX_CHAIN_LENGTH:
            raise InputError(f"this sampler's chain is {sampler.chain_length():,} gradient evaluations long (limit "
                             f"{MAX_CHAIN_LENGTH:,}): check its steps")
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        length = sampler.chain_length()
        net = self.compiled_net() if should_compile(compile, self.device, length) else self.net
        with frozen_parameters(self.net):
            options = ChainOptions(generator=generator, batch_size=batch_size, clamp=clamp, bounds=self._bounds(),
                                   trajectory_every=trajectory_every if return_trajectory else None,
                                   record_energy=return_energy_trace, progress=progress)
            out = sampler.run(net, n, self.input_shape, sigma0=self.sigma0, device=self.device, dtype=self.dtype,
                              options=options)
        if clip:
            out.samples = out.samples.clamp(*self.data_range)
            if clamp is not None:
                out.samples = clamp.apply(out.samples)
        return out if (return_trajectory or return_energy_trace) else out.samples

    def sample(self, n: int, **kwargs) -> torch.Tensor | SamplerOutput:
        """n samples (n, *input_shape) in the data range (``clip=False``: the raw chain after the final jump).

        Keywords: preset, sampler, seed, generator, batch_size (micro-batches of the chain), clip, return_trajectory,
        trajectory_every, return_energy_trace, progress, compile (True / False / "auto": torch.compile the network
        for the chain; auto = on CUDA, and on a CPU for chains of >= 1000 steps), and sampler overrides (e.g.
        step_size=0.03, kernel="mala").
        Returns a SamplerOutput instead of a tensor when a trajectory or energy trace is asked for."""
        _positive_int("n", n)
        need = n * math.prod(self.input_shape) * torch.finfo(self.dtype).bits // 8
        if need > MAX_OUTPUT_BYTES:
            raise InputError(f"sample({n}) would hold {need / 2**30:.1f} GiB of samples (limit "
                             f"{MAX_OUTPUT_BYTES / 2**30:.0f} GiB); draw them in several calls")
        if kwargs.get("batch_size") is None and n > AUTO_BATCH:
            kwargs["batch_size"] = AUTO_BATCH
        return self._chain(n, **kwargs)

    def inpaint(self, x: torch.Tensor, mask: torch.Tensor, *, preset: str | None = None, sampler=None,
                **kwargs) -> torch.Tensor | SamplerOutput:
        """Fill the pixels where mask == 0; pixels where mask == 1 are returned unchanged. Keywords as sample().
        The known pixels are seen by the energy with noise of std sigma0 sqrt(T) (MDSM Sec. 4). Without ``preset=``
        or ``sampler=`` the chain is the model's ``inpaint`` preset where sampler_config.json has one (a chain
        measured to fill holes better than the default sampler), else the default sampler."""
        x = self.check_input(x)
        clamp = Clamp(self.check_mask(mask, x), x, self.sigma0)
        preset = self.inpaint_preset(preset) if sampler is None else preset
        return self._chain(x.shape[0], clamp=clamp, preset=preset, sampler=sampler, **kwargs)

    def inpaint_preset(self, preset: str | None = None) -> str | None:
        """The preset ``inpaint()`` runs: ``preset`` if given, else ``inpaint`` if the model has it, else None (the
        default sampler)."""
        if preset is None and INPAINT_PRESET in self.sampler_config.get("presets", {}):
            return INPAINT_PRESET
        return preset

    # ------------------------------------------------------------------ Hub layout (zoo.hub does the I/O)
    def save_pretrained(self, save_directory: str | os.PathLike, *, card: str | None = None,
                        dtype: torch.dtype | None = None) -> Path:
        """Write config.json, sampler_config.json, model.safetensors and README.md (each file atomically)."""
        if isinstance(self.net, WeightedSum):
            raise InputError("a composed model (zoo.compose) has no folder of its own: save each part and compose "
                             "them again after loading")
        from .cards import default_card

        return save_folder(self, save_directory, card=card or self.card or default_card(self.config), dtype=dtype)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs) -> "EnergyModel":
        """Load from a local folder, a mirror or the Hub (``zoo.hub.load_folder``); weights load strictly."""
        return load_model(cls, name_or_path, **kwargs)

    def push_to_hub(self, repo_id: str, *, token: str | None = None, private: bool | None = None,
                    revision: str | None = None, commit_message: str = "Upload ebm-zoo model",
                    dtype: torch.dtype | None = None) -> str:
        """Upload the save_pretrained files to ``repo_id`` with huggingface_hub; returns the commit URL."""
        with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
            folder = self.save_pretrained(Path(tmp) / "repo", dtype=dtype)
            return push_folder_to_hub(folder, repo_id, token=token, private=private, revision=revision,
                                      commit_message=commit_message)


class WeightedSum(nn.Module):
    """E(x) = sum_i w_i E_i(x): a product of experts p ∝ prod_i p_i^{w_i}."""

    def __init__(self, nets: list[nn.Module], weights: list[float]):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.weights = [float(w) for w in weights]

    @property
    def noise_conditional(self) -> bool:
        return all(getattr(net, "noise_conditional", False) for net in self.nets)

    def forward(self, x: torch.Tensor, *sigma) -> torch.Tensor:
        """sum_i w_i E_i(x) (noise-conditional energies: each at the same sigma)."""
        return sum(w * net(x, *sigma) for w, net in zip(self.weights, self.nets))


def compose(*models: EnergyModel, weights: list[float] | None = None) -> EnergyModel:
    """A product of experts: an EnergyModel whose E is the weighted sum of the models' energies. It samples,
    inpaints and denoises with the same API (sampler and sigma0 of the first model)."""
    if len(models) < 2:
        raise InputError("compose() needs at least two models")
    weights = [1.0] * len(models) if weights is None else list(weights)
    if len(weights) != len(models) or not all(isinstance(w, (int, float)) and math.isfinite(w) and w > 0
                                              for w in weights):
        raise InputError(f"compose() needs one positive weight per model, got {weights}")
    first = models[0]
    for m in models[1:]:
        if m.noise_conditional != first.noise_conditional:
            raise InputError("compose() cannot mix noise-conditional energies E(x, sigma) with energies E(x)")
        if m.dtype != first.dtype or m.device != first.device:
            raise InputError(f"compose() needs models on one device and dtype: {first.device}/{first.dtype} vs "
                             f"{m.device}/{m.dtype} (use .to(...) first)")
        if m.input_shape != first.input_shape or m.data_range != first.data_range:
            raise InputError(f"compose() needs equal input shapes and data ranges: {first.input_shape} "
                             f"{first.data_range} vs {m.input_shape} {m.data_range}")
    config = {**first.config, "entry": "compose(" + ", ".join(m.config.get("entry", "?") for m in models) + ")",
              "architecture": {"class": "WeightedSum"}}
    return EnergyModel(config, WeightedSum([m.net for m in models], weights), first.sampler_config)
