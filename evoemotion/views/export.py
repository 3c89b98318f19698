"""Elite export: every elite of a snapshot as PNG + self-contained genome file, and a CSV.

``elites/cellNNNNN.png`` and ``elites/cellNNNNN.json`` (a genome file written by
:func:`~evoemotion.genotypes.files.write_genome`, preset embedded, so it renders after the
preset file is gone) per elite, and ``elites.csv`` with one row per elite (cell,
objective, measures, outputs, files). The export replaces an earlier one as a whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from evoemotion.atomic import atomic_write, reporting_write_errors

if TYPE_CHECKING:
    from evoemotion.progress import Progress
    from evoemotion.runs import RunFolder
    from evoemotion.snapshot import ArchiveSnapshot


def _write_elites(
    staging: Path, snapshot: ArchiveSnapshot, size: int, progress: Progress | None
) -> list[list[object]]:
    """Render and write every elite's PNG and genome file; return the CSV rows."""
    from PIL import Image

    from evoemotion.genotypes.files import write_genome
    from evoemotion.pipeline import as_genome_list
    from evoemotion.render import render
    from evoemotion.views.runview import ELITES_PER_RENDER

    rows: list[list[object]] = []
    for start in range(0, len(snapshot), ELITES_PER_RENDER):
        picked = range(start, min(start + ELITES_PER_RENDER, len(snapshot)))
        genomes = as_genome_list(snapshot.solutions[start : picked.stop])
        images = render(snapshot.genotype, genomes, size)
        for i, genome, image in zip(picked, genomes, images, strict=True):
            stem = f"cell{int(snapshot.cells[i]):05d}"
            Image.fromarray(image).save(staging / f"{stem}.png")
            write_genome(staging / f"{stem}.json", snapshot.genotype, genome)
            rows.append(
                [
                    int(snapshot.cells[i]),
                    float(snapshot.objective[i]),
                    *map(float, snapshot.measures[i]),
                    *map(float, snapshot.outputs[i]),
                    f"elites/{stem}.png",
                    f"elites/{stem}.json",
                ]
            )
        if progress:
            progress("export", len(picked), len(snapshot), None)
    return rows


def export_elites(
    folder: RunFolder,
    snapshot: ArchiveSnapshot,
    *,
    size: int = 256,
    progress: Progress | None = None,
) -> int:
    """Write every elite of ``snapshot`` into ``folder``'s ``elites/`` and ``elites.csv``.

    Args:
        folder: The run folder.
        snapshot: The archive to export (e.g. ``ArchiveSnapshot.of(state)``).
        size: Side of the PNGs in pixels.
        progress: Reports stage ``"export"`` in elites written, after each batch.

    Returns:
        The number of elites written.

    Raises:
        WriteError: The operating system refused a write; the earlier export is kept.
    """
    from evoemotion.runs import csv_bytes

    spec = snapshot.spec
    header = ["cell", "objective", *spec.measure_columns, *spec.output_names, "image", "genome"]
    with reporting_write_errors(folder.elites_dir):
        staging = Path(tempfile.mkdtemp(prefix=".elites.", dir=folder.path))
        try:
            rows = _write_elites(staging, snapshot, size, progress)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        old = folder.path / ".elites.old"
        shutil.rmtree(old, ignore_errors=True)
        if folder.elites_dir.exists():
            os.replace(folder.elites_dir, old)
        os.replace(staging, folder.elites_dir)
        shutil.rmtree(old, ignore_errors=True)
        atomic_write(folder.elites_csv, csv_bytes(header, rows))
    return len(rows)
