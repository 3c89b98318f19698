"""Sampling a trained generator: grids over the target space and single targets.

A grid shows what the generator (and so the classifier) associates with each region of
the target space:

* ``va`` / ``vad``: valence increases left to right, arousal bottom to top, one image per
  cell centre (``vad``: at one dominance value, by default the middle of its scale);
* ``categorical``: one row per emotion, one column per latent (a column shares its latent,
  so a row-to-row change is the condition's doing).

By default a ``va``/``vad`` grid uses one latent for every cell for the same reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evoemotion.cgen.config import Refinement
from evoemotion.cgen.network import ConditionalGenerator
from evoemotion.cgen.refinement import programs
from evoemotion.errors import ConfigError
from evoemotion.progress import Progress


def grid_targets(
    generator: ConditionalGenerator, columns: int, rows: int, dominance: float | None = None
) -> np.ndarray:
    """Targets of a sampling grid in display order (row by row, top row first).

    Args:
        generator: The generator (its target space decides the layout).
        columns: Cells along valence, or latents per emotion (categorical).
        rows: Cells along arousal (ignored for categorical: one row per class).
        dominance: The dominance of a ``vad`` grid (default: middle of its scale).

    Returns:
        ``(rows * columns, dims)`` targets, or ``(classes * columns,)`` class indices.

    Raises:
        ConfigError: non-positive counts, or a dominance outside the scale or given for a
            space without dominance.
    """
    space = generator.space
    if columns < 1 or rows < 1:
        raise ConfigError(f"`columns` and `rows` must be positive, got {columns}x{rows}")
    if dominance is not None and space.kind != "vad":
        raise ConfigError("`dominance` applies to vad generators only")
    if space.categorical:
        return np.repeat(space.grid(0), columns)
    ranges = list(space.scales[:2])
    if space.kind == "vad":
        low, high = space.scales[2]
        value = (low + high) / 2 if dominance is None else float(dominance)
        space.check([ranges[0][0], ranges[1][0], value])
        ranges.append((value, value))
    cells = space.grid([columns, rows, 1][: len(ranges)], ranges)
    # grid() varies valence slowest: make rows = arousal (highest on top), columns = valence.
    layout = cells.reshape(columns, rows, -1).transpose(1, 0, 2)[::-1]
    return layout.reshape(rows * columns, -1)


def sample_grid(
    generator: ConditionalGenerator,
    columns: int,
    rows: int,
    size: int,
    *,
    seed: int = 0,
    shared_latent: bool | None = None,
    dominance: float | None = None,
    progress: Progress | None = None,
    renderer: str = "auto",
    model: Any = None,
    refinement: Refinement | None = None,
) -> np.ndarray:
    """Render a grid of samples (see the module docstring for the layout).

    Args:
        generator: The generator.
        columns: Cells along valence, or latents per emotion (categorical).
        rows: Cells along arousal (ignored for categorical).
        size: Side of each image in pixels.
        seed: Seeds the latents.
        shared_latent: One latent for all cells; default True for ``va``/``vad``. For
            categorical grids a column always shares its latent.
        dominance: The dominance of a ``vad`` grid.
        progress: Reports stage ``"render"``, one unit per rendered image.
        renderer: See :meth:`ConditionalGenerator.render` (default: Numba on a CPU).
        model: The classifier the generator was trained against (for ``refinement``).
        refinement: Refine every image towards its cell's target first (see
            :func:`render_targets`).

    Returns:
        ``(n, size, size, 3)`` uint8 images in display order; lay them out with
        ``columns`` per row.

    Raises:
        ConfigError: see :func:`grid_targets` and :func:`render_targets`.
    """
    targets = grid_targets(generator, columns, rows, dominance)
    if generator.space.categorical:
        z = generator.latents(columns, seed).repeat(len(targets) // columns, 1)
    elif shared_latent is None or shared_latent:
        z = generator.latents(1, seed).expand(len(targets), -1)
    else:
        z = generator.latents(len(targets), seed)
    return render_targets(
        generator,
        targets,
        z,
        size,
        progress,
        renderer=renderer,
        model=model,
        refinement=refinement,
    )


def render_targets(
    generator: ConditionalGenerator,
    targets: Any,
    z: Any,
    size: int,
    progress: Progress | None = None,
    *,
    renderer: str = "auto",
    model: Any = None,
    refinement: Refinement | None = None,
) -> np.ndarray:
    """Render one image per (target, latent) pair, one at a time, reporting progress.

    Args:
        generator: The generator.
        targets: Canonical targets (see :meth:`TargetSpace.check`), one per latent.
        z: ``(n, latent_dim)`` latents.
        size: Side of each image in pixels.
        progress: Reports stage ``"render"``, one unit per image (and ``"refine"`` in
            steps when refining).
        renderer: See :meth:`ConditionalGenerator.render`.
        model: The classifier the generator was trained against (for ``refinement``).
        refinement: Refine each image's CPPN weights towards its target through ``model``
            before rendering (:func:`~evoemotion.cgen.refinement.refine`, every step taken);
            ``None`` or 0 steps: the generator's samples as drawn.

    Returns:
        ``(n, size, size, 3)`` uint8 images.

    Raises:
        ConfigError: invalid targets, or refinement without a model.
    """
    targets = generator.space.check(targets)
    if len(targets) == 1:
        targets = np.repeat(targets, len(z), axis=0)
    weights, _ = programs(
        generator, targets, z, model=model, refinement=refinement, progress=progress
    )
    images = np.empty((len(z), size, size, 3), dtype=np.uint8)
    for i in range(len(z)):
        images[i] = generator.render_programs(weights[i : i + 1], size, renderer=renderer)[0]
        if progress is not None:
            progress("render", 1, len(z), None)
    return images
