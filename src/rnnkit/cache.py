"""rnnkit's cache folder, shared by what keeps files between runs: downloaded data sets
(`rnnkit.data.download`) and the compiled CPU kernels (`rnnkit.kernels.cpu_library`)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "RNNKIT_HOME"


def cache_root() -> Path:
    """The root of rnnkit's cache: `$RNNKIT_HOME` if set, else `~/.rnnkit`."""
    configured = os.environ.get(CACHE_ENV_VAR)
    return Path(configured).expanduser() if configured else Path.home() / ".rnnkit"
