"""Behaviour-space arithmetic of novelty search: k-nearest-neighbour novelty, local
competition and the novelty archive (Lehman & Stanley 2008, 2011).

Everything here works on whole batches of behaviour vectors with numpy: distances come from
one matrix product per chunk of queries (``|q|^2 + |r|^2 - 2 q.r``) and the k nearest are
picked with :func:`numpy.argpartition`, so there is no Python loop over individuals.

An individual whose behaviour or objective is not finite (an image the archive spec
rejected) is *invalid*: it gets novelty 0 and local competition 0, is never a neighbour of
anyone and never enters the novelty archive.
"""

from __future__ import annotations

import numpy as np

from evoemotion.choices import NOVELTY_POLICIES as ADD_POLICIES
from evoemotion.errors import ConfigError

#: Upper bound on the entries of one query-by-reference distance block.
_BLOCK_ENTRIES = 1 << 22


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def knn(
    queries: np.ndarray, reference: np.ndarray, k: int, *, queries_in_reference: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Find each query's k nearest reference points (Euclidean).

    Args:
        queries: (n, d) finite behaviour vectors.
        reference: (m, d) finite behaviour vectors.
        k: Neighbours wanted; fewer are returned when the reference set is smaller.
        queries_in_reference: The queries are the first n rows of ``reference``; a query is
            then never its own neighbour.

    Returns:
        ``(distances, indices)``, both (n, k') with k' = min(k, available neighbours),
        sorted nearest first; ``indices`` index rows of ``reference``.

    Raises:
        ConfigError: If k < 1 or the two arrays differ in dimension.
    """
    if k < 1:
        raise ConfigError(f"k (novelty neighbours) must be >= 1, got {k}")
    queries = np.asarray(queries, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if queries.ndim != 2 or reference.ndim != 2 or queries.shape[1] != reference.shape[1]:
        raise ConfigError(
            f"behaviour arrays must be (n, d) and (m, d), got {queries.shape} and {reference.shape}"
        )
    n, m = len(queries), len(reference)
    k_eff = min(k, m - 1 if queries_in_reference else m)
    if n == 0 or k_eff <= 0:
        return np.zeros((n, 0)), np.zeros((n, 0), dtype=np.int64)
    ref_norms = _squared_norms(reference)
    distances = np.empty((n, k_eff))
    indices = np.empty((n, k_eff), dtype=np.int64)
    step = max(1, _BLOCK_ENTRIES // max(m, 1))
    for start in range(0, n, step):
        block = queries[start : start + step]
        sq = _squared_norms(block)[:, None] + ref_norms[None, :] - 2.0 * (block @ reference.T)
        np.maximum(sq, 0.0, out=sq)
        if queries_in_reference:
            rows = np.arange(len(block))
            sq[rows, start + rows] = np.inf
        part = np.argpartition(sq, k_eff - 1, axis=1)[:, :k_eff]
        part_sq = np.take_along_axis(sq, part, axis=1)
        order = np.argsort(part_sq, axis=1, kind="stable")
        indices[start : start + len(block)] = np.take_along_axis(part, order, axis=1)
        distances[start : start + len(block)] = np.sqrt(np.take_along_axis(part_sq, order, 1))
    return distances, indices


def valid_mask(behaviors: np.ndarray, objectives: np.ndarray) -> np.ndarray:
    """Return which individuals have a finite behaviour vector and a finite objective.

    Args:
        behaviors: (n, d) behaviour vectors.
        objectives: (n,) objective values.

    Returns:
        (n,) bool array.
    """
    return np.isfinite(behaviors).all(axis=1) & np.isfinite(objectives)


def novelty_and_competition(
    behaviors: np.ndarray,
    objectives: np.ndarray,
    archive_behaviors: np.ndarray,
    archive_objectives: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Score a population against itself plus a novelty archive.

    Novelty is the mean distance to the k nearest neighbours among the other valid
    individuals of the population and the archive entries; local competition is how many of
    those k neighbours have a strictly lower objective (NSLC, Lehman & Stanley 2011).

    Args:
        behaviors: (n, d) behaviour vectors of the population.
        objectives: (n,) objective values of the population.
        archive_behaviors: (m, d) behaviour vectors in the novelty archive (all valid).
        archive_objectives: (m,) their objectives.
        k: Number of nearest neighbours.

    Returns:
        ``(novelty, competition)``: (n,) float novelty and (n,) int local-competition count;
        both 0 for invalid individuals.

    Raises:
        ConfigError: If k < 1 or the dimensions do not match.
    """
    behaviors = np.asarray(behaviors, dtype=np.float64)
    objectives = np.asarray(objectives, dtype=np.float64)
    valid = valid_mask(behaviors, objectives)
    novelty = np.zeros(len(behaviors))
    competition = np.zeros(len(behaviors), dtype=np.int64)
    if len(archive_behaviors):
        archive_behaviors = np.asarray(archive_behaviors, dtype=np.float64)
    else:
        archive_behaviors = np.zeros((0, behaviors.shape[1]))
    reference = np.concatenate([behaviors[valid], archive_behaviors])
    ref_objectives = np.concatenate([objectives[valid], np.asarray(archive_objectives, float)])
    distances, indices = knn(behaviors[valid], reference, k, queries_in_reference=True)
    if distances.shape[1]:
        novelty[valid] = distances.mean(axis=1)
        beaten = ref_objectives[indices] < objectives[valid][:, None]
        competition[valid] = beaten.sum(axis=1)
    return novelty, competition


def mean_novelty(points: np.ndarray, k: int) -> float:
    """Return the mean, over a set of points, of each one's novelty among the others.

    Used to compare how spread out the elites of result archives are (e.g. their measures)
    across search algorithms.

    Args:
        points: (n, d) finite vectors.
        k: Number of nearest neighbours.

    Returns:
        Mean k-nearest-neighbour distance; 0.0 for fewer than two points.

    Raises:
        ConfigError: If k < 1.
    """
    distances, _ = knn(points, points, k, queries_in_reference=True)
    return float(distances.mean()) if distances.size else 0.0


class NoveltyArchive:
    """The novelty archive: behaviours (and objectives) of individuals judged novel.

    Two add policies are offered. ``threshold`` adds every candidate whose novelty reaches
    the current threshold and adapts the threshold: it rises by ``raise_factor`` after a
    generation that added more than ``add_high`` entries and falls by ``lower_factor`` after
    ``stall_generations`` generations in a row that added none. A threshold of ``None``
    starts at the mean novelty of the first candidates offered, so it follows the scale of
    the behaviour space. ``random`` adds each valid candidate with probability
    ``add_prob``. When the archive grows beyond ``max_size`` its oldest entries are dropped.

    Args:
        dim: Dimension of the behaviour vectors, or ``None`` to take it from the first
            :meth:`offer`.
        policy: ``"threshold"`` or ``"random"``.
        threshold: Starting novelty threshold, or ``None`` for automatic.
        add_prob: Add probability of the ``random`` policy.
        max_size: Size cap (oldest entries go first), or ``None`` for no cap.
        add_high: More additions than this in one generation raise the threshold.
        stall_generations: This many generations without additions lower the threshold.
        raise_factor: Multiplier applied when raising the threshold.
        lower_factor: Multiplier applied when lowering the threshold.

    Raises:
        ConfigError: If an argument is out of range.
    """

    def __init__(
        self,
        *,
        dim: int | None = None,
        policy: str = "threshold",
        threshold: float | None = None,
        add_prob: float = 0.05,
        max_size: int | None = 2000,
        add_high: int = 4,
        stall_generations: int = 5,
        raise_factor: float = 1.2,
        lower_factor: float = 0.95,
    ) -> None:
        if policy not in ADD_POLICIES:
            raise ConfigError(
                f"novelty archive policy must be one of {ADD_POLICIES}, got {policy!r}"
            )
        if dim is not None and dim < 1:
            raise ConfigError(f"behaviour dimension must be >= 1, got {dim}")
        if threshold is not None and not threshold > 0:
            raise ConfigError(f"novelty threshold must be > 0, got {threshold}")
        if not 0.0 <= add_prob <= 1.0:
            raise ConfigError(f"novelty archive add probability must be in [0, 1], got {add_prob}")
        if max_size is not None and max_size < 1:
            raise ConfigError(f"novelty archive cap must be >= 1, got {max_size}")
        if add_high < 0 or stall_generations < 1:
            raise ConfigError(
                f"add_high must be >= 0 and stall_generations >= 1, got "
                f"{add_high} and {stall_generations}"
            )
        if not (raise_factor >= 1.0 and 0.0 < lower_factor <= 1.0):
            raise ConfigError(
                f"raise_factor must be >= 1 and lower_factor in (0, 1], got "
                f"{raise_factor} and {lower_factor}"
            )
        self.dim = dim
        self.policy = policy
        self.threshold = threshold
        self.add_prob = add_prob
        self.max_size = max_size
        self.add_high = add_high
        self.stall_generations = stall_generations
        self.raise_factor = raise_factor
        self.lower_factor = lower_factor
        self.behaviors = np.zeros((0, dim or 0))
        self.objectives = np.zeros(0)
        self.stalled = 0
        self.total_added = 0

    def __len__(self) -> int:
        return len(self.behaviors)

    def offer(
        self,
        behaviors: np.ndarray,
        objectives: np.ndarray,
        novelty: np.ndarray,
        rng: np.random.Generator,
    ) -> int:
        """Offer one generation of freshly evaluated individuals to the archive.

        Args:
            behaviors: (n, d) behaviour vectors.
            objectives: (n,) objective values.
            novelty: (n,) novelty of each candidate (from
                :func:`novelty_and_competition`).
            rng: Generator drawn from by the ``random`` policy (not touched by
                ``threshold``).

        Returns:
            How many candidates were added.

        Raises:
            ConfigError: If the behaviour dimension differs from the archive's.
        """
        behaviors = np.asarray(behaviors, dtype=np.float64).reshape(len(novelty), -1)
        if self.dim is None:
            self.dim = behaviors.shape[1]
            self.behaviors = np.zeros((0, self.dim))
        if behaviors.shape[1] != self.dim:
            raise ConfigError(
                f"behaviour dimension {behaviors.shape[1]} does not match the "
                f"novelty archive's {self.dim}"
            )
        objectives = np.asarray(objectives, dtype=np.float64)
        valid = valid_mask(behaviors, objectives)
        if self.policy == "random":
            chosen = valid & (rng.random(len(novelty)) < self.add_prob)
        else:
            if self.threshold is None:
                mean = float(np.mean(novelty[valid])) if valid.any() else 0.0
                if mean <= 0.0:
                    return 0
                self.threshold = mean
            chosen = valid & (novelty >= self.threshold)
            self._adapt(int(chosen.sum()))
        added = int(chosen.sum())
        self.behaviors = np.concatenate([self.behaviors, behaviors[chosen]])
        self.objectives = np.concatenate([self.objectives, objectives[chosen]])
        if self.max_size is not None and len(self.behaviors) > self.max_size:
            self.behaviors = self.behaviors[-self.max_size :]
            self.objectives = self.objectives[-self.max_size :]
        self.total_added += added
        return added

    def _adapt(self, added: int) -> None:
        if added > self.add_high:
            self.threshold *= self.raise_factor
        self.stalled = self.stalled + 1 if added == 0 else 0
        if self.stalled >= self.stall_generations:
            self.threshold *= self.lower_factor
            self.stalled = 0
