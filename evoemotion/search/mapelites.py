"""MAP-Elites with pyribs emitters, for flat-vector and object genomes.

For flat-vector genotypes (``cppn``) the emitters are pyribs' own: CMA-ME
(:class:`~ribs.emitters.EvolutionStrategyEmitter` with two-stage improvement ranking),
:class:`~ribs.emitters.IsoLineEmitter` and :class:`~ribs.emitters.GaussianEmitter`. For
any genotype, including object genomes (``sims`` expression trees, ``cppn-neat`` graphs),
:class:`GenomeEmitter` applies the genotype's own crossover and mutation to elites sampled
from the archive.

:class:`MapElites` plays the part of pyribs' :class:`~ribs.schedulers.Scheduler` (ask every
emitter, add to the archive, tell every emitter its slice) with two differences that the
stock scheduler cannot express: images whose outputs are not finite are left out of the
archive (the archive refuses non-finite values), and one solution may become several
archive rows (the ``per-class`` archive adds every image once per class). Emitters are
told, per solution, the best of its rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from ribs.archives import ArchiveBase
from ribs.emitters import (
    EmitterBase,
    EvolutionStrategyEmitter,
    GaussianEmitter,
    IsoLineEmitter,
)

from evoemotion.choices import EMITTERS, MAP_ELITES_DEFAULTS
from evoemotion.errors import ConfigError
from evoemotion.search.archive_search import ArchiveSearch, as_solutions, told_rows

if TYPE_CHECKING:
    from evoemotion.archives import ArchiveSpec, Placement
    from evoemotion.genotypes import Genotype
    from evoemotion.scoring import Outputs


class GenomeEmitter(EmitterBase):
    """Emits offspring of archive elites made by the genotype's crossover and mutation.

    While the archive is empty it emits fresh random genomes. Otherwise each offspring
    is a mutated copy of an elite sampled from the archive, or, with probability
    ``crossover_prob``, the mutated first child of the crossover of two sampled elites.
    Object genomes are returned as a 1-D object array (``solution_dim=()``).

    Args:
        archive: The archive (``solution_dtype=object`` for object genomes).
        genotype: The :class:`~evoemotion.genotypes.Genotype`.
        batch_size: Offspring per :meth:`ask`.
        crossover_prob: Probability of crossover per offspring; must be 0 when the
            genotype has no crossover.
        seed: Seed of the emitter's generator.

    Raises:
        ConfigError: A bad batch size or crossover probability.
    """

    def __init__(
        self,
        archive: ArchiveBase,
        *,
        genotype: Genotype,
        batch_size: int,
        crossover_prob: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"emitter batch size must be at least 1, got {batch_size}")
        if not 0.0 <= crossover_prob <= 1.0:
            raise ConfigError(f"crossover probability must be in [0, 1], got {crossover_prob}")
        if crossover_prob > 0 and not genotype.has_crossover:
            raise ConfigError(
                f"genotype {genotype.name!r} has no crossover; use `crossover_prob` 0"
            )
        super().__init__(
            archive,
            solution_dim=archive.solution_dim,
            bounds=None,
            lower_bounds=None,
            upper_bounds=None,
        )
        self.genotype = genotype
        self.batch_size = batch_size
        self.crossover_prob = crossover_prob
        self._rng = np.random.default_rng(seed)

    def ask(self) -> np.ndarray:
        """Return ``batch_size`` new genomes.

        Returns:
            ``(batch_size, solution_dim)`` array, or a 1-D object array of genomes.
        """
        if self.archive.empty:
            children = self.genotype.random(self._rng, self.batch_size)
        else:
            parents = self.archive.sample_elites(2 * self.batch_size)["solution"]
            children = [
                self._offspring(parents[2 * i], parents[2 * i + 1]) for i in range(self.batch_size)
            ]
        return as_solutions(children, self.solution_dim)

    def _offspring(self, first: Any, second: Any) -> Any:
        if self.crossover_prob > 0 and self._rng.random() < self.crossover_prob:
            first = self.genotype.crossover(first, second, self._rng)[0]
        return self.genotype.mutate(first, self._rng)


def split_batch(batch_size: int, parts: int) -> list[int]:
    """Split a batch into ``parts`` near-equal positive sizes.

    Args:
        batch_size: Total size.
        parts: Number of parts.

    Returns:
        Sizes summing to ``batch_size``.

    Raises:
        ConfigError: ``parts`` is not between 1 and ``batch_size``.
    """
    if not 1 <= parts <= batch_size:
        raise ConfigError(
            f"`emitters` must be between 1 and the batch size {batch_size}, got {parts}"
        )
    return [batch_size // parts + (i < batch_size % parts) for i in range(parts)]


class MapElites(ArchiveSearch):
    """MAP-Elites run state: archive, emitters, generators, counters, metrics.

    Args:
        genotype: The genotype.
        spec: The archive spec.
        batch_size: Genomes per iteration, split over the emitters.
        seed: Seed of the archive and of every emitter.
        emitter: One of :data:`EMITTERS`; ``cma-me``, ``iso-line`` and ``gaussian`` need
            a flat-vector genotype. Default: ``iso-line`` for flat-vector genotypes (it
            reached the highest QD score in ``benchmarks/qd.py``), ``genome`` otherwise.
        emitters: Number of emitter instances.
        sigma: Step size: CMA-ES ``sigma0``, Gaussian ``sigma``, iso-line ``iso_sigma``.
        line_sigma: Iso-line emitter's step along the line between elites.
        crossover_prob: Crossover probability of the ``genome`` emitter; default 0.2 when
            the genotype has crossover, else 0.

    Raises:
        ConfigError: An unknown emitter, a vector emitter for object genomes, or fewer
            than 2 genomes per CMA-ME emitter.
    """

    name = "map-elites"

    def __init__(
        self,
        *,
        genotype: Genotype,
        spec: ArchiveSpec,
        batch_size: int,
        seed: int,
        emitter: str | None = None,
        emitters: int = MAP_ELITES_DEFAULTS["emitters"],
        sigma: float = MAP_ELITES_DEFAULTS["sigma"],
        line_sigma: float = MAP_ELITES_DEFAULTS["line_sigma"],
        crossover_prob: float | None = None,
    ) -> None:
        super().__init__(genotype=genotype, spec=spec, batch_size=batch_size, seed=seed)
        emitter = emitter or ("genome" if genotype.solution_dim is None else "iso-line")
        if emitter not in EMITTERS:
            raise ConfigError(f"emitter must be one of {', '.join(EMITTERS)}, got {emitter!r}")
        if emitter != "genome" and genotype.solution_dim is None:
            raise ConfigError(
                f"emitter {emitter!r} needs a flat-vector genotype; "
                f"{genotype.kind!r} genomes use `emitter` genome"
            )
        if sigma <= 0 or line_sigma < 0:
            raise ConfigError(f"sigma must be > 0 and line sigma >= 0, got {sigma}, {line_sigma}")
        if crossover_prob is None:
            crossover_prob = 0.2 if genotype.has_crossover else 0.0
        self.emitter_name = emitter
        sizes = split_batch(batch_size, emitters)
        if emitter == "cma-me" and min(sizes) < 2:
            raise ConfigError(f"CMA-ME needs at least 2 genomes per emitter: batch size "
                              f"{batch_size} over {emitters} emitters is too few")
        seeds = self.child_seeds(len(sizes))
        self.emitters = [
            self._make_emitter(emitter, size, s, sigma, line_sigma, crossover_prob)
            for size, s in zip(sizes, seeds, strict=True)
        ]
        self._emitted: list[int] = []

    def _make_emitter(
        self,
        name: str,
        size: int,
        seed: int,
        sigma: float,
        line_sigma: float,
        crossover_prob: float,
    ) -> EmitterBase:
        if name == "genome":
            return GenomeEmitter(
                self.archive,
                genotype=self.genotype,
                batch_size=size,
                crossover_prob=crossover_prob,
                seed=seed,
            )
        start = as_solutions(
            self.genotype.random(np.random.default_rng(seed), size), self.archive.solution_dim
        )
        common = {"bounds": self.genotype.bounds, "batch_size": size, "seed": seed}
        if name == "cma-me":
            return EvolutionStrategyEmitter(
                self.archive, x0=start[0], sigma0=sigma, ranker="2imp", **common
            )
        if name == "iso-line":
            return IsoLineEmitter(
                self.archive,
                iso_sigma=sigma,
                line_sigma=line_sigma,
                initial_solutions=start,
                **common,
            )
        return GaussianEmitter(self.archive, sigma=sigma, initial_solutions=start, **common)

    def ask(self) -> np.ndarray:
        """Ask every emitter for its solutions.

        Returns:
            The emitters' solutions, concatenated in emitter order.
        """
        batches = [e.ask() for e in self.emitters]
        self._emitted = [len(b) for b in batches]
        return np.concatenate(batches)

    def tell(
        self,
        solutions: np.ndarray,
        out: Outputs,
        placement: Placement,
        add_info: dict[str, np.ndarray],
    ) -> None:
        """Tell every emitter, per solution, the best of its archive rows.

        A solution's best row is the one with the highest add status, then the highest
        improvement value. Rejected solutions are told status 0 with a value below every
        other, objective 0 and measures at the lower end of each range. While the archive
        is still empty (every image so far rejected) the emitters are told nothing: a
        CMA-ES restart would have no elite to restart from.

        Args:
            solutions: What :meth:`ask` returned.
            out: Their outputs.
            placement: Their archive rows.
            add_info: The archive's ``status`` and ``value`` of every row.
        """
        if self.archive.empty:
            return
        objective, measures, info = told_rows(
            len(solutions), placement, add_info, self.spec.ranges
        )
        start = 0
        for emitter, count in zip(self.emitters, self._emitted, strict=True):
            part = slice(start, start + count)
            emitter.tell(
                solutions[part],
                objective[part],
                measures[part],
                {"status": info["status"][part], "value": info["value"][part]},
            )
            start += count
