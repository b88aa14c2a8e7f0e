"""Can the Hugging Face hub be used now? One quick answer for model and benchmark loading.

Without it, a missing model or benchmark would go to ``huggingface_hub`` and
``datasets``, which retry for about a minute before failing. :func:`hub_unavailable`
says why the hub cannot be used, in well under a second: an offline variable
(``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE``, ``TRANSFORMERS_OFFLINE``), else one
short TCP connection to the hub (or to the HTTPS proxy, when one is set), made
once per process.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PROBE_SECONDS = 2.0
_TRUE = ("1", "true", "yes", "on")


def offline_variable() -> str | None:
    """``"HF_HUB_OFFLINE=1"`` (the first offline variable that is set), or None."""
    for name in OFFLINE_VARIABLES:
        value = os.environ.get(name, "")
        if value.strip().lower() in _TRUE:
            return f"{name}={value}"
    return None


def _probe_target() -> tuple[str, int]:
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


@functools.lru_cache(maxsize=None)
def _unreachable(host: str, port: int, seconds: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=seconds):
            return None
    except OSError as e:
        return f"no connection to {host}:{port}: {e or type(e).__name__}"


def hub_unavailable() -> str | None:
    """Why the hub cannot be used now (an offline variable, no connection within 2 s), or None."""
    variable = offline_variable()
    if variable is not None:
        return f"offline mode: {variable} is set"
    host, port = _probe_target()
    return _unreachable(host, port, PROBE_SECONDS)
