"""Draw layouts (:mod:`evoemotion.views.layout`) as matplotlib image mosaics.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state), so
drawing is thread-safe and needs no display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from evoemotion.views.layout import Panel

#: Gap between thumbnails, as a share of a cell.
_PAD = 0.04
#: Extra height of a cell that shows a caption under its thumbnail, as a share of a cell.
_CAPTION = 0.28


def _cell_inches(panel: Panel, width: float) -> float:
    rows, cols = panel.shape
    return float(np.clip(width / max(cols, 1), 0.3, 1.3)) if rows else 1.0


def draw_panel(
    ax,
    panel: Panel,
    thumbnails: Sequence[np.ndarray] | Mapping[int, np.ndarray],
    *,
    captions: bool = True,
) -> None:
    """Draw one panel onto a matplotlib Axes.

    Each cell is one unit wide; with captions it is ``1 + 0.28`` units tall and the caption
    sits under the thumbnail. Empty cells show the grey background between white lines.

    Args:
        ax: A :class:`matplotlib.axes.Axes`.
        panel: The panel to draw.
        thumbnails: uint8 ``(h, w, 3)`` image per elite, indexed (or keyed) by
            ``Tile.elite``.
        captions: Whether to write each placement's caption under its thumbnail.
    """
    rows, cols = panel.shape
    height = 1.0 + (_CAPTION if captions else 0.0)
    fontsize = float(np.clip(ax.figure.get_figwidth() / max(cols, 1) * 8, 5, 9))
    for p in panel.placements:
        top = p.row * height
        ax.imshow(
            thumbnails[p.elite], extent=(p.col + _PAD, p.col + 1 - _PAD, top + 1 - _PAD, top + _PAD)
        )
        if captions:
            ax.text(
                p.col + 0.5,
                top + 1 + _CAPTION / 2,
                p.caption,
                ha="center",
                va="center",
                fontsize=fontsize,
            )
    ax.set_xlim(0, cols)
    ax.set_ylim(rows * height, 0)
    ax.set_aspect("equal")
    ax.set_facecolor("#e8e8e8")
    ax.vlines(np.arange(cols + 1), 0, rows * height, colors="white", linewidth=1)
    ax.hlines(np.arange(rows + 1) * height, 0, cols, colors="white", linewidth=1)
    ax.set_xticks(
        np.arange(cols) + 0.5,
        panel.col_labels,
        fontsize=fontsize + 1,
        rotation=90 if cols > 12 else 0,
    )
    ax.set_yticks(np.arange(rows) * height + 0.5, panel.row_labels, fontsize=fontsize + 1)
    ax.tick_params(length=0)
    ax.set_xlabel(panel.col_axis)
    ax.set_ylabel(panel.row_axis)
    if panel.title:
        ax.set_title(panel.title)
    for side in ax.spines.values():
        side.set_visible(False)


def mosaic_figure(
    panels: Sequence[Panel],
    thumbnails: Sequence[np.ndarray] | Mapping[int, np.ndarray],
    *,
    title: str = "",
    captions: bool = True,
    width: float = 12.0,
) -> Figure:
    """Draw panels side by side (at most three per row) as one figure.

    Args:
        panels: The layout to draw (see :mod:`evoemotion.views.layout`).
        thumbnails: uint8 ``(h, w, 3)`` image per elite, indexed (or keyed) by
            ``Tile.elite``.
        title: Figure title.
        captions: Whether to write captions under thumbnails.
        width: Width of the thumbnails of one panel row, in inches.

    Returns:
        The figure (not shown; save it with :func:`evoemotion.views.plots.save_figure`).
    """
    n_cols = min(3, len(panels))
    n_rows = -(-len(panels) // n_cols)
    rows, cols = max(p.shape[0] for p in panels), max(p.shape[1] for p in panels)
    cell = _cell_inches(panels[0], width / n_cols)
    height = 1.0 + (_CAPTION if captions else 0.0)
    label_in = 0.5 + 0.07 * max(len(lbl) for p in panels for lbl in p.row_labels or [""])
    fig = Figure(
        figsize=(
            n_cols * (cols * cell + label_in + 0.6),
            n_rows * (rows * height * cell + 1.1) + (0.5 if title else 0.0),
        ),
        layout="constrained",
    )
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        draw_panel(ax, panel, thumbnails, captions=captions)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig
