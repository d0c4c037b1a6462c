"""``EnergyModel``: one API over every energy network in the zoo.

    energy(x)   E(x), shape (B,), unnormalised -log p
    score(x)    -grad_x E(x)
    denoise(x)  single-step jump x - sigma0^2 grad E(x) (MDSM eq. 9 / DEEN's empirical Bayes estimator)
    sample(n)   annealed (or plain) Langevin from the entry's sampler config or a named preset
    inpaint(x, mask)   clamped annealed Langevin (mask: 1 = known pixel)
    save_pretrained / from_pretrained / push_to_hub   Hub layout: config.json + model.safetensors + README.md
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import InputError
from .hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, push_folder_to_hub, resolve_pretrained
from .models import build_network
from .samplers import SamplerOutput, build_sampler, energy_and_grad

# Inputs far outside the data range are almost always a units mistake (e.g. pixels in [0, 255]).
RANGE_SLACK = 16.0


class EnergyModel(nn.Module):
    """An energy network plus the configuration (shape, data range, sigma0, sampler) needed to use it."""

    def __init__(self, config: dict, net: nn.Module | None = None):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.net = net if net is not None else build_network(config["architecture"], config["input_shape"])
        self.card: str | None = None

    # ------------------------------------------------------------------ properties
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config["input_shape"])

    @property
    def sigma0(self) -> float:
        return float(self.config["sigma0"])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # ------------------------------------------------------------------ input checks
    def check_input(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        """Validate a batch (B, *input_shape) and move it to the model's device and dtype."""
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise InputError(
                f"{name} has dtype {x.dtype}; expected a floating-point tensor in the data range "
                f"{self.config['data_range']} (e.g. x.float() / 255 for uint8 images)"
            )
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise InputError(f"{name} has shape {tuple(x.shape)}; expected (B, {', '.join(map(str, self.input_shape))})")
        if not torch.isfinite(x).all():
            raise InputError(f"{name} contains NaN or inf values")
        lo, hi = self.config["data_range"]
        slack = RANGE_SLACK * (hi - lo)
        if x.min() < lo - slack or x.max() > hi + slack:
            raise InputError(
                f"{name} has values in [{x.min().item():.3g}, {x.max().item():.3g}], far outside the data range "
                f"[{lo}, {hi}]; rescale the input (e.g. pixels / 255)"
            )
        return x.to(device=self.device, dtype=self.dtype)

    def check_mask(self, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(mask, torch.Tensor):
            raise InputError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        try:
            mask = torch.broadcast_to(mask, x.shape)
        except RuntimeError:
            raise InputError(f"mask of shape {tuple(mask.shape)} does not broadcast to the input shape {tuple(x.shape)}") from None
        if not ((mask == 0) | (mask == 1)).all():
            raise InputError("mask must contain only 0 (to fill) and 1 (known pixel)")
        return mask.to(device=x.device, dtype=x.dtype)

    # ------------------------------------------------------------------ the uniform API
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw energy network (no checks): used by training objectives."""
        return self.net(x)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x), shape (B,)."""
        x = self.check_input(x)
        with torch.no_grad():
            return self.net(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """-grad_x E(x), same shape as x."""
        return -energy_and_grad(self.net, self.check_input(x))[1]

    def denoise(self, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """Single-step denoising jump x - sigma^2 grad E(x) (sigma defaults to the model's sigma0)."""
        sigma = self.sigma0 if sigma is None else float(sigma)
        x = self.check_input(x)
        return (x - sigma**2 * energy_and_grad(self.net, x)[1]).detach()

    def sampler(self, preset: str | None = None, **overrides):
        """The entry's default sampler, or a named preset, with keyword overrides."""
        cfg = dict(self.config["sampler"])
        if preset is not None:
            presets = self.config.get("sampler_presets", {})
            if preset not in presets:
                raise KeyError(f"unknown sampler preset {preset!r}; this model has {sorted(presets)}")
            cfg.update(presets[preset])
        cfg.update(overrides)
        return build_sampler(cfg)

    def _run_chain(self, shape, *, known=None, mask=None, preset=None, sampler=None, seed=None, generator=None,
                   return_trajectory=False, return_energy_trace=False, trajectory_every=100, progress=True, **overrides):
        """Shared by sample() and inpaint(): build the sampler, seed, initial state x0, run the chain."""
        sampler = sampler or self.sampler(preset, **overrides)
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        x0 = sampler.initial_state(shape, self.device, self.dtype, generator)
        if mask is not None:
            x0 = mask * known + (1 - mask) * x0
        out = sampler.run(self.net, x0, sigma0=self.sigma0, known=known, mask=mask, generator=generator,
                          return_trajectory=return_trajectory, trajectory_every=trajectory_every,
                          return_energy_trace=return_energy_trace, progress=progress)
        if mask is not None:  # exact copy of the known pixels (no float round-off from the blend)
            out.samples = torch.where(mask.bool(), known, out.samples)
        return out if (return_trajectory or return_energy_trace) else out.samples

    def sample(self, n: int, **kwargs) -> torch.Tensor | SamplerOutput:
        """n samples (n, *input_shape). Keywords: preset, sampler, seed, generator, return_trajectory,
        return_energy_trace, trajectory_every, progress, and sampler overrides (e.g. step_size=0.03).
        Returns a SamplerOutput instead of a tensor when a trajectory or energy trace is asked for."""
        if n < 1:
            raise InputError(f"n must be >= 1, got {n}")
        return self._run_chain((n, *self.input_shape), **kwargs)

    def inpaint(self, x: torch.Tensor, mask: torch.Tensor, **kwargs) -> torch.Tensor | SamplerOutput:
        """Fill the pixels where mask == 0; pixels where mask == 1 are returned unchanged. Keywords as sample()."""
        x = self.check_input(x)
        mask = self.check_mask(mask, x)
        return self._run_chain(tuple(x.shape), known=x, mask=mask, **kwargs)

    # ------------------------------------------------------------------ Hub layout
    def save_pretrained(self, save_directory: str | os.PathLike, *, card: str | None = None,
                        dtype: torch.dtype | None = None) -> Path:
        """Write config.json, model.safetensors and README.md atomically (temp dir, then rename)."""
        target = Path(save_directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            state = {k: v.detach().to("cpu", dtype or v.dtype).contiguous() for k, v in self.net.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "entry": self.config.get("entry", "")})
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config, indent=2, sort_keys=True) + "\n")
            (tmp / CARD_NAME).write_text(card or self.card or _default_card(self.config))
            target.mkdir(exist_ok=True)
            for name in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME):
                os.replace(tmp / name, target / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, *, revision: str | None = None, sha256: dict[str, str] | None = None,
        mirror: str | os.PathLike | None = None, device: str | torch.device | None = None,
        dtype: torch.dtype | None = None, cache_dir: str | None = None, token: str | bool | None = None,
    ) -> "EnergyModel":
        """Load from a local folder, a mirror or the Hub (see zoo.hub); weights are loaded strictly."""
        folder = resolve_pretrained(name_or_path, revision=revision, sha256=sha256, mirror=mirror,
                                    cache_dir=cache_dir, token=token)
        config = json.loads((folder / CONFIG_NAME).read_text())
        model = cls(config)
        try:
            state = load_file(str(folder / WEIGHTS_NAME))
        except Exception as err:
            raise InputError(f"{folder / WEIGHTS_NAME} is not a readable safetensors file: {err}") from err
        reference = model.net.state_dict()
        model.net.load_state_dict({k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()},
                                  strict=True)
        if (folder / CARD_NAME).is_file():
            model.card = (folder / CARD_NAME).read_text()
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)

    def push_to_hub(self, repo_id: str, *, token: str | None = None, private: bool | None = None,
                    revision: str | None = None, commit_message: str = "Upload ebm-zoo model",
                    dtype: torch.dtype | None = None) -> str:
        """Upload config.json, model.safetensors and README.md to ``repo_id`` with huggingface_hub."""
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(Path(tmp) / "repo", dtype=dtype)
            return push_folder_to_hub(Path(tmp) / "repo", repo_id, token=token, private=private, revision=revision,
                                      commit_message=commit_message)


def _default_card(config: dict) -> str:
    name = config.get("entry", "ebm-zoo-model")
    return (
        f"---\nlibrary_name: ebm-zoo\ntags:\n- energy-based-model\n---\n\n# {name}\n\n"
        f"An ebm-zoo energy model (`{config['architecture']['class']}`). Load with "
        f"`zoo.EnergyModel.from_pretrained(...)`.\n"
    )
