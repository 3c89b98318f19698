"""The DEAP population of novelty search and novelty search with local competition (NSLC).

A (mu + lambda) loop in ask/tell form that sees genomes, behaviour vectors and objective
values only, never images or classifiers. :meth:`NoveltyPopulation.ask` breeds lambda
offspring with DEAP's :func:`~deap.algorithms.varOr`, whose toolbox ``mate`` and ``mutate``
are the genotype's own :meth:`crossover` and :meth:`mutate` (the
:class:`~evoemotion.genotypes.Genotype` protocol), and returns the
genomes to evaluate. :meth:`NoveltyPopulation.tell` takes their behaviour vectors and
objectives, scores parents and offspring together against the novelty archive
(:mod:`evoemotion.search.novelty_archive`), offers the offspring to that archive and keeps
mu survivors: the most novel (``novelty``, DEAP's ``selBest``), or by DEAP's NSGA-II on
(novelty, local competition) (``nslc``, ``selNSGA2``).

The object holds everything of the loop that must survive a restart: population, novelty
archive, numpy generator, the state of the Python ``random`` stream that DEAP's variation
draws from, and the generation counter. It pickles without its DEAP toolbox, which is
rebuilt on load. DEAP draws from the global ``random`` module, so every call into DEAP runs
inside a swap of the global state for the population's own and back, leaving other users
of ``random`` untouched. The fitness classes are plain subclasses of DEAP's
:class:`~deap.base.Fitness` (what ``creator.create`` would make) so that pickles name them
by module path and need no ``creator`` set-up before loading.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from deap import algorithms, base, tools

from evoemotion.errors import ConfigError
from evoemotion.search.novelty_archive import NoveltyArchive, novelty_and_competition

#: Algorithm names this module implements.
VARIANTS = ("novelty", "nslc")


class NoveltyFitness(base.Fitness):
    """Single-objective DEAP fitness: novelty, maximised."""

    weights = (1.0,)


class NoveltyCompetitionFitness(base.Fitness):
    """Two-objective DEAP fitness for NSLC: (novelty, local competition), both maximised."""

    weights = (1.0, 1.0)


class Individual:
    """A population member: a genome, its DEAP fitness and what evaluation said about it.

    Args:
        genome: The genotype's genome object (never modified in place).
        fitness: The DEAP fitness instance (invalid until scored).
        behavior: Behaviour vector, or ``None`` until evaluated.
        objective: The run's objective value (NaN when the image was rejected).
    """

    __slots__ = ("genome", "fitness", "behavior", "objective")

    def __init__(
        self,
        genome: Any,
        fitness: base.Fitness,
        behavior: np.ndarray | None = None,
        objective: float = float("nan"),
    ) -> None:
        self.genome = genome
        self.fitness = fitness
        self.behavior = behavior
        self.objective = objective


def _clone(ind: Individual) -> Individual:
    """DEAP ``clone``: a new individual sharing the (immutable-by-contract) genome."""
    fitness = type(ind.fitness)()
    fitness.values = ind.fitness.values
    return Individual(ind.genome, fitness, ind.behavior, ind.objective)


class NoveltyPopulation:
    """(mu + lambda) novelty search or NSLC over any genotype.

    Args:
        genotype: A :class:`~evoemotion.genotypes.Genotype` (``random``, ``mutate``, ``crossover``,
            ``has_crossover``).
        archive: The novelty archive to score against and add to.
        variant: ``"novelty"`` (select the mu most novel) or ``"nslc"`` (NSGA-II on
            novelty and local competition).
        mu: Population size; also the size of the first, random generation.
        lambda_: Offspring per generation.
        k: Nearest neighbours for novelty and local competition.
        crossover_prob: Probability that an offspring comes from crossover; ``None`` means
            0.2 when the genotype has crossover, else 0.
        mutation_prob: Probability that an offspring comes from mutation; ``None`` means
            ``1 - crossover_prob`` (every offspring is new). The rest are copies.
        seed: Seed of both the numpy generator and the Python stream DEAP draws from.

    Raises:
        ConfigError: If an argument is out of range or crossover is asked of a genotype
            without it.
    """

    def __init__(
        self,
        *,
        genotype: Any,
        archive: NoveltyArchive,
        variant: str = "novelty",
        mu: int = 64,
        lambda_: int = 64,
        k: int = 15,
        crossover_prob: float | None = None,
        mutation_prob: float | None = None,
        seed: int = 0,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"novelty search variant must be one of {VARIANTS}, got {variant!r}")
        if mu < 2 or lambda_ < 1 or k < 1:
            raise ConfigError(
                f"need mu >= 2, lambda >= 1 and k >= 1, got mu={mu}, lambda={lambda_}, k={k}"
            )
        has_crossover = bool(getattr(genotype, "has_crossover", False))
        if crossover_prob is None:
            crossover_prob = 0.2 if has_crossover else 0.0
        if mutation_prob is None:
            mutation_prob = 1.0 - crossover_prob
        if crossover_prob > 0 and not has_crossover:
            raise ConfigError(
                f"genotype {getattr(genotype, 'name', genotype)!r} has no "
                f"crossover; crossover probability must be 0, got "
                f"{crossover_prob}"
            )
        if not (
            0 <= crossover_prob
            and 0 <= mutation_prob
            and crossover_prob + mutation_prob <= 1 + 1e-12
        ):
            raise ConfigError(
                f"crossover ({crossover_prob}) and mutation ({mutation_prob}) "
                "probabilities must be >= 0 and sum to at most 1"
            )
        self.genotype = genotype
        self.archive = archive
        self.variant = variant
        self.mu = mu
        self.lambda_ = lambda_
        self.k = k
        self.crossover_prob = float(crossover_prob)
        self.mutation_prob = float(min(mutation_prob, 1.0 - crossover_prob))
        self.rng = np.random.default_rng(seed)
        self.python_random_state = random.Random(seed).getstate()
        self.generation = 0
        self.population: list[Individual] = []
        self._pending_index: list[int] = []
        self._offspring: list[Individual] = []
        self.toolbox = self._build_toolbox()

    # -- pickling: the toolbox holds bound methods; rebuild it instead of storing it --
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["toolbox"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.toolbox = self._build_toolbox()

    @property
    def fitness_class(self) -> type[base.Fitness]:
        """The DEAP fitness class of this variant's individuals."""
        return NoveltyCompetitionFitness if self.variant == "nslc" else NoveltyFitness

    def _build_toolbox(self) -> base.Toolbox:
        toolbox = base.Toolbox()
        toolbox.register("clone", _clone)
        toolbox.register("mutate", self._mutate)
        toolbox.register("mate", self._mate)
        toolbox.register("select", tools.selNSGA2 if self.variant == "nslc" else tools.selBest)
        return toolbox

    def _new(self, genome: Any) -> Individual:
        return Individual(genome, self.fitness_class())

    def _mutate(self, ind: Individual) -> tuple[Individual]:
        return (self._new(self.genotype.mutate(ind.genome, self.rng)),)

    def _mate(self, a: Individual, b: Individual) -> tuple[Individual, Individual]:
        child_a, child_b = self.genotype.crossover(a.genome, b.genome, self.rng)
        return self._new(child_a), self._new(child_b)

    @contextmanager
    def _deap_random(self) -> Iterator[None]:
        """Run DEAP code on this search's Python random stream, restoring the global one."""
        saved = random.getstate()
        random.setstate(self.python_random_state)
        try:
            yield
        finally:
            self.python_random_state = random.getstate()
            random.setstate(saved)

    def ask(self) -> list[Any]:
        """Breed the next generation and return the genomes that need evaluating.

        The first call returns mu random genomes; later calls return the new offspring of
        the current population (copies made by DEAP's reproduction branch keep their
        evaluation and are not returned).

        Returns:
            A list of genomes, to be evaluated and passed back to :meth:`tell` in order.

        Raises:
            ConfigError: If called twice without :meth:`tell` in between.
        """
        if self._offspring:
            raise ConfigError("NoveltyPopulation.ask() called again before tell()")
        if not self.population:
            self._offspring = [self._new(g) for g in self.genotype.random(self.rng, self.mu)]
        else:
            with self._deap_random():
                self._offspring = algorithms.varOr(
                    self.population,
                    self.toolbox,
                    self.lambda_,
                    self.crossover_prob,
                    self.mutation_prob,
                )
        self._pending_index = [i for i, ind in enumerate(self._offspring) if not ind.fitness.valid]
        return [self._offspring[i].genome for i in self._pending_index]

    def tell(self, behaviors: np.ndarray, objectives: Sequence[float]) -> dict[str, float]:
        """Take the evaluation of the genomes from :meth:`ask` and select survivors.

        Args:
            behaviors: (n, d) behaviour vectors, one row per asked genome.
            objectives: (n,) objective values (NaN or inf marks a rejected image).

        Returns:
            Generation statistics: ``novelty_mean``, ``novelty_max``, ``archive_size``,
            ``archive_added`` and ``threshold`` (NaN for the random policy).

        Raises:
            ConfigError: If nothing was asked or the lengths do not match.
        """
        behaviors = np.asarray(behaviors, dtype=np.float64)
        objectives = np.asarray(objectives, dtype=np.float64)
        if not self._offspring:
            raise ConfigError("NoveltyPopulation.tell() called before ask()")
        asked = len(self._pending_index)
        if len(behaviors) != asked or len(objectives) != asked:
            raise ConfigError(
                f"tell() needs one behaviour and objective per asked genome: "
                f"asked {asked}, got {len(behaviors)} behaviours and "
                f"{len(objectives)} objectives"
            )
        for i, behavior, objective in zip(self._pending_index, behaviors, objectives, strict=True):
            self._offspring[i].behavior = behavior
            self._offspring[i].objective = float(objective)
        pool = self.population + self._offspring
        pool_behaviors = np.stack([ind.behavior for ind in pool])
        pool_objectives = np.array([ind.objective for ind in pool])
        novelty, competition = novelty_and_competition(
            pool_behaviors,
            pool_objectives,
            self.archive.behaviors,
            self.archive.objectives,
            self.k,
        )
        for ind, nov, comp in zip(pool, novelty, competition, strict=True):
            ind.fitness.values = (nov, float(comp)) if self.variant == "nslc" else (nov,)
        new = len(self.population) + np.asarray(self._pending_index, dtype=np.int64)
        added = self.archive.offer(
            pool_behaviors[new], pool_objectives[new], novelty[new], self.rng
        )
        with self._deap_random():
            self.population = list(self.toolbox.select(pool, self.mu))
        self._pending_index, self._offspring = [], []
        self.generation += 1
        return {
            "novelty_mean": float(novelty[new].mean()) if len(new) else 0.0,
            "novelty_max": float(novelty[new].max()) if len(new) else 0.0,
            "archive_size": float(len(self.archive)),
            "archive_added": float(added),
            "threshold": float("nan")
            if self.archive.threshold is None
            else float(self.archive.threshold),
        }
