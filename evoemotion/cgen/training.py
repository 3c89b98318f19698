"""Training a conditional generator through a frozen emotion classifier.

No training images are used: for random targets c and latents z the generator draws
images, the frozen classifier predicts their emotion, and gradient descent lowers

* the *fit* loss — squared error between target and predicted valence/arousal(/dominance),
  both rescaled to [0, 1] (``va``/``vad``), or cross-entropy to the target emotion
  (``categorical``) — plus
* a *mode-seeking* diversity term (Mao et al., CVPR 2019): every target is drawn with two
  latents, and ``1 / (d_image / d_z + eps)`` penalises pairs whose images differ less than
  their latents do, so one condition yields many different pictures.

With ``crops > 1`` every image is seen through several random crops and the classifier's
outputs are averaged over them (as the scorer's anti-fooling crops do), so the generator
cannot satisfy the classifier with a pattern that only works at one framing.

:class:`Trainer` holds everything a restart needs (weights, optimiser, RNG, step, metric
history); :func:`train` runs it with periodic atomic checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from evoemotion.cgen.config import GeneratorTrainConfig
from evoemotion.cgen.curriculum import TargetSampler
from evoemotion.cgen.network import ConditionalGenerator
from evoemotion.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from evoemotion.cgen.checkpoint import GeneratorCheckpoint
    from evoemotion.cgen.targets import TargetSpace

#: Floor of the image/latent distance ratio in the mode-seeking term (bounds it by 1/eps).
_RATIO_EPS = 0.01

#: Output pre-activations beyond +-this (colour levels below 5 or above 250 of 255) are
#: penalised by ``saturation_weight``: past it the sigmoid's gradient all but vanishes.
SATURATION_BOUND = 4.0

#: Added under the square root of the distance loss (keeps its gradient finite at 0).
_DISTANCE_EPS = 1e-6


class Trainer:
    """Trains a :class:`ConditionalGenerator` against a frozen classifier.

    Args:
        generator: The generator to train (moved to ``device``).
        model: The frozen :class:`~evoemotion.emotion.EmotionModel` (moved to ``device``,
            kept in eval mode, its parameters stop requiring gradients).
        config: Training hyper-parameters.
        device: Torch device for both networks.

    Attributes:
        step: Optimisation steps done so far.
        total_steps: The step count :func:`train` was last asked to reach (0: never).
        history: One metrics dict per step (see :meth:`train_step`).
    """

    def __init__(
        self,
        generator: ConditionalGenerator,
        model: Any,
        config: GeneratorTrainConfig,
        *,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.generator = generator.to(self.device)
        self.model = model.to(self.device).eval()
        self.model.requires_grad_(False)
        self.config = config
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.lr)
        self.rng = torch.Generator().manual_seed(config.seed)
        self.sampler = TargetSampler(
            generator.space,
            bins=config.reach_bins or 2,
            explore=config.explore if config.reach_bins else 1.0,
        )
        self.step = 0
        self.total_steps = 0
        self.history: list[dict[str, float]] = []

    @property
    def classifier_size(self) -> int:
        """Side of the images the classifier sees."""
        return self.config.classifier_size or int(self.model.input_size)

    def _crops(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The views the classifier sees: the whole image, or random square crops."""
        if self.config.crops == 1:
            return [images]
        n, size, low = len(images), self.classifier_size, self.config.crop_min
        views = []
        for _ in range(self.config.crops):
            side = low + (1 - low) * torch.rand(n, generator=self.rng)
            centre = (1 - side)[:, None] * (2 * torch.rand((n, 2), generator=self.rng) - 1)
            theta = torch.zeros((n, 2, 3))
            theta[:, 0, 0] = theta[:, 1, 1] = side
            theta[:, :, 2] = centre
            grid = F.affine_grid(theta.to(self.device), [n, 3, size, size], align_corners=False)
            views.append(F.grid_sample(images, grid, mode="bilinear", align_corners=False))
        return views

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Classifier outputs for float images, averaged over the configured crops.

        Args:
            images: ``(N, 3, H, W)`` float in [0, 1] on the trainer's device.

        Returns:
            See :func:`classify`.
        """
        return classify(
            self.model, self.generator.space, self._crops(images), self.classifier_size
        )

    def losses(
        self, targets: torch.Tensor, z: torch.Tensor, images: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """Total loss and its parts for images drawn as mode-seeking pairs.

        Args:
            targets: ``(2B, ...)`` canonical targets; row ``i`` and ``i + B`` are equal.
            z: ``(2B, latent_dim)`` latents.
            images: ``(2B, 3, H, W)`` generated images.

        Returns:
            The loss to minimise; a metrics dict: ``loss``, ``fit``, ``diversity`` (mean
            absolute pixel difference within pairs), ``diversity_embedding`` (mean cosine
            distance of their embeddings) and ``error`` (mean absolute target error on the
            classifier's scale) or ``target_prob`` (categorical); and the detached
            predictions (values, or class probabilities for a categorical space).
        """
        space = self.generator.space
        prediction = self.predict(images)
        fit = fit_per_image(space, prediction, targets, self.config.fit_loss).mean()
        if space.categorical:
            predicted = prediction["log_probs"].detach().exp()
            picked = predicted.gather(1, targets[:, None])
            metrics = {"target_prob": float(picked.mean())}
        else:
            predicted = prediction["values"].detach()
            metrics = {"error": float((predicted - targets).abs().mean())}
        half = len(images) // 2
        d_pixels = (images[:half] - images[half:]).abs().mean(dim=(1, 2, 3))
        embedding = prediction["embedding"]
        d_embedding = 1.0 - F.cosine_similarity(embedding[:half], embedding[half:], dim=1)
        d_image = d_embedding if self.config.diversity_space == "embedding" else d_pixels
        d_latent = (z[:half] - z[half:]).abs().mean(dim=1)
        diversity = (1.0 / (d_image / d_latent + _RATIO_EPS)).mean()
        loss = fit + self.config.diversity_weight * diversity
        metrics.update(
            loss=float(loss.detach()),
            fit=float(fit.detach()),
            diversity=float(d_pixels.detach().mean()),
            diversity_embedding=float(d_embedding.detach().mean()),
        )
        return loss, metrics, predicted

    def train_step(self) -> dict[str, float]:
        """One optimisation step on a fresh batch of targets and latent pairs.

        Targets come from the :class:`~evoemotion.cgen.curriculum.TargetSampler`, which
        then records where the batch's images landed.

        Returns:
            The step's metrics (also appended to :attr:`history`), with ``step`` added.
        """
        batch = self.config.batch_size
        targets = self.sampler.sample(batch, self.rng)
        targets = torch.cat([targets, targets]).to(self.device)
        z = self.generator.latents(2 * batch, self.rng)
        logits = self.generator.logits(
            self.generator.embedding(targets, z), self.config.train_size
        )
        loss, metrics, predicted = self.losses(targets, z, torch.sigmoid(logits))
        if self.config.saturation_weight:
            saturation = F.relu(logits.abs() - SATURATION_BOUND).square().mean()
            loss = loss + self.config.saturation_weight * saturation
            metrics.update(loss=float(loss.detach()), saturation=float(saturation.detach()))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.generator.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.sampler.update(targets, predicted)
        self.step += 1
        metrics["step"] = self.step
        self.history.append(metrics)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """Everything besides the generator weights that a restart needs."""
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.get_state(),
            "history": list(self.history),
            "config": self.config.to_dict(),
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            ConfigError: the stored training config differs from this trainer's.
        """
        if GeneratorTrainConfig.from_dict(state["config"]) != self.config:
            raise ConfigError("the stored training options differ from this trainer's")
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.set_state(state["rng"])
        self.step = int(state["step"])
        self.total_steps = int(state["total_steps"])
        self.history = list(state["history"])
        if "sampler" in state:
            self.sampler.load_state_dict(state["sampler"])


def classify(
    model: Any, space: TargetSpace, views: list[torch.Tensor], size: int
) -> dict[str, torch.Tensor]:
    """The classifier's outputs for views of the same images, averaged over the views.

    Args:
        model: The frozen :class:`~evoemotion.emotion.EmotionModel`.
        space: The generator's target space (which outputs count).
        views: One or more ``(N, 3, H, W)`` float batches in [0, 1] (crops of one batch).
        size: Side the classifier sees.

    Returns:
        ``"log_probs"`` (N, K) for a categorical space (log of the view-mean
        probabilities), else ``"values"`` (N, dims) on the classifier's scale; and
        ``"embedding"`` (N, D), the view-mean pooled embedding.
    """
    outputs = [model(model.preprocess(view, size)) for view in views]
    embedding = torch.stack([out["embedding"] for out in outputs]).mean(dim=0)
    if space.categorical:
        log_probs = torch.stack([F.log_softmax(out["logits"], dim=-1) for out in outputs])
        return {
            "log_probs": torch.logsumexp(log_probs, dim=0) - math.log(len(outputs)),
            "embedding": embedding,
        }
    values = torch.stack(
        [torch.stack([out[name] for name in space.names], dim=-1) for out in outputs]
    )
    return {"values": values.mean(dim=0), "embedding": embedding}


def fit_per_image(
    space: TargetSpace, prediction: dict[str, torch.Tensor], targets: torch.Tensor, fit_loss: str
) -> torch.Tensor:
    """How far each image's prediction is from its target, as the fit loss measures it.

    Args:
        space: The target space.
        prediction: :func:`classify`'s outputs.
        targets: ``(N, dims)`` canonical targets, or ``(N,)`` class indices.
        fit_loss: One of :data:`~evoemotion.cgen.config.FIT_LOSSES` (regression only):
            ``"mse"`` the mean squared error of the normalised values, ``"distance"``
            their Euclidean distance. Categorical: the negative log target probability.

    Returns:
        ``(N,)`` losses.
    """
    if space.categorical:
        return -prediction["log_probs"].gather(1, targets[:, None]).squeeze(1)
    gap = space.normalise(prediction["values"]) - space.normalise(targets)
    if fit_loss == "distance":
        return (gap.square().sum(dim=1) + _DISTANCE_EPS).sqrt()
    return gap.square().mean(dim=1)


def train(
    trainer: Trainer,
    steps: int,
    *,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 50,
    classifier_source: str = "",
    callback: Callable[[dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> bool:
    """Train until ``trainer.step == steps``, writing checkpoints along the way.

    Args:
        trainer: The trainer (fresh, or restored from a checkpoint to resume).
        steps: Total number of steps to reach (already-done steps count).
        checkpoint: Generator file written every ``checkpoint_every`` steps, at the end and
            when stopped early (atomically); ``None`` writes nothing.
        checkpoint_every: Steps between checkpoints.
        classifier_source: How the classifier was named (path or ``"default"``), recorded
            in the checkpoint beside its identity hash.
        callback: Called with each step's metrics.
        should_stop: Polled after every step; returning True stops training early (after a
            checkpoint), e.g. on Ctrl-C.

    Returns:
        True when ``steps`` was reached, False when stopped early.

    Raises:
        ConfigError: ``steps`` or ``checkpoint_every`` is not positive.
    """
    from evoemotion.cgen.checkpoint import save_generator

    if steps < 1 or checkpoint_every < 1:
        raise ConfigError(
            f"`steps` ({steps}) and `checkpoint_every` ({checkpoint_every}) must be positive"
        )

    def save() -> None:
        if checkpoint is not None:
            save_generator(
                checkpoint,
                trainer.generator,
                trainer.model,
                classifier_source=classifier_source,
                trainer=trainer,
            )

    trainer.total_steps = steps
    while trainer.step < steps:
        metrics = trainer.train_step()
        if callback is not None:
            callback(metrics)
        if should_stop is not None and should_stop():
            save()
            return False
        if trainer.step % checkpoint_every == 0 and trainer.step < steps:
            save()
    save()
    return True


def resume_trainer(
    checkpoint: GeneratorCheckpoint, model: Any, *, device: torch.device | str = "cpu"
) -> Trainer:
    """Rebuild the trainer stored in a generator checkpoint, ready to continue.

    Args:
        checkpoint: The loaded generator file.
        model: The classifier it was trained against.
        device: Torch device to continue on.

    Returns:
        The trainer, at the checkpoint's step, with its optimiser and RNG state.

    Raises:
        CheckpointError: the file holds no training state, a different classifier, or a
            malformed one.
    """
    if checkpoint.training is None:
        raise CheckpointError(
            f"{checkpoint.path} holds a bare generator without training state; it cannot be resumed"
        )
    checkpoint.check_classifier(model)
    try:
        config = GeneratorTrainConfig.from_dict(checkpoint.training["config"])
        trainer = Trainer(checkpoint.generator, model, config, device=device)
        trainer.load_state_dict(checkpoint.training)
    except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CheckpointError(
            f"{checkpoint.path} has malformed training state ({reason})"
        ) from None
    return trainer
