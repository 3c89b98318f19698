"""Render batches of genomes to uint8 RGB images with the Numba kernels.

``render(genotype, genomes, size)`` compiles the genomes (``genotype.compile``), then runs
the kernel that matches the program form. Coordinates span [-1, 1] along each axis whatever
the size, so a genome shows the same picture at 64 or 4096 pixels (a non-square size
stretches it). Pixels are rendered in tiles of ``kernels.TILE`` pixels per task, so scratch
memory stays bounded at any size; large batches or images are rendered in bands of at most
``BAND_PIXELS`` pixels, each reported to the optional ``progress`` callback.

Channel values that are NaN or +-inf become 0 before the colour mapping; see
:mod:`evoemotion.render.reference` for the definition of every operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from evoemotion.errors import ConfigError
from evoemotion.render.programs import GraphProgram, TreeProgram
from evoemotion.render.reference import axis, color_scale

if TYPE_CHECKING:
    from evoemotion.genotypes.base import Genotype
    from evoemotion.progress import Progress

__all__ = ["BAND_PIXELS", "image_size", "render", "render_program"]

#: Pixels (summed over the batch) rendered per kernel call.
BAND_PIXELS = 1 << 24


def image_size(size: int | Sequence[int]) -> tuple[int, int]:
    """Normalise a size to ``(height, width)``.

    Args:
        size: a side length, or ``(height, width)``.

    Returns:
        ``(height, width)``.

    Raises:
        ConfigError: if a side is not a positive integer.
    """
    sides = (size, size) if isinstance(size, (int, np.integer)) else size
    if (
        not isinstance(sides, (tuple, list))
        or len(sides) != 2
        or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sides)
    ):
        raise ConfigError(f"image size must be a positive integer or (height, width), got {size!r}")
    return int(sides[0]), int(sides[1])


def render(
    genotype: Genotype,
    genomes: Sequence[object] | np.ndarray,
    size: int | Sequence[int],
    *,
    progress: Progress | None = None,
) -> np.ndarray:
    """Render genomes of one genotype.

    Args:
        genotype: the genotype the genomes belong to (see :func:`load_genotype`).
        genomes: a sequence of genomes, or an (n, solution_dim) array for flat kinds.
        size: side length in pixels, or ``(height, width)``.
        progress: reports stage ``"render"`` in pixels per genome after each band
            (see :mod:`evoemotion.progress`).

    Returns:
        uint8 array (N, H, W, 3).

    Raises:
        ConfigError: if ``size`` is invalid.
        GenomeError: if a genome does not belong to ``genotype``.
    """
    height, width = image_size(size)
    return render_program(
        genotype.compile(genomes),
        (height, width),
        output_range=genotype.config.output_range,
        hsv=genotype.config.color_space == "hsv",
        progress=progress,
    )


def render_program(
    program: TreeProgram | GraphProgram,
    size: int | Sequence[int],
    *,
    output_range: Sequence[float],
    hsv: bool = False,
    progress: Progress | None = None,
) -> np.ndarray:
    """Render compiled programs (what ``genotype.compile`` returns) with the Numba kernels.

    Args:
        program: A batch of expression-tree or CPPN node programs.
        size: side length in pixels, or ``(height, width)``.
        output_range: The ``(lo, hi)`` channel values that map to 0 and 255.
        hsv: The three channels are (H, S, V) rather than (R, G, B).
        progress: reports stage ``"render"`` in pixels per program after each band.

    Returns:
        uint8 array (N, H, W, 3).

    Raises:
        ConfigError: if ``size`` is invalid.
    """
    from evoemotion.render import kernels

    height, width = image_size(size)
    n = len(program)
    images = np.empty((n, height, width, 3), np.uint8)
    total = height * width
    if n == 0:
        return images
    flat = images.reshape(n, total, 3)
    xs, ys = axis(width), -axis(height)
    lo, scale = color_scale(output_range)
    band = max(width, (BAND_PIXELS // n) // width * width)
    for start in range(0, total, band):
        stop = min(total, start + band)
        if isinstance(program, TreeProgram):
            kernels.render_trees(
                program.ops,
                program.args,
                program.lengths,
                program.depth,
                xs,
                ys,
                start,
                stop,
                program.needs_r,
                program.needs_angle,
                lo,
                scale,
                hsv,
                flat,
            )
        else:
            kernels.render_graphs(
                program.inputs,
                program.act,
                program.ptr,
                program.src,
                program.weight,
                program.n_slots,
                program.outputs,
                xs,
                ys,
                start,
                stop,
                lo,
                scale,
                hsv,
                flat,
            )
        if progress is not None:
            progress("render", stop - start, total, None)
    return images
