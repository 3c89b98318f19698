"""Searches over genomes, each a picklable run state with ``step(evaluator)``.

:data:`ALGORITHMS` maps ``--algorithm`` names to run-state classes; :func:`make_search`
builds one. A run state (:class:`SearchState`) holds everything that must survive a
restart (archive, emitters or population, generators, counters, metrics); the run folder
pickles it without knowing its internals, and a new algorithm only needs a class here.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Protocol

from evoemotion.errors import ConfigError
from evoemotion.search.archive_search import METRIC_FIELDS, ArchiveSearch
from evoemotion.search.baseline import RandomSearch
from evoemotion.search.dqd import DqdSearch
from evoemotion.search.mapelites import MapElites
from evoemotion.search.novelty import NoveltySearch, NSLCSearch

if TYPE_CHECKING:
    from ribs.archives import ArchiveBase

    from evoemotion.archives import ArchiveSpec
    from evoemotion.genotypes import Genotype
    from evoemotion.pipeline import EvaluatorLike


class SearchState(Protocol):
    """What the run folder and the command line need from a run state."""

    genotype: Genotype
    spec: ArchiveSpec
    archive: ArchiveBase
    iteration: int
    evaluations: int
    metrics: list[dict[str, float]]

    def step(self, evaluator: EvaluatorLike) -> dict[str, float]:
        """Run one iteration; return its metrics row (keys of :data:`METRIC_FIELDS`)."""


#: ``--algorithm`` name -> run-state class taking ``genotype, spec, batch_size, seed``
#: and the algorithm's own options as keywords.
ALGORITHMS: dict[str, type] = {
    MapElites.name: MapElites,
    RandomSearch.name: RandomSearch,
    NoveltySearch.name: NoveltySearch,
    NSLCSearch.name: NSLCSearch,
    DqdSearch.name: DqdSearch,
}


def make_search(
    algorithm: str,
    *,
    genotype: Genotype,
    spec: ArchiveSpec,
    batch_size: int,
    seed: int,
    options: dict[str, Any] | None = None,
) -> SearchState:
    """Build the run state of a registered algorithm.

    Args:
        algorithm: A key of :data:`ALGORITHMS`.
        genotype: The genotype.
        spec: The archive spec.
        batch_size: Genomes evaluated per iteration.
        seed: Seed of everything random in the search.
        options: Algorithm-specific keyword options (e.g. ``emitter`` for MAP-Elites).

    Returns:
        The new run state.

    Raises:
        ConfigError: Unknown algorithm or options it does not take.
    """
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    options = dict(options or {})
    state_class = ALGORITHMS[algorithm]
    accepted = inspect.signature(state_class).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"algorithm {algorithm!r} does not take the option(s) {', '.join(unknown)}"
        )
    return state_class(genotype=genotype, spec=spec, batch_size=batch_size, seed=seed, **options)


__all__ = [
    "ALGORITHMS",
    "METRIC_FIELDS",
    "ArchiveSearch",
    "DqdSearch",
    "MapElites",
    "NSLCSearch",
    "NoveltySearch",
    "RandomSearch",
    "SearchState",
    "make_search",
]
