"""Denoising-EBM (Zeng, "How to construct energy for images?"): a noise-conditional U-Net DAE r = g∘f and a
semantic decoder h from the DAE's latent code.

    texture energy   U_c(x, σ) = ||x - r(x + σε, σ)||² / (2σ²)                     (eq. 7)
    semantic energy  U_s(z, σ) = ||h(z) - r(h(z) + σε, σ)||² / (2σ²)               (eq. 8)

The residual x - r(x̃, σ) is the model's vector output; the energies are its squared norm. Widths and the latent size
are not given in the paper: they are the entry's ``width`` and ``latent_dim``. Noise conditioning (not specified in
the paper either): log σ -> a small MLP -> per-channel scale and shift in every residual block.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from ..tensors import randn_like, sq_norm
from .architectures import ARCHITECTURES


LATENT_INITS = ("normal", "codes")  # where the latent chain starts (``DenoisingEBM.latent_start``)


def _groups(c: int) -> int:
    return math.gcd(8, c)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, twice, with (1 + scale, shift) from the noise embedding; 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.film = nn.Linear(emb, 2 * c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = rearrange(self.film(emb), "b (two c) -> two b c 1 1", two=2)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return h + self.skip(x)


class SigmaEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.log(sigma).view(-1, 1))


class UNetDAE(nn.Module):
    """r(x̃, σ) = g(f(x̃, σ), skips, σ): two 2x down-samplings, a latent code z of size ``latent_dim`` at the bottom
    (the code the semantic decoder reads), skip connections at every resolution."""

    def __init__(self, channels: int, size: int, width: int, latent_dim: int):
        super().__init__()
        w, emb = width, 4 * width
        self.embed = SigmaEmbedding(emb)
        self.inp = nn.Conv2d(channels, w, 3, padding=1)
        self.down = nn.ModuleList([ResBlock(w, w, emb), ResBlock(w, 2 * w, emb), ResBlock(2 * w, 2 * w, emb)])
        self.bottom = (2 * w, size // 4, size // 4)
        features = 2 * w * (size // 4) ** 2
        self.to_z, self.from_z = nn.Linear(features, latent_dim), nn.Linear(latent_dim, features)
        self.up = nn.ModuleList([ResBlock(4 * w, 2 * w, emb), ResBlock(4 * w, w, emb), ResBlock(2 * w, w, emb)])
        self.out = nn.Sequential(nn.GroupNorm(_groups(w), w), nn.SiLU(), nn.Conv2d(w, channels, 3, padding=1))

    def encode(self, x_noisy: torch.Tensor, sigma: torch.Tensor):
        """f(x̃, σ): the latent code z, the skips and the noise embedding."""
        emb = self.embed(sigma)
        h, skips = self.inp(x_noisy), []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < 2:
                h = F.avg_pool2d(h, 2)
        return self.to_z(h.flatten(1)), skips, emb

    def forward(self, x_noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        z, skips, emb = self.encode(x_noisy, sigma)
        h = self.from_z(z).view(-1, *self.bottom)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips[2 - i]], 1), emb)
            if i < 2:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.out(h)


class SemanticDecoder(nn.Module):
    """h(z): latent code -> image (ResNet blocks, two 2x up-samplings, tanh to the data range [-1, 1])."""

    def __init__(self, channels: int, size: int, width: int, latent_dim: int):
        super().__init__()
        w = width
        self.start = (2 * w, size // 4, size // 4)
        self.inp = nn.Linear(latent_dim, 2 * w * (size // 4) ** 2)
        self.blocks = nn.ModuleList([ResBlock(2 * w, 2 * w, 1), ResBlock(2 * w, w, 1), ResBlock(w, w, 1)])
        self.out = nn.Sequential(nn.GroupNorm(_groups(w), w), nn.SiLU(), nn.Conv2d(w, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, no_emb = self.inp(z).view(-1, *self.start), z.new_zeros(z.shape[0], 1)
        for i, block in enumerate(self.blocks):
            h = block(h, no_emb)
            if i < 2:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.out(h)


def _per_sample(sigma, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0]).contiguous()


@ARCHITECTURES.register("DenoisingEBM")
class DenoisingEBM(nn.Module):
    """The DAE r = g∘f (parameters φ) and the semantic decoder h (parameters γ), with the paper's two energies.

    ``forward(x)`` is the texture energy at ``energy_sigma`` (0.05, the OOD experiment's σ) with a fixed noise draw
    (seed 0), so E(x) is deterministic. The training losses (Algorithm 1) are the objective's (``zoo.objectives.debm``).
    """

    compiled_parts = ("dae", "decoder")  # what compile=True puts under torch.compile (zoo.sampling.compiled)

    def __init__(self, input_shape: list[int], width: int = 32, latent_dim: int = 64, energy_sigma: float = 0.05):
        super().__init__()
        channels, size, size_w = input_shape
        if size != size_w or size % 4:
            raise ValueError(f"DenoisingEBM needs square images with a size divisible by 4, got {input_shape}")
        self.latent_dim, self.energy_sigma = latent_dim, energy_sigma
        self.dae = UNetDAE(channels, size, width, latent_dim)
        self.decoder = SemanticDecoder(channels, size, width, latent_dim)
        # running per-dimension mean and std of the DAE's codes f(x~, σ) of the training data (updated by the training
        # objective, as BatchNorm keeps its statistics); read only by the opt-in latent_init="codes"
        self.register_buffer("code_mean", torch.zeros(latent_dim))
        self.register_buffer("code_std", torch.ones(latent_dim))

    # ---------------------------------------------------------------- the paper's quantities
    def reconstruct(self, x_noisy: torch.Tensor, sigma) -> torch.Tensor:
        return self.dae(x_noisy, _per_sample(sigma, x_noisy))

    def texture_energy(self, x: torch.Tensor, sigma, generator=None, dae_params: dict | None = None) -> torch.Tensor:
        """Eq. (7), one noise draw ε per sample. ``dae_params``: evaluate r with these (e.g. detached) parameters."""
        s = _per_sample(sigma, x)
        x_noisy = x + s.view(-1, 1, 1, 1) * randn_like(x, generator)
        r = self.dae(x_noisy, s) if dae_params is None else functional_call(self.dae, dae_params, (x_noisy, s))
        return sq_norm(x - r) / (2 * s**2)

    def semantic_energy(self, z: torch.Tensor, sigma, generator=None, dae_params: dict | None = None) -> torch.Tensor:
        """Eq. (8): the texture energy of the decoded image h(z)."""
        return self.texture_energy(self.decoder(z), _per_sample(sigma, z), generator, dae_params)

    def dae_score_energy(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """||x - sg[r(x, σ)]||² / (2σ²) with r held fixed (no gradient through the DAE): its gradient (x - r(x, σ)) / σ²
        is minus the DAE's score estimate of the σ-smoothed data density at x (Theorem 1, eq. 2, with x̃ = x; the first
        term of eq. 21). The opt-in data stage ``data_score: dae`` (not in the paper) follows it; it is a score, not a
        conservative field, so no Metropolis test applies. One DAE forward pass per step, no backward pass."""
        s = _per_sample(sigma, x)
        with torch.no_grad():
            r = self.dae(x, s)
        return sq_norm(x - r) / (2 * s**2)

    def latent_start(self, n: int, init: str = "normal", generator=None, device=None, dtype=None) -> torch.Tensor:
        """z^0 of the latent chain (eq. 15): N(0, I) as in Algorithm 1 (``init="normal"``), or, opt-in and not in the
        paper (``init="codes"``), N(code_mean, diag code_std²): the DAE's codes of the training data, whose location
        and scale nothing in Algorithm 1 ties to N(0, I) (``experiments/debm_latent_chain.py``)."""
        if init not in LATENT_INITS:
            raise ValueError(f"latent_init must be one of {LATENT_INITS}, got {init!r}")
        e = torch.randn((n, self.latent_dim), generator=generator, device=device, dtype=dtype)
        if init == "normal":
            return e
        return self.code_mean.to(e) + self.code_std.to(e) * e

    @torch.no_grad()
    def track_codes(self, z: torch.Tensor, momentum: float = 0.01) -> None:
        """Update the running mean and std of the codes with a batch of them (exponential moving average)."""
        self.code_mean.lerp_(z.mean(0).to(self.code_mean), momentum)
        self.code_std.lerp_(z.std(0).to(self.code_std), momentum)

    def denoise(self, x_noisy: torch.Tensor, sigma: float) -> torch.Tensor:
        return self.reconstruct(x_noisy, sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator(x.device).manual_seed(0)
        return self.texture_energy(x, self.energy_sigma, generator)
