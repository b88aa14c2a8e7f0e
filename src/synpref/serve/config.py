"""Server settings: batching, request limits, auth, normalisation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    # micro-batching
    batching: bool = True
    max_batch_tokens: int = 0  # a collected micro-batch stops growing at this many tokens (0: the device's default)
    max_wait_ms: float = 5.0  # ... or this long after its first request arrived
    precision: str = "fp32"
    # request limits (4xx beyond them)
    max_items: int = 256  # conversations or candidates in one request
    max_chars: int = 100_000  # characters in one item (all its messages together)
    max_body_bytes: int = 32 * 1024 * 1024
    # behaviour
    normalize: bool = False  # default for requests that do not say; needs reward_mean/std in the checkpoint
    api_key: str | None = None  # when set, every endpoint but /health needs it
    model_name: str = "synpref-rm"
    access_log: bool = True  # one log line per request on stderr (method, path, status, latency, items)

    def __post_init__(self):
        if self.max_batch_tokens < 0:
            raise ValueError("max_batch_tokens must be >= 0 (0: the device's default)")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        if self.max_items < 1 or self.max_chars < 1:
            raise ValueError("max_items and max_chars must be >= 1")
