"""Conditional CPPN generator: images for a target emotion, trained through a classifier.

The seed's plan for the regression representations (proposal section 4.3): where a
valence-arousal(-dominance) regressor gives no class confidence to maximise, explore its
space with a generator that takes a target condition and learns, with no training images,
to draw pictures the frozen classifier rates at that target — a conditional GAN whose
critic is the emotion model (Gauthier 2014; Tan et al. 2017). A one-hot emotion works as
the condition for the categorical representation.

Modules, in the order an image is made:

* :mod:`~evoemotion.cgen.config` — :class:`Architecture`, :class:`GeneratorTrainConfig`,
  :class:`Refinement`;
* :mod:`~evoemotion.cgen.targets` — :class:`TargetSpace`: what a condition means, valid
  targets, grids of targets;
* :mod:`~evoemotion.cgen.network` — :class:`ConditionalGenerator`: the CPPN, rendering at
  any resolution in tiles;
* :mod:`~evoemotion.cgen.training` — :class:`Trainer`, :func:`train`: fit + mode-seeking
  diversity losses, random crops, resumable state;
* :mod:`~evoemotion.cgen.checkpoint` — :func:`save_generator`, :func:`load_generator`;
* :mod:`~evoemotion.cgen.refinement` — :func:`refine`: test-time steps that bring each image
  onto its target;
* :mod:`~evoemotion.cgen.sampling` — grids over the target space;
* :mod:`~evoemotion.cgen.evaluation` — :func:`evaluate` on the MAP-Elites archive's cells.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it. Loaded on first use, so that importing
#: :mod:`evoemotion.cgen.config` (the command line's defaults) does not import torch.
_EXPORTS = {
    "Architecture": "config",
    "GeneratorTrainConfig": "config",
    "Refinement": "config",
    "KINDS": "targets",
    "TargetSpace": "targets",
    "ACTIVATIONS": "network",
    "ConditionalGenerator": "network",
    "coordinates": "network",
    "Trainer": "training",
    "resume_trainer": "training",
    "train": "training",
    "GeneratorCheckpoint": "checkpoint",
    "load_generator": "checkpoint",
    "save_generator": "checkpoint",
    "grid_targets": "sampling",
    "render_targets": "sampling",
    "sample_grid": "sampling",
    "refine": "refinement",
    "Evaluation": "evaluation",
    "evaluate": "evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
