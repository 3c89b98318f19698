"""Batched scoring of uint8 images by one or several emotion models.

:class:`Scorer` moves image batches to the device, resizes and normalises them there
(:meth:`EmotionModel.preprocess`), and runs the models under ``torch.inference_mode``, with
bfloat16 autocast and channels-last memory on CUDA. Two anti-fooling options average the
outputs: ``crops`` deterministic crops/flips of every image (Nguyen et al. averaged ten
crops), and an ensemble of several models (mean output, plus how much they disagree).

:class:`Outputs` is what scoring returns: named per-image arrays (class probabilities by
class name, ``"probs"``, ``"valence"`` ..., ``"embedding"``, ``"disagreement"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from evoemotion.emotion.model import resolve_device
from evoemotion.errors import ConfigError

if TYPE_CHECKING:
    from evoemotion.emotion import EmotionModel

#: Fraction of the image side kept by the corner and centre crops (224 of 256).
CROP_SCALE = 0.875

#: The deterministic views averaged by ``crops=N``: the first N of these (anchor, flip).
#: Anchors: "full" image, "centre" crop, or corner crops "tl", "tr", "bl", "br".
CROP_VIEWS = (
    ("full", False),
    ("full", True),
    ("centre", False),
    ("tl", False),
    ("br", False),
    ("tr", False),
    ("bl", False),
    ("centre", True),
    ("tl", True),
    ("br", True),
)

#: Accepted ``precision`` values of :class:`Scorer`.
PRECISIONS = ("auto", "fp32", "bf16")


def _as_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` images as float32 ``(N, 3, H, W)`` levels / 255."""
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


class Outputs:
    """Named per-image arrays: what scoring (and evaluation) says about a batch.

    Every array has the batch as its first axis. Scalar outputs (one value per image,
    e.g. a class probability or ``"valence"``) are 1-D; ``"probs"`` and ``"embedding"``
    are 2-D.

    Args:
        arrays: Name -> array, all of the same length.
        images: Optional ``(N, H, W, 3)`` uint8 images the outputs belong to.

    Raises:
        ValueError: The arrays (or images) differ in length.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], images: np.ndarray | None = None):
        self._arrays = {name: np.asarray(value) for name, value in arrays.items()}
        lengths = {name: len(value) for name, value in self._arrays.items()}
        if images is not None:
            lengths["images"] = len(images)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"outputs must all have the same length, got {lengths}")
        self._length = next(iter(lengths.values()), 0)
        self.images = images

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise KeyError(
                f"no output named {name!r}; available: {', '.join(self._arrays)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    @property
    def names(self) -> list[str]:
        """Names of all arrays, in insertion order."""
        return list(self._arrays)

    @property
    def scalar_names(self) -> list[str]:
        """Names of the 1-D arrays (one number per image)."""
        return [name for name, value in self._arrays.items() if value.ndim == 1]

    def table(self, names: Sequence[str]) -> np.ndarray:
        """Stack scalar outputs into columns.

        Args:
            names: Names of 1-D outputs.

        Returns:
            ``(N, len(names))`` float64 array.
        """
        columns = [np.asarray(self[name], dtype=np.float64) for name in names]
        return np.stack(columns, axis=1) if columns else np.empty((len(self), 0))

    def take(self, indices: np.ndarray | Sequence[int]) -> Outputs:
        """Return the outputs of the images at ``indices`` (a bool mask works too).

        Args:
            indices: Integer indices or a boolean mask over the batch.

        Returns:
            A new :class:`Outputs`.
        """
        images = None if self.images is None else self.images[indices]
        return Outputs({name: value[indices] for name, value in self._arrays.items()}, images)

    def with_arrays(self, **arrays: np.ndarray) -> Outputs:
        """Return a copy with extra (or replaced) arrays.

        Args:
            **arrays: Name -> array of the same length.

        Returns:
            A new :class:`Outputs`.
        """
        return Outputs({**self._arrays, **arrays}, self.images)

    @staticmethod
    def concatenate(parts: Iterable[Outputs]) -> Outputs:
        """Join batches with the same names, in order.

        Args:
            parts: Outputs to join (at least one).

        Returns:
            A new :class:`Outputs` holding all images of ``parts``.

        Raises:
            ValueError: ``parts`` is empty or the parts have different names.
        """
        parts = list(parts)
        if not parts:
            raise ValueError("concatenate needs at least one Outputs")
        names = parts[0].names
        if any(p.names != names for p in parts):
            raise ValueError("cannot concatenate outputs with different names")
        keep = all(p.images is not None for p in parts)
        return Outputs(
            {name: np.concatenate([p[name] for p in parts]) for name in names},
            np.concatenate([p.images for p in parts]) if keep else None,
        )


def crop_box(view: str, height: int, width: int) -> tuple[int, int, int, int]:
    """Return ``(top, left, crop_height, crop_width)`` of a named view.

    Args:
        view: ``"full"``, ``"centre"``, ``"tl"``, ``"tr"``, ``"bl"`` or ``"br"``.
        height: Image height in pixels.
        width: Image width in pixels.

    Returns:
        The box in pixels.
    """
    if view == "full":
        return 0, 0, height, width
    ch, cw = max(1, round(height * CROP_SCALE)), max(1, round(width * CROP_SCALE))
    if view == "centre":
        return (height - ch) // 2, (width - cw) // 2, ch, cw
    top = 0 if view[0] == "t" else height - ch
    left = 0 if view[1] == "l" else width - cw
    return top, left, ch, cw


class Scorer:
    """Scores uint8 image batches with one model or an ensemble.

    The models are moved to ``device`` (in place) and must agree on their class names
    and regression outputs. Each model sees every image at its own input size unless
    ``size`` is given.

    Output names: every class name (its probability) and ``"probs"`` ``(N, K)`` when the
    models are categorical; every regression name (``"valence"`` ...) on the models'
    scale; ``"embedding"`` (the crop-averaged penultimate features; for an ensemble the
    models' embeddings side by side); and, for an ensemble, ``"disagreement"``: the
    standard deviation across models of each scalar output, with regression outputs
    rescaled to 0..1 by their scales, averaged over the outputs.

    Args:
        models: One or more :class:`~evoemotion.emotion.EmotionModel`.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:i``.
        crops: Number of deterministic views averaged per image, 1..10 (see
            :data:`CROP_VIEWS`): the full image, its mirror, then centre and corner crops.
        batch_size: Images per forward pass.
        size: Side in pixels the images are resized to; default each model's own.
        precision: ``fp32``, ``bf16`` (autocast), or ``auto``: bf16 on CUDA, fp32 on CPU.

    Raises:
        ConfigError: No model, models that disagree on their outputs, or a bad option.
    """

    def __init__(
        self,
        models: Sequence[EmotionModel],
        *,
        device: str | torch.device = "auto",
        crops: int = 1,
        batch_size: int = 64,
        size: int | None = None,
        precision: str = "auto",
    ) -> None:
        models = list(models)
        if not models:
            raise ConfigError("a scorer needs at least one classifier")
        first = models[0]
        for model in models[1:]:
            if (model.class_names, model.regression_names) != (
                first.class_names,
                first.regression_names,
            ):
                raise ConfigError(
                    "ensemble classifiers must have the same outputs: "
                    f"{first.output_names} vs {model.output_names}"
                )
        if not 1 <= crops <= len(CROP_VIEWS):
            raise ConfigError(f"crops must be between 1 and {len(CROP_VIEWS)}, got {crops}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if size is not None and size < 8:
            raise ConfigError(f"scoring size must be at least 8 px, got {size}")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = resolve_device(device)
        self.crops = crops
        self.batch_size = batch_size
        self.size = size
        self.bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self._channels_last = self.device.type == "cuda"
        self.models = [m.to(self.device).eval() for m in models]
        if self._channels_last:
            self.models = [m.to(memory_format=torch.channels_last) for m in self.models]

    @property
    def class_names(self) -> list[str]:
        """Class names of the categorical outputs (``[]`` without)."""
        return list(self.models[0].class_names)

    @property
    def regression_names(self) -> list[str]:
        """Names of the regression outputs."""
        return list(self.models[0].regression_names)

    @property
    def output_names(self) -> list[str]:
        """Class names followed by regression names."""
        return self.class_names + self.regression_names

    @property
    def scales(self) -> dict[str, tuple[float, float]]:
        """``(low, high)`` of every named output."""
        return dict(self.models[0].scales)

    @property
    def identities(self) -> list[str]:
        """Identity hashes of the models, in order."""
        return [m.identity for m in self.models]

    def score(self, images: np.ndarray) -> Outputs:
        """Score a batch of images.

        Args:
            images: ``(N, H, W, 3)`` uint8 array.

        Returns:
            :class:`Outputs` with the names described in the class docstring.

        Raises:
            ConfigError: ``images`` is not a uint8 ``(N, H, W, 3)`` array.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ConfigError(
                f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}"
            )
        return self._score_chunks(images, self._to_device)

    def score_tensor(self, images: torch.Tensor) -> Outputs:
        """Score float images that are already tensors (e.g. rendered on the device).

        Args:
            images: ``(N, 3, H, W)`` float tensor in [0, 1]; moved to the device if needed.

        Returns:
            :class:`Outputs`, as :meth:`score` returns.

        Raises:
            ConfigError: ``images`` is not a float ``(N, 3, H, W)`` tensor.
        """
        if not images.is_floating_point() or images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(
                f"image tensors must be float (N, 3, H, W), got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        return self._score_chunks(images, lambda chunk: chunk.to(self.device))

    def _score_chunks(self, images: Any, to_device: Callable[[Any], torch.Tensor]) -> Outputs:
        starts = range(0, len(images), self.batch_size) if len(images) else [0]
        chunks = []
        for s in starts:
            with torch.inference_mode():
                batch = to_device(images[s : s + self.batch_size])
                if batch.dtype == torch.uint8:
                    batch = _as_float(batch)
                chunks.append({k: v.cpu().numpy() for k, v in self.forward(batch).items()})
        return Outputs({name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]})

    def float_images(self, images: np.ndarray) -> torch.Tensor:
        """The float tensor :meth:`score` makes of uint8 images, on the device.

        Args:
            images: ``(N, H, W, 3)`` uint8 array.

        Returns:
            ``(N, 3, H, W)`` float32 tensor in [0, 1] (levels / 255).
        """
        return _as_float(self._to_device(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of a float image batch on the device, as tensors (see the class docstring).

        Differentiable with respect to ``images`` (outside ``torch.inference_mode``): the
        gradient path of :mod:`evoemotion.gradients` and :meth:`score` share it.

        Args:
            images: ``(N, 3, H, W)`` float tensor in [0, 1] on :attr:`device`.

        Returns:
            Output name -> tensor, in at least float64 precision.
        """
        per_model = [self._run_model(m, images) for m in self.models]
        out: dict[str, torch.Tensor] = {}
        if self.class_names:
            probs = torch.stack([r["probs"] for r in per_model]).mean(0)
            out.update({name: probs[:, k] for k, name in enumerate(self.class_names)})
            out["probs"] = probs
        for name in self.regression_names:
            out[name] = torch.stack([r[name] for r in per_model]).mean(0)
        out["embedding"] = torch.cat([r["embedding"] for r in per_model], dim=1)
        if len(per_model) > 1:
            out["disagreement"] = self._disagreement(per_model)
        return out

    def _to_device(self, images: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(np.ascontiguousarray(images))
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch

    def _views(self, batch: torch.Tensor) -> Iterator[torch.Tensor]:
        height, width = batch.shape[2:4]
        for anchor, flip in CROP_VIEWS[: self.crops]:
            top, left, ch, cw = crop_box(anchor, height, width)
            view = batch[:, :, top : top + ch, left : left + cw]
            yield view.flip(3) if flip else view

    def _run_model(self, model: EmotionModel, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Crop-averaged outputs of one model, in float64 (or the batch's wider dtype)."""
        sums: dict[str, torch.Tensor] = {}
        for view in self._views(batch):
            x = model.preprocess(view, self.size)
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                raw = model(x)
            for name, value in raw.items():
                if name != "logits":
                    value = value.to(torch.promote_types(value.dtype, torch.float32))
                    sums[name] = sums.get(name, 0) + value
        return {name: (v / self.crops).double() for name, v in sums.items()}

    def _disagreement(self, per_model: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        spreads = []
        if self.class_names:
            spreads.append(torch.stack([r["probs"] for r in per_model]).std(0, correction=0))
        for name in self.regression_names:
            low, high = self.scales[name]
            values = torch.stack([r[name] for r in per_model]) / (high - low)
            spreads.append(values.std(0, correction=0)[:, None])
        return torch.cat(spreads, dim=1).mean(1)
