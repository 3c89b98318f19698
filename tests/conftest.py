"""Shared fixtures: the real-data location, which tests skip without."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evoemotion.paths import data_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real emotion data folder; skips the test, naming the path, where it is absent."""
    root = data_root()
    if not (root / "emotion6" / "ground_truth.txt").is_file():
        pytest.skip(f"real emotion data not found at {root} (set EVOEMOTION_DATA)")
    return root


@pytest.fixture(autouse=True, scope="session")
def checkpoint_key(tmp_path_factory) -> Iterator[Path]:
    """Sign test checkpoints with a key in a temporary folder, never the user's own.

    The variable is inherited by subprocesses (Dask workers, CLI runs).
    """
    import os

    from evoemotion.signing import KEY_FILE_ENV

    path = tmp_path_factory.mktemp("key") / "checkpoint.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("ab" * 32 + "\n")
    previous = os.environ.get(KEY_FILE_ENV)
    os.environ[KEY_FILE_ENV] = str(path)
    yield path
    if previous is None:
        del os.environ[KEY_FILE_ENV]
    else:
        os.environ[KEY_FILE_ENV] = previous


@pytest.fixture(scope="session")
def tiny_emotion_model():
    """A factory of small, fast, input-sensitive EmotionModels (anger, fear, joy + vad)."""
    import torch
    from torch import nn

    from evoemotion.emotion.backbones import BackboneInfo
    from evoemotion.emotion.model import EmotionModel, head_specs

    def make(seed: int = 0, dtype=torch.float32) -> EmotionModel:
        torch.manual_seed(seed)
        backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        info = BackboneInfo(name="tiny", weights="none", input_size=16, mean=(0.5,) * 3,
                            std=(0.25,) * 3, feature_dim=8)
        specs = head_specs(["categorical", "vad"], ["anger", "fear", "joy"], 0, 0.0)
        model = EmotionModel(backbone, info, specs).eval().to(dtype)
        with torch.no_grad():
            for p in model.heads.parameters():
                p.mul_(4.0)
        return model

    return make
