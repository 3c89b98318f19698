"""Emotion models: ImageNet backbones with categorical / valence-arousal(-dominance) heads.

The public surface is :class:`EmotionModel`, :func:`build_model`,
:func:`save_model` and :func:`load_model`; ``load_model("default")`` gives the bundled
EfficientNet-Lite0 model trained on Emotion6 and OASIS (see ``default/MODEL_CARD.md``).
Datasets, lexicon, training and evaluation live in their own modules of this package.
"""

from __future__ import annotations

from evoemotion.emotion.backbones import BackboneInfo, available_backbones, build_backbone
from evoemotion.emotion.model import (
    DEFAULT_CHECKPOINT,
    EmotionModel,
    HeadSpec,
    build_model,
    load_model,
    save_model,
)

__all__ = [
    "DEFAULT_CHECKPOINT",
    "BackboneInfo",
    "EmotionModel",
    "HeadSpec",
    "available_backbones",
    "build_backbone",
    "build_model",
    "load_model",
    "save_model",
]
