"""Backbone features of image files, in views (full, flip, crops), cached on disk.

Frozen-backbone training and evaluation need each image's pooled embedding once per view
and input size. :func:`extract_features` computes them in batches and keeps them in a cache
folder (``$EVOEMOTION_CACHE`` or ``~/.cache/evoemotion/features``), keyed by a digest of the
backbone weights, the input size, the view and the precision; a cached row is reused only
while the image file's path, size and modification time are unchanged.
"""

from __future__ import annotations

import hashlib
import io
import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from evoemotion.atomic import atomic_write
from evoemotion.emotion.datasets import read_image
from evoemotion.emotion.model import EmotionModel
from evoemotion.progress import Progress

#: Views of an image used as training augmentation; ``full`` is what scoring sees.
VIEWS = ("full", "flip", "crop-c", "crop-tl", "crop-tr", "crop-bl", "crop-br")

#: Side of the square-ish crops, as a fraction of the image's height and width.
CROP_FRACTION = 0.8


def default_cache_dir() -> Path:
    """``$EVOEMOTION_CACHE`` or ``~/.cache/evoemotion/features``."""
    env = os.environ.get("EVOEMOTION_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "evoemotion" / "features"


def view_image(image: np.ndarray, view: str) -> np.ndarray:
    """Return one view of an ``(H, W, 3)`` image.

    Args:
        image: uint8 image.
        view: One of :data:`VIEWS`.

    Returns:
        The full image, its mirror, or a crop (centre or a corner) of
        :data:`CROP_FRACTION` of each side.

    Raises:
        ValueError: unknown view.
    """
    if view == "full":
        return image
    if view == "flip":
        return image[:, ::-1]
    height, width = image.shape[:2]
    ch, cw = max(1, round(height * CROP_FRACTION)), max(1, round(width * CROP_FRACTION))
    tops = {"c": (height - ch) // 2, "t": 0, "b": height - ch}
    lefts = {"c": (width - cw) // 2, "l": 0, "r": width - cw}
    corner = view.removeprefix("crop-")
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; views: {', '.join(VIEWS)}")
    top, left = tops[corner[0]], lefts[corner[-1]]
    return image[top : top + ch, left : left + cw]


def backbone_digest(model: EmotionModel) -> str:
    """sha256 hex of the backbone's name and weights (changes when fine-tuned)."""
    digest = hashlib.sha256(model.info.name.encode())
    for key, value in model.backbone.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _signature(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            return dict(zip(npz["keys"].tolist(), npz["features"], strict=True))
    except (OSError, ValueError, KeyError):
        return {}  # a damaged cache file is rebuilt, never trusted


def _save_cache(path: Path, rows: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, keys=np.array(list(rows)), features=np.stack(list(rows.values())))
    atomic_write(path, buffer.getvalue())


@torch.inference_mode()
def embed_images(
    model: EmotionModel,
    images: list[np.ndarray],
    size: int | None = None,
    autocast: bool = False,
) -> np.ndarray:
    """Pooled backbone features of a list of differently-sized uint8 images.

    Args:
        model: The model whose backbone embeds.
        images: uint8 ``(H, W, 3)`` arrays.
        size: Input side; default the model's.
        autocast: Run the backbone in bfloat16 autocast (faster on CPU, slightly noisier).

    Returns:
        float32 ``(N, D)``.
    """
    device = model.feature_mean.device
    batch = torch.cat(
        [model.preprocess(torch.from_numpy(np.ascontiguousarray(im))[None], size) for im in images]
    ).to(device)
    context = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else nullcontext()
    with context:
        return model.backbone(batch).float().cpu().numpy()


def extract_features(
    model: EmotionModel,
    paths: list[Path],
    view: str = "full",
    size: int | None = None,
    batch_size: int = 32,
    autocast: bool = False,
    cache_dir: Path | None | bool = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Backbone features of image files in one view, reusing and filling the cache.

    Args:
        model: The model whose backbone embeds (its device is used).
        paths: Image files (all readable: see :func:`~evoemotion.emotion.datasets.check_images`).
        view: One of :data:`~evoemotion.emotion.features.VIEWS`.
        size: Input side; default the model's input size.
        batch_size: Images per forward pass.
        autocast: bfloat16 autocast for the backbone.
        cache_dir: Cache folder; ``None`` for the default, ``False`` for no cache.
        progress: Reports stage ``"features"`` in images after each batch (cached ones too).

    Returns:
        float32 ``(len(paths), D)``.

    Raises:
        DataError: an image cannot be read.
    """
    size = int(size or model.input_size)
    precision = "bf16" if autocast else "f32"
    cache_path = None
    if cache_dir is not False:
        folder = Path(cache_dir) if cache_dir else default_cache_dir()
        name = f"{model.info.name}-{backbone_digest(model)[:16]}-{size}px-{view}-{precision}.npz"
        cache_path = folder / name
    rows = _load_cache(cache_path) if cache_path else {}
    keys = [_signature(p) for p in paths]
    todo = [i for i, k in enumerate(keys) if k not in rows]
    if progress and len(paths) > len(todo):
        progress("features", len(paths) - len(todo), len(paths), None)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        images = [view_image(read_image(paths[i]), view) for i in chunk]
        feats = embed_images(model, images, size, autocast)
        rows.update({keys[i]: f for i, f in zip(chunk, feats, strict=True)})
        if progress:
            progress("features", len(chunk), len(paths), None)
        if cache_path and (start // batch_size) % 20 == 19:
            _save_cache(cache_path, rows)  # keep work done so far if interrupted
    if cache_path and todo:
        _save_cache(cache_path, rows)
    if not paths:
        return np.zeros((0, model.embedding_dim), dtype=np.float32)
    return np.stack([rows[k] for k in keys]).astype(np.float32)
