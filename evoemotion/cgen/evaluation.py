"""How well a trained generator hits its targets, and how varied its images are.

The targets are the cells of the MAP-Elites archive of the same kind (the ``va`` / ``vad``
grid of :func:`evoemotion.archives.make_archive_spec`, or one target per class for
``categorical``), so the generator can be compared with a MAP-Elites run cell for cell.
For every target, several latents are rendered to uint8 images and scored by the
:class:`~evoemotion.scoring.Scorer` exactly as a run scores its genomes. Reported:

* the mean absolute error between target and predicted V/A(/D) per dimension
  (``categorical``: the mean probability of the target class and the argmax accuracy);
* diversity across latents: mean pairwise L1 pixel distance (0..1) and mean pairwise cosine
  distance of the classifier's embeddings, among the images of one target;
* ``reached``: the fraction of targets for which at least one image lands within the
  tolerance — by default, inside the target's own archive cell (``categorical``: target
  probability >= tolerance, default 0.5); ``hit_rate``: the same per image;
  ``reached_distinct``: the fraction with at least 4 (or all, if fewer latents) mutually
  distinct images on target (embedding cosine distance >= :data:`DISTINCT_COSINE`);
* ``coverage``: the fraction of archive cells that hold at least one generated image,
  whatever its target (what an archive filled with these images would cover).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from evoemotion.cgen.config import Refinement
from evoemotion.cgen.network import ConditionalGenerator
from evoemotion.cgen.refinement import programs
from evoemotion.errors import ConfigError
from evoemotion.progress import Progress

#: Images rendered and scored per chunk (rounded to whole targets).
CHUNK_IMAGES = 64

#: Default tolerance of the categorical kind: target-class probability at least this.
CATEGORICAL_TOLERANCE = 0.5

#: Two images are distinct when their embeddings' cosine distance is at least this.
DISTINCT_COSINE = 0.05

#: Distinct on-target images a target needs to count in ``reached_distinct``.
DISTINCT_IMAGES = 4


@dataclass
class Evaluation:
    """Per-target results of :func:`evaluate`.

    Attributes:
        kind: The generator's target kind.
        names: Regression names or class names.
        targets: ``(T, dims)`` targets (regression) or ``(T,)`` class indices.
        predictions: ``(T, n, dims)`` predicted values, or ``(T, n, K)`` class
            probabilities, of the ``n`` images per target.
        hits: ``(T, n)`` whether each image is within the tolerance of its target.
        diversity_pixels: ``(T,)`` mean pairwise L1 pixel distance among a target's images.
        diversity_embedding: ``(T,)`` mean pairwise cosine distance of their embeddings.
        embedding_distances: ``(T, n, n)`` pairwise cosine distances of the embeddings of
            each target's images.
        cells: ``(T,)`` archive cell of each target (regression; ``None`` otherwise).
        sample_cells: ``(T, n)`` archive cell of each image's prediction (regression; as in
            the archive, values beyond the range fall in the edge cells; -1: not finite).
        n_cells: Cells in the archive grid.
        tolerance: The tolerance used (``None``: inside the target cell).
        archive: The archive spec's description (``ArchiveSpec.to_dict``), or ``None``.
        refined: The refinement's summary (:func:`~evoemotion.cgen.refinement.refine`: steps,
            seconds, image steps, shares done and stalled), empty when the samples were not
            refined.
        programs: ``(T, n, W)`` the CPPN weights the images were rendered from (refined
            ones after a refinement; render them again at any size with
            :meth:`~evoemotion.cgen.network.ConditionalGenerator.render_programs`).
    """

    kind: str
    names: list[str]
    targets: np.ndarray
    predictions: np.ndarray
    hits: np.ndarray
    diversity_pixels: np.ndarray
    diversity_embedding: np.ndarray
    embedding_distances: np.ndarray
    cells: np.ndarray | None = None
    sample_cells: np.ndarray | None = None
    n_cells: int = 0
    tolerance: float | None = None
    archive: dict[str, Any] | None = field(default=None)
    refined: dict[str, float] = field(default_factory=dict)
    programs: np.ndarray | None = None

    @property
    def reached(self) -> np.ndarray:
        """``(T,)`` whether any image of each target is within the tolerance."""
        return self.hits.any(axis=1)

    @property
    def distinct_hits(self) -> np.ndarray:
        """``(T,)`` how many mutually distinct images of each target are on target.

        Images count as distinct when the cosine distance of their embeddings is at least
        :data:`DISTINCT_COSINE`; the count is greedy, in latent order, over the hits.
        """
        counts = np.zeros(len(self.targets), dtype=np.int64)
        for t in range(len(self.targets)):
            kept: list[int] = []
            for i in np.flatnonzero(self.hits[t]):
                if all(self.embedding_distances[t, i, j] >= DISTINCT_COSINE for j in kept):
                    kept.append(int(i))
            counts[t] = len(kept)
        return counts

    def errors(self) -> np.ndarray:
        """``(T, n, dims)`` absolute errors (regression) or ``(T, n)`` 1 - p(target)."""
        if self.kind == "categorical":
            picked = np.take_along_axis(self.predictions, self.targets[:, None, None], axis=2)
            return 1.0 - picked[..., 0]
        return np.abs(self.predictions - self.targets[:, None, :])

    def summary(self) -> dict[str, float]:
        """The headline numbers (see the module docstring).

        Returns:
            Name -> value: ``mae`` and ``mae_<name>`` per dimension (regression) or
            ``target_prob`` and ``accuracy`` (categorical); ``reached``, ``hit_rate``,
            ``diversity_pixels``, ``diversity_embedding``; ``coverage`` (regression);
            ``targets`` and ``latents`` counts; ``refine_<key>`` of :attr:`refined`.
        """
        out: dict[str, float] = {"targets": len(self.targets), "latents": self.hits.shape[1]}
        if self.kind == "categorical":
            out["target_prob"] = float(1.0 - self.errors().mean())
            out["accuracy"] = float(
                (self.predictions.argmax(axis=2) == self.targets[:, None]).mean()
            )
        else:
            errors = self.errors()
            out["mae"] = float(errors.mean())
            out.update(
                {f"mae_{name}": float(errors[..., i].mean()) for i, name in enumerate(self.names)}
            )
        out["reached"] = float(self.reached.mean())
        out["reached_distinct"] = float(
            (self.distinct_hits >= min(DISTINCT_IMAGES, self.hits.shape[1])).mean()
        )
        out["hit_rate"] = float(self.hits.mean())
        out["diversity_pixels"] = float(self.diversity_pixels.mean())
        out["diversity_embedding"] = float(self.diversity_embedding.mean())
        if self.sample_cells is not None:
            occupied = np.unique(self.sample_cells[self.sample_cells >= 0])
            out["coverage"] = len(occupied) / self.n_cells
        out.update({f"refine_{key}": value for key, value in self.refined.items()})
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One dict per target (for a CSV): target, cell, error, hits, diversity."""
        errors, distinct = self.errors(), self.distinct_hits
        rows = []
        for t in range(len(self.targets)):
            if self.kind == "categorical":
                row: dict[str, Any] = {
                    "target": self.names[int(self.targets[t])],
                    "target_prob": float(1.0 - errors[t].mean()),
                }
            else:
                row = {
                    f"target_{n}": float(v)
                    for n, v in zip(self.names, self.targets[t], strict=True)
                }
                row["cell"] = int(self.cells[t])
                row["mae"] = float(errors[t].mean())
            row.update(
                hits=int(self.hits[t].sum()),
                distinct_hits=int(distinct[t]),
                reached=bool(self.reached[t]),
                diversity_pixels=float(self.diversity_pixels[t]),
                diversity_embedding=float(self.diversity_embedding[t]),
            )
            rows.append(row)
        return rows


def _pairwise(images: np.ndarray, embeddings: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean pairwise L1 pixel distance of one target's images, and the (n, n) cosine
    distances of their embeddings."""
    n = len(images)
    unit = torch.nn.functional.normalize(torch.from_numpy(embeddings).float(), dim=1)
    cosine = (1.0 - unit @ unit.T).clamp_(min=0.0).fill_diagonal_(0.0)
    if n < 2:
        return 0.0, cosine.numpy()
    flat = torch.from_numpy(images.reshape(n, -1)).float() / 255.0
    pixels = torch.cdist(flat, flat, p=1) / flat.shape[1]
    return float(pixels.sum() / (n * (n - 1))), cosine.numpy()


def evaluate(
    generator: ConditionalGenerator,
    scorer: Any,
    *,
    cells: int | None = None,
    latents: int = 4,
    size: int = 64,
    tolerance: float | None = None,
    seed: int = 0,
    spec: Any = None,
    progress: Progress | None = None,
    refinement: Refinement | None = None,
) -> Evaluation:
    """Render every archive-cell target with several latents and score the images.

    Args:
        generator: The trained generator.
        scorer: A :class:`~evoemotion.scoring.Scorer` on the classifier the generator was
            trained against (its crops, size and device apply).
        cells: Bins per axis of the ``va``/``vad`` grid (default: the archive default,
            :data:`evoemotion.archives.DEFAULT_CELLS`); not allowed for ``categorical``.
        latents: Images (latents) per target.
        size: Side in pixels of the rendered images.
        tolerance: Regression: largest per-dimension distance (classifier scale) that counts
            as a hit; ``None`` = the image lands inside the target's archive cell.
            Categorical: smallest target-class probability (default 0.5).
        seed: Seeds the latents.
        spec: The :class:`~evoemotion.archives.ArchiveSpec` whose cells are the targets
            (e.g. a run's, to compare with it cell for cell); default the ``va``/``vad``
            archive of ``cells`` bins per axis. Its kind must be the generator's.
        progress: Reports stage ``"evaluate"`` in images after each scored chunk (and
            ``"refine"`` in image steps when refining).
        refinement: Refine every image first (:func:`~evoemotion.cgen.refinement.refine`, with
            the scorer's first model), each image stopping once it is on target by this
            evaluation's own test (its restarts, seeded from ``seed``, go to the targets
            that one of their images has reached); ``None`` or 0 steps: the generator's
            samples as drawn.

    Returns:
        The :class:`Evaluation`; :attr:`Evaluation.refined` holds the refinement's summary.

    Raises:
        ConfigError: bad counts, size or tolerance, or a classifier that lacks the outputs.
    """
    space = generator.space
    _check_options(space, latents, size, tolerance, spec, cells)
    if space.categorical:
        targets, archive = space.grid(0), None
        tolerance = CATEGORICAL_TOLERANCE if tolerance is None else tolerance
    else:
        spec, archive, targets = _regression_targets(space, scorer, spec, cells)
    z = generator.latents(len(targets) * latents, seed)
    repeated = np.repeat(targets, latents, axis=0)
    weights, refined = programs(
        generator,
        repeated,
        z,
        model=scorer.models[0],
        refinement=refinement,
        done=_on_target_test(space, repeated, tolerance, archive),
        progress=progress,
        seed=int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]),  # apart from z's
    )
    weights = weights.reshape(len(targets), latents, -1)
    predictions, pixel_diversity, distances = _render_and_score(
        generator, scorer, weights, size, progress
    )
    result = Evaluation(
        kind=space.kind,
        names=list(space.names),
        targets=targets,
        predictions=predictions,
        hits=np.zeros((len(targets), latents), bool),
        diversity_pixels=pixel_diversity,
        diversity_embedding=distances.sum(axis=(1, 2)) / max(1, latents * (latents - 1)),
        embedding_distances=distances,
        tolerance=tolerance,
        archive=spec.to_dict() if spec else None,
        refined=refined,
        programs=weights.cpu().numpy(),
    )
    if space.categorical:
        result.hits = (1.0 - result.errors()) >= tolerance
    else:
        _place_in_cells(result, archive, spec.cells)
    return result


def _check_options(
    space: Any, latents: int, size: int, tolerance: float | None, spec: Any, cells: int | None
) -> None:
    """Refuse counts, sizes, tolerances and target archives :func:`evaluate` cannot use."""
    if latents < 1 or size < 8:
        raise ConfigError(f"`latents` must be >= 1 and `size` >= 8, got {latents}, {size}")
    if tolerance is not None and not (np.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(f"`tolerance` must be a non-negative number, got {tolerance}")
    if spec is not None and (spec.kind != space.kind or cells is not None):
        raise ConfigError(
            f"a {spec.kind} archive cannot set the targets of a {space.kind} generator"
            if spec.kind != space.kind
            else "give `spec` or `cells`, not both"
        )
    if space.categorical and cells is not None:
        raise ConfigError(
            "`cells` applies to va/vad generators: a categorical generator "
            "has one target per class"
        )


def _regression_targets(
    space: Any, scorer: Any, spec: Any, cells: int | None
) -> tuple[Any, Any, np.ndarray]:
    """The archive spec (``spec`` or the default grid), its archive and its cell targets."""
    from evoemotion.archives import make_archive_spec

    spec = spec or make_archive_spec(
        space.kind,
        class_names=scorer.class_names,
        regression_names=scorer.regression_names,
        scales=scorer.scales,
        cells=cells,
        objective="none",
    )
    return spec, spec.build_archive(solution_dim=1), space.grid(spec.dims, spec.ranges)


def _on_target_test(
    space: Any, targets: np.ndarray, tolerance: float | None, archive: Any
) -> Any:
    """The evaluation's hit test as a refinement stopping rule: ``(rows, predictions) ->
    bool`` for rows of the flat (target, latent) list ``targets``."""
    if space.categorical:
        classes = np.asarray(targets, dtype=np.int64)
        return lambda rows, probs: probs[np.arange(len(rows)), classes[rows]] >= tolerance
    if tolerance is not None:
        return lambda rows, values: (np.abs(values - targets[rows]) <= tolerance).all(axis=1)
    cells = archive.index_of(targets)

    def inside(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        finite = np.isfinite(values).all(axis=1)
        landed = np.full(len(rows), -1, dtype=np.int64)
        landed[finite] = archive.index_of(values[finite])
        return landed == cells[rows]

    return inside


def _render_and_score(
    generator: ConditionalGenerator,
    scorer: Any,
    weights: torch.Tensor,
    size: int,
    progress: Progress | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the ``(T, latents, W)`` CPPN weights in chunks and score the images.

    Returns:
        ``(T, latents, width)`` predictions, ``(T,)`` pixel diversity and
        ``(T, latents, latents)`` embedding distances.
    """
    space = generator.space
    n_targets, latents = weights.shape[:2]
    width = len(space.names) if not space.categorical else len(scorer.class_names)
    predictions = np.empty((n_targets, latents, width))
    pixel_diversity = np.empty(n_targets)
    distances = np.empty((n_targets, latents, latents))
    per_chunk = max(1, CHUNK_IMAGES // latents)
    for start in range(0, n_targets, per_chunk):
        chunk = slice(start, min(start + per_chunk, n_targets))
        flat = weights[chunk].reshape(-1, weights.shape[-1])
        images = generator.render_programs(flat, size)
        out = scorer.score(images)
        names = ["probs"] if space.categorical else space.names
        values = out["probs"] if space.categorical else out.table(names)
        predictions[chunk] = values.reshape(-1, latents, width)
        for i, t in enumerate(range(chunk.start, chunk.stop)):
            block = slice(i * latents, (i + 1) * latents)
            pixel_diversity[t], distances[t] = _pairwise(images[block], out["embedding"][block])
        if progress is not None:
            progress("evaluate", (chunk.stop - chunk.start) * latents, n_targets * latents, None)
    return predictions, pixel_diversity, distances


def _place_in_cells(result: Evaluation, archive: Any, n_cells: int) -> None:
    """Set a regression result's target and image cells, and its hits."""
    result.cells = archive.index_of(result.targets)
    flat = result.predictions.reshape(-1, result.predictions.shape[-1])
    finite = np.isfinite(flat).all(axis=1)
    sample_cells = np.full(len(flat), -1, dtype=np.int64)
    sample_cells[finite] = archive.index_of(flat[finite])
    result.sample_cells = sample_cells.reshape(result.hits.shape)
    result.n_cells = n_cells
    if result.tolerance is None:
        result.hits = result.sample_cells == result.cells[:, None]
    else:
        result.hits = (result.errors() <= result.tolerance).all(axis=2)
