"""What any archive can hold with a classifier: the outputs gradient ascent can reach.

For every class the highest probability, and for every regression output (valence, arousal,
dominance) the lowest and highest value, that gradient ascent reaches on images of a given
side. Two parameterisations bound the search from two sides:

- ``pixels``: every pixel free (``sigmoid`` of an unconstrained tensor): the ceiling of any
  image search at that size. A class that pixels cannot push high is out of every archive.
- a genotype (e.g. flat CPPN genomes, rendered differentiably by the caller's ``render``):
  what that representation can express, projected back into its genome bounds each step.

Each target is ascended from ``restarts`` starts at once (one batch); the best value seen
over all starts and steps is kept with its image. Classes are ascended on their log
probability, regression outputs on their value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from evoemotion.emotion.model import EmotionModel
from evoemotion.errors import ConfigError
from evoemotion.progress import Progress


@dataclass(frozen=True)
class Target:
    """One output to push: a class probability up, or a regression output up or down.

    Attributes:
        output: Class name or regression output name.
        direction: ``"max"`` or ``"min"``.
    """

    output: str
    direction: str

    @property
    def name(self) -> str:
        """``"anger max"``, ``"valence min"`` ..."""
        return f"{self.output} {self.direction}"


@dataclass
class Reached:
    """The best value an ascent reached for one target, and the image that reached it.

    Attributes:
        target: The target.
        value: Best probability (classes) or value on the output's scale (regression).
        image: uint8 ``(H, W, 3)`` image that scored ``value``.
    """

    target: Target
    value: float
    image: np.ndarray


def targets_of(model: EmotionModel) -> list[Target]:
    """Every class (max) and every regression output (min and max) of a model."""
    return [Target(c, "max") for c in model.class_names] + [
        Target(r, d) for r in model.regression_names for d in ("min", "max")
    ]


def _objective(model: EmotionModel, out: dict, targets: list[Target], restarts: int):
    """Per-row value (reported) and score (ascended) of the batch's targets, in row order."""
    values, scores = [], []
    for i, t in enumerate(targets):
        rows = slice(i * restarts, (i + 1) * restarts)
        if t.output in model.class_names:
            k = model.class_names.index(t.output)
            values.append(out["probs"][rows, k])
            scores.append(torch.log_softmax(out["logits"][rows], dim=1)[:, k])
        else:
            sign = 1.0 if t.direction == "max" else -1.0
            values.append(out[t.output][rows])
            scores.append(sign * out[t.output][rows])
    return torch.cat(values), torch.cat(scores)


def ascend(
    model: EmotionModel,
    params: torch.Tensor,
    to_images: Callable[[torch.Tensor], torch.Tensor],
    targets: list[Target],
    restarts: int,
    size: int,
    steps: int,
    lr: float,
    project: Callable[[torch.Tensor], None] | None = None,
    progress: Progress | None = None,
) -> list[Reached]:
    """Adam gradient ascent of every target from ``restarts`` starts each, in one batch.

    Args:
        model: The classifier (its weights are not changed).
        params: ``(len(targets) * restarts, ...)`` starting parameters; rows
            ``i * restarts ...`` belong to target ``i``.
        to_images: Maps parameters to float ``(N, 3, size, size)`` images in [0, 1],
            differentiably.
        targets: What each group of rows pushes.
        restarts: Rows per target.
        size: Image side the model scores at.
        steps: Ascent steps.
        lr: Adam learning rate.
        project: Called on the parameters (in place, no grad) after each step, e.g. to clip
            genomes into their bounds.
        progress: Reports stage ``"ascent"``, one unit per step.

    Returns:
        One :class:`Reached` per target: the best value over its starts and all steps.

    Raises:
        ConfigError: no targets, fewer than one step or restart, or a row count that is
            not ``len(targets) * restarts``.
    """
    if not targets or steps < 1 or restarts < 1 or len(params) != len(targets) * restarts:
        raise ConfigError(
            f"ascent needs targets, steps >= 1 and restarts >= 1 with one row per target and "
            f"restart (got {len(targets)} targets, {steps} steps, {restarts} restarts, "
            f"{len(params)} rows)"
        )
    params = params.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([params], lr=lr)
    signs = torch.tensor(
        [1.0 if t.direction == "max" else -1.0 for t in targets for _ in range(restarts)]
    )
    best = torch.full((len(params),), -torch.inf)
    best_images = [None] * len(params)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:  # gradients w.r.t. the images only
        p.requires_grad_(False)
    try:
        for _ in range(steps + 1):  # the last pass only scores the final parameters
            images = to_images(params)
            out = model(model.preprocess(images, size))
            values, scores = _objective(model, out, targets, restarts)
            signed = (values.detach() * signs).cpu()
            for row in torch.nonzero(signed > best).flatten().tolist():
                best[row] = signed[row]
                best_images[row] = images[row].detach()
            if _ == steps:
                break
            optimiser.zero_grad()
            (-scores.sum()).backward()
            optimiser.step()
            if project is not None:
                with torch.no_grad():
                    project(params)
            if progress:
                progress("ascent", 1, steps, None)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    reached = []
    for i, t in enumerate(targets):
        rows = range(i * restarts, (i + 1) * restarts)
        row = max(rows, key=lambda r: float(best[r]))
        image = best_images[row].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
        reached.append(Reached(t, float(best[row] * signs[row]), image.cpu().numpy()))
    return reached


def pixel_ascent(
    model: EmotionModel,
    size: int = 128,
    steps: int = 150,
    lr: float = 0.05,
    restarts: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Reached]:
    """Ascend every target of the model over free pixels (``sigmoid`` of a free tensor).

    Args:
        model: The classifier.
        size: Image side in pixels.
        steps: Adam steps.
        lr: Adam learning rate on the pre-sigmoid pixels.
        restarts: Starts per target (near-grey noise, seeded).
        seed: Seed of the starts.
        progress: Reports stage ``"ascent"``, one unit per step.

    Returns:
        One :class:`Reached` per target of :func:`targets_of`.
    """
    targets = targets_of(model)
    device = model.feature_mean.device
    generator = torch.Generator().manual_seed(seed)
    start = 0.1 * torch.randn(len(targets) * restarts, 3, size, size, generator=generator)
    return ascend(
        model, start.to(device), torch.sigmoid, targets, restarts, size, steps, lr,
        progress=progress,
    )


def genome_ascent(
    model: EmotionModel,
    render: Callable[[torch.Tensor], torch.Tensor],
    starts: np.ndarray,
    bounds: list[tuple[float, float]],
    size: int = 128,
    steps: int = 150,
    lr: float = 0.05,
    progress: Progress | None = None,
) -> list[Reached]:
    """Ascend every target of the model over flat genomes rendered differentiably.

    Args:
        model: The classifier.
        render: ``(N, D)`` genomes -> float ``(N, 3, size, size)`` images in [0, 1].
        starts: ``(R, D)`` starting genomes; every target starts from all of them.
        bounds: Per-gene ``(low, high)``; genomes are clipped into them after each step.
        size: Image side in pixels.
        steps: Adam steps.
        lr: Adam learning rate on the genes.
        progress: Reports stage ``"ascent"``, one unit per step.

    Returns:
        One :class:`Reached` per target of :func:`targets_of`.
    """
    targets = targets_of(model)
    device = model.feature_mean.device
    low, high = (
        torch.tensor(b, dtype=torch.float32, device=device) for b in zip(*bounds, strict=True)
    )
    genomes = torch.as_tensor(np.tile(starts, (len(targets), 1)), dtype=torch.float32)

    def project(params: torch.Tensor) -> None:
        params.copy_(torch.maximum(torch.minimum(params, high), low))

    return ascend(
        model, genomes.to(device), render, targets, len(starts), size, steps, lr, project,
        progress,
    )


def reachability_table(results: dict[str, list[Reached]]) -> list[dict]:
    """Rows ``{"output", "direction", PARAMETERISATION: value ...}``, one per target."""
    rows: dict[str, dict] = {}
    for kind, reached in results.items():
        for r in reached:
            row = rows.setdefault(
                r.target.name, {"output": r.target.output, "direction": r.target.direction}
            )
            row[kind] = r.value
    return list(rows.values())
