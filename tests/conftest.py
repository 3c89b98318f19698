"""Shared fixtures: the real-data location, which tests skip without."""

from __future__ import annotations

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
