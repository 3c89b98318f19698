"""Test-time refinement: a few gradient steps that bring a generator's images onto target.

A trained generator lands near its targets, not always in them: one network for every
target trades precision for reach. Refinement finishes the job per image. Each image's
embedding (what the generator makes of its target and latent: the vector that biases the
first layer, modulates every hidden layer and tints the output) becomes a free variable,
and Adam lowers the training fit loss (:func:`~evoemotion.cgen.training.fit_per_image`)
through the frozen classifier, the generator's weights left as they are. Every image is
refined on its own (the loss is a sum over images, and Adam's steps are per coordinate),
starting from its own sample, so the latents' different pictures stay different pictures.

A refined image is still a plain CPPN (:meth:`ConditionalCPPN.programs
<evoemotion.cgen.network.ConditionalCPPN.programs>`): it renders at any resolution, with
Numba, from its embedding (:meth:`ConditionalGenerator.render_embeddings
<evoemotion.cgen.network.ConditionalGenerator.render_embeddings>`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from evoemotion.cgen.config import Refinement
from evoemotion.cgen.network import ConditionalGenerator
from evoemotion.cgen.training import classify, fit_per_image
from evoemotion.errors import ConfigError
from evoemotion.progress import Progress

#: Images refined in one forward and backward pass (bounds the memory of a step).
REFINE_CHUNK = 32


def refine(
    generator: ConditionalGenerator,
    model: Any,
    targets: Any,
    z: torch.Tensor,
    refinement: Refinement,
    *,
    done: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Refine the embeddings of (target, latent) pairs towards their targets.

    Args:
        generator: The trained generator (left unchanged).
        model: The frozen classifier it was trained against.
        targets: One canonical target per latent (any form :meth:`TargetSpace.check`
            accepts).
        z: ``(N, latent_dim)`` latents.
        refinement: Steps, learning rate, time limit and sizes.
        done: Called with the indices ``(n,)`` of the images still refining and their
            ``(n, width)`` predictions (regression values on the classifier's scale, or
            class probabilities); images it marks True are final and refined no further
            (e.g. those already inside their target cell). ``None``: every image takes
            every step.
        progress: Reports stage ``"refine"`` in steps.

    Returns:
        The ``(N, embed_dim)`` refined embeddings (render them with
        :meth:`ConditionalGenerator.render_embeddings`) and a summary: ``steps`` taken,
        ``seconds``, ``image_steps`` (images refined summed over steps), ``done`` (share of
        images marked done).

    Raises:
        ConfigError: invalid targets, or a target count that is not one per latent.
    """
    space = generator.space
    values = space.as_tensor(targets, generator.device)
    if len(values) != len(z):
        raise ConfigError(f"got {len(values)} targets for {len(z)} latents")
    with torch.no_grad():
        embedding = generator.embedding(values, z.to(generator.device))
    embedding.requires_grad_(True)
    optimizer = torch.optim.Adam([embedding], lr=refinement.lr)
    active = torch.ones(len(z), dtype=torch.bool)
    start, steps, image_steps = time.perf_counter(), 0, 0
    with torch.enable_grad():
        while steps < refinement.steps and bool(active.any()):
            if refinement.seconds is not None and time.perf_counter() - start >= refinement.seconds:
                break
            optimizer.zero_grad(set_to_none=True)
            rows = torch.nonzero(active).squeeze(1)
            predictions = []
            for chunk in rows.split(REFINE_CHUNK):
                images = torch.sigmoid(generator.logits(embedding[chunk], refinement.size))
                prediction = classify(model, space, [images], refinement.classifier_size)
                fit = fit_per_image(space, prediction, values[chunk], refinement.fit_loss)
                fit.sum().backward()
                predictions.append(_readable(prediction))
            if done is not None:  # judged on this step's images, before the step moves them
                marked = done(rows.cpu().numpy(), np.concatenate(predictions))
                finished = torch.from_numpy(np.asarray(marked, dtype=bool))
                embedding.grad[rows[finished]] = 0.0
                active[rows[finished]] = False
            # Adam moves an entry with zero gradient by its momentum: restore finished rows
            kept = embedding.detach()[~active].clone()
            optimizer.step()
            with torch.no_grad():
                embedding[~active] = kept
            steps += 1
            image_steps += len(rows)
            if progress is not None:
                progress("refine", 1, refinement.steps, None)
    summary = {
        "steps": float(steps),
        "seconds": time.perf_counter() - start,
        "image_steps": float(image_steps),
        "done": float((~active).float().mean()) if done is not None else 0.0,
    }
    return embedding.detach(), summary


def _readable(prediction: dict[str, torch.Tensor]) -> np.ndarray:
    """Detached numpy predictions: class probabilities or regression values."""
    if "log_probs" in prediction:
        return prediction["log_probs"].detach().exp().cpu().numpy()
    return prediction["values"].detach().cpu().numpy()
