"""The shared loop of searches that fill an archive: ask, evaluate, place, add, tell.

:class:`ArchiveSearch` is a complete, picklable run state: the archive (with its spec),
the search's generators, counters and the metrics of every iteration so far. Subclasses
say only how genomes are proposed (:meth:`ArchiveSearch.ask`) and what they learn from
the result (:meth:`ArchiveSearch.tell`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from evoemotion.errors import ConfigError

if TYPE_CHECKING:
    from ribs.archives import ArchiveBase

    from evoemotion.archives import ArchiveSpec, Placement
    from evoemotion.genotypes import Genotype
    from evoemotion.pipeline import EvaluatorLike
    from evoemotion.scoring import Outputs

#: Columns of one metrics row, in ``metrics.csv`` order. ``evaluations`` and ``wall_time``
#: (seconds spent stepping) are cumulative; ``new_cells`` (cells filled for the first
#: time), ``improved`` (archive rows that beat an existing elite) and ``rejected`` (images
#: with non-finite outputs) count this iteration only.
METRIC_FIELDS = (
    "iteration",
    "evaluations",
    "coverage",
    "qd_score",
    "max_objective",
    "mean_objective",
    "new_cells",
    "improved",
    "rejected",
    "wall_time",
)


def solution_dim(genotype: Genotype) -> int | tuple[()]:
    """Return the archive ``solution_dim`` for a genotype: its vector length, or ``()``.

    Args:
        genotype: A :class:`~evoemotion.genotypes.Genotype`.

    Returns:
        ``genotype.solution_dim`` for flat-vector kinds, ``()`` for object genomes.
    """
    return () if genotype.solution_dim is None else int(genotype.solution_dim)


def as_solutions(genomes: Any, dim: int | tuple[()]) -> np.ndarray:
    """Pack genomes into the archive's solution array.

    Args:
        genomes: A sequence of genomes or an ``(n, dim)`` array.
        dim: The archive's solution dim (``()`` for object genomes).

    Returns:
        ``(n, dim)`` float64 array, or a 1-D object array of genomes.
    """
    if dim != ():
        return np.asarray(genomes, dtype=np.float64).reshape(-1, dim)
    genomes = list(genomes)
    packed = np.empty(len(genomes), dtype=object)
    for i, genome in enumerate(genomes):
        packed[i] = genome
    return packed


class ArchiveSearch:
    """Base of archive-filling searches; one instance is the whole run state.

    Args:
        genotype: The genotype (must be picklable: it travels in the checkpoint).
        spec: The archive spec.
        batch_size: Genomes evaluated per iteration.
        seed: Seed of the archive and every generator of the search.

    Raises:
        ConfigError: ``batch_size`` is not positive.
    """

    #: Registry name of the algorithm (set by subclasses).
    name = ""

    def __init__(
        self, *, genotype: Genotype, spec: ArchiveSpec, batch_size: int, seed: int
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        archive_seed, rng_seed, self._child_seed = np.random.SeedSequence(seed).spawn(3)
        self.genotype = genotype
        self.spec = spec
        self.batch_size = batch_size
        self.seed = seed
        self.archive: ArchiveBase = spec.build_archive(
            solution_dim=solution_dim(genotype),
            seed=int(archive_seed.generate_state(1)[0]),
        )
        self.rng = np.random.default_rng(rng_seed)
        self.iteration = 0
        self.evaluations = 0
        self.rejected = 0
        self.elapsed = 0.0
        self.metrics: list[dict[str, float]] = []

    def child_seeds(self, n: int) -> list[int]:
        """Return ``n`` integer seeds for parts of the search (emitters ...).

        Args:
            n: How many seeds.

        Returns:
            Seeds derived from the search seed; the same on every call.
        """
        return [int(s.generate_state(1)[0]) for s in self._child_seed.spawn(n)]

    def ask(self) -> np.ndarray:
        """Propose the genomes of this iteration.

        Returns:
            Solutions as packed by :func:`as_solutions`.
        """
        raise NotImplementedError

    def tell(
        self,
        solutions: np.ndarray,
        out: Outputs,
        placement: Placement,
        add_info: dict[str, np.ndarray],
    ) -> None:
        """Learn from the evaluation of the last :meth:`ask` (default: nothing).

        Args:
            solutions: What :meth:`ask` returned.
            out: Their outputs.
            placement: Their archive rows.
            add_info: The archive's ``status`` and ``value`` of every row.
        """

    def place(
        self, evaluator: EvaluatorLike, solutions: np.ndarray
    ) -> tuple[Outputs, Placement, dict[str, np.ndarray]]:
        """Evaluate solutions and add their archive rows to :attr:`archive`.

        Args:
            evaluator: Renders and scores genomes.
            solutions: Solutions as packed by :func:`as_solutions`.

        Returns:
            Their outputs, archive rows, and the archive's ``status`` and ``value`` per row.
        """
        out = evaluator.evaluate(solutions)
        placement = self.spec.objective_and_measures(out)
        return out, placement, add_rows(self.archive, solutions, placement)

    def step(self, evaluator: EvaluatorLike) -> dict[str, float]:
        """Run one iteration and return its metrics row (also kept in :attr:`metrics`).

        Args:
            evaluator: Renders and scores genomes.

        Returns:
            A dict with the keys of :data:`METRIC_FIELDS`.
        """
        start = time.perf_counter()
        filled = len(self.archive)
        solutions = self.ask()
        out, placement, add_info = self.place(evaluator, solutions)
        self.tell(solutions, out, placement, add_info)
        return self.record(
            start,
            filled,
            evaluated=len(solutions),
            improved=int((add_info["status"] == 1).sum()),
            rejected=int(placement.rejected.sum()),
        )

    def record(
        self, start: float, filled: int, *, evaluated: int, improved: int, rejected: int
    ) -> dict[str, float]:
        """Close an iteration: update the counters and append its metrics row.

        Args:
            start: ``time.perf_counter()`` when the iteration began.
            filled: Elites in the archive when it began.
            evaluated: Genomes evaluated in the iteration.
            improved: Archive rows that beat an existing elite.
            rejected: Images rejected for non-finite outputs.

        Returns:
            The metrics row (keys of :data:`METRIC_FIELDS`).
        """
        self.iteration += 1
        self.evaluations += evaluated
        self.rejected += rejected
        self.elapsed += time.perf_counter() - start
        stats = self.archive.stats
        row = {
            "iteration": self.iteration,
            "evaluations": self.evaluations,
            "coverage": float(stats.coverage),
            "qd_score": float(stats.qd_score),
            "max_objective": float("nan") if stats.obj_max is None else float(stats.obj_max),
            "mean_objective": float("nan") if stats.obj_mean is None else float(stats.obj_mean),
            "new_cells": len(self.archive) - filled,
            "improved": improved,
            "rejected": rejected,
            "wall_time": self.elapsed,
        }
        self.metrics.append(row)
        return row


def add_rows(
    archive: ArchiveBase, solutions: np.ndarray, placement: Placement
) -> dict[str, np.ndarray]:
    """Add a placement's rows to an archive.

    Args:
        archive: A pyribs archive of the spec's layout.
        solutions: The evaluated solutions (rows refer to them by ``placement.source``).
        placement: Their archive rows.

    Returns:
        The archive's ``status`` and ``value`` of every row.
    """
    return archive.add(
        solution=solutions[placement.source],
        objective=placement.objective,
        measures=placement.measures,
        outputs=placement.outputs,
    )


def told_rows(
    n: int,
    placement: Placement,
    add_info: dict[str, np.ndarray],
    ranges: list[tuple[float, float]],
    wanted: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One archive row per solution, as emitters are told it.

    Without ``wanted`` a solution's row is its best one: the highest add status, then the
    highest improvement value. With ``wanted``, solution i's row is its ``wanted[i]``-th
    (the class cell of a ``per-class`` emitter). Rejected solutions are told status 0 with
    a value below every other, objective 0 and measures at the lower end of each range.

    Args:
        n: Number of solutions.
        placement: Their archive rows.
        add_info: The archive's ``status`` and ``value`` of every row.
        ranges: ``(low, high)`` of each measure.
        wanted: Optional ``(n,)`` row index within each solution's rows.

    Returns:
        ``objective (n,)``, ``measures (n, measure_dim)`` and ``{"status", "value"}``.
    """
    rows = placement.source
    status = np.zeros(n, dtype=np.int32)
    value = np.full(n, (add_info["value"].min() if len(rows) else 0.0) - 1.0)
    objective = np.zeros(n)
    measures = np.tile([low for low, _ in ranges], (n, 1))
    if len(rows):
        if wanted is None:
            order = np.lexsort((add_info["value"], add_info["status"], rows))
            best = order[np.r_[rows[order][1:] != rows[order][:-1], True]]
        else:
            within = np.arange(len(rows)) - np.searchsorted(rows, rows)
            best = np.flatnonzero(within == np.asarray(wanted)[rows])
        status[rows[best]] = add_info["status"][best]
        value[rows[best]] = add_info["value"][best]
        objective[rows[best]] = placement.objective[best]
        measures[rows[best]] = placement.measures[best]
    return objective, measures, {"status": status, "value": value}
