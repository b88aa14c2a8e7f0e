"""Seeded draws that depend only on what they are about, never on call order."""

from __future__ import annotations

import hashlib


def stable_rand(*parts) -> float:
    """A uniform number in [0, 1) from a hash of ``parts`` (seeded, order-independent of calls)."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64
