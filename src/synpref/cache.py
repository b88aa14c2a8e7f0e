"""synpref's user cache folder: ``$SYNPREF_CACHE``, else ``~/.cache/synpref`` (converted GGUF
checkpoints, prep's benchmark prompts). Everything in it can be deleted; it is rebuilt on use."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("SYNPREF_CACHE", Path.home() / ".cache" / "synpref"))
