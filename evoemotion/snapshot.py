"""Archive snapshots: a run's elites as plain data, safe to open from anyone.

A run writes ``archive.npz`` beside every checkpoint. It is an ``.npz`` of plain arrays
(no object arrays, read with ``allow_pickle=False``), so opening it runs no code:

- ``cells`` ``(N,)`` int64, ``objective`` ``(N,)``, ``measures`` ``(N, d)`` and
  ``outputs`` ``(N, len(spec.output_names))`` float64, elites in cell order;
- ``solutions`` ``(N, D)`` float64 for flat-vector genotypes, or ``genomes``: the UTF-8
  bytes of a JSON list of :meth:`~evoemotion.genotypes.Genotype.to_dict` genomes for
  object genomes (trees, graphs);
- ``centroids`` for CVT archives;
- ``meta``: the UTF-8 bytes of a JSON object with the format, the archive spec
  (:meth:`~evoemotion.archives.ArchiveSpec.to_dict`), the resolved genotype preset, and
  the iteration and evaluations at the snapshot.

The views (``plot``, ``gallery``, ``analyze``, ``render RUN``), the elite export and
``run --continue-from`` read only this file, never the pickled checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evoemotion.errors import DataError, EvoEmotionError

if TYPE_CHECKING:
    from ribs.archives import ArchiveBase

    from evoemotion.archives import ArchiveSpec
    from evoemotion.genotypes import Genotype
    from evoemotion.search import SearchState

#: ``format`` field of a snapshot's ``meta``.
SNAPSHOT_FORMAT = "evoemotion-archive-snapshot"

#: Version of the snapshot layout.
SNAPSHOT_VERSION = 1

#: File name of the snapshot inside a run folder.
SNAPSHOT_NAME = "archive.npz"


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)


def _json_value(array: np.ndarray) -> Any:
    return json.loads(array.tobytes().decode("utf-8"))


@dataclass
class ArchiveSnapshot:
    """Every elite of an archive, with the spec and genotype that give them meaning.

    Rows are ordered by archive cell index.

    Attributes:
        spec: The archive spec (centroids included for CVT archives).
        genotype: The genotype of the genomes.
        iteration: Iterations done when the snapshot was taken.
        evaluations: Evaluations done when the snapshot was taken.
        cells: ``(N,)`` archive cell index of each elite.
        objective: ``(N,)`` objective of each elite.
        measures: ``(N, d)`` measures of each elite.
        outputs: ``(N, len(spec.output_names))`` recorded outputs of each elite.
        solutions: ``(N, D)`` float64 genomes (flat-vector genotypes) or a 1-D object
            array of genome objects.
    """

    spec: ArchiveSpec
    genotype: Genotype
    iteration: int
    evaluations: int
    cells: np.ndarray
    objective: np.ndarray
    measures: np.ndarray
    outputs: np.ndarray
    solutions: np.ndarray

    def __len__(self) -> int:
        return len(self.cells)

    @classmethod
    def of(cls, state: SearchState) -> ArchiveSnapshot:
        """Take the snapshot of a run state's archive.

        Args:
            state: The run state (:class:`~evoemotion.search.SearchState`).

        Returns:
            The snapshot (arrays copied out of the archive).
        """
        data = state.archive.data()
        order = np.argsort(data["index"], kind="stable")
        return cls(
            spec=state.spec,
            genotype=state.genotype,
            iteration=int(state.iteration),
            evaluations=int(state.evaluations),
            cells=np.asarray(data["index"], dtype=np.int64)[order],
            objective=np.asarray(data["objective"], dtype=np.float64)[order],
            measures=np.asarray(data["measures"], dtype=np.float64)[order],
            outputs=np.asarray(data["outputs"], dtype=np.float64)[order],
            solutions=data["solution"][order],
        )

    def to_bytes(self) -> bytes:
        """Encode the snapshot as ``.npz`` bytes (see the module docstring).

        Returns:
            The file content.
        """
        arrays: dict[str, np.ndarray] = {
            "meta": _json_bytes(
                {
                    "format": SNAPSHOT_FORMAT,
                    "version": SNAPSHOT_VERSION,
                    "spec": self.spec.to_dict(),
                    "genotype": self.genotype.preset,
                    "iteration": self.iteration,
                    "evaluations": self.evaluations,
                }
            ),
            "cells": self.cells,
            "objective": self.objective,
            "measures": self.measures,
            "outputs": self.outputs,
        }
        if self.genotype.solution_dim is None:
            arrays["genomes"] = _json_bytes([self.genotype.to_dict(g) for g in self.solutions])
        else:
            arrays["solutions"] = np.asarray(self.solutions, dtype=np.float64)
        if self.spec.centroids is not None:
            arrays["centroids"] = np.asarray(self.spec.centroids)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def read(cls, path: str | os.PathLike) -> ArchiveSnapshot:
        """Read a snapshot file; no code in it runs (``allow_pickle=False``).

        Args:
            path: An ``archive.npz``.

        Returns:
            The snapshot.

        Raises:
            DataError: The file is unreadable, not a snapshot, or its arrays disagree.
        """
        from evoemotion.archives import ArchiveSpec
        from evoemotion.genotypes import load_genotype
        from evoemotion.search.archive_search import as_solutions

        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            meta = _json_value(arrays["meta"])
            if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT:
                raise DataError(f"{path} is not an evoemotion archive snapshot")
            if meta.get("version") != SNAPSHOT_VERSION:
                raise DataError(
                    f"{path} is snapshot version {meta.get('version')}; this evoemotion "
                    f"reads version {SNAPSHOT_VERSION}"
                )
            spec = ArchiveSpec.from_dict(meta["spec"], centroids=arrays.get("centroids"))
            genotype = load_genotype(meta["genotype"])
            if "genomes" in arrays:
                decoded = [genotype.from_dict(d) for d in _json_value(arrays["genomes"])]
                solutions = as_solutions(decoded, ())
            else:
                solutions = arrays["solutions"]
            snapshot = cls(
                spec=spec,
                genotype=genotype,
                iteration=int(meta["iteration"]),
                evaluations=int(meta["evaluations"]),
                cells=arrays["cells"],
                objective=arrays["objective"],
                measures=arrays["measures"],
                outputs=arrays["outputs"],
                solutions=solutions,
            )
        except DataError:
            raise
        except EvoEmotionError as err:
            raise DataError(f"{path}: {err}") from err
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            reason = (str(err).splitlines() or [""])[0][:200]
            raise DataError(
                f"{path} is not a readable archive snapshot ({type(err).__name__}: {reason})"
            ) from err
        snapshot._check(path)
        return snapshot

    def _check(self, path: Path) -> None:
        n = len(self.cells)
        shapes = {
            "objective": (self.objective.shape, (n,)),
            "measures": (self.measures.shape, (n, len(self.spec.ranges))),
            "outputs": (self.outputs.shape, (n, len(self.spec.output_names))),
            "solutions": (self.solutions.shape[:1], (n,)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise DataError(f"{path}: '{name}' has shape {got}, expected {want}")

    def to_archive(self, *, seed: int | None = None) -> ArchiveBase:
        """Build the pyribs archive holding exactly these elites.

        Args:
            seed: Seed of the archive's sampling generator.

        Returns:
            A new archive of :attr:`spec` with every elite added.

        Raises:
            DataError: An elite does not land in its recorded cell (the snapshot does not
                belong to its spec).
        """
        from evoemotion.search.archive_search import solution_dim

        archive = self.spec.build_archive(solution_dim=solution_dim(self.genotype), seed=seed)
        self.fill(archive)
        return archive

    def fill(self, archive: ArchiveBase) -> None:
        """Add every elite to an empty archive of :attr:`spec` (same cells).

        Args:
            archive: The archive to fill.

        Raises:
            DataError: An elite does not land in its recorded cell (the snapshot does not
                belong to its spec).
        """
        if len(self):
            archive.add(
                solution=self.solutions,
                objective=self.objective,
                measures=self.measures,
                outputs=self.outputs,
            )
        placed = np.sort(np.asarray(archive.data("index"), dtype=np.int64))
        if not np.array_equal(placed, self.cells):
            raise DataError(
                "the snapshot's elites do not land in their recorded cells of its archive spec"
            )
