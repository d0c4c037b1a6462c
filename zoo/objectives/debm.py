"""Denoising-EBM training, Algorithm 1 (Zeng): per outer iteration ``reconstruction_steps`` (L) updates of the DAE and
decoder losses, then one contrastive maximum-likelihood update with negatives from the two-stage chain (K latent steps
on U_s, decode, T data steps on U_c). One loop step = one optimizer update; ``contrastive_phase(step)`` says which kind.

``reconstruction_warmup`` (opt-in, not in the paper; 0 = Algorithm 1 exactly): a first stage of that many
reconstruction-only updates, so that the contrastive updates start from a trained DAE and decoder. The phase of
Algorithm 1 then counts from the end of the warm-up.

``latent_init="codes"`` (opt-in, not in the paper; default "normal" = N(0, I) as in Algorithm 1): the negatives' latent
chains start at the Gaussian of the DAE's codes of the training data (running statistics in the network). Measured
on denoising-ebm-mnist (``model_cards/denoising-ebm-mnist.latent_chain.json``): Algorithm 1 leaves the codes' location
and scale free (mean code norm 5.7 after the warm-up, 24 after 47 contrastive updates, per-dimension std 0.25-0.64),
so chains from N(0, I) start far from every data code."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..energies.debm import LATENT_INITS
from ..errors import ConfigError
from ..sampling import ChainOptions, two_stage_chain
from ..sampling.schedules import geometric_sigmas
from ..tensors import randn_like, sq_norm
from .base import Objective, ObjectiveContext, ObjectiveOutput, contrastive_loss, register_objective


@register_objective("debm")
@dataclass
class DenoisingEBMObjective(Objective):
    sigma_max: float = 1.0
    sigma_min: float = 0.01
    n_sigmas: int = 128  # S geometric levels; each sample draws one
    reconstruction_steps: int = 3  # L
    latent_steps: int = 20  # K
    data_steps: int = 90  # T
    latent_step_size: float = 0.1  # η1
    data_step_size: float = 0.01  # η2
    energy_l2: float = 0.0  # opt-in (not in the paper): α·(U(data)² + U(neg)²) on both contrastive terms
    reconstruction_warmup: int = 0  # opt-in (not in the paper): reconstruction-only updates before Algorithm 1
    latent_init: str = "normal"  # "codes" (opt-in, not in the paper): negatives' z^0 from the training codes' Gaussian

    def __post_init__(self):
        if self.latent_init not in LATENT_INITS:
            raise ConfigError(f"objective 'debm': latent_init must be one of {LATENT_INITS}, got {self.latent_init!r}")

    def contrastive_phase(self, step: int) -> bool:
        """Whether update ``step`` is Algorithm 1's line 7-18 update (else lines 2-6)."""
        if step < self.reconstruction_warmup:
            return False
        return (step - self.reconstruction_warmup) % (self.reconstruction_steps + 1) == self.reconstruction_steps

    def sigmas(self, batch: int, x: torch.Tensor, generator) -> torch.Tensor:
        levels = geometric_sigmas(self.sigma_max, self.sigma_min, self.n_sigmas)
        idx = torch.randint(0, self.n_sigmas, (batch,), generator=generator, device=x.device)
        return levels.to(x.device, x.dtype)[idx]

    def negatives(self, net, sigma: torch.Tensor, shape, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Lines 7-13 on the bare network: z^K on U_s(., σ_i), then x^T on U_c(., σ_i) (the shared two-stage chain)."""
        out = two_stage_chain(net, shape[0], sigma, self.latent_steps, self.data_steps, self.latent_step_size,
                              self.data_step_size, latent_init=self.latent_init, device=sigma.device,
                              dtype=sigma.dtype, options=ChainOptions(generator=generator, progress=False))
        return out.extras["latent"].detach(), out.samples.detach()

    @staticmethod
    def reconstruction_terms(net, x, sigma, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Lines 3-5: the DAE loss ||r(x̃, σ) - x||² (updates φ) and the decoder loss ||h(f(x̃, σ)) - x||² (eq. 13;
        updates only γ: the code f(x̃, σ) is detached, as line 5 updates the decoder alone). The codes also update the
        network's running code statistics (read only by the opt-in ``latent_init="codes"``)."""
        x_noisy = x + sigma.view(-1, 1, 1, 1) * randn_like(x, generator)
        dae = sq_norm(net.dae(x_noisy, sigma) - x).mean()
        z = net.dae.encode(x_noisy, sigma)[0].detach()
        net.track_codes(z)
        return dae, sq_norm(net.decoder(z) - x).mean()

    @staticmethod
    def contrastive_energies(net, x, sigma, generator, z_neg, x_neg) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Lines 14-18, the per-sample energies of the contrastive update: U_s of the data codes and of z^K (φ fixed,
        so only γ learns from them) and U_c of the data and of x^T (for φ)."""
        frozen = {k: v.detach() for k, v in net.dae.named_parameters()}
        with torch.no_grad():
            z_data = net.dae.encode(x + sigma.view(-1, 1, 1, 1) * randn_like(x, generator), sigma)[0]
        return {"U_s": (net.semantic_energy(z_data, sigma, generator, frozen),
                        net.semantic_energy(z_neg, sigma, generator, frozen)),
                "U_c": (net.texture_energy(x, sigma, generator), net.texture_energy(x_neg, sigma, generator))}

    def __call__(self, net, x: torch.Tensor, ctx: ObjectiveContext) -> ObjectiveOutput:
        g = ctx.generator
        sigma = self.sigmas(x.shape[0], x, g)
        if not self.contrastive_phase(ctx.step):
            dae, dec = self.reconstruction_terms(net, x, sigma, g)
            loss, logs = dae + dec, {"dae": dae.detach(), "decoder": dec.detach()}
        else:
            z_neg, x_neg = self.negatives(net, sigma, x.shape, g)
            energies = self.contrastive_energies(net, x, sigma, g, z_neg, x_neg)
            terms = {name: contrastive_loss(*pair, self.energy_l2) for name, pair in energies.items()}
            loss = terms["U_s"] + terms["U_c"]
            logs = {f"{name}_gap": (pos.mean() - neg.mean()).detach() for name, (pos, neg) in energies.items()}
        return ObjectiveOutput(loss, {"loss": loss.detach(), **logs})
