"""Differentiable quality diversity (DQD): CMA-MEGA, CMA-MAEGA and OMG-MEGA from pyribs.

Fontaine & Nikolaidis (2021) step through the genome space along the gradients of the
objective and of every measure. Each iteration has two phases, as pyribs'
``Scheduler.ask_dqd`` / ``tell_dqd`` then ``ask`` / ``tell``:

1. every emitter proposes its gradient points (``ask_dqd``: CMA-MEGA's current solution
   point, OMG-MEGA's batch of archive elites); they are evaluated and differentiated in
   one pass (objective and measures with respect to the genome, through the torch
   renderer and the classifier: :meth:`Evaluator.jacobian
   <evoemotion.pipeline.Evaluator.jacobian>`), added to the archive, and their
   Jacobians given back (``tell_dqd``);
2. every emitter branches from its points along random combinations of those gradients
   (``ask``); the branches are evaluated, added, and ranked (``tell``).

Emitters (``emitter=``):

- ``cma-mega``: :class:`~ribs.emitters.GradientArborescenceEmitter`, CMA-ES over the
  gradient coefficients, two-stage improvement ranking, restart (``restart=``) when no
  branch entered the archive or only when CMA-ES converges.
- ``cma-maega``: the same emitter with improvement ranking, told by a second archive with
  the archive learning rate ``archive_lr`` (CMA-MAE's soft thresholds; Fontaine &
  Nikolaidis 2023); the run's own archive keeps the elites.
- ``omg-mega``: :class:`~ribs.emitters.GradientOperatorEmitter`, elites sampled from the
  archive, each stepped along ``|c_0| grad f + sum_j c_j grad m_j`` with
  ``c ~ N(0, sigma^2)``: one Jacobian per offspring.

The same archive rules as MAP-Elites apply (:class:`~evoemotion.search.MapElites`): images
with non-finite outputs are rejected, and a ``per-class`` image gives one row per class.
On ``per-class`` each emitter works for one class (emitter i for class ``i mod K``, at
least one emitter per class; three by default with ``cma-mega``): its objective is that
class's probability, its measure the cell's constant. Its measure has no gradient, so its
branches lie on the line of the objective's gradient, and CMA-MEGA's defaults there differ
(:data:`~evoemotion.choices.DQD_PER_CLASS_DEFAULTS`): small coefficient steps, Adam on the
solution point, and restarts only when CMA-ES converges, since a branch enters the archive
only by beating its class's best image, and restarting whenever none did restarts almost
every iteration. Genomes are projected onto the genotype's bounds before evaluation, and
those projected genomes are what the emitters are told and the archive stores. A gradient
point whose Jacobian is not finite is rejected (not added, counted in the metrics as
``rejected_gradients``); its emitter is given a zero Jacobian, so its branches are copies
of the point, and they are rejected too (CMA-MEGA then restarts: nothing improved).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from ribs.emitters import EmitterBase, GradientArborescenceEmitter, GradientOperatorEmitter

from evoemotion.choices import (
    DQD_DEFAULTS,
    DQD_EMITTERS,
    DQD_PER_CLASS_DEFAULTS,
    DQD_RESTARTS,
    GRADIENT_OPTIMIZERS,
)
from evoemotion.errors import ConfigError
from evoemotion.render.differentiable import check_differentiable
from evoemotion.search.archive_search import ArchiveSearch, add_rows, as_solutions, told_rows
from evoemotion.search.mapelites import split_batch

if TYPE_CHECKING:
    from ribs.archives import ArchiveBase

    from evoemotion.archives import ArchiveSpec, Placement
    from evoemotion.genotypes import Genotype
    from evoemotion.pipeline import EvaluatorLike
    from evoemotion.scoring import Outputs

#: Objectives with a gradient.
DIFFERENTIABLE_OBJECTIVES = ("confidence", "none")


class DqdSearch(ArchiveSearch):
    """DQD run state: archive(s), gradient emitters, generators, counters, metrics.

    Args:
        genotype: A flat CPPN genotype (kind ``cppn``).
        spec: The archive spec; its objective must have a gradient (``confidence`` or
            ``none``).
        batch_size: Branches per iteration (phase 2), split over the emitters; OMG-MEGA
            evaluates as many gradient points again in phase 1, CMA-MEGA one per emitter.
        seed: Seed of the archives and of every emitter.
        emitter: One of :data:`DQD_EMITTERS`.
        emitters: Number of emitters (raised to the number of classes on ``per-class``).
            ``None``: 4, or three per class for ``cma-mega`` on ``per-class``.
        sigma: CMA-MEGA's initial coefficient step ``sigma0``; OMG-MEGA's coefficient
            spread ``sigma_g``. ``None``, here and below: the archive kind's default
            (:data:`DQD_DEFAULTS`; :data:`DQD_PER_CLASS_DEFAULTS` for ``cma-mega`` on
            ``per-class``).
        lr: Learning rate of the CMA-MEGA solution point's gradient optimiser.
        optimizer: One of :data:`GRADIENT_OPTIMIZERS`.
        restart: One of :data:`DQD_RESTARTS`, CMA-MEGA's restart rule (CMA-MAEGA's
            default is ``basic``).
        archive_lr: CMA-MAEGA's archive learning rate, in (0, 1].
        normalize: Normalise every gradient to unit length before use (pyribs' default
            for CMA-MEGA; the paper's choice).

    Raises:
        ConfigError: A genotype without a torch renderer, an objective without a
            gradient, an unknown emitter, optimiser or restart rule, or a bad
            number.
    """

    name = "dqd"

    def __init__(
        self,
        *,
        genotype: Genotype,
        spec: ArchiveSpec,
        batch_size: int,
        seed: int,
        emitter: str = DQD_DEFAULTS["emitter"],
        emitters: int | None = None,
        sigma: float | None = None,
        lr: float | None = None,
        optimizer: str | None = None,
        restart: str | None = None,
        archive_lr: float = DQD_DEFAULTS["archive_lr"],
        normalize: bool = True,
    ) -> None:
        check_differentiable(genotype)
        classes = len(spec.measure_names) if spec.kind == "per-class" else 0
        tuned = bool(classes) and emitter == "cma-mega"
        defaults = {**DQD_DEFAULTS, **(DQD_PER_CLASS_DEFAULTS if tuned else {})}
        if emitter == "cma-maega":
            defaults["restart"] = "basic"
        if emitters is None:
            emitters = defaults["emitters"] * (classes if tuned else 1)
        sigma = defaults["sigma"] if sigma is None else sigma
        lr = defaults["lr"] if lr is None else lr
        optimizer = optimizer or defaults["optimizer"]
        restart = restart or defaults["restart"]
        if spec.objective not in DIFFERENTIABLE_OBJECTIVES:
            raise ConfigError(
                f"objective {spec.objective!r} has no gradient; dqd needs --objective "
                f"{' or '.join(DIFFERENTIABLE_OBJECTIVES)}"
            )
        if emitter not in DQD_EMITTERS:
            raise ConfigError(
                f"dqd emitter must be one of {', '.join(DQD_EMITTERS)}, got {emitter!r}"
            )
        if optimizer not in GRADIENT_OPTIMIZERS:
            raise ConfigError(
                f"gradient optimizer must be one of {', '.join(GRADIENT_OPTIMIZERS)}, "
                f"got {optimizer!r}"
            )
        if restart not in DQD_RESTARTS:
            raise ConfigError(
                f"dqd restart must be one of {', '.join(DQD_RESTARTS)}, got {restart!r}"
            )
        if sigma <= 0 or lr <= 0 or not 0 < archive_lr <= 1:
            raise ConfigError(
                f"dqd needs sigma > 0, lr > 0 and 0 < archive lr <= 1, got {sigma}, {lr}, "
                f"{archive_lr}"
            )
        super().__init__(genotype=genotype, spec=spec, batch_size=batch_size, seed=seed)
        sizes = split_batch(batch_size, max(emitters, classes))
        if emitter != "omg-mega" and min(sizes) < 2:
            raise ConfigError(
                f"{emitter} needs at least 2 branches per emitter: batch size {batch_size} "
                f"over {len(sizes)} emitters is too few (raise the batch size or lower the "
                "emitters)"
            )
        self.emitter_name = emitter
        self.gradient_evaluations = 0
        self.rejected_gradients = 0
        archive_seed, *seeds = self.child_seeds(len(sizes) + 1)
        self.learning_archive: ArchiveBase = self.archive
        if emitter == "cma-maega":
            self.learning_archive = spec.build_archive(
                solution_dim=int(genotype.solution_dim),
                seed=archive_seed,
                learning_rate=archive_lr,
                threshold_min=0.0,
            )
        self.emitter_classes = np.arange(len(sizes)) % classes if classes else None
        self.emitters = [
            self._make_emitter(size, s, sigma, lr, optimizer, restart, normalize)
            for size, s in zip(sizes, seeds, strict=True)
        ]

    def _make_emitter(
        self,
        size: int,
        seed: int,
        sigma: float,
        lr: float,
        optimizer: str,
        restart: str,
        normalize: bool,
    ) -> EmitterBase:
        start = as_solutions(
            self.genotype.random(np.random.default_rng(seed), size), self.archive.solution_dim
        )
        if self.emitter_name == "omg-mega":
            return GradientOperatorEmitter(
                self.learning_archive,
                sigma=0.0,
                sigma_g=sigma,
                initial_solutions=start,
                measure_gradients=True,
                normalize_grad=normalize,
                bounds=self.genotype.bounds,
                batch_size=size,
                seed=seed,
            )
        return GradientArborescenceEmitter(
            self.learning_archive,
            x0=start[0],
            sigma0=sigma,
            lr=lr,
            grad_opt=optimizer,
            ranker="imp" if self.emitter_name == "cma-maega" else "2imp",
            selection_rule="mu",
            restart_rule=restart.replace("-", "_"),
            normalize_grad=normalize,
            batch_size=size,
            seed=seed,
        )

    def _clip(self, solutions: np.ndarray) -> np.ndarray:
        bound = np.array(self.genotype.bounds, dtype=np.float64)
        return np.clip(solutions, bound[:, 0], bound[:, 1])

    def _place_both(
        self, out: Outputs, solutions: np.ndarray, bad: np.ndarray | None = None
    ) -> tuple[Placement, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Add evaluated solutions to both archives; returns (placement, result add info,
        learning archive add info). ``bad`` solutions are rejected before adding."""
        placement = self.spec.objective_and_measures(out)
        if bad is not None and bad.any():
            placement = placement.reject(bad)
        result = add_rows(self.archive, solutions, placement)
        if self.learning_archive is self.archive:
            return placement, result, result
        return placement, result, add_rows(self.learning_archive, solutions, placement)

    def _branches_of(self, bad: np.ndarray, counts: list[int]) -> np.ndarray:
        """Branches grown from a rejected gradient point: copies of it (zero Jacobian)."""
        if not bad.any():
            return np.zeros(sum(counts), dtype=bool)
        if self.emitter_name == "omg-mega":  # branch i grows from gradient point i
            return bad
        return np.repeat(bad, counts)  # CMA-MEGA: one point per emitter

    def _wanted(self, counts: list[int]) -> np.ndarray | None:
        """Row of each solution its emitter is about: the emitter's class on per-class."""
        if self.emitter_classes is None:
            return None
        return np.repeat(self.emitter_classes, counts)

    def _tell(
        self,
        method: str,
        solutions: np.ndarray,
        counts: list[int],
        placement: Placement,
        add_info: dict[str, np.ndarray],
        **extra: np.ndarray,
    ) -> None:
        """Call ``tell`` or ``tell_dqd`` of every emitter with its slice of the batch."""
        objective, measures, info = told_rows(
            len(solutions), placement, add_info, self.spec.ranges, self._wanted(counts)
        )
        start = 0
        for emitter, count in zip(self.emitters, counts, strict=True):
            part = slice(start, start + count)
            getattr(emitter, method)(
                solutions[part],
                objective[part],
                measures[part],
                *(value[part] for value in extra.values()),
                {"status": info["status"][part], "value": info["value"][part]},
            )
            start += count

    def step(self, evaluator: EvaluatorLike) -> dict[str, float]:
        """Run one DQD iteration (gradient phase, then branching phase).

        Args:
            evaluator: Renders and scores genomes; must offer ``jacobian`` (the in-process
                :class:`~evoemotion.pipeline.Evaluator` does, Dask evaluators do not).

        Returns:
            The metrics row: the keys of :data:`~evoemotion.search.METRIC_FIELDS` plus
            ``gradient_evaluations`` (cumulative) and ``rejected_gradients`` (this
            iteration).

        Raises:
            ConfigError: The evaluator cannot compute gradients.
        """
        if not hasattr(evaluator, "jacobian"):
            raise ConfigError(f"dqd needs gradients, which {type(evaluator).__name__} lacks")
        start = time.perf_counter()
        filled = len(self.archive)
        batches = [e.ask_dqd() for e in self.emitters]
        counts = [len(b) for b in batches]
        points = self._clip(np.concatenate(batches))
        rejected = improved = 0
        bad = np.zeros(len(points), dtype=bool)
        if len(points):
            out, jacobian = evaluator.jacobian(points, self.spec, self._wanted(counts))
            bad = ~np.isfinite(jacobian).all(axis=(1, 2))
            jacobian[bad] = 0.0
            placement, result, learning = self._place_both(out, points, bad)
            self._tell("tell_dqd", points, counts, placement, learning, jacobian=jacobian)
            rejected += int((placement.rejected & ~bad).sum())
            improved += int((result["status"] == 1).sum())
        batches = [e.ask() for e in self.emitters]
        counts = [len(b) for b in batches]
        solutions = self._clip(np.concatenate(batches))
        copies = self._branches_of(bad, counts)
        placement, result, learning = self._place_both(
            evaluator.evaluate(solutions), solutions, copies
        )
        if not self.learning_archive.empty:
            self._tell("tell", solutions, counts, placement, learning)
        self.gradient_evaluations += len(points)
        self.rejected_gradients += int(bad.sum())
        row = self.record(
            start,
            filled,
            evaluated=len(points) + len(solutions),
            improved=improved + int((result["status"] == 1).sum()),
            rejected=rejected + int((placement.rejected & ~copies).sum()),
        )
        row["gradient_evaluations"] = self.gradient_evaluations
        row["rejected_gradients"] = int(bad.sum())
        return row
