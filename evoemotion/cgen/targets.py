"""Target spaces: what a generator's condition means and which target values are valid.

A conditional generator is trained for one *target kind* of one classifier:

* ``va`` / ``vad`` — a point in valence-arousal(-dominance) space, on the classifier's own
  regression scale (e.g. 1-9); the network sees it rescaled to [-1, 1].
* ``categorical`` — one of the classifier's emotion classes; the network sees a one-hot
  vector.

:class:`TargetSpace` validates user targets (raising :class:`~evoemotion.errors.ConfigError`
that names the value at fault), encodes them for the network, samples random targets for
training and lays out regular grids of targets for sampling and evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from evoemotion.errors import ConfigError

#: Target kinds a generator can be trained for.
KINDS = ("va", "vad", "categorical")

_REGRESSION_NAMES = {"va": ("valence", "arousal"), "vad": ("valence", "arousal", "dominance")}


@dataclass(frozen=True)
class TargetSpace:
    """The condition space of a generator.

    Args:
        kind: ``"va"``, ``"vad"`` or ``"categorical"``.
        names: Regression output names (``va``/``vad``) or class names (``categorical``).
        scales: ``(low, high)`` per name — the classifier's scale for regression outputs,
            ``(0, 1)`` (a probability) per class.
    """

    kind: str
    names: tuple[str, ...]
    scales: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"target kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.names or len(self.names) != len(self.scales):
            raise ConfigError(
                f"target space {self.kind!r} needs one scale per name, got names "
                f"{list(self.names)} and scales {list(self.scales)}"
            )
        for name, (low, high) in zip(self.names, self.scales, strict=True):
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise ConfigError(
                    f"scale of {name!r} must be finite with low < high, got ({low}, {high})"
                )

    @classmethod
    def from_model(cls, model: Any, kind: str) -> TargetSpace:
        """Build the target space of ``kind`` from a classifier's heads and scales.

        Args:
            model: An :class:`~evoemotion.emotion.EmotionModel` (uses ``class_names``,
                ``regression_names`` and ``scales``).
            kind: ``"va"``, ``"vad"`` or ``"categorical"``.

        Returns:
            The target space.

        Raises:
            ConfigError: ``kind`` is unknown or the classifier has no matching head.
        """
        if kind not in KINDS:
            raise ConfigError(f"`kind` {kind!r} is not one of {', '.join(KINDS)}")
        if kind == "categorical":
            names = tuple(model.class_names)
            if not names:
                raise ConfigError(
                    "`kind` categorical needs a classifier with a categorical "
                    "head; this one has none"
                )
            return cls(kind, names, ((0.0, 1.0),) * len(names))
        names = _REGRESSION_NAMES[kind]
        missing = [name for name in names if name not in model.regression_names]
        if missing:
            raise ConfigError(
                f"`kind` {kind} needs the classifier outputs {', '.join(names)}; it lacks "
                f"{', '.join(missing)} (it has {', '.join(model.regression_names) or 'none'})"
            )
        scales = tuple((float(model.scales[n][0]), float(model.scales[n][1])) for n in names)
        return cls(kind, names, scales)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpace:
        """Inverse of :meth:`to_dict`."""
        return cls(
            str(data["kind"]),
            tuple(str(n) for n in data["names"]),
            tuple((float(lo), float(hi)) for lo, hi in data["scales"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (stored in generator checkpoints)."""
        return {
            "kind": self.kind,
            "names": list(self.names),
            "scales": [list(scale) for scale in self.scales],
        }

    @property
    def categorical(self) -> bool:
        """Whether targets are emotion classes rather than points on regression scales."""
        return self.kind == "categorical"

    @property
    def condition_dim(self) -> int:
        """Width of the encoded condition the network sees."""
        return len(self.names)

    def check(self, targets: Any) -> np.ndarray:
        """Validate targets and return them in canonical form.

        Args:
            targets: Regression: one point (``[v, a]``) or an ``(n, dims)`` array on the
                classifier's scale. Categorical: a class name or index, or a sequence of them.

        Returns:
            ``(n, dims)`` float64 array (regression) or ``(n,)`` int64 class indices.

        Raises:
            ConfigError: wrong number of values, a non-finite value, a value outside the
                classifier's scale, or an unknown class.
        """
        if self.categorical:
            return self._check_classes(targets)
        try:
            values = np.asarray(targets, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"target {targets!r} is not a list of numbers ({err})") from None
        if values.ndim <= 1:
            values = values.reshape(1, -1)
        if values.ndim != 2 or values.shape[1] != len(self.names):
            raise ConfigError(
                f"a {self.kind} target has {len(self.names)} values ({', '.join(self.names)}); "
                f"got shape {tuple(np.shape(targets))}"
            )
        for column, name, (low, high) in zip(values.T, self.names, self.scales, strict=True):
            bad = column[~np.isfinite(column) | (column < low) | (column > high)]
            if bad.size:
                raise ConfigError(
                    f"{name} target {bad[0]:g} is outside the classifier's "
                    f"{name} scale {low:g}..{high:g}"
                )
        return values

    def _check_classes(self, targets: Any) -> np.ndarray:
        items = [targets] if isinstance(targets, (str, int, np.integer)) else list(targets)
        indices = []
        for item in items:
            if isinstance(item, str):
                if item not in self.names:
                    raise ConfigError(
                        f"emotion {item!r} is not one of the classifier's classes "
                        f"({', '.join(self.names)})"
                    )
                indices.append(self.names.index(item))
            elif isinstance(item, (int, np.integer)) and 0 <= int(item) < len(self.names):
                indices.append(int(item))
            else:
                raise ConfigError(
                    f"categorical target {item!r} is neither a class name nor an "
                    f"index in 0..{len(self.names) - 1}"
                )
        return np.asarray(indices, dtype=np.int64)

    def parse(self, text: str) -> np.ndarray:
        """Parse one target written on the command line (``"6.5,3"`` or ``"joy"``).

        Args:
            text: Comma-separated numbers (regression) or a class name or index.

        Returns:
            The target in :meth:`check`'s canonical form (one row).

        Raises:
            ConfigError: the text does not describe a valid target.
        """
        if self.categorical:
            return self.check(int(text) if text.strip().isdigit() else text.strip())
        try:
            values = [float(part) for part in text.split(",")]
        except ValueError:
            raise ConfigError(
                f"`target` {text!r} must be {len(self.names)} comma-separated "
                f"numbers ({','.join(self.names)})"
            ) from None
        return self.check(values)

    def as_tensor(self, targets: Any, device: torch.device | str = "cpu") -> torch.Tensor:
        """Validate targets and return them as a tensor on ``device`` (float or long)."""
        values = self.check(targets)
        return torch.as_tensor(
            values, dtype=torch.long if self.categorical else torch.float32, device=device
        )

    def encode(self, targets: torch.Tensor) -> torch.Tensor:
        """Turn canonical targets into the network's condition vectors.

        Args:
            targets: ``(n, dims)`` float on the classifier's scale, or ``(n,)`` class indices.

        Returns:
            ``(n, condition_dim)`` float: regression targets rescaled to [-1, 1], classes as
            one-hot vectors.
        """
        if self.categorical:
            return torch.nn.functional.one_hot(targets.long(), len(self.names)).float()
        low, high = self._bounds(targets)
        return 2.0 * (targets - low) / (high - low) - 1.0

    def normalise(self, values: torch.Tensor) -> torch.Tensor:
        """Map regression values on the classifier's scale to [0, 1] per dimension."""
        low, high = self._bounds(values)
        return (values - low) / (high - low)

    def _bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scales = torch.tensor(self.scales, dtype=like.dtype, device=like.device)
        return scales[:, 0], scales[:, 1]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` targets uniformly over the space (CPU tensor, canonical form).

        Args:
            n: How many targets.
            generator: The torch random generator to draw from.

        Returns:
            ``(n, dims)`` float32 (regression) or ``(n,)`` int64 (categorical).
        """
        if self.categorical:
            return torch.randint(len(self.names), (n,), generator=generator)
        return self.from_unit(torch.rand((n, len(self.names)), generator=generator))

    def from_unit(self, unit: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalise`: [0, 1] per dimension to the classifier's scale."""
        low, high = self._bounds(unit)
        return low + unit * (high - low)

    def grid(
        self, cells: int | Sequence[int], ranges: Sequence[tuple[float, float]] | None = None
    ) -> np.ndarray:
        """A regular grid of targets at cell centres (regression) or every class.

        Args:
            cells: Cells per dimension (one int for all, or one per dimension); ignored for
                categorical spaces.
            ranges: ``(low, high)`` per dimension that the cells divide; default the
                classifier's scales (an archive spec passes its own ranges).

        Returns:
            ``(n_cells, dims)`` float64 cell centres, first dimension varying slowest, or the
            ``(n_classes,)`` class indices.

        Raises:
            ConfigError: a cell count is not a positive integer, or there are too few or too
                many counts for the dimensions.
        """
        if self.categorical:
            return np.arange(len(self.names), dtype=np.int64)
        counts = [int(cells)] * len(self.names) if np.isscalar(cells) else [int(c) for c in cells]
        if len(counts) != len(self.names) or min(counts) < 1:
            raise ConfigError(
                f"`cells` needs {len(self.names)} positive counts for a "
                f"{self.kind} grid, got {cells}"
            )
        axes = [
            low + (np.arange(count) + 0.5) * (high - low) / count
            for count, (low, high) in zip(counts, ranges or self.scales, strict=True)
        ]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([axis.ravel() for axis in mesh], axis=1)
