"""A run folder as the views see it: its archive's elites, read from the data snapshot.

:func:`open_run` works on finished and half-finished runs alike: it reads ``config.json``
and ``archive.npz`` (the plain-data snapshot written beside every checkpoint, see
:mod:`evoemotion.snapshot`), so the plots, analysis and gallery show the archive as it was
last checkpointed, whether or not the elites were exported. It never opens the pickled
checkpoint, so any run folder is safe to look at.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evoemotion.errors import DataError
from evoemotion.views.layout import Panel, categorical_panel, grid_panels, per_class_panel

if TYPE_CHECKING:
    from ribs.archives import ArchiveBase

    from evoemotion.archives import ArchiveSpec
    from evoemotion.genotypes import Genotype
    from evoemotion.progress import Progress
    from evoemotion.snapshot import ArchiveSnapshot

#: Elites rendered per call of the renderer.
ELITES_PER_RENDER = 16


@dataclass
class RunView:
    """The elites of a run's archive and what is needed to show them.

    Elites are ordered by archive cell index, so row ``i`` of every array is one elite.

    Attributes:
        path: The run folder.
        name: The folder's name.
        config: The parsed ``config.json``.
        spec: The archive spec.
        genotype: The genotype of the run.
        iteration: Iterations done at that checkpoint.
        evaluations: Evaluations done at that checkpoint.
        cells: ``(N,)`` archive cell index of each elite.
        objective: ``(N,)`` objective of each elite.
        measures: ``(N, measure_dim)`` measures of each elite.
        outputs: Recorded classifier outputs by name (``spec.output_names``), each ``(N,)``.
        solutions: The archive's solutions (``(N, D)`` floats or an object array).
        class_names: Classes of the run's (first) classifier; ``[]`` without a categorical
            head.
        scales: ``(low, high)`` of every recorded output, for bars and axes.
        snapshot: The data snapshot the view was read from.
    """

    path: Path
    name: str
    config: dict[str, Any]
    spec: ArchiveSpec
    genotype: Genotype
    iteration: int
    evaluations: int
    cells: np.ndarray
    objective: np.ndarray
    measures: np.ndarray
    outputs: dict[str, np.ndarray]
    solutions: np.ndarray
    class_names: list[str]
    scales: dict[str, tuple[float, float]]
    snapshot: ArchiveSnapshot

    def __len__(self) -> int:
        return len(self.cells)

    @cached_property
    def archive(self) -> ArchiveBase:
        """The pyribs archive holding the elites (rebuilt from the snapshot on first use)."""
        return self.snapshot.to_archive()

    @property
    def probs(self) -> np.ndarray:
        """``(N, K)`` class probabilities of the elites (``(N, 0)`` without classes)."""
        columns = [self.outputs[c] for c in self.class_names]
        return np.stack(columns, axis=1) if columns else np.zeros((len(self), 0))

    def genomes(self, rows: Sequence[int] | np.ndarray) -> Any:
        """Return the genomes of some elites in a form the renderer accepts.

        Args:
            rows: Elite rows.

        Returns:
            A 2-D float array (flat-vector genomes) or a list of genome objects.
        """
        from evoemotion.pipeline import as_genome_list

        return as_genome_list(self.solutions[np.asarray(rows, dtype=np.int64)])

    def render(
        self,
        rows: Sequence[int] | np.ndarray,
        size: int,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Render some elites from their genomes.

        Args:
            rows: Elite rows.
            size: Side of the images in pixels.
            progress: Reports stage ``"render"`` in images after each chunk.

        Returns:
            uint8 ``(len(rows), size, size, 3)``.
        """
        from evoemotion.render import render

        rows = np.asarray(rows, dtype=np.int64)
        images = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        for start in range(0, len(rows), ELITES_PER_RENDER):
            part = rows[start : start + ELITES_PER_RENDER]
            images[start : start + len(part)] = render(self.genotype, self.genomes(part), size)
            if progress is not None:
                progress("render", len(part), len(rows), None)
        return images

    def genome_text(self, row: int) -> str:
        """Return one elite's genome as readable text (``genotype.to_text``).

        Args:
            row: Elite row.

        Returns:
            The text.
        """
        return self.genotype.to_text(self.genomes([row])[0])

    def grid_index(self) -> np.ndarray:
        """``(N, d)`` grid coordinates of the elites (grid archives only)."""
        return np.asarray(self.archive.int_to_grid_index(self.cells)).reshape(len(self), -1)

    def panels(self, top_k: int | None = None) -> list[Panel]:
        """Lay out the elites the way this archive kind is plotted.

        Args:
            top_k: For ``categorical`` archives, elites kept per emotion row (all when
                ``None``).

        Returns:
            The panels (see :mod:`evoemotion.views.layout`).
        """
        kind = self.spec.kind
        if kind == "categorical":
            return [categorical_panel(self.probs, self.class_names, top_k)]
        if kind == "per-class":
            return [per_class_panel(self.grid_index()[:, 0], self.probs, self.class_names)]
        return grid_panels(
            self.grid_index(),
            self.spec.dims,
            self.spec.ranges,
            self.spec.measure_names,
            self.objective,
        )

    def metrics(self) -> dict[str, np.ndarray]:
        """Read ``metrics.csv`` (every iteration written so far) as float columns.

        Returns:
            Column name -> array; empty arrays when no iteration has finished.

        Raises:
            DataError: If the file is unreadable or a value is not a number.
        """
        where = self.path / "metrics.csv"
        if not where.is_file() or where.stat().st_size == 0:
            return {"evaluations": np.zeros(0)}
        try:
            with open(where, newline="") as handle:
                rows = list(csv.DictReader(handle))
            names = list(rows[0]) if rows else []
            return {n: np.array([float(r[n]) for r in rows]) for n in names}
        except (OSError, ValueError, TypeError) as err:
            raise DataError(f"{where} is not a readable metrics table ({err})") from err


def _classifier_names(config: dict[str, Any], spec: ArchiveSpec) -> tuple[list[str], dict]:
    """Class names and output scales of the run's first classifier, from ``config.json``."""
    from evoemotion.emotion.model import DEFAULT_SCALE, REGRESSION_HEADS

    record = (config.get("classifiers") or [{}])[0]
    regression = {name for names in REGRESSION_HEADS.values() for name in names}
    outputs = record.get("outputs", spec.output_names)
    class_names = list(record.get("class_names", [n for n in outputs if n not in regression]))
    scales = {name: (0.0, 1.0) for name in class_names}
    scales.update({name: tuple(s) for name, s in record.get("scales", {}).items()})
    for name, (low, high) in zip(spec.measure_names, spec.ranges, strict=False):
        scales.setdefault(name, (low, high))
    for name in spec.output_names:
        scales.setdefault(name, DEFAULT_SCALE if name in regression else (0.0, 1.0))
    return class_names, scales


def open_run(path: str | Path) -> RunView:
    """Open a run folder at its latest data snapshot (never its pickled checkpoint).

    Args:
        path: The run folder.

    Returns:
        The view of its archive.

    Raises:
        CheckpointError: Not a run folder, or it has no snapshot (the message says how to
            make one).
        DataError: The snapshot is unreadable.
    """
    from evoemotion.runs import RunFolder

    folder = RunFolder.open(path, checkpoint=False)
    config = folder.config
    snapshot = folder.snapshot()
    spec = snapshot.spec
    class_names, scales = _classifier_names(config, spec)
    return RunView(
        path=folder.path,
        name=folder.path.resolve().name,
        config=config,
        spec=spec,
        genotype=snapshot.genotype,
        iteration=snapshot.iteration,
        evaluations=snapshot.evaluations,
        cells=snapshot.cells,
        objective=snapshot.objective,
        measures=snapshot.measures,
        outputs={name: snapshot.outputs[:, j] for j, name in enumerate(spec.output_names)},
        solutions=snapshot.solutions,
        class_names=class_names,
        scales=scales,
        snapshot=snapshot,
    )
