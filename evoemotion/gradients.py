"""Objective and measure Jacobians with respect to flat CPPN genomes (the differentiable path).

For a batch of genome vectors, :func:`value_and_jacobian` renders them with the torch
renderer (:func:`~evoemotion.render.differentiable.render_torch`) at the run's render
size, scores the float images with the scorer's own differentiable forward pass
(:meth:`~evoemotion.scoring.Scorer.forward`: crops, the model's resize and normalisation,
the classifier, ensemble averaging, at the run's score size), turns the outputs into the
archive spec's objective and measures (:meth:`~evoemotion.archives.ArchiveSpec.rows`, the
same definition the numpy path uses) and differentiates them with reverse-mode autograd,
one backward pass per value (1 + measure_dim), each pass covering the whole batch (every
image depends on its own genome only).

The images are not rounded to 8 bits here, so the values differ from the uint8 path's by
a rounding; searches take the values they store from :meth:`Evaluator.evaluate
<evoemotion.pipeline.Evaluator.evaluate>` and only the Jacobians from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from evoemotion.render.differentiable import check_differentiable, render_torch

if TYPE_CHECKING:
    from evoemotion.archives import ArchiveSpec
    from evoemotion.genotypes import Genotype
    from evoemotion.scoring import Scorer


def value_and_jacobian(
    genotype: Genotype,
    scorer: Scorer,
    spec: ArchiveSpec,
    genomes: np.ndarray,
    *,
    render_size: int,
    rows: np.ndarray | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Objective, measures and their Jacobian for each genome.

    Args:
        genotype: A flat CPPN genotype.
        scorer: The run's scorer (its device, crops, models and score size are used).
        spec: The archive spec whose objective and measures are differentiated.
        genomes: ``(N, solution_dim)`` genome vectors.
        render_size: Side of the rendered images in pixels.
        rows: ``(N,)`` which of the image's archive rows to differentiate (the class index
            for ``per-class``, where row k's objective is ``p_k``); default row 0.
        dtype: Floating dtype of the genomes and images on the device (the models keep
            their own dtype).

    Returns:
        ``values (N, 1 + measure_dim)`` (objective, then the measures) and ``jacobian
        (N, 1 + measure_dim, solution_dim)``, as float64 arrays. A value without a path to
        the genome (a constant measure) has a zero gradient; non-finite entries are left
        as they are for the caller to reject.

    Raises:
        ConfigError: The genotype has no torch renderer, or the objective no gradient.
    """
    check_differentiable(genotype)
    n = len(genomes)
    x = torch.tensor(np.asarray(genomes), dtype=dtype, device=scorer.device, requires_grad=True)
    with torch.enable_grad():
        images = render_torch(genotype, x, render_size)
        objective, measures = spec.rows(scorer.forward(images))
        picked = torch.zeros(n, dtype=torch.long) if rows is None else torch.as_tensor(rows)
        picked = picked.to(objective.device)
        batch = torch.arange(n, device=objective.device)
        values = torch.cat([objective[batch, picked][:, None], measures[batch, picked]], dim=1)
        jacobian = torch.zeros((n, values.shape[1], x.shape[1]), dtype=torch.float64)
        for j in range(values.shape[1]):
            last = j + 1 == values.shape[1]
            (grad,) = torch.autograd.grad(values[:, j].sum(), x, retain_graph=not last)
            jacobian[:, j] = grad.detach().double().cpu()
    return values.detach().double().cpu().numpy(), jacobian.numpy()
