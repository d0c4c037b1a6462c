"""Training objectives: one interface, ``objective(model, batch, ctx) -> ObjectiveOutput``, picked by name from an
entry's ``recipe.objective`` block. An objective may own state (``state_dict`` / ``load_state_dict``, e.g. a replay
buffer): tensors, numbers, strings, lists and dicts, which the training loop checkpoints as safetensors + JSON
(``zoo.training.state``)."""
from .base import (OBJECTIVES, Objective, ObjectiveContext, ObjectiveOutput, build_objective, contrastive_loss,
                   register_objective)
from .classification import CrossEntropyObjective
from .debm import DenoisingEBMObjective
from .maximum_likelihood import MaximumLikelihoodObjective
from .nce import NCEObjective
from .noise_conditional import NoiseConditionalDSMObjective
from .score_matching import (DEENObjective, DSMObjective, MDSMObjective, ScoreMatchingObjective,
                             SlicedScoreMatchingObjective, denoising_residual, noise_levels)

__all__ = ["CrossEntropyObjective", "DEENObjective", "DSMObjective", "DenoisingEBMObjective", "MDSMObjective",
           "MaximumLikelihoodObjective", "NCEObjective", "NoiseConditionalDSMObjective", "OBJECTIVES", "Objective", "ObjectiveContext",
           "ObjectiveOutput", "ScoreMatchingObjective", "SlicedScoreMatchingObjective", "build_objective",
           "contrastive_loss", "denoising_residual", "noise_levels", "register_objective"]
