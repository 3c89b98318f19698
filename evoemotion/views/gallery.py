"""A self-contained static HTML gallery of an archive: one folder, no server, no network.

The folder holds ``index.html`` (the template ``gallery.html`` with the gallery's data
embedded as JSON), ``images/`` (each elite at the gallery's large size, the PNGs the page
links to) and ``thumbs/`` (the grid's thumbnails). Open ``index.html`` from disk in any
browser. The page draws the same layout as the plots (:mod:`evoemotion.views.layout`);
clicking a cell shows the elite large with its fields, classifier outputs, genome text and a
link to its PNG.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from evoemotion.atomic import atomic_write
from evoemotion.render.images import save_png
from evoemotion.views.layout import Panel

if TYPE_CHECKING:
    from evoemotion.progress import Progress
    from evoemotion.views.runview import RunView

#: Side of the thumbnails in the grid, in pixels.
THUMB_SIZE = 96


@dataclass(frozen=True)
class GalleryElite:
    """What the page shows about one elite.

    Attributes:
        stem: File name of its images without suffix, unique in the gallery (e.g.
            ``"cell00345"``).
        label: Short title, e.g. ``"cell 345 · joy 0.93"``.
        fields: ``(name, value)`` rows such as objective, cell and measures.
        outputs: ``(name, value, low, high)`` per classifier output; the page draws a bar
            filled ``(value - low) / (high - low)``.
        genome: The genome as text.
    """

    stem: str
    label: str
    fields: list[tuple[str, float | str]]
    outputs: list[tuple[str, float, float, float]]
    genome: str


def _thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    if max(image.shape[:2]) <= size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))


def _finite(value):
    """JSON-ready copy of ``value``: numpy scalars as Python numbers, NaN/inf as ``None``."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.integer, np.floating, float)):
        number = value.item() if isinstance(value, np.generic) else value
        return number if np.isfinite(number) else None
    return value


def write_gallery(
    folder: str | Path,
    *,
    title: str,
    info: Sequence[tuple[str, str]],
    panels: Sequence[Panel],
    elites: Sequence[GalleryElite],
    image: Callable[[int], np.ndarray],
    progress: Progress | None = None,
) -> Path:
    """Write the gallery folder.

    Args:
        folder: Folder to write (created if missing; files of an earlier gallery are
            replaced).
        title: Page title.
        info: ``(key, value)`` pairs shown under the title (run, archive, coverage, ...).
        panels: The layout, as for the plots; placements index ``elites``.
        elites: What to show per elite.
        image: Returns the large uint8 ``(H, W, 3)`` image of elite ``i``; called once per
            elite, in order, so a caller can render lazily in batches.
        progress: Reports stage ``"gallery"``, one unit per elite written.

    Returns:
        The path of ``index.html``.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "thumbs").mkdir(exist_ok=True)
    records = []
    for i, elite in enumerate(elites):
        name = f"{elite.stem}.png"
        picture = np.ascontiguousarray(image(i))
        save_png(folder / "images" / name, picture)
        save_png(folder / "thumbs" / name, _thumbnail(picture, THUMB_SIZE))
        records.append({**asdict(elite), "png": f"images/{name}", "thumb": f"thumbs/{name}"})
        if progress is not None:
            progress("gallery", 1, len(elites), None)
    payload = {
        "title": title,
        "info": [list(pair) for pair in info],
        "panels": [
            {
                "title": p.title,
                "row_labels": p.row_labels,
                "col_labels": p.col_labels,
                "row_axis": p.row_axis,
                "col_axis": p.col_axis,
                "placements": [[q.elite, q.row, q.col, q.caption] for q in p.placements],
            }
            for p in panels
        ],
        "elites": records,
    }
    data = json.dumps(_finite(payload), allow_nan=False).replace("</", "<\\/")
    template = resources.files("evoemotion.views").joinpath("gallery.html").read_text("utf-8")
    page = template.replace("__TITLE__", html.escape(title)).replace("__DATA__", data)
    index = folder / "index.html"
    atomic_write(index, page.encode("utf-8"))
    return index


def _elite_record(view: RunView, row: int, grid: np.ndarray | None) -> GalleryElite:
    cell = int(view.cells[row])
    fields: list[tuple[str, float | str]] = [
        (f"objective ({view.spec.objective})", float(view.objective[row])),
        ("cell", cell),
    ]
    if grid is not None:
        fields.append(("grid coordinates", ",".join(str(int(g)) for g in grid[row])))
    if view.spec.kind in ("va", "vad", "measures"):
        fields += [
            (f"measure {name}", float(view.measures[row, j]))
            for j, name in enumerate(view.spec.measure_names)
        ]
    label = f"cell {cell}"
    if view.class_names:
        top = view.class_names[int(np.argmax(view.probs[row]))]
        label += f" · {top} {float(view.outputs[top][row]):.2f}"
    outputs = [
        (name, float(values[row]), *map(float, view.scales[name]))
        for name, values in view.outputs.items()
    ]
    return GalleryElite(f"cell{cell:05d}", label, fields, outputs, view.genome_text(row))


def run_gallery(
    view: RunView,
    folder: str | Path,
    *,
    size: int = 384,
    progress: Progress | None = None,
) -> Path:
    """Write the gallery of a run's archive at its latest checkpoint.

    Args:
        view: The run.
        folder: Output folder.
        size: Side of the large images in pixels.
        progress: Reports stage ``"gallery"``, one unit per elite written.

    Returns:
        The path of ``index.html``.
    """
    from evoemotion.views.plots import mosaic_title
    from evoemotion.views.runview import ELITES_PER_RENDER

    grid = view.grid_index() if view.spec.dims is not None else None
    elites = [_elite_record(view, i, grid) for i in range(len(view))]
    record = (view.config.get("classifiers") or [{}])[0]
    qd = float(view.objective.sum())
    info = [
        ("archive", f"{view.spec.kind}, {view.spec.cells} cells"),
        ("elites", f"{len(view)} ({len(view) / view.spec.cells:.1%} coverage)"),
        ("QD score", f"{qd:.2f}"),
        ("objective", view.spec.objective),
        ("iteration", f"{view.iteration} ({view.evaluations} evaluations)"),
        ("genotype", f"{view.genotype.kind} '{view.genotype.name}'"),
        ("classifier", f"{record.get('source', '?')} ({str(record.get('identity', ''))[:12]})"),
    ]
    rendered: dict[int, np.ndarray] = {}

    def image(i: int) -> np.ndarray:
        if i not in rendered:
            rendered.clear()
            rows = np.arange(i, min(i + ELITES_PER_RENDER, len(view)))
            rendered.update(zip(rows.tolist(), view.render(rows, size), strict=True))
        return rendered[i]

    return write_gallery(
        folder,
        title=mosaic_title(view),
        info=info,
        panels=view.panels(top_k=None),
        elites=elites,
        image=image,
        progress=progress,
    )
