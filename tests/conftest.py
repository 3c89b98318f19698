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
