"""Settings of one annotation server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .assign import Policy
from .security import parse_proxies


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class AnnotateConfig:
    run_dir: Path = field(metadata={"help": "The curation run whose verification/ folder the app serves."})
    db_url: str = field(metadata={"help": "SQLAlchemy URL of the store (sqlite:///... or postgresql://...)."})
    policy: Policy = field(default_factory=Policy, metadata={"help": "Assignment: annotators per pair, gold checks, leases."})
    max_body_bytes: int = _f(64 * 1024, "Larger request bodies get 413 (by header, or counted while they stream in).")
    max_note_chars: int = _f(2000, "Longest note an annotator may attach to a decision.")
    login_max_failures: int = _f(5, "Failed logins allowed per client address and per account in a window, then 429. "
                                 "Counted in the database, so it holds across parallel requests and server processes.")
    login_window_seconds: float = _f(300.0, "Length of that window; it starts with a key's first attempt.")
    session_hours: float = _f(12.0, "A session ends this long after login (or at logout, or when the account is disabled).")
    secure_cookies: bool = _f(False, "Mark cookies Secure (only sent over HTTPS); set it when served behind HTTPS. "
                              "The server warns at start when it listens beyond loopback without it.")
    trusted_proxies: tuple[str, ...] = _f((), "Addresses or CIDR networks of the reverse proxies in front of the app. Only "
                                          "for requests from these is X-Forwarded-For believed (read right to left) to find "
                                          "the client address the login limit counts. Default: none, the header is ignored.")
    import_on_start: bool = _f(True, "Import pending batches and check items from the run when the app starts.")

    def __post_init__(self):
        self.trusted_proxy_networks = parse_proxies(self.trusted_proxies)  # ValueError naming a bad entry
