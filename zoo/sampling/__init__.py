"""Sampling as components: schedules, one-step kernels, the chain driver, and named samplers built from them."""
from .chain import ChainOptions, Clamp, Sampler, SamplerOutput, run_chain
from .kernels import HMC, KERNELS, MALA, EnergyFn, Langevin, StepParams, build_kernel, energy_and_grad, leapfrog, register_kernel
from .samplers import SAMPLERS, AnnealedLangevinSampler, TwoStageSampler, build_sampler, denoise_jump, register_sampler, two_stage_chain
from .schedules import temperature_schedule
from .noise_conditional import AnnealedSigmaLangevinSampler, EDMStochasticSampler, ProbabilityFlowODESampler, edm_sigmas

__all__ = [
    "AnnealedLangevinSampler", "AnnealedSigmaLangevinSampler", "ChainOptions", "EDMStochasticSampler", "ProbabilityFlowODESampler", "edm_sigmas", "Clamp", "EnergyFn", "HMC", "KERNELS", "Langevin", "MALA", "SAMPLERS", "Sampler", "SamplerOutput",
    "StepParams", "TwoStageSampler", "build_kernel", "build_sampler", "denoise_jump", "energy_and_grad", "leapfrog", "register_kernel",
    "register_sampler", "run_chain", "temperature_schedule", "two_stage_chain",
]
