"""Novelty search and novelty search with local competition as run states.

:class:`NoveltySearch` (``--algorithm novelty``) and :class:`NSLCSearch` (``--algorithm
nslc``) drive a DEAP :class:`~evoemotion.search.novelty_population.NoveltyPopulation`
through the same iteration as every other search (:class:`ArchiveSearch`): the population
asks for genomes, the evaluator renders and scores them, every image is offered to the
run's pyribs archive (the *result archive*, so coverage, QD score and elite grids compare
across algorithms), and the population is told each genome's behaviour descriptor and
objective.

Behaviour descriptors (``behavior``), all read from the classifier outputs:

- ``measures``: the outputs the archive uses as measures (the class probabilities for
  ``categorical`` and ``per-class``; valence/arousal(/dominance) for ``va``/``vad``;
  the two named outputs for ``measures``);
- ``probs``: the class probabilities;
- ``vad``: whichever of valence, arousal and dominance the classifier predicts;
- ``embedding``: the classifier's penultimate-layer embedding.

The objective a genome competes with in NSLC is the run's objective; for ``per-class``,
where an image has one objective per class, it is the best of them (the top-class
probability).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from evoemotion.choices import BEHAVIORS, NOVELTY_DEFAULTS
from evoemotion.errors import ConfigError
from evoemotion.search.archive_search import ArchiveSearch, as_solutions
from evoemotion.search.novelty_archive import NoveltyArchive
from evoemotion.search.novelty_population import NoveltyPopulation

if TYPE_CHECKING:
    from evoemotion.archives import ArchiveSpec, Placement
    from evoemotion.genotypes import Genotype
    from evoemotion.pipeline import EvaluatorLike
    from evoemotion.scoring import Outputs

#: Regression outputs the ``vad`` behaviour is made of, when the classifier has them.
VAD_NAMES = ("valence", "arousal", "dominance")


def behavior_descriptors(out: Outputs, spec: ArchiveSpec, behavior: str) -> np.ndarray:
    """Return the behaviour vector of every image of a batch.

    Args:
        out: The batch's outputs.
        spec: The run's archive spec (its measure names).
        behavior: One of :data:`BEHAVIORS`.

    Returns:
        ``(N, d)`` float64 array.

    Raises:
        ConfigError: Unknown behaviour, or an output the classifier does not give.
    """
    if behavior == "measures":
        return out.table(spec.measure_names)
    if behavior == "vad":
        names = [name for name in VAD_NAMES if name in out]
        if not names:
            raise ConfigError(
                "`behavior` vad needs a classifier with valence/arousal/"
                f"dominance outputs; it has {', '.join(out.scalar_names)}"
            )
        return out.table(names)
    if behavior in ("probs", "embedding"):
        if behavior not in out:
            raise ConfigError(
                f"`behavior` {behavior}: the classifier gives no {behavior!r} "
                f"output (it has {', '.join(out.names)})"
            )
        return np.asarray(out[behavior], dtype=np.float64).reshape(len(out), -1)
    raise ConfigError(f"behavior must be one of {', '.join(BEHAVIORS)}, got {behavior!r}")


def solution_objectives(placement: Placement, n: int) -> np.ndarray:
    """Return each solution's objective: the best of its archive rows, NaN if rejected.

    Args:
        placement: The batch's archive rows.
        n: Number of solutions in the batch.

    Returns:
        ``(n,)`` float64 array.
    """
    objective = np.full(n, -np.inf)
    np.maximum.at(objective, placement.source, placement.objective)
    objective[placement.rejected | ~np.isfinite(objective)] = np.nan
    return objective


class NoveltySearch(ArchiveSearch):
    """Novelty-search run state: result archive, DEAP population with its novelty archive,
    generators, counters and metrics.

    Besides :data:`~evoemotion.search.METRIC_FIELDS`, each metrics row carries
    ``novelty_mean`` / ``novelty_max`` (of this iteration's offspring),
    ``novelty_archive`` (its size), ``novelty_added`` and ``novelty_threshold``.

    Args:
        genotype: The genotype.
        spec: The result archive's spec.
        batch_size: Offspring per iteration (lambda); also the first, random generation.
        seed: Seed of the result archive, the population and its novelty archive.
        behavior: Behaviour descriptor, one of :data:`BEHAVIORS`.
        k: Nearest neighbours for novelty (and local competition).
        mu: Population size kept between iterations; default ``batch_size``.
        novelty_policy: Novelty-archive add policy: ``threshold`` (adaptive) or ``random``.
        novelty_threshold: Starting threshold; default the first generation's mean novelty.
        novelty_add_prob: Add probability of the ``random`` policy.
        novelty_cap: Novelty-archive size cap (oldest entries dropped); ``None``: no cap.
        crossover_prob: Probability that an offspring comes from crossover; default 0.2
            when the genotype has crossover, else 0. Every other offspring is a mutant.

    Raises:
        ConfigError: A bad option.
    """

    name = "novelty"
    variant = "novelty"

    def __init__(
        self,
        *,
        genotype: Genotype,
        spec: ArchiveSpec,
        batch_size: int,
        seed: int,
        behavior: str = NOVELTY_DEFAULTS["behavior"],
        k: int = NOVELTY_DEFAULTS["k"],
        mu: int | None = None,
        novelty_policy: str = NOVELTY_DEFAULTS["novelty_policy"],
        novelty_threshold: float | None = None,
        novelty_add_prob: float = NOVELTY_DEFAULTS["novelty_add_prob"],
        novelty_cap: int | None = NOVELTY_DEFAULTS["novelty_cap"],
        crossover_prob: float | None = None,
    ) -> None:
        super().__init__(genotype=genotype, spec=spec, batch_size=batch_size, seed=seed)
        if behavior not in BEHAVIORS:
            raise ConfigError(f"behavior must be one of {', '.join(BEHAVIORS)}, got {behavior!r}")
        self.behavior = behavior
        archive = NoveltyArchive(
            policy=novelty_policy,
            threshold=novelty_threshold,
            add_prob=novelty_add_prob,
            max_size=novelty_cap,
        )
        self.population = NoveltyPopulation(
            genotype=genotype,
            archive=archive,
            variant=self.variant,
            mu=batch_size if mu is None else mu,
            lambda_=batch_size,
            k=k,
            crossover_prob=crossover_prob,
            seed=self.child_seeds(1)[0],
        )
        self._novelty_row: dict[str, float] = {}

    def ask(self) -> np.ndarray:
        """Breed the population's next generation (mu random genomes at first).

        Returns:
            The genomes to evaluate, packed for the archive.
        """
        return as_solutions(self.population.ask(), self.archive.solution_dim)

    def tell(
        self,
        solutions: np.ndarray,
        out: Outputs,
        placement: Placement,
        add_info: dict[str, np.ndarray],
    ) -> None:
        """Tell the population each genome's behaviour and objective.

        Args:
            solutions: What :meth:`ask` returned.
            out: Their outputs.
            placement: Their result-archive rows.
            add_info: The result archive's answer (unused: novelty ignores it).
        """
        stats = self.population.tell(
            behavior_descriptors(out, self.spec, self.behavior),
            solution_objectives(placement, len(solutions)),
        )
        self._novelty_row = {
            "novelty_mean": stats["novelty_mean"],
            "novelty_max": stats["novelty_max"],
            "novelty_archive": int(stats["archive_size"]),
            "novelty_added": int(stats["archive_added"]),
            "novelty_threshold": stats["threshold"],
        }

    def step(self, evaluator: EvaluatorLike) -> dict[str, float]:
        """Run one iteration; see :meth:`ArchiveSearch.step`.

        Args:
            evaluator: Renders and scores genomes.

        Returns:
            The metrics row, with the novelty columns added.
        """
        row = super().step(evaluator)
        row.update(self._novelty_row)
        return row


class NSLCSearch(NoveltySearch):
    """Novelty search with local competition: survivors chosen by DEAP's NSGA-II on
    (novelty, how many of the k nearest neighbours this genome beats on the objective).
    Arguments as :class:`NoveltySearch`.
    """

    name = "nslc"
    variant = "nslc"
