"""Test-time refinement: a few gradient steps that bring a generator's images onto target.

A trained generator lands near its targets, not always in them: one network for every
target trades precision for reach. Refinement finishes the job per image. Each image is a
plain CPPN once its target and latent are fixed (:meth:`ConditionalGenerator.program_weights
<evoemotion.cgen.network.ConditionalGenerator.program_weights>`); those CPPN weights, every
one of them (first-layer coordinate weights, hidden layers, outputs), become the image's
free variables, and Adam lowers the training fit loss
(:func:`~evoemotion.cgen.training.fit_per_image`) through the frozen classifier, the
generator left as it is. (Stepping only the embedding, which biases the first layer,
modulates the hidden ones and tints the output, leaves every image the generator's shared
spatial frequencies: on the benchmark's 10 x 10 ``va`` grid it reached 18-20 of MAP-Elites'
27 cells, the weights all 27.) Every image is refined on its own (the loss is a sum over
images, and Adam's steps are per coordinate), starting from its own sample, so the
latents' different pictures stay different pictures.
An image stops when it is on target (the caller's ``done`` test), or when ``patience``
steps in a row have not lowered its loss (a target beyond what the classifier gives it,
from where it started); with ``restarts`` it then starts again from a fresh latent, or,
with ``borrow``, where no image has reached its target yet, from an on-target image of a
neighbouring target (the reached region grows cell by cell from where the generator lands).
Images of one target must differ (``distinct``): an on-target image too near, in the
classifier's embedding, to a sibling already on target is not done, and a hinge on that
distance joins its loss and pushes it away. With ``candidates``, every fresh start is the
best of that many latents, their images scored once without gradients: a cheap screen that
spends the gradient steps on promising starts.

A refined image is still a plain CPPN (:meth:`ConditionalCPPN.programs
<evoemotion.cgen.network.ConditionalCPPN.programs>`): it renders at any resolution, with
Numba, from its weights (:meth:`ConditionalGenerator.render_programs
<evoemotion.cgen.network.ConditionalGenerator.render_programs>`).
"""

from __future__ import annotations

import math
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

#: A step improves an image when it lowers its best fit loss by more than this fraction.
IMPROVEMENT = 1e-3


def refine(
    generator: ConditionalGenerator,
    model: Any,
    targets: Any,
    z: torch.Tensor,
    refinement: Refinement,
    *,
    done: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Refine the CPPN weights of (target, latent) pairs' images towards their targets.

    Args:
        generator: The trained generator (left unchanged).
        model: The frozen classifier it was trained against.
        targets: One canonical target per latent (any form :meth:`TargetSpace.check`
            accepts).
        z: ``(N, latent_dim)`` latents.
        refinement: Steps, learning rate, patience, restarts, time limit and sizes.
        done: Called with the indices ``(n,)`` of the images still refining and their
            ``(n, width)`` predictions (regression values on the classifier's scale, or
            class probabilities); images it marks True are final and refined no further
            (e.g. those already inside their target cell). ``None``: every image takes
            every step.
        progress: Reports stage ``"refine"`` in image steps.
        seed: Seeds the fresh latents of restarts (:attr:`Refinement.restarts`).

    Returns:
        The ``(N, W)`` refined CPPN weights (render them with
        :meth:`ConditionalGenerator.render_programs`): for an image marked done the one
        judged on target, else the one with the lowest fit loss measured over all its
        starts (the starting sample's, if no step improved on it); and a summary: ``steps``
        (passes made, each stepping up to :attr:`Refinement.width` images), ``seconds``,
        ``image_steps`` (images refined summed over the passes), ``done``
        (share of images marked done), ``stalled`` (share that stalled with no restart
        left), ``restarts`` (new starts made, all images together), ``borrowed`` (those of
        them that started from a neighbouring target's image, :attr:`Refinement.borrow`),
        ``screened`` (candidate images scored to choose the starts; 0 with one candidate).

    Raises:
        ConfigError: invalid targets, or a target count that is not one per latent.
    """
    values = generator.space.as_tensor(targets, generator.device)
    if len(values) != len(z):
        raise ConfigError(f"got {len(values)} targets for {len(z)} latents")
    fresh = torch.Generator().manual_seed(int(seed))
    start = time.perf_counter()  # the screening of the first starts counts too
    start_weights, priority = _screened(generator, model, values, refinement, fresh, z)
    # one leaf per image, so that a restart can give one image a fresh Adam state
    params = [row.clone().requires_grad_(True) for row in start_weights]
    optimizer = torch.optim.Adam(params, lr=refinement.lr)
    kept = start_weights.clone()  # per image: the best weights measured so far
    best = torch.full((len(z),), math.inf)  # the lowest loss over all starts
    trail = best.clone()  # the lowest loss of the current start
    stale = torch.zeros(len(z), dtype=torch.long)
    taken = torch.zeros(len(z), dtype=torch.long)  # steps of the current start
    left = torch.full((len(z),), refinement.restarts, dtype=torch.long)
    active = torch.full((len(z),), refinement.steps > 0)
    finished = torch.zeros(len(z), dtype=torch.bool)
    groups = torch.unique(values.cpu(), dim=0, return_inverse=True)[1]  # images per target
    places = _places(generator, values) if refinement.borrow else None
    steps, image_steps, borrowed = 0, 0, 0
    marks: torch.Tensor | None = None  # unit classifier embeddings of the finished images
    with torch.enable_grad():
        while bool(active.any()):
            if refinement.seconds is not None and time.perf_counter() - start >= refinement.seconds:
                break
            optimizer.zero_grad(set_to_none=True)
            first = _reached_targets(groups, finished)
            rows = _next_rows(active, trail, priority, refinement.width, first)
            predictions, fits, stepped, features, nearest = [], [], [], [], []
            for chunk in rows.split(REFINE_CHUNK):
                leaves = [params[i] for i in chunk.tolist()]
                weights = torch.stack(leaves)
                prediction, fit = _fit(generator, model, weights, values[chunk], refinement)
                feature = torch.nn.functional.normalize(prediction["embedding"], dim=1)
                hinge, near = _twins(feature, chunk, marks, finished, groups, refinement.distinct)
                fit = fit + refinement.repel * hinge
                features.append(feature.detach())
                nearest.append(near)
                # gradients for the images' CPPN weights only, none for the classifier's
                # (whether or not the caller froze them)
                for leaf, grad in zip(leaves, torch.autograd.grad(fit.sum(), leaves), strict=True):
                    leaf.grad = grad
                predictions.append(_readable(prediction))
                fits.append(fit.detach().cpu())
                stepped.append(weights.detach())
            # judged on this step's images, before the step moves them
            fit, current, feature = torch.cat(fits), torch.cat(stepped), torch.cat(features)
            if marks is None:
                marks = feature.new_zeros((len(z), feature.shape[1]))
            better = fit < best[rows]
            best[rows[better]] = fit[better]
            kept[rows[better]] = current[better]
            improved = fit < trail[rows] * (1.0 - IMPROVEMENT)  # this start's own progress
            trail[rows[improved]] = fit[improved]
            stale[rows] = torch.where(improved, 0, stale[rows] + 1)
            if done is not None:
                marked = torch.from_numpy(
                    np.asarray(done(rows.cpu().numpy(), np.concatenate(predictions)), dtype=bool)
                )
                marked = _apart(marked, torch.cat(nearest), feature, groups[rows], refinement)
                kept[rows[marked]] = current[marked]
                marks[rows[marked]] = feature[marked]
                finished[rows[marked]] = True
            active &= ~finished
            optimizer.step()  # moves the stepped images only: the others have no gradient
            taken[rows] += 1
            if refinement.patience:
                stalled = active & (stale >= refinement.patience) & (left > 0)
                reached = _reached_targets(groups, finished)
                # fresh restarts go to targets that another image has proved reachable
                again = stalled & reached
                _restart(
                    generator, model, values, refinement, params, optimizer, again, fresh, priority
                )
                if refinement.borrow:
                    lent, donors = _donors(
                        stalled & ~reached, finished, places, refinement.restarts - left
                    )
                    losses = _losses(generator, model, kept[donors], values[lent], refinement)
                    _begin(params, optimizer, priority, lent, kept[donors], losses)
                    again[lent] = True
                    borrowed += len(lent)
                stale[again], trail[again], taken[again] = 0, math.inf, 0
                left[again] -= 1
                active &= stale < refinement.patience
            active &= taken < refinement.steps
            steps += 1
            image_steps += len(rows)
            if progress is not None:
                # the total: steps made, and the most the current starts have left
                left_now = int((refinement.steps - taken)[active].sum())
                progress("refine", len(rows), image_steps + left_now, None)
    summary = {
        "steps": float(steps),
        "seconds": time.perf_counter() - start,
        "image_steps": float(image_steps),
        "done": float(finished.float().mean()),
        "stalled": float((stale >= refinement.patience).float().mean())
        if refinement.patience
        else 0.0,
        "restarts": float((refinement.restarts - left).sum()),
        "borrowed": float(borrowed),
    }
    starts = len(z) + summary["restarts"] - borrowed  # a borrowed start is not screened
    summary["screened"] = starts * refinement.candidates if refinement.candidates > 1 else 0.0
    return kept, summary


def _twins(
    feature: torch.Tensor,
    rows: torch.Tensor,
    marks: torch.Tensor | None,
    finished: torch.Tensor,
    groups: torch.Tensor,
    distinct: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """How near the images ``rows`` are to their finished siblings (:attr:`Refinement.distinct`).

    Args:
        feature: ``(n, D)`` unit classifier embeddings of the images ``rows``.
        rows: Their indices.
        marks: ``(N, D)`` unit classifier embeddings of the finished images (``None``
            before any step).
        finished: ``(N,)`` which images are finished.
        groups: ``(N,)`` target group of every image.
        distinct: The cosine distance from which two images count as distinct.

    Returns:
        ``(n,)`` the hinge ``sum(max(0, distinct - distance))`` over each image's finished
        siblings (with gradients), and ``(n,)`` the cosine distance to the nearest one
        (no gradient; infinite with none).
    """
    n = len(rows)
    if marks is None or not distinct or not bool(finished.any()):
        return feature.new_zeros(n), torch.full((n,), math.inf)
    others = torch.nonzero(finished).squeeze(1)  # never a stepped image: those are active
    distance = 1.0 - feature @ marks[others].T
    mask = (groups[rows][:, None] == groups[others][None, :]).to(distance.device)
    hinge = (torch.relu(distinct - distance) * mask).sum(dim=1)
    near = torch.where(mask, distance.detach(), math.inf).min(dim=1).values.cpu()
    return hinge, near


def _apart(
    marked: torch.Tensor,
    nearest: torch.Tensor,
    feature: torch.Tensor,
    groups: torch.Tensor,
    refinement: Refinement,
) -> torch.Tensor:
    """``marked`` (on target) less the twins: images within :attr:`Refinement.distinct` of a
    finished sibling (``nearest``: :func:`_twins`), or of a sibling marked before them in
    the same step (``feature``, ``groups``: of the stepped images)."""
    if not refinement.distinct:
        return marked
    marked = marked & (nearest >= refinement.distinct)
    accepted: list[int] = []
    for i in torch.nonzero(marked).squeeze(1).tolist():
        twin = any(
            groups[j] == groups[i]
            and float(1.0 - feature[i] @ feature[j]) < refinement.distinct
            for j in accepted
        )
        if twin:
            marked[i] = False
        else:
            accepted.append(i)
    return marked


def _reached_targets(groups: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
    """``(N,)`` whether some image with the same target as each image is on target."""
    reached = torch.zeros(len(groups), dtype=torch.bool)  # group ids are < len(groups)
    reached[groups[finished]] = True
    return reached[groups]


def _restart(
    generator: ConditionalGenerator,
    model: Any,
    values: torch.Tensor,
    refinement: Refinement,
    params: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    rows: torch.Tensor,
    fresh: torch.Generator,
    priority: torch.Tensor,
) -> None:
    """Give the images ``rows`` (a mask) the CPPN weights of fresh latents (screened, see
    :func:`_screened`; their ``priority`` becomes the screened loss) and new Adam states."""
    picked = torch.nonzero(rows).squeeze(1)
    if not len(picked):
        return
    weights, fits = _screened(
        generator, model, values[picked.to(values.device)], refinement, fresh
    )
    _begin(params, optimizer, priority, picked, weights, fits)


def _begin(
    params: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    priority: torch.Tensor,
    picked: torch.Tensor,
    weights: torch.Tensor,
    losses: torch.Tensor,
) -> None:
    """Start the images ``picked`` (indices) again from the rows of ``weights``, with new Adam
    states; their ``priority`` becomes ``losses`` (the starts' fit losses)."""
    priority[picked] = losses
    with torch.no_grad():
        for i, row in zip(picked.tolist(), weights, strict=True):
            params[i].copy_(row)
            optimizer.state.pop(params[i], None)


def _donors(
    rows: torch.Tensor,
    finished: torch.Tensor,
    places: tuple[torch.Tensor, float],
    restarted: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of the images ``rows`` (a mask; their targets not reached) borrow a start, and
    from whom (:attr:`Refinement.borrow`): an on-target image of the nearest reached target
    within 1.5 grid steps (``places``: :func:`_places`). Siblings take different donors:
    image ``i`` after ``k`` restarts (``restarted``) takes donor ``(i + k) mod d`` of the
    ``d`` on-target images at the nearest distance.

    Returns:
        The borrowing images' indices and their donors' indices (equal lengths).
    """
    picked, donors = torch.nonzero(rows).squeeze(1), torch.nonzero(finished).squeeze(1)
    lent: list[int] = []
    chosen: list[int] = []
    if len(picked) and len(donors):
        points, spacing = places
        distance = torch.cdist(points[picked], points[donors])
        nearest = distance.min(dim=1).values
        for row, i in enumerate(picked.tolist()):
            if nearest[row] <= 1.5 * spacing + 1e-6:
                near = donors[distance[row] <= nearest[row] + 1e-6]
                lent.append(i)
                chosen.append(int(near[(i + int(restarted[i])) % len(near)]))
    return torch.tensor(lent, dtype=torch.long), torch.tensor(chosen, dtype=torch.long)


def _places(generator: ConditionalGenerator, values: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Where the targets lie, for :func:`_donors`: ``(N, condition_dim)`` condition vectors
    on the CPU (regression targets rescaled to [-1, 1] per dimension, classes one-hot), and
    the grid step, the smallest distance between two different targets (0 for one)."""
    points = generator.space.encode(values).float().cpu()
    distinct = torch.unique(points, dim=0)
    return points, float(torch.pdist(distinct).min()) if len(distinct) > 1 else 0.0


def _screened(
    generator: ConditionalGenerator,
    model: Any,
    values: torch.Tensor,
    refinement: Refinement,
    fresh: torch.Generator,
    z: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start CPPN weights for images of targets ``values``: per image, of
    :attr:`Refinement.candidates` latents (``z``'s row first where given, the rest drawn
    from ``fresh``), the one whose image has the lowest fit loss.

    Returns:
        ``(N, W)`` CPPN weights (no gradient) and ``(N,)`` their fit losses on the
        CPU (zeros with one candidate: not scored).
    """
    count, n = refinement.candidates, len(values)
    new = count - (z is not None)
    drawn = generator.latents(n * new, fresh).reshape(n, new, generator.latent_dim)
    if z is not None:
        drawn = torch.cat([z.to(generator.device)[:, None], drawn], dim=1)
    with torch.no_grad():
        weights = generator.program_weights(
            generator.embedding(
                values.repeat_interleave(count, dim=0), drawn.reshape(n * count, -1)
            )
        )
        if count == 1:
            return weights, torch.zeros(n)
        fits = _losses(
            generator, model, weights, values.repeat_interleave(count, dim=0), refinement
        )
        least, best = fits.reshape(n, count).min(dim=1)
    rows = torch.arange(n, device=weights.device)
    return weights.reshape(n, count, -1)[rows, best.to(weights.device)], least


def _losses(
    generator: ConditionalGenerator,
    model: Any,
    weights: torch.Tensor,
    targets: torch.Tensor,
    refinement: Refinement,
) -> torch.Tensor:
    """``(n,)`` fit losses (:func:`_fit`) of the images of CPPN weights ``weights`` towards
    ``targets`` on the CPU, without gradients, in chunks of :data:`REFINE_CHUNK`."""
    if not len(weights):
        return torch.zeros(0)
    chunks = torch.arange(len(weights), device=weights.device).split(REFINE_CHUNK)
    with torch.no_grad():
        return torch.cat(
            [_fit(generator, model, weights[c], targets[c], refinement)[1].cpu() for c in chunks]
        )


def _fit(
    generator: ConditionalGenerator,
    model: Any,
    weights: torch.Tensor,
    targets: torch.Tensor,
    refinement: Refinement,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The classifier's outputs (:func:`classify`) for the images of CPPN weights
    ``weights`` drawn at the refinement's sizes, and their ``(n,)`` fit losses towards
    ``targets``."""
    images = torch.sigmoid(generator.program_logits(weights, refinement.size))
    prediction = classify(model, generator.space, [images], refinement.classifier_size)
    return prediction, fit_per_image(generator.space, prediction, targets, refinement.fit_loss)


def _next_rows(
    active: torch.Tensor,
    trail: torch.Tensor,
    priority: torch.Tensor,
    width: int,
    first: torch.Tensor,
) -> torch.Tensor:
    """The (at most ``width``) active images that take the next step: those marked
    ``first`` (images of targets already reached, which want more distinct images) before
    the others, and within each the lowest losses first, the loss of an image not yet
    stepped since its start being its ``priority``."""
    rows = torch.nonzero(active).squeeze(1)
    if len(rows) <= width:
        return rows
    losses = torch.where(torch.isfinite(trail[rows]), trail[rows], priority[rows])
    order = torch.argsort(losses, stable=True)
    order = order[torch.argsort((~first[rows[order]]).to(torch.uint8), stable=True)]
    return rows[order[:width]].sort().values


def programs(
    generator: ConditionalGenerator,
    targets: Any,
    z: torch.Tensor,
    *,
    model: Any = None,
    refinement: Refinement | None = None,
    done: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The CPPN weights to render for (target, latent) pairs: refined when asked, else drawn.

    Args:
        generator: The generator.
        targets: One canonical target per latent.
        z: ``(N, latent_dim)`` latents.
        model: The classifier the generator was trained against (needed to refine).
        refinement: :func:`refine` with these options; ``None`` or 0 steps: the
            generator's own images, as drawn.
        done: See :func:`refine`.
        progress: See :func:`refine`.
        seed: See :func:`refine`.

    Returns:
        ``(N, W)`` CPPN weights (:meth:`ConditionalGenerator.program_weights
        <evoemotion.cgen.network.ConditionalGenerator.program_weights>`) and
        :func:`refine`'s summary (empty when not refined).

    Raises:
        ConfigError: refinement without a model, or invalid targets.
    """
    if refinement is not None and refinement.steps:
        if model is None:
            raise ConfigError("refining samples needs the classifier the generator trained with")
        return refine(
            generator, model, targets, z, refinement, done=done, progress=progress, seed=seed
        )
    with torch.no_grad():
        values = generator.space.as_tensor(targets, generator.device)
        return generator.program_weights(generator.embedding(values, z.to(generator.device))), {}


def _readable(prediction: dict[str, torch.Tensor]) -> np.ndarray:
    """Detached numpy predictions: class probabilities or regression values."""
    if "log_probs" in prediction:
        return prediction["log_probs"].detach().exp().cpu().numpy()
    return prediction["values"].detach().cpu().numpy()
