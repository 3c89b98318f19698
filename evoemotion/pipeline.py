"""Evaluation: genomes in, scoring outputs out; the one thing searches call.

:class:`Evaluator` renders genomes (Numba, on the CPU) and scores the images
(:class:`~evoemotion.scoring.Scorer`, on its device) chunk by chunk, rendering chunk t+1
in a background thread while chunk t is scored, so the slower of the two stages sets the
pace. Numba kernels and torch operators both release the GIL, so the overlap is real.

Anything with a ``genotype`` attribute and an ``evaluate(genomes) -> Outputs`` method can
stand in for it (:class:`EvaluatorLike`), e.g. an evaluator that shards batches over Dask
workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from evoemotion.errors import ConfigError
from evoemotion.render import render
from evoemotion.scoring import Outputs

if TYPE_CHECKING:
    from evoemotion.genotypes import Genotype
    from evoemotion.scoring import Scorer

#: A function of a uint8 image batch returning one number per image.
ImageFeature = Callable[[np.ndarray], np.ndarray]


class EvaluatorLike(Protocol):
    """What a search needs from an evaluator."""

    genotype: Genotype

    def evaluate(self, genomes: Any, *, keep_images: bool = False) -> Outputs:
        """Render and score ``genomes``; see :meth:`Evaluator.evaluate`."""


def as_genome_list(genomes: Any) -> list[Any] | np.ndarray:
    """Return ``genomes`` in a form :func:`~evoemotion.render.render` accepts.

    A 2-D float array (flat-vector genomes) is kept; a 1-D object array or any other
    sequence becomes a list.

    Args:
        genomes: A sequence of genomes or an ``(n, solution_dim)`` array.

    Returns:
        The genomes as a 2-D array or a list.
    """
    if isinstance(genomes, np.ndarray) and genomes.dtype != object:
        return genomes
    return list(genomes)


class Evaluator:
    """Renders and scores genomes with rendering and scoring overlapped.

    Args:
        genotype: The :class:`~evoemotion.genotypes.Genotype` the genomes belong to.
        scorer: The scorer (models, device, crops).
        render_size: Side in pixels of the rendered images (the scorer resizes them).
        chunk_size: Genomes per render/score chunk; default the scorer's batch size.
        features: Image features to compute from each rendered chunk (name -> function),
            e.g. ``{"aesthetic": aesthetic}``; added to the outputs under their names.

    Raises:
        ConfigError: A size is not positive.
    """

    def __init__(
        self,
        genotype: Genotype,
        scorer: Scorer,
        *,
        render_size: int = 64,
        chunk_size: int | None = None,
        features: Mapping[str, ImageFeature] | None = None,
    ) -> None:
        if render_size < 2:
            raise ConfigError(f"render size must be at least 2 px, got {render_size}")
        chunk_size = scorer.batch_size if chunk_size is None else chunk_size
        if chunk_size < 1:
            raise ConfigError(f"chunk size must be at least 1, got {chunk_size}")
        self.genotype = genotype
        self.scorer = scorer
        self.render_size = render_size
        self.chunk_size = chunk_size
        self.features = dict(features or {})
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evoemotion-render")

    def render(self, genomes: Any) -> np.ndarray:
        """Render genomes at :attr:`render_size`.

        Args:
            genomes: A sequence of genomes or an ``(n, solution_dim)`` array.

        Returns:
            ``(n, render_size, render_size, 3)`` uint8 images.
        """
        return render(self.genotype, as_genome_list(genomes), self.render_size)

    def _render_chunk(self, genomes: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        images = self.render(genomes)
        return images, {name: f(images) for name, f in self.features.items()}

    def evaluate(self, genomes: Any, *, keep_images: bool = False) -> Outputs:
        """Render and score genomes.

        Args:
            genomes: A sequence of genomes or an ``(n, solution_dim)`` array.
            keep_images: Attach the rendered images to the outputs (``out.images``).

        Returns:
            :class:`~evoemotion.scoring.Outputs` of the scorer plus the image features,
            in the order of ``genomes``.
        """
        genomes = as_genome_list(genomes)
        chunks: Sequence[Any] = [
            genomes[i : i + self.chunk_size] for i in range(0, len(genomes), self.chunk_size)
        ] or [genomes]
        pending: Future = self._pool.submit(self._render_chunk, chunks[0])
        parts = []
        for index in range(len(chunks)):
            images, features = pending.result()
            if index + 1 < len(chunks):
                pending = self._pool.submit(self._render_chunk, chunks[index + 1])
            scored = self.scorer.score(images).with_arrays(**features)
            scored.images = images if keep_images else None
            parts.append(scored)
        return Outputs.concatenate(parts)

    def close(self) -> None:
        """Stop the background render thread."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
