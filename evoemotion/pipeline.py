"""Evaluation: genomes in, scoring outputs out; the one thing searches call.

:class:`Evaluator` renders genomes (Numba, on the CPU) and scores the images
(:class:`~evoemotion.scoring.Scorer`, on its device) chunk by chunk, rendering chunk t+1
in a background thread while chunk t is scored, so the slower of the two stages sets the
pace. Numba kernels and torch operators both release the GIL, so the overlap is real.

Flat CPPN genomes can instead be rendered by the torch renderer on the scorer's device
(``renderer="torch"``, the default on CUDA): the images are rounded to 8 bits there, as
the Numba kernel rounds, and go to the classifier without a trip through host memory.
:meth:`Evaluator.jacobian` evaluates genomes and differentiates the archive's objective and
measures through that renderer in the same pass (:mod:`evoemotion.gradients`), for
gradient searches (DQD).

Anything with a ``genotype`` attribute and an ``evaluate(genomes) -> Outputs`` method can
stand in for it (:class:`EvaluatorLike`), e.g. an evaluator that shards batches over Dask
workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from evoemotion.choices import RENDERERS
from evoemotion.errors import ConfigError
from evoemotion.render import render
from evoemotion.render.differentiable import to_uint8
from evoemotion.scoring import Outputs

if TYPE_CHECKING:
    from evoemotion.archives import ArchiveSpec
    from evoemotion.genotypes import Genotype
    from evoemotion.scoring import Scorer

#: A function of a uint8 image batch returning one number per image.
ImageFeature = Callable[[np.ndarray], np.ndarray]


def resolve_renderer(renderer: str, genotype: Genotype, device: Any) -> str:
    """Turn ``auto | numba | torch`` into the renderer an evaluator uses.

    Args:
        renderer: The requested renderer.
        genotype: The genotype to render.
        device: The scorer's torch device.

    Returns:
        ``"numba"`` or ``"torch"``.

    Raises:
        ConfigError: An unknown renderer, or ``torch`` for a genotype it cannot render.
    """
    from evoemotion.render.differentiable import DIFFERENTIABLE_KINDS, check_differentiable

    if renderer not in RENDERERS:
        raise ConfigError(f"renderer must be one of {', '.join(RENDERERS)}, got {renderer!r}")
    if renderer == "auto":
        on_gpu = getattr(device, "type", str(device)) == "cuda"
        return "torch" if on_gpu and genotype.kind in DIFFERENTIABLE_KINDS else "numba"
    if renderer == "torch":
        check_differentiable(genotype)
    return renderer


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
        renderer: ``numba`` (CPU kernels), ``torch`` (flat CPPNs only, on the scorer's
            device) or ``auto``: torch when the scorer is on CUDA and the genotype is a
            flat CPPN, else numba.

    Raises:
        ConfigError: A size is not positive, or a bad renderer.
    """

    def __init__(
        self,
        genotype: Genotype,
        scorer: Scorer,
        *,
        render_size: int = 64,
        chunk_size: int | None = None,
        features: Mapping[str, ImageFeature] | None = None,
        renderer: str = "auto",
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
        self.renderer = resolve_renderer(renderer, genotype, scorer.device)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evoemotion-render")

    def render(self, genomes: Any) -> np.ndarray:
        """Render genomes at :attr:`render_size`.

        Args:
            genomes: A sequence of genomes or an ``(n, solution_dim)`` array.

        Returns:
            ``(n, render_size, render_size, 3)`` uint8 images.
        """
        if self.renderer == "torch":
            return to_uint8(self._render_tensor(genomes))
        return render(self.genotype, as_genome_list(genomes), self.render_size)

    def _render_tensor(self, genomes: Any) -> Any:
        """Torch-rendered images on the scorer's device, rounded to 8-bit levels (float)."""
        import torch

        from evoemotion.render.differentiable import render_torch

        vectors = torch.as_tensor(self.genotype.as_matrix(as_genome_list(genomes)))
        images = render_torch(
            self.genotype, vectors, self.render_size, dtype=torch.float32, device=self.scorer.device
        )
        return torch.floor(images * 255.0 + 0.5) / 255.0

    def _render_chunk(self, genomes: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        images = self.render(genomes)
        return images, {name: f(images) for name, f in self.features.items()}

    def _evaluate_on_device(self, genomes: Any, keep_images: bool) -> Outputs:
        """Render with torch and score without leaving the device, chunk by chunk."""
        parts = []
        for start in range(0, max(len(genomes), 1), self.chunk_size):
            images = self._render_tensor(genomes[start : start + self.chunk_size])
            scored = self.scorer.score_tensor(images)
            host = to_uint8(images) if keep_images or self.features else None
            features = {name: f(host) for name, f in self.features.items()}
            scored = scored.with_arrays(**features)
            scored.images = host if keep_images else None
            parts.append(scored)
        return Outputs.concatenate(parts)

    def jacobian(
        self, genomes: Any, spec: ArchiveSpec, rows: np.ndarray | None = None
    ) -> tuple[Outputs, np.ndarray]:
        """Evaluate genomes and differentiate the archive's objective and measures, in one pass.

        Each chunk is rendered as :meth:`evaluate` renders it (8-bit images) and scored
        once, with gradients: the outputs are :meth:`evaluate`'s, and the Jacobian reaches
        the genome through the torch renderer, straight through the 8-bit rounding (see
        :func:`evoemotion.gradients.outputs_and_jacobian`; the render and score sizes,
        crops, models and device are this evaluator's).

        Args:
            genomes: ``(N, solution_dim)`` flat CPPN genome vectors.
            spec: The archive spec.
            rows: ``(N,)`` archive row of each image to differentiate (default 0).

        Returns:
            The :class:`~evoemotion.scoring.Outputs` :meth:`evaluate` returns for these
            genomes, and ``jacobian (N, 1 + measure_dim, solution_dim)``.

        Raises:
            ConfigError: The genotype or the objective has no gradient.
        """
        from evoemotion.gradients import outputs_and_jacobian

        genomes = self.genotype.as_matrix(as_genome_list(genomes))
        rows = np.zeros(len(genomes), np.int64) if rows is None else np.asarray(rows)
        parts, jacobians = [], []
        for s in range(0, max(len(genomes), 1), self.chunk_size):
            chunk = genomes[s : s + self.chunk_size]
            if self.renderer == "torch":
                images = self._render_tensor(chunk)
                host = to_uint8(images) if self.features else None
            else:
                host = self.render(chunk)
                images = self.scorer.float_images(host)
            arrays, _, jacobian = outputs_and_jacobian(
                self.genotype,
                self.scorer,
                spec,
                chunk,
                render_size=self.render_size,
                rows=rows[s : s + self.chunk_size],
                images=images,
            )
            features = {name: f(host) for name, f in self.features.items()}
            parts.append(Outputs(arrays).with_arrays(**features))
            jacobians.append(jacobian)
        return Outputs.concatenate(parts), np.concatenate(jacobians)

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
        if self.renderer == "torch":
            return self._evaluate_on_device(genomes, keep_images)
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
