"""Archive specs: which classifier outputs are measures, what the objective is.

An :class:`ArchiveSpec` is the single place that maps scoring :class:`Outputs` to archive
rows (:meth:`ArchiveSpec.objective_and_measures`) and builds the pyribs archive for them
(:meth:`ArchiveSpec.build_archive`). Plots and the gallery read the same spec. Kinds:

- ``categorical``: a CVT archive over the probability simplex of the K classes. Its
  centroids are k-means centres of a uniform Dirichlet sample of the simplex (not of the
  hypercube), computed once from a seed (:func:`simplex_centroids`); the run folder saves
  them. Objective: ``confidence`` (top-class probability) by default.
- ``per-class``: Nguyen et al.'s archive, one cell per class; every image competes in every
  cell with objective ``p_k`` (each image becomes K rows of one batch).
- ``va`` / ``vad``: 2-D / 3-D grids over valence x arousal (x dominance) on the models'
  scales; objective ``aesthetic`` by default.
- ``measures``: a 2-D grid over any two named outputs (``--measures fear,joy``).

An image whose objective, measures or recorded outputs are not all finite is rejected:
it gets no row, and :attr:`Placement.rejected` marks it so the search can count it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from evoemotion.errors import ConfigError
from evoemotion.objectives import OBJECTIVES, aesthetic, confidence

if TYPE_CHECKING:
    from ribs.archives import ArchiveBase

    from evoemotion.scoring import Outputs

#: Names accepted by ``--archive``.
ARCHIVE_KINDS = ("categorical", "per-class", "va", "vad", "measures")

#: Default ``--cells``: CVT cells for ``categorical``, bins per axis for the grids.
DEFAULT_CELLS = {"categorical": 1024, "va": 20, "vad": 10, "measures": 20}

#: Dirichlet samples drawn per CVT cell for k-means (capped at pyribs' default 100 000).
SAMPLES_PER_CELL = 100

#: Image features an objective needs computed from the rendered images.
IMAGE_FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"aesthetic": aesthetic}


@dataclass(frozen=True)
class Placement:
    """Archive rows made from a batch of outputs.

    Attributes:
        objective: ``(M,)`` objective of each row.
        measures: ``(M, measure_dim)`` measures of each row.
        outputs: ``(M, len(spec.output_names))`` recorded outputs of each row.
        source: ``(M,)`` index of the image (solution) each row comes from.
        rejected: ``(N,)`` bool, images that gave no row because a value was not finite.
    """

    objective: np.ndarray
    measures: np.ndarray
    outputs: np.ndarray
    source: np.ndarray
    rejected: np.ndarray

    def reject(self, images: np.ndarray) -> Placement:
        """Return a copy in which the images of the ``(N,)`` bool mask are rejected too."""
        keep = ~images[self.source]
        return Placement(
            objective=self.objective[keep],
            measures=self.measures[keep],
            outputs=self.outputs[keep],
            source=self.source[keep],
            rejected=self.rejected | images,
        )


def simplex_centroids(classes: int, cells: int, seed: int) -> np.ndarray:
    """Return CVT centroids spread over the probability simplex of ``classes`` classes.

    Args:
        classes: Dimension K of the simplex (number of classes).
        cells: Number of centroids.
        seed: Seed of the Dirichlet sample and of k-means.

    Returns:
        ``(cells, classes)`` array whose rows sum to 1.
    """
    from ribs.archives import k_means_centroids

    samples = min(100_000, SAMPLES_PER_CELL * cells)
    points = np.random.default_rng(seed).dirichlet(np.ones(classes), size=samples)
    centroids, _ = k_means_centroids(
        centroids=cells, ranges=[(0.0, 1.0)] * classes, samples=points, seed=seed
    )
    return centroids


class ArchiveSpec:
    """How outputs become archive rows, and the archive that holds them.

    Build one with :func:`make_archive_spec`. The spec is picklable and travels inside a
    run's checkpoint; :meth:`to_dict` describes it in ``config.json`` (without centroids,
    which the run folder saves as ``centroids.npy``).

    Args:
        kind: One of :data:`ARCHIVE_KINDS`.
        measure_names: Names of the outputs used as measures (the class names for
            ``categorical`` and ``per-class``).
        ranges: ``(low, high)`` of each measure axis.
        dims: Bins per axis for grid kinds; ``[K]`` for ``per-class``; ``None`` for CVT.
        objective: One of :data:`~evoemotion.objectives.OBJECTIVES`.
        output_names: Scalar outputs recorded with every elite.
        centroids: CVT centroids (``categorical`` only).
    """

    def __init__(
        self,
        *,
        kind: str,
        measure_names: Sequence[str],
        ranges: Sequence[tuple[float, float]],
        dims: Sequence[int] | None,
        objective: str,
        output_names: Sequence[str],
        centroids: np.ndarray | None = None,
    ) -> None:
        self.kind = kind
        self.measure_names = list(measure_names)
        self.ranges = [(float(lo), float(hi)) for lo, hi in ranges]
        self.dims = None if dims is None else [int(d) for d in dims]
        self.objective = objective
        self.output_names = list(output_names)
        self.centroids = centroids

    @property
    def cells(self) -> int:
        """Total number of archive cells."""
        if self.centroids is not None:
            return len(self.centroids)
        return int(np.prod(self.dims))

    @property
    def measure_columns(self) -> list[str]:
        """Column names of the measures in ``elites.csv``."""
        if self.kind == "per-class":
            return ["measure_class"]
        return [f"measure_{name}" for name in self.measure_names]

    @property
    def features(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Image features the objective needs (name -> function of uint8 images)."""
        return {n: f for n, f in IMAGE_FEATURES.items() if n == self.objective}

    def to_dict(self) -> dict[str, Any]:
        """Describe the spec as JSON-able data (centroids excluded).

        Returns:
            Dict with kind, measures, ranges, dims, cells, objective and output names.
        """
        return {
            "kind": self.kind,
            "measures": self.measure_names,
            "ranges": [list(r) for r in self.ranges],
            "dims": self.dims,
            "cells": self.cells,
            "objective": self.objective,
            "outputs": self.output_names,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], centroids: np.ndarray | None = None) -> ArchiveSpec:
        """Rebuild a spec from :meth:`to_dict` data (e.g. a run's ``config.json``).

        Args:
            data: The dict written by :meth:`to_dict`.
            centroids: The saved centroids of a ``categorical`` spec.

        Returns:
            The spec.

        Raises:
            ConfigError: A field is missing.
        """
        try:
            return cls(
                kind=data["kind"],
                measure_names=data["measures"],
                ranges=data["ranges"],
                dims=data["dims"],
                objective=data["objective"],
                output_names=data["outputs"],
                centroids=centroids,
            )
        except KeyError as err:
            raise ConfigError(f"archive description lacks the field {err}") from err

    def build_archive(
        self,
        *,
        solution_dim: int | tuple[()],
        seed: int | None = None,
        learning_rate: float | None = None,
        threshold_min: float = -np.inf,
    ) -> ArchiveBase:
        """Make an empty pyribs archive for this spec.

        The archive stores each elite's recorded outputs in an extra field ``outputs``.

        Args:
            solution_dim: Length of flat-vector solutions, or ``()`` for object genomes
                (the archive then stores them with ``solution_dtype=object``).
            seed: Seed of the archive's sampling generator.
            learning_rate: CMA-MAE's archive learning rate (soft cell thresholds); default
                none (a plain elitist archive).
            threshold_min: Initial cell threshold when ``learning_rate`` is given.

        Returns:
            A :class:`~ribs.archives.CVTArchive` (``categorical``) or
            :class:`~ribs.archives.GridArchive`.
        """
        from ribs.archives import CVTArchive, GridArchive

        common = {
            "solution_dim": solution_dim,
            "ranges": self.ranges,
            "seed": seed,
            "solution_dtype": object if solution_dim == () else np.float64,
            "extra_fields": {"outputs": ((len(self.output_names),), np.float64)},
        }
        if learning_rate is not None:
            common.update(learning_rate=learning_rate, threshold_min=threshold_min)
        if self.centroids is not None:
            return CVTArchive(centroids=self.centroids, **common)
        return GridArchive(dims=self.dims, **common)

    def rows(self, arrays: Mapping[str, Any]) -> tuple[Any, Any]:
        """Objective and measures of every archive row an image gives, numpy or torch alike.

        The one definition of how outputs become archive values: :meth:`objective_and_measures`
        applies it to numpy outputs, the differentiable path (:mod:`evoemotion.gradients`) to
        torch tensors, whose gradients then flow through it.

        Args:
            arrays: Output name -> ``(N,)`` array (``"probs"`` ``(N, K)``), all numpy arrays
                or all torch tensors.

        Returns:
            ``(objective (N, R), measures (N, R, measure_dim))`` of the same array type,
            with R = K rows per image for ``per-class`` (row k: objective ``p_k``, measure
            ``k + 1/2``) and R = 1 otherwise.

        Raises:
            ConfigError: The objective has no definition on torch tensors (``aesthetic``).
        """
        xp = _namespace(arrays)
        if self.kind == "per-class":
            objective = xp.stack([arrays[name] for name in self.measure_names], 1)
            # k + 1/2 in row k: a constant of the objective's type, dtype and device, off
            # the autograd graph (no backward pass is spent on its zero gradient)
            return objective, (xp.ones_like(objective).cumsum(1) - 0.5)[:, :, None]
        measures = xp.stack([arrays[name] for name in self.measure_names], 1)[:, None, :]
        if self.objective == "confidence":
            objective = confidence(arrays["probs"])
        elif self.objective == "none":
            objective = xp.ones_like(measures[:, 0, 0])
        elif xp is np:
            objective = np.asarray(arrays[self.objective], dtype=np.float64)
        else:
            raise ConfigError(
                f"objective {self.objective!r} has no gradient; gradient searches (dqd) "
                "need --objective confidence or none"
            )
        return objective[:, None], measures

    def objective_and_measures(self, out: Outputs) -> Placement:
        """Turn a batch of outputs into archive rows.

        Args:
            out: Outputs of N images (with ``"aesthetic"`` when that is the objective).

        Returns:
            The :class:`Placement`: one row per image, K rows per image for
            ``per-class``, none for rejected images.
        """
        n = len(out)
        names = [*self.measure_names, *(["probs"] if "probs" in out else [])]
        if self.objective in out:
            names.append(self.objective)
        objective, measures = self.rows({name: np.asarray(out[name], np.float64) for name in names})
        per_image = objective.shape[1]
        source = np.repeat(np.arange(n), per_image)
        objective = objective.reshape(-1)
        measures = measures.reshape(len(objective), measures.shape[2])
        recorded = out.table(self.output_names)[source]
        good = (
            np.isfinite(objective)
            & np.isfinite(measures).all(axis=1)
            & np.isfinite(recorded).all(axis=1)
        )
        rejected = np.zeros(n, dtype=bool)
        np.logical_or.at(rejected, source, ~good)
        keep = ~rejected[source]
        return Placement(
            objective=objective[keep],
            measures=measures[keep],
            outputs=recorded[keep],
            source=source[keep],
            rejected=rejected,
        )


def _namespace(arrays: Mapping[str, Any]) -> Any:
    """``numpy``, or ``torch`` when the arrays are torch tensors."""
    first = next(iter(arrays.values()))
    if isinstance(first, np.ndarray):
        return np
    import torch

    return torch


def _check_names(names: Sequence[str], available: Sequence[str], what: str) -> None:
    missing = [n for n in names if n not in available]
    if missing:
        raise ConfigError(
            f"{what}: the classifier has no output {', '.join(map(repr, missing))} "
            f"(it has {', '.join(available) or 'none'})"
        )


def make_archive_spec(
    kind: str,
    *,
    class_names: Sequence[str],
    regression_names: Sequence[str],
    scales: dict[str, tuple[float, float]],
    objective: str | None = None,
    measures: Sequence[str] | None = None,
    cells: int | None = None,
    extra_outputs: Sequence[str] = (),
    seed: int = 0,
) -> ArchiveSpec:
    """Build the archive spec of one of :data:`ARCHIVE_KINDS` for a classifier's outputs.

    Args:
        kind: Archive kind.
        class_names: The classifier's class names (``[]`` without a categorical head).
        regression_names: The classifier's regression outputs.
        scales: ``(low, high)`` of every output (class probabilities are 0..1).
        objective: One of :data:`~evoemotion.objectives.OBJECTIVES`; default
            ``confidence`` for ``categorical`` and ``per-class`` (where it means ``p_k``,
            the only objective allowed), ``aesthetic`` for the grids.
        measures: The two outputs of a ``measures`` archive.
        cells: CVT cells (``categorical``) or bins per axis (grids); see
            :data:`DEFAULT_CELLS`. Not allowed for ``per-class`` (one cell per class).
        extra_outputs: Further scalar outputs to record with each elite (e.g.
            ``"disagreement"`` of an ensemble).
        seed: Seed of the CVT centroids.

    Returns:
        The spec.

    Raises:
        ConfigError: Unknown kind or objective, an output the classifier lacks, or a bad
            number of cells.
    """
    if kind not in ARCHIVE_KINDS:
        raise ConfigError(f"archive must be one of {', '.join(ARCHIVE_KINDS)}, got {kind!r}")
    available = list(class_names) + list(regression_names)
    if measures is not None and kind != "measures":
        raise ConfigError(f"`measures` goes with `kind` measures, not {kind!r}")
    if kind in ("categorical", "per-class"):
        if len(class_names) < 2:
            raise ConfigError(f"archive {kind!r} needs a categorical classifier head")
        measure_names = list(class_names)
    elif kind == "measures":
        if measures is None or len(measures) != 2 or measures[0] == measures[1]:
            raise ConfigError(f"`measures` needs two different output names, got {measures}")
        measure_names = list(measures)
    else:
        measure_names = ["valence", "arousal", "dominance"][: len(kind)]
    _check_names(measure_names, available, f"archive {kind!r}")
    default_objective = "confidence" if kind in ("categorical", "per-class") else "aesthetic"
    objective = objective or default_objective
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if kind == "per-class" and objective != "confidence":
        raise ConfigError("the per-class archive's objective is p_k: use `objective` confidence")
    if objective == "confidence" and not class_names:
        raise ConfigError("objective 'confidence' needs a categorical classifier head")
    if kind == "per-class" and cells is not None:
        raise ConfigError("the per-class archive has one cell per class: drop `cells`")
    cells = DEFAULT_CELLS.get(kind) if cells is None else cells
    if cells is not None and cells < 2:
        raise ConfigError(f"`cells` must be at least 2, got {cells}")
    features = [objective] if objective in IMAGE_FEATURES else []
    output_names = available + list(extra_outputs) + features
    common = {"kind": kind, "objective": objective, "output_names": output_names}
    if kind == "categorical":
        centroids = simplex_centroids(len(class_names), cells, seed)
        ranges = [(0.0, 1.0)] * len(class_names)
        return ArchiveSpec(
            measure_names=measure_names, ranges=ranges, dims=None, centroids=centroids, **common
        )
    if kind == "per-class":
        k = len(class_names)
        return ArchiveSpec(measure_names=measure_names, ranges=[(0.0, k)], dims=[k], **common)
    ranges = [tuple(scales[name]) for name in measure_names]
    return ArchiveSpec(
        measure_names=measure_names, ranges=ranges, dims=[cells] * len(measure_names), **common
    )
