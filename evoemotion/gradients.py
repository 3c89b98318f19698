"""Objective and measure Jacobians with respect to flat CPPN genomes (the differentiable path).

For a batch of genome vectors, :func:`outputs_and_jacobian` renders them with the torch
renderer (:func:`~evoemotion.render.differentiable.render_torch`) at the run's render
size, scores the float images with the scorer's own differentiable forward pass
(:meth:`~evoemotion.scoring.Scorer.forward`: crops, the model's resize and normalisation,
the classifier, ensemble averaging, at the run's score size), turns the outputs into the
archive spec's objective and measures (:meth:`~evoemotion.archives.ArchiveSpec.rows`, the
same definition the numpy path uses) and differentiates them with reverse-mode autograd,
one backward pass per value (1 + measure_dim, less the constants: the cell measure of
``per-class``, the objective ``none``), each pass covering the whole batch (every image
depends on its own genome only). One backward pass per value is the fastest way on
the CPU: a single batched pass over all values (``is_grads_batched``) or a batch with
every genome repeated once per value cost more (``benchmarks/dqd_iteration.py``).

Without ``images`` the classifier sees the torch renders themselves, unrounded: the exact
derivative of a smooth function (what the finite-difference test checks). Given the
8-bit images the evaluation scores (:meth:`Evaluator.jacobian
<evoemotion.pipeline.Evaluator.jacobian>` passes them), the forward pass scores those
images, so its outputs are the evaluation's, and the gradient reaches the genome through
the torch render as if it had produced them (straight through the rounding, which moves
no pixel by more than half a level): the values a search stores and the gradients it
follows come from one forward pass, at the same point.
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


def outputs_and_jacobian(
    genotype: Genotype,
    scorer: Scorer,
    spec: ArchiveSpec,
    genomes: np.ndarray,
    *,
    render_size: int,
    rows: np.ndarray | None = None,
    images: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The scorer's outputs, the objective and measures, and their Jacobian, per genome.

    Args:
        genotype: A flat CPPN genotype.
        scorer: The run's scorer (its device, crops, models and score size are used).
        spec: The archive spec whose objective and measures are differentiated.
        genomes: ``(N, solution_dim)`` genome vectors.
        render_size: Side of the rendered images in pixels.
        rows: ``(N,)`` which of the image's archive rows to differentiate (the class index
            for ``per-class``, where row k's objective is ``p_k``); default row 0.
        images: ``(N, 3, render_size, render_size)`` float images on the scorer's device to
            score instead of the unrounded torch renders (the 8-bit renders of the same
            genomes), the gradient passing straight through to the torch render.
        dtype: Floating dtype of the genomes and images on the device (the models keep
            their own dtype).

    Returns:
        The scorer's outputs (name -> array, as :meth:`Scorer.forward
        <evoemotion.scoring.Scorer.forward>` gives them), ``values (N, 1 + measure_dim)``
        (objective, then the measures) and ``jacobian (N, 1 + measure_dim,
        solution_dim)`` as float64. A value without a path to the genome (a constant
        measure) has a zero gradient; non-finite entries are left as they are for the
        caller to reject.

    Raises:
        ConfigError: The genotype has no torch renderer, or the objective no gradient.
    """
    check_differentiable(genotype)
    n = len(genomes)
    x = torch.tensor(np.asarray(genomes), dtype=dtype, device=scorer.device, requires_grad=True)
    with torch.enable_grad():
        rendered = render_torch(genotype, x, render_size)
        if images is not None:
            rendered = images.to(rendered.dtype) + (rendered - rendered.detach())
        outputs = scorer.forward(rendered)
        objective, measures = spec.rows(outputs)
        picked = torch.zeros(n, dtype=torch.long) if rows is None else torch.as_tensor(rows)
        picked = picked.to(objective.device)
        batch = torch.arange(n, device=objective.device)
        columns = [objective[batch, picked], *measures[batch, picked].unbind(1)]
        values = torch.stack(columns, dim=1)
        jacobian = torch.zeros((n, len(columns), x.shape[1]), dtype=torch.float64)
        varying = [j for j, column in enumerate(columns) if column.requires_grad]
        for j in varying:  # a constant (off the graph) keeps its zero gradient, for free
            last = j == varying[-1]
            (grad,) = torch.autograd.grad(columns[j].sum(), x, retain_graph=not last)
            jacobian[:, j] = grad.detach().double().cpu()
    arrays = {name: value.detach().cpu().numpy() for name, value in outputs.items()}
    return arrays, values.detach().double().cpu().numpy(), jacobian.numpy()
