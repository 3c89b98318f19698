"""The options of a generator: its architecture and its training (no torch needed).

Both are frozen dataclasses that validate themselves, travel inside the generator
checkpoint as plain dicts, and give the command line its defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from evoemotion.errors import ConfigError
from evoemotion.render.ops import ACTIVATIONS as CPPN_ACTIVATIONS

#: Choices of :attr:`GeneratorTrainConfig.fit_loss` and
#: :attr:`GeneratorTrainConfig.diversity_space`.
FIT_LOSSES = ("mse", "distance")
DIVERSITY_SPACES = ("pixels", "embedding")

#: Choices of :meth:`~evoemotion.cgen.network.ConditionalGenerator.render`'s ``renderer``.
RENDERERS = ("auto", "numba", "torch")

#: What training options absent from an older checkpoint's training state meant then
#: (uniform targets, squared error, pixel diversity), so that it resumes as it started.
_LEGACY_TRAINING = {"reach_bins": 0, "fit_loss": "mse", "diversity_space": "pixels"}


def _from_dict(cls: type, data: dict[str, Any], what: str) -> Any:
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {what} option(s) {', '.join(unknown)}")
    return cls(**data)


def _check(obj: Any, what: str, checks: dict[str, bool]) -> None:
    for name, ok in checks.items():
        if not ok:
            raise ConfigError(f"{what} option {name}={getattr(obj, name)!r} is out of range")


@dataclass(frozen=True)
class Architecture:
    """Shape of the conditional CPPN.

    Args:
        latent_dim: Width of the latent vector z.
        hidden: Units per hidden layer.
        depth: Hidden layers.
        embed_dim: Width of the per-image embedding of (z, condition).
        activations: Hidden activations (names of the ``cppn`` genotype's activations);
            the units of each layer are split evenly among them.
        coord_scale: Standard deviation of the initial coordinate weights (higher: finer
            initial patterns).
        condition_cells: Nodes per dimension of a learned, interpolated embedding offset
            over a va/vad target space (:class:`~evoemotion.cgen.network.ConditionTable`);
            0: the condition reaches the network through the MLP only.
        seed: Seeds the initial weights.

    Raises:
        ConfigError: a value is out of range or an activation is unknown.
    """

    latent_dim: int = 8
    hidden: int = 32
    depth: int = 4
    embed_dim: int = 32
    activations: tuple[str, ...] = ("sin", "tanh", "gauss", "identity")
    coord_scale: float = 2.0
    condition_cells: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "activations", tuple(self.activations))
        unknown = [name for name in self.activations if name not in CPPN_ACTIVATIONS]
        if unknown or not self.activations:
            raise ConfigError(
                f"unknown CPPN activation(s) {unknown or '(none given)'}; "
                f"choose from {', '.join(CPPN_ACTIVATIONS)}"
            )
        _check(
            self,
            "architecture",
            {
                "latent_dim": self.latent_dim >= 1,
                "hidden": self.hidden >= len(self.activations),
                "depth": self.depth >= 1,
                "embed_dim": self.embed_dim >= 1,
                "coord_scale": self.coord_scale > 0 and math.isfinite(self.coord_scale),
                "condition_cells": self.condition_cells == 0 or self.condition_cells >= 2,
            },
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: an unknown field or a bad value.
        """
        return _from_dict(cls, data, "architecture")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        data = asdict(self)
        data["activations"] = list(self.activations)
        return data


@dataclass(frozen=True)
class GeneratorTrainConfig:
    """Hyper-parameters of generator training.

    Args:
        batch_size: Targets per step; each is drawn with two latents (2 x batch images).
        lr: Adam learning rate.
        grad_clip: Largest gradient norm of a step (0: no clipping).
        diversity_weight: Weight of the mode-seeking term (0 turns it off).
        saturation_weight: Weight of the penalty on output pre-activations beyond
            :data:`~evoemotion.cgen.training.SATURATION_BOUND` (the squared excess,
            averaged over pixels; 0 turns it off): it keeps colours where the sigmoid
            still passes a gradient, against flat saturated fields.
        crops: Random crops per image whose classifier outputs are averaged (1: whole image).
        crop_min: Smallest crop side as a fraction of the image side.
        train_size: Side at which images are drawn while training (default 64, as
            ``evoemotion run`` renders).
        classifier_size: Side the classifier sees (0: its native input size; default 128,
            as ``evoemotion run`` scores).
        reach_bins: Cells per dimension of the map of reachable targets that training
            targets are drawn from (:class:`~evoemotion.cgen.curriculum.TargetSampler`);
            0 draws every target uniformly over the scale.
        explore: Share of targets drawn uniformly even with a reachability map.
        fit_loss: ``"mse"``: squared error per target (far targets dominate);
            ``"distance"``: Euclidean distance per target (every target pulls equally,
            and the pull stays on as an image nears its target). Regression only.
        diversity_space: Where the mode-seeking term measures how different two images
            of one target are: ``"pixels"`` (mean absolute difference) or ``"embedding"``
            (cosine distance of the classifier's embeddings: different to the classifier,
            not only in colour).
        seed: Seeds targets, latents and crops.

    Raises:
        ConfigError: a value is out of range (the message names the field).
    """

    batch_size: int = 8
    lr: float = 5e-3
    grad_clip: float = 1.0
    diversity_weight: float = 0.001
    saturation_weight: float = 0.0
    crops: int = 1
    crop_min: float = 0.6
    train_size: int = 64
    classifier_size: int = 128
    reach_bins: int = 20
    explore: float = 0.1
    fit_loss: str = "distance"
    diversity_space: str = "embedding"
    seed: int = 0

    def __post_init__(self) -> None:
        for name, choices in (("fit_loss", FIT_LOSSES), ("diversity_space", DIVERSITY_SPACES)):
            if getattr(self, name) not in choices:
                raise ConfigError(
                    f"training option {name}={getattr(self, name)!r} is not one of "
                    f"{', '.join(choices)}"
                )
        _check(
            self,
            "training",
            {
                "batch_size": self.batch_size >= 1,
                "lr": self.lr > 0 and math.isfinite(self.lr),
                "grad_clip": self.grad_clip >= 0 and math.isfinite(self.grad_clip),
                "diversity_weight": self.diversity_weight >= 0
                and math.isfinite(self.diversity_weight),
                "saturation_weight": self.saturation_weight >= 0
                and math.isfinite(self.saturation_weight),
                "crops": self.crops >= 1,
                "crop_min": 0 < self.crop_min <= 1,
                "train_size": self.train_size >= 8,
                "classifier_size": self.classifier_size == 0 or self.classifier_size >= 8,
                "reach_bins": self.reach_bins == 0 or self.reach_bins >= 2,
                "explore": 0 <= self.explore <= 1,
            },
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorTrainConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: an unknown field or a bad value.
        """
        return _from_dict(cls, {**_LEGACY_TRAINING, **data}, "training")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


@dataclass(frozen=True)
class Refinement:
    """Options of test-time refinement (:func:`evoemotion.cgen.refinement.refine`).

    Args:
        steps: Adam steps per image and start (0: no refinement).
        lr: Adam learning rate on each image's CPPN weights (0.02: 0.05 and 0.1 overshoot).
        seconds: Stop after the step that passes this much wall-clock (``None``: no limit).
        patience: An image stalls once this many steps in a row have not lowered its loss
            (0: never; it takes every step unless it is on target).
        restarts: A stalled image starts again from a fresh latent (same target, its own
            new Adam state) up to this many times, while steps and seconds remain, if
            another image with the same target is on target (the ``done`` test of
            :func:`~evoemotion.cgen.refinement.refine`; the target is then known to be
            reachable, and more images of it are wanted); it stops when it stalls
            otherwise (unless ``borrow``). The best image over all its starts is kept.
        borrow: A stalled image whose target no image has reached yet restarts (within
            ``restarts``) from an on-target image of the nearest reached target, if that
            one is at most 1.5 grid steps away (the smallest distance between two
            targets): the reached region grows outwards, cell by cell, from where the
            generator already lands. Siblings borrow from different images.
        distinct: Images of one target must differ: an on-target image whose classifier
            embedding lies within this cosine distance of a sibling already on target is
            not done, and its loss gains a hinge, ``repel`` times the shortfall summed over
            such siblings, that pushes it away (the evaluation counts images as distinct
            from a cosine distance of 0.05). 0: twins count as done.
        repel: Weight of that hinge against the fit loss.
        candidates: Every start (the first and each restart) is the best of this many
            latents: their images are drawn and scored once, without gradients, and the
            one with the lowest fit loss is refined (the image's own latent is the first
            candidate of its first start). 1: the latent as drawn.
        width: At most this many images take a step at a time (one pass); the others
            wait, the images of targets already reached (which want more distinct images)
            going first, and among those and among the rest the lowest fit loss first (an
            image not yet stepped since its start: its screened loss, 0 with one
            candidate), so that under a time limit the steps go where they pay.
        size: Side at which the images are drawn while refining (as training draws them).
        classifier_size: Side the classifier sees.
        fit_loss: The fit loss (see :class:`~evoemotion.cgen.config.GeneratorTrainConfig`).

    Raises:
        ConfigError: a value out of range (the message names it).
    """

    steps: int = 30
    lr: float = 0.02
    seconds: float | None = None
    patience: int = 5
    restarts: int = 10
    borrow: bool = True
    distinct: float = 0.07
    repel: float = 4.0
    candidates: int = 8
    width: int = 32
    size: int = 64
    classifier_size: int = 128
    fit_loss: str = "distance"

    def __post_init__(self) -> None:
        _check(
            self,
            "refinement",
            {
                "steps": self.steps >= 0,
                "lr": self.lr > 0 and math.isfinite(self.lr),
                "seconds": self.seconds is None or self.seconds >= 0,
                "patience": self.patience >= 0,
                "restarts": self.restarts >= 0,
                "borrow": isinstance(self.borrow, bool),
                "distinct": 0 <= self.distinct <= 2,
                "repel": self.repel >= 0 and math.isfinite(self.repel),
                "candidates": self.candidates >= 1,
                "width": self.width >= 1,
                "size": self.size >= 8,
                "classifier_size": self.classifier_size >= 8,
                "fit_loss": self.fit_loss in FIT_LOSSES,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)
