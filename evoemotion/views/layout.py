"""Where each elite goes in a mosaic: the one layout both the plots and the gallery draw.

A layout is a list of :class:`Panel` s, each a grid of rows and columns holding
:class:`Tile` s (an elite, its row and column, a caption). Plots draw a panel as a
matplotlib mosaic, the gallery as an HTML grid, so the page shows the grid as the plot does.

- 2-D grid archives (``va``, ``--measures a,b``): one panel, the first measure along the
  columns (low to high, left to right), the second along the rows (high at the top).
- 3-D grid archives (``vad``): one such panel per slice of the third measure.
- categorical: one row per emotion holding the elites whose most probable class it is,
  most probable first, captioned with that probability; ``top_k`` keeps the first k.
- per-class: one column per emotion holding that cell's elite, captioned with p_k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evoemotion.errors import DataError


@dataclass(frozen=True)
class Tile:
    """One elite in a panel.

    Attributes:
        elite: Row of the elite in the elites table.
        row: Panel row, 0 at the top.
        col: Panel column, 0 at the left.
        caption: Short text shown under the thumbnail.
    """

    elite: int
    row: int
    col: int
    caption: str


@dataclass(frozen=True)
class Panel:
    """A grid of elites with labelled rows and columns.

    Attributes:
        title: Panel title (e.g. the dominance slice); may be empty.
        row_labels: One label per row, top to bottom.
        col_labels: One label per column, left to right.
        row_axis: Name of what the rows vary (e.g. ``"arousal"``); may be empty.
        col_axis: Name of what the columns vary.
        placements: The elites placed in the panel.
    """

    title: str
    row_labels: list[str]
    col_labels: list[str]
    row_axis: str
    col_axis: str
    placements: list[Tile]

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)``."""
        return len(self.row_labels), len(self.col_labels)


def _bin_labels(low: float, high: float, bins: int) -> list[str]:
    edges = np.linspace(low, high, bins + 1)
    span = abs(high - low) / max(bins, 1)
    digits = 0 if span >= 10 else 1 if span >= 0.1 else 2
    return [f"{(a + b) / 2:.{digits}f}" for a, b in zip(edges[:-1], edges[1:], strict=True)]


def grid_panels(
    grid_index: np.ndarray,
    dims: Sequence[int],
    ranges: Sequence[tuple[float, float]],
    measure_names: Sequence[str],
    objective: np.ndarray,
) -> list[Panel]:
    """Lay out the elites of a 2-D or 3-D grid archive.

    Args:
        grid_index: ``(N, d)`` integer cell coordinates of the elites (d = 2 or 3).
        dims: Cells per measure.
        ranges: ``(low, high)`` per measure.
        measure_names: Name per measure.
        objective: ``(N,)`` objective values, shown as captions.

    Returns:
        One panel for d = 2, one per slice of the third measure for d = 3.

    Raises:
        DataError: If the archive is not 2-D or 3-D or an index lies outside ``dims``.
    """
    grid_index = np.asarray(grid_index, dtype=np.int64).reshape(len(objective), -1)
    d = len(dims)
    if d not in (2, 3) or grid_index.shape[1] != d:
        raise DataError(f"grid layouts need 2 or 3 measures; got dims {list(dims)}")
    if np.any(grid_index < 0) or np.any(grid_index >= np.asarray(dims)):
        raise DataError(f"grid index outside the archive's dims {list(dims)}")
    cols = _bin_labels(*ranges[0], dims[0])
    rows = _bin_labels(*ranges[1], dims[1])[::-1]
    slices = [None] if d == 2 else range(dims[2])
    z_edges = np.linspace(*ranges[-1], dims[-1] + 1)
    panels = []
    for z in slices:
        members = np.flatnonzero(grid_index[:, 2] == z) if z is not None else range(len(objective))
        title = (
            "" if z is None else (f"{measure_names[2]} {z_edges[z]:.2f} to {z_edges[z + 1]:.2f}")
        )
        placements = [
            Tile(
                int(i),
                dims[1] - 1 - int(grid_index[i, 1]),
                int(grid_index[i, 0]),
                f"{objective[i]:.2f}",
            )
            for i in members
        ]
        panels.append(Panel(title, rows, cols, measure_names[1], measure_names[0], placements))
    return panels


def categorical_panel(
    probs: np.ndarray, class_names: Sequence[str], top_k: int | None = None
) -> Panel:
    """Lay out elites in one row per emotion, by the emotion they are most likely to show.

    Args:
        probs: ``(N, K)`` class probabilities of the elites.
        class_names: The K class names.
        top_k: Keep at most this many elites per row (all when ``None``).

    Returns:
        The panel; its column count is the longest row's length (at least 1).
    """
    probs = np.asarray(probs, dtype=float).reshape(-1, len(class_names))
    top = np.argmax(probs, axis=1)
    placements = []
    longest = 1
    for k in range(len(class_names)):
        members = np.flatnonzero(top == k)
        members = members[np.argsort(-probs[members, k], kind="stable")][:top_k]
        longest = max(longest, len(members))
        placements += [Tile(int(i), k, col, f"{probs[i, k]:.2f}") for col, i in enumerate(members)]
    cols = [str(c + 1) for c in range(longest)]
    return Panel("", list(class_names), cols, "top emotion", "rank", placements)


def per_class_panel(cell_class: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> Panel:
    """Lay out a per-class archive: one column per emotion holding its cell's elite.

    Args:
        cell_class: ``(N,)`` class index of each elite's cell.
        probs: ``(N, K)`` class probabilities of the elites.
        class_names: The K class names.

    Returns:
        A one-row panel with one column per class.
    """
    placements = [Tile(i, 0, int(k), f"{probs[i, int(k)]:.2f}") for i, k in enumerate(cell_class)]
    return Panel("", ["elite"], list(class_names), "", "emotion", placements)
