"""Rendered images to files: contact-sheet grids and atomic PNG writing."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from evoemotion.errors import ConfigError


def grid(images: np.ndarray, *, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile images (N, H, W, 3) into one contact sheet, row by row, on white.

    Args:
        images: uint8 images of one size.
        columns: images per row; default ``ceil(sqrt(N))``.
        gap: white pixels between and around images.

    Returns:
        uint8 array (rows * (H + gap) + gap, columns * (W + gap) + gap, 3).

    Raises:
        ConfigError: if ``columns`` is not positive or ``gap`` is negative.
    """
    n, h, w, _ = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    if columns < 1 or gap < 0:
        raise ConfigError(f"grid needs columns >= 1 and gap >= 0, got {columns} and {gap}")
    rows = max(1, math.ceil(n / columns))
    sheet = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), 255, np.uint8)
    for i, image in enumerate(images):
        top = gap + (i // columns) * (h + gap)
        left = gap + (i % columns) * (w + gap)
        sheet[top : top + h, left : left + w] = image
    return sheet


def save_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write a uint8 (H, W, 3) image as PNG atomically (temporary file, fsync, rename).

    Args:
        path: the file to write.
        image: the image.
    """
    from PIL import Image

    from evoemotion.atomic import atomic_write

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    atomic_write(Path(path), buffer.getvalue())
