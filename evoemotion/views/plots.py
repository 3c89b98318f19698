"""Figures of runs and analyses, and saving them.

Curves of QD score, coverage and best objective against evaluations (several runs on one
figure), objective heatmaps drawn with :mod:`ribs.visualize`, and the analysis figures
(correlation matrix, colour-emotion equations, hues per emotion). Mosaics of elites are in
:mod:`evoemotion.views.mosaic`. Figures are :class:`matplotlib.figure.Figure` objects built
without pyplot; :func:`save_figure` writes them atomically as PNG, SVG or PDF.
"""

from __future__ import annotations

import colorsys
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from evoemotion.atomic import atomic_write
from evoemotion.errors import ConfigError
from evoemotion.views.analysis import Correlation, EquationCheck, GroupSummary
from evoemotion.views.features import HUE_NAMES
from evoemotion.views.mosaic import mosaic_figure

if TYPE_CHECKING:
    from evoemotion.progress import Progress
    from evoemotion.views.runview import RunView

#: File formats :func:`save_figure` writes.
FORMATS = ("png", "svg", "pdf")
#: Resolution of PNG figures.
DPI = 120


def save_figure(fig: Figure, path: str | Path, fmt: str = "png") -> Path:
    """Save a figure atomically, adding the format's suffix to ``path``.

    Args:
        fig: The figure.
        path: Destination without the suffix (dots in the name are kept).
        fmt: One of :data:`FORMATS`.

    Returns:
        The file written.

    Raises:
        ConfigError: If ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"`fmt` must be one of {', '.join(FORMATS)}; got {fmt!r}")
    path = Path(path)
    path = path.with_name(f"{path.name}.{fmt}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI)
    atomic_write(path, buffer.getvalue())
    return path


def curves_figure(
    runs: Sequence[tuple[str, dict[str, np.ndarray]]],
    *,
    x: str,
    panels: Sequence[tuple[str, str]],
) -> Figure:
    """Plot metric curves of one or more runs, one subplot per metric.

    Args:
        runs: ``(label, columns)`` per run; ``columns`` maps metric names to arrays.
        x: Column along the x axis (e.g. ``"evaluations"``).
        panels: ``(column, title)`` per subplot, e.g. ``("qd_score", "QD score")``.

    Returns:
        The figure, with a legend naming the runs when there are several.
    """
    fig = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (column, name) in zip(axes, panels, strict=True):
        for label, columns in runs:
            ax.plot(columns[x], columns[column], label=label, linewidth=1.6)
        ax.set_title(name)
        ax.set_xlabel(x.replace("_", " "))
        ax.grid(alpha=0.3)
    if len(runs) > 1:
        axes[-1].legend(fontsize=8, loc="best")
    return fig


def correlation_figure(correlations: Sequence[Correlation], alpha: float) -> Figure:
    """Draw the Spearman correlations of outputs (rows) with features (columns).

    Args:
        correlations: From :func:`evoemotion.views.analysis.correlate`.
        alpha: Cells with ``p < alpha`` are printed in bold.

    Returns:
        The figure.
    """
    outs = list(dict.fromkeys(c.output for c in correlations))
    feats = list(dict.fromkeys(c.feature for c in correlations))
    table = {(c.output, c.feature): c for c in correlations}
    matrix = np.array([[table[(o, f)].spearman for f in feats] for o in outs])
    fig = Figure(figsize=(1.0 + 0.85 * len(feats), 1.2 + 0.42 * len(outs)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, o), (j, f) in ((a, b) for a in enumerate(outs) for b in enumerate(feats)):
        c = table[(o, f)]
        if np.isfinite(c.spearman):
            ax.text(
                j,
                i,
                f"{c.spearman:+.2f}",
                ha="center",
                va="center",
                fontsize=8,
                fontweight="bold" if c.p_value < alpha else "normal",
            )
    ax.set_xticks(range(len(feats)), [f.replace("_", " ") for f in feats], rotation=35, ha="right")
    ax.set_yticks(range(len(outs)), outs)
    ax.set_title("Spearman correlation, classifier output vs image feature")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def equations_figure(
    checks: Sequence[EquationCheck],
    outputs: dict[str, np.ndarray],
    brightness: np.ndarray,
    saturation: np.ndarray,
) -> Figure:
    """Scatter each classifier axis against the Valdez & Mehrabian prediction.

    Args:
        checks: From :func:`evoemotion.views.analysis.check_equations`.
        outputs: The classifier outputs (one array per axis name).
        brightness: Brightness of the elites.
        saturation: Saturation of the elites.

    Returns:
        The figure, one subplot per equation.
    """
    fig = Figure(figsize=(4.0 * max(1, len(checks)), 3.8), layout="constrained")
    axes = fig.subplots(1, max(1, len(checks)), squeeze=False)[0]
    zb = (brightness - brightness.mean()) / (brightness.std() or 1.0)
    zs = (saturation - saturation.mean()) / (saturation.std() or 1.0)
    for ax, check in zip(axes, checks, strict=False):
        wb, ws = check.expected
        ax.scatter(
            wb * zb + ws * zs, outputs[check.axis], s=10, alpha=0.6, c=saturation, cmap="viridis"
        )
        ax.set_xlabel(f"{wb:+.2f} z(B) {ws:+.2f} z(S)  (Valdez & Mehrabian)")
        ax.set_ylabel(f"classifier {check.axis}")
        ax.set_title(f"{check.axis}: r = {check.r_predicted:+.2f} ({check.verdict})", fontsize=10)
        ax.grid(alpha=0.3)
    return fig


def hue_figure(groups: Sequence[GroupSummary]) -> Figure:
    """Draw the mean hue histogram of the elites of each emotion as coloured bars.

    Args:
        groups: From :func:`evoemotion.views.analysis.summarize_groups`.

    Returns:
        The figure, one row of bars per emotion.
    """
    colours = [colorsys.hsv_to_rgb(k / len(HUE_NAMES), 0.85, 0.9) for k in range(len(HUE_NAMES))]
    fig = Figure(figsize=(7.5, 0.9 + 0.9 * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False, sharex=True)[:, 0]
    for ax, group in zip(axes, groups, strict=True):
        ax.bar(range(len(HUE_NAMES)), np.nan_to_num(group.hue), color=colours)
        ax.set_ylabel(
            f"{group.name}\n(n={group.n})", rotation=0, ha="right", va="center", fontsize=9
        )
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 0.5, 1])
        ax.tick_params(labelsize=8)
    axes[-1].set_xticks(range(len(HUE_NAMES)), HUE_NAMES, rotation=35, ha="right")
    axes[0].set_title("Hue share of the chromatic pixels, elites by top emotion")
    return fig


def _vad_heatmaps(fig: Figure, view: RunView, vmin: float, vmax: float) -> None:
    """One 2-D pyribs heatmap per slice of the third measure, on a shared colour scale."""
    import pandas as pd
    from ribs.archives import GridArchive
    from ribs.visualize import grid_archive_heatmap

    spec = view.spec
    plane = GridArchive(solution_dim=1, dims=spec.dims[:2], ranges=spec.ranges[:2])
    grid = view.grid_index()
    slices = spec.dims[2]
    n_cols = min(5, slices)
    axes = fig.subplots(-(-slices // n_cols), n_cols, squeeze=False)
    edges = np.linspace(*spec.ranges[2], slices + 1)
    for z, ax in enumerate(axes.flat):
        if z >= slices:
            ax.set_visible(False)
            continue
        members = grid[:, 2] == z
        frame = pd.DataFrame(
            {
                "index": plane.grid_to_int_index(grid[members, :2]),
                "objective": view.objective[members],
            }
        )
        grid_archive_heatmap(
            plane, ax, df=frame, vmin=vmin, vmax=vmax, cbar="auto" if z == slices - 1 else None
        )
        ax.set_title(f"{spec.measure_names[2]} {edges[z]:.1f} to {edges[z + 1]:.1f}", fontsize=9)
        ax.set_xlabel(spec.measure_names[0])
        ax.set_ylabel(spec.measure_names[1])


def heatmap_figure(view: RunView) -> Figure:
    """Draw the objective over the archive with :mod:`ribs.visualize`.

    2-D grids (``va``, ``measures``) use ``grid_archive_heatmap``; ``vad`` one such
    heatmap per dominance slice; ``per-class`` the 1-D heatmap with the class names; the
    ``categorical`` CVT over the K-class simplex is K-dimensional, beyond a heatmap, so it
    is drawn with ``parallel_axes_plot`` (one line per elite through its K probabilities,
    coloured by objective).

    Args:
        view: The run (with at least one elite).

    Returns:
        The figure.
    """
    from ribs.visualize import grid_archive_heatmap, parallel_axes_plot

    spec = view.spec
    title = f"{view.name}: {spec.objective} objective, iteration {view.iteration}"
    vmin, vmax = float(view.objective.min()), float(view.objective.max())
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 0.05, vmax + 0.05
    if spec.kind == "vad":
        fig = Figure(
            figsize=(3.2 * min(5, spec.dims[2]) + 1.0, 2.9 * -(-spec.dims[2] // 5) + 0.6),
            layout="constrained",
        )
        _vad_heatmaps(fig, view, vmin, vmax)
    elif spec.kind == "categorical":
        fig = Figure(figsize=(1.2 * len(spec.measure_names) + 2.0, 4.2), layout="constrained")
        ax = fig.subplots()
        parallel_axes_plot(
            view.archive,
            ax,
            measure_order=list(enumerate(spec.measure_names)),
            vmin=vmin,
            vmax=vmax,
            sort_archive=True,
            cbar_kwargs={"label": spec.objective},
        )
    else:
        fig = Figure(figsize=(7.0, 5.6 if spec.kind != "per-class" else 3.2), layout="constrained")
        ax = fig.subplots()
        grid_archive_heatmap(
            view.archive, ax, vmin=vmin, vmax=vmax, cbar_kwargs={"label": spec.objective}
        )
        if spec.kind == "per-class":
            ax.set_xticks(
                np.arange(len(spec.measure_names)) + 0.5,
                spec.measure_names,
                rotation=30,
                ha="right",
            )
            ax.set_yticks([])
            ax.set_xlabel("cell (objective p_k)")
        else:
            ax.set_xlabel(spec.measure_names[0])
            ax.set_ylabel(spec.measure_names[1])
    fig.suptitle(title, fontsize=11)
    return fig


#: ``metrics.csv`` columns drawn against evaluations: (column, title).
CURVES = (("qd_score", "QD score"), ("coverage", "coverage"), ("max_objective", "best objective"))


def mosaic_title(view: RunView) -> str:
    """Title of a run's mosaic: folder, archive, elites, cells and iteration."""
    return (
        f"{view.name}: {view.spec.kind} archive, {len(view)} elites in "
        f"{view.spec.cells} cells, iteration {view.iteration}"
    )


def plot_run(
    view: RunView,
    folder: Path,
    *,
    fmt: str = "png",
    prefix: str = "",
    top_k: int = 8,
    thumb_size: int = 64,
    progress: Progress | None = None,
) -> list[Path]:
    """Write a run's mosaic, objective heatmap and metric curves.

    Args:
        view: The run.
        folder: Output folder (created if missing).
        fmt: One of :data:`FORMATS`.
        prefix: Put before each file name (e.g. the run name when plotting several).
        top_k: Elites per emotion row of a ``categorical`` mosaic.
        thumb_size: Side of the mosaic thumbnails in pixels.
        progress: Reports the thumbnails rendered (stage ``"render"``).

    Returns:
        The files written (no mosaic or heatmap while the archive is empty, no curves
        before the first iteration).
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if len(view):
        panels = view.panels(top_k=top_k)
        rows = sorted({p.elite for panel in panels for p in panel.placements})
        images = view.render(rows, thumb_size, progress)
        thumbs = dict(zip(rows, images, strict=True))
        fig = mosaic_figure(panels, thumbs, title=mosaic_title(view))
        written.append(save_figure(fig, folder / f"{prefix}mosaic", fmt))
        written.append(save_figure(heatmap_figure(view), folder / f"{prefix}heatmap", fmt))
    metrics = view.metrics()
    if len(metrics["evaluations"]):
        fig = curves_figure([(view.name, metrics)], x="evaluations", panels=CURVES)
        written.append(save_figure(fig, folder / f"{prefix}curves", fmt))
    return written
