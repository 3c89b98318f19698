"""Where to aim while training: targets the classifier can reach and the generator has not.

A classifier rates abstract images in a narrow band of its target space (on CPPN images the
bundled model's valence and arousal stay far from the scale's ends), so uniformly drawn
targets spend most of training pulling towards places no image reaches. The
:class:`TargetSampler` keeps a map of the target space in cells and learns it from the
predictions every training step makes anyway:

* ``seen`` — cells some training image has landed in: evidence that they are reachable;
* ``hit`` — per cell, a running average of how often an image *aimed* at that cell lands
  in it (``categorical``: of the target-class probability).

Targets are drawn from the seen cells and their neighbours, weighted towards those not yet
hit. As the generator's images move, the seen region grows, so training starts where
untrained images land (the centre of the classifier's range) and moves outwards: a
curriculum with no schedule to tune. A small share of targets is still drawn uniformly
over the whole space (``explore``), so the condition stays meaningful everywhere.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from evoemotion.cgen.targets import TargetSpace

#: Weight of a cell that is always hit, relative to one never hit (so reached cells are
#: still revisited and not forgotten).
REACHED_WEIGHT = 0.2

#: Running-average factor of the per-cell hit rates (weight of the old value).
HIT_DECAY = 0.5


class TargetSampler:
    """Draws training targets: reachable, not-yet-reached cells first.

    Args:
        space: The generator's target space.
        bins: Cells per dimension of the map (regression spaces; ignored for categorical,
            which has one cell per class).
        explore: Share of targets drawn uniformly over the whole space (1: always uniform,
            the map is ignored).
    """

    def __init__(self, space: TargetSpace, *, bins: int, explore: float) -> None:
        self.space = space
        self.explore = float(explore)
        self.bins = 1 if space.categorical else int(bins)
        dims = 1 if space.categorical else len(space.names)
        self.shape = (len(space.names),) if space.categorical else (self.bins,) * dims
        cells = len(space.names) if space.categorical else self.bins**dims
        self.seen = torch.full((cells,), space.categorical, dtype=torch.bool)
        self.hit = torch.zeros(cells, dtype=torch.float64)

    def cell_of(self, values: torch.Tensor) -> torch.Tensor:
        """Flat map cell of targets or predictions (values beyond the scale: edge cells).

        Args:
            values: ``(n, dims)`` on the classifier's scale, or ``(n,)`` class indices.

        Returns:
            ``(n,)`` int64 cell indices.
        """
        if self.space.categorical:
            return values.long().cpu()
        unit = self.space.normalise(values.detach().double().cpu())
        index = (unit * self.bins).floor().clamp(0, self.bins - 1).long()
        flat = torch.zeros(len(index), dtype=torch.long)
        for dim in range(index.shape[1]):
            flat = flat * self.bins + index[:, dim]
        return flat

    def candidates(self) -> torch.Tensor:
        """``(cells,)`` bool: seen cells and their neighbours (all classes if categorical)."""
        if self.space.categorical:
            return self.seen.clone()
        grid = self.seen.double().reshape(1, 1, *self.shape)
        pool = F.max_pool2d if len(self.shape) == 2 else F.max_pool3d
        return pool(grid, kernel_size=3, stride=1, padding=1).reshape(-1) > 0

    def weights(self) -> torch.Tensor:
        """``(cells,)`` sampling weights of the map cells (zeros before anything is seen)."""
        return self.candidates().double() * (1.0 - (1.0 - REACHED_WEIGHT) * self.hit)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` targets (CPU tensor, canonical form, as :meth:`TargetSpace.sample`).

        Args:
            n: How many targets.
            generator: The torch random generator to draw from.

        Returns:
            ``(n, dims)`` float32 (regression) or ``(n,)`` int64 (categorical).
        """
        uniform = self.space.sample(n, generator)
        weights = self.weights()
        if self.explore >= 1 or not weights.any():
            return uniform
        aimed = torch.rand(n, generator=generator) >= self.explore
        cells = torch.multinomial(weights, n, replacement=True, generator=generator)
        if self.space.categorical:
            return torch.where(aimed, cells, uniform)
        index = torch.stack(
            [(cells // self.bins**p) % self.bins for p in reversed(range(len(self.shape)))],
            dim=1,
        )
        unit = (index + torch.rand(index.shape, generator=generator)) / self.bins
        inside = self.space.from_unit(unit).float()
        return torch.where(aimed[:, None], inside, uniform)

    def update(self, targets: torch.Tensor, predictions: torch.Tensor) -> None:
        """Record where a batch aimed and what the classifier made of it.

        Args:
            targets: The batch's canonical targets.
            predictions: ``(n, dims)`` predicted values (regression) or ``(n, K)`` class
                probabilities (categorical).
        """
        aimed = self.cell_of(targets)
        if self.space.categorical:
            scores = predictions.detach().double().cpu().gather(1, aimed[:, None])[:, 0]
        else:
            landed = self.cell_of(predictions)
            self.seen[landed] = True
            scores = (landed == aimed).double()
        counts = torch.bincount(aimed, minlength=len(self.hit)).double()
        sums = torch.bincount(aimed, weights=scores, minlength=len(self.hit))
        visited = counts > 0
        self.hit[visited] = (
            HIT_DECAY * self.hit[visited] + (1 - HIT_DECAY) * sums[visited] / counts[visited]
        )

    def reached(self) -> float:
        """Share of candidate cells whose running hit rate is at least one half."""
        candidates = self.candidates()
        return float((self.hit[candidates] >= 0.5).double().mean()) if candidates.any() else 0.0

    def state_dict(self) -> dict[str, Any]:
        """The map (for checkpoints)."""
        return {"seen": self.seen.clone(), "hit": self.hit.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            ValueError: the stored map has another number of cells.
        """
        if state["seen"].shape != self.seen.shape or state["hit"].shape != self.hit.shape:
            raise ValueError(
                f"the stored target map has {state['hit'].numel()} cells, not {self.hit.numel()}"
            )
        self.seen = state["seen"].clone().bool()
        self.hit = state["hit"].clone().double()
