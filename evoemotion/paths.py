"""Where evoemotion looks for things on disk: shared data and genotype presets."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root when the package is installed from a checkout (editable install).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Return the folder that holds the real emotion datasets.

    ``$EVOEMOTION_DATA`` wins; otherwise ``../shared/data`` beside the project checkout.
    The folder may not exist: callers check and report the path they tried.
    """
    env = os.environ.get("EVOEMOTION_DATA")
    if env:
        return Path(env).expanduser()
    return PROJECT_ROOT.parent / "shared" / "data"
