"""A generator against a search run: of the cells the run filled, which does it reach too?

A MAP-Elites, DQD (or any ``va``/``vad``) run folder says, in plain files, which archive
cells its search filled: ``config.json`` holds the classifier's identity, the data
snapshot ``archive.npz`` (or, in folders without one, ``elites.csv``) the filled cells and
the archive spec. Nothing is unpickled: the checkpoint is never read. The generator is
then evaluated on that run's own grid (:func:`~evoemotion.cgen.evaluation.evaluate` with
the run's spec), so a cell means the same thing to both, and :func:`compare_with_run`
counts the run's cells the generator reaches on target (an image aimed at the cell lands
in it).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evoemotion.archives import ArchiveSpec
from evoemotion.cgen.evaluation import Evaluation
from evoemotion.errors import ConfigError, EvoEmotionError
from evoemotion.snapshot import SNAPSHOT_NAME


@dataclass
class RunCells:
    """The filled cells of a search run, read from its plain files.

    Attributes:
        path: The run folder.
        algorithm: The run's algorithm (``config.json``'s ``run.algorithm``), for reports.
        spec: Its archive spec.
        classifier: Identity hash of its (first) classifier.
        cells: Sorted indices of the cells holding an elite.
    """

    path: Path
    algorithm: str
    spec: ArchiveSpec
    classifier: str
    cells: np.ndarray


def read_run_cells(path: str | os.PathLike) -> RunCells:
    """Read a ``va``/``vad`` run folder's archive spec and filled cells.

    The cells come from the run's data snapshot (``archive.npz``, written beside every
    checkpoint) or, for a folder without one, from ``elites.csv``; the classifier's
    identity from ``config.json``.

    Args:
        path: The run folder.

    Returns:
        The run's cells.

    Raises:
        ConfigError: a file is missing or malformed, or the run's archive is not a
            ``va``/``vad`` grid (one line naming the file).
    """
    from evoemotion.runs import RunFolder

    folder = RunFolder(Path(path).expanduser())
    if not folder.config_path.is_file():
        raise ConfigError(f"{folder.path}: no config.json (is it a run folder?)")
    try:
        config = folder.config
        classifier = str(config["classifiers"][0]["identity"])
        algorithm = str(config.get("run", {}).get("algorithm", "search"))
        if folder.snapshot_path.is_file():
            snapshot = folder.snapshot()
            spec, cells = snapshot.spec, sorted(int(c) for c in snapshot.cells)
        else:
            spec, cells = ArchiveSpec.from_dict(config["archive"]), _elite_cells(folder)
    except (KeyError, IndexError, TypeError, EvoEmotionError) as err:
        raise ConfigError(f"{folder.path}: unreadable run ({err})") from None
    if spec.kind not in ("va", "vad"):
        raise ConfigError(
            f"{folder.config_path}: a {spec.kind!r} archive has no valence-arousal grid to "
            "compare with; only va/vad runs can be compared"
        )
    if cells and not 0 <= cells[0] <= cells[-1] < spec.cells:
        raise ConfigError(
            f"{folder.path}: cell {cells[-1]} is outside the {spec.cells}-cell grid"
        )
    return RunCells(folder.path, algorithm, spec, classifier, np.asarray(cells, dtype=np.int64))


def _elite_cells(folder: Any) -> list[int]:
    """The ``cell`` column of a run's ``elites.csv``."""
    if not folder.elites_csv.is_file():
        raise ConfigError(f"no {SNAPSHOT_NAME} and no elites.csv (is it a finished run folder?)")
    try:
        with folder.elites_csv.open(newline="") as handle:
            return sorted({int(row["cell"]) for row in csv.DictReader(handle)})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{folder.elites_csv} has no readable 'cell' column ({err})") from None


def compare_with_run(result: Evaluation, run: RunCells) -> dict[str, Any]:
    """How many of a run's filled cells the generator reaches on target.

    Args:
        result: The generator evaluated on the run's grid (``evaluate(..., spec=run.spec)``).
        run: The run's cells.

    Returns:
        ``run`` (folder), ``algorithm``, ``run_cells`` (cells the run filled), ``reached``
        (of those, reached on target by the generator), ``share`` (their ratio),
        ``covered`` (of those, holding any generated image), ``generator_only`` (cells the
        generator reaches that the run did not fill).

    Raises:
        ConfigError: the evaluation was made on another grid.
    """
    if result.n_cells != run.spec.cells or result.cells is None:
        raise ConfigError(
            f"the evaluation has {result.n_cells} cells, the run {run.spec.cells}: "
            "evaluate on the run's spec"
        )
    filled = set(run.cells.tolist())
    reached = set(result.cells[result.reached].tolist())
    covered = set(result.sample_cells[result.sample_cells >= 0].tolist())
    return {
        "run": str(run.path),
        "algorithm": run.algorithm,
        "run_cells": len(filled),
        "reached": len(filled & reached),
        "share": len(filled & reached) / len(filled) if filled else 0.0,
        "covered": len(filled & covered),
        "generator_only": len(reached - filled),
    }
