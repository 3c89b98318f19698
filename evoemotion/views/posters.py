"""Poster renders: chosen elites of a run re-rendered from their genomes at any size.

Genotypes are resolution-free, so an elite found at 64 px can be printed at 4096 px. The
renderer tiles large images (bounded scratch memory); one elite is rendered at a time, so
memory holds one poster (48 MiB at 4096 px). Each poster is written with its genome file
(preset embedded, plus the run, cell, objective and outputs), so it can be re-rendered
with ``evoemotion render GENOME.json`` without the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evoemotion.errors import ConfigError
from evoemotion.progress import Progress, relabelled

if TYPE_CHECKING:
    from evoemotion.views.runview import RunView


def _cell_rows(view: RunView, cell: str) -> int:
    """The elite row a ``--cell`` value names (see :func:`select_elites`)."""
    text = cell.strip()
    if text in view.class_names:
        k = view.class_names.index(text)
        if view.spec.kind == "per-class":
            matches = np.flatnonzero(view.grid_index()[:, 0] == k)
            if not len(matches):
                raise ConfigError(f"`cells` {text}: the {text!r} cell holds no elite yet")
            return int(matches[0])
        return int(np.argmax(view.outputs[text]))
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"`cells` {text!r} is neither a cell index, grid coordinates (e.g. 3,5) nor a "
            f"class name ({', '.join(view.class_names) or 'the classifier has none'})"
        ) from None
    if len(parts) > 1:
        if view.spec.dims is None or len(parts) != len(view.spec.dims):
            raise ConfigError(
                f"`cells` {text}: this {view.spec.kind} archive has no "
                f"{len(parts)}-D grid coordinates"
            )
        if any(not 0 <= p < d for p, d in zip(parts, view.spec.dims, strict=True)):
            raise ConfigError(f"`cells` {text}: coordinates outside the grid {view.spec.dims}")
        parts = [int(view.archive.grid_to_int_index([parts])[0])]
    matches = np.flatnonzero(view.cells == parts[0])
    if not len(matches):
        raise ConfigError(
            f"`cells` {text}: cell {parts[0]} holds no elite (the archive has "
            f"{len(view)} elites; see elites.csv or the gallery for cells)"
        )
    return int(matches[0])


def select_elites(
    view: RunView, *, cells: Sequence[str] = (), top: int | None = None
) -> np.ndarray:
    """Pick elites by cell or by objective.

    Args:
        view: The run.
        cells: Each an archive cell index (the ``cell`` column of ``elites.csv``), grid
            coordinates such as ``"3,5"`` (grid archives), or a class name (the elite with
            the highest probability of that class; the class's cell in a ``per-class``
            archive).
        top: Also pick the ``top`` elites of highest objective.

    Returns:
        Elite rows, in the order asked, without repeats.

    Raises:
        ConfigError: Nothing asked for, an empty archive, or a cell that holds no elite or
            cannot be parsed.
    """
    if not cells and not top:
        raise ConfigError("name elites with `cells` CELL (repeatable) or `top` K")
    if not len(view):
        raise ConfigError(f"{view.path} has no elites yet: nothing to render")
    if top is not None and top < 1:
        raise ConfigError(f"`top` must be at least 1, got {top}")
    rows = [_cell_rows(view, c) for c in cells]
    if top:
        order = np.lexsort((view.cells, -view.objective))
        rows += [int(r) for r in order[:top]]
    return np.array(list(dict.fromkeys(rows)), dtype=np.int64)


def render_posters(
    view: RunView,
    rows: np.ndarray,
    size: int,
    folder: Path,
    progress: Progress | None = None,
) -> list[Path]:
    """Render elites at ``size`` px and write ``cellNNNNN-SIZEpx.png`` plus genome JSON.

    Args:
        view: The run.
        rows: Elite rows (from :func:`select_elites`).
        size: Side of the posters in pixels.
        folder: Output folder (created if missing).
        progress: Reports stage ``"render"`` in pixels of all posters as rendering proceeds.

    Returns:
        The PNG files written, in order.
    """
    from evoemotion.genotypes.files import write_genome
    from evoemotion.render import render
    from evoemotion.render.images import save_png

    folder.mkdir(parents=True, exist_ok=True)
    per_poster = relabelled(progress, "render", len(rows) * size * size)
    written = []
    for row in rows:
        genome = view.genomes([row])[0]
        image = render(view.genotype, view.genomes([row]), size, progress=per_poster)[0]
        stem = f"cell{int(view.cells[row]):05d}"
        path = folder / f"{stem}-{size}px.png"
        save_png(path, image)
        write_genome(
            folder / f"{stem}.json",
            view.genotype,
            genome,
            run=str(view.path),
            cell=int(view.cells[row]),
            objective=float(view.objective[row]),
            outputs={name: float(values[row]) for name, values in view.outputs.items()},
        )
        written.append(path)
    return written
