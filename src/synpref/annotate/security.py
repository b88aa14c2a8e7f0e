"""Sessions, CSRF tokens, login rate limiting, client addresses behind proxies.

Sessions live server-side: the cookie holds a random token, the database its
SHA-256, so a session can be revoked (logout, disabled account). Each session has
its own CSRF token, required in every form (``csrf_token``) and API write
(``X-CSRF-Token`` header). The login form, before any session exists, uses a
double-submit cookie. The request-size limit is ``synpref.http_limits`` (shared
with the reward server).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import time
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from sqlalchemy import select
from sqlalchemy.engine import Engine

from .db import login_limits, sessions, users, utcnow

SESSION_COOKIE = "synpref_session"
LOGIN_CSRF_COOKIE = "synpref_login_csrf"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_session(engine: Engine, user_id: int, hours: float) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sessions.insert().values(
            token_hash=_digest(token), user_id=user_id, csrf_token=secrets.token_urlsafe(32),
            created_at=now, expires_at=now + timedelta(hours=hours), revoked=False,
        ))
    return token


def session_user(engine: Engine, token: str | None):
    """(user row, csrf token) of a live session of an active user, else None."""
    if not token or len(token) > 128:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.username, users.c.role, sessions.c.csrf_token)
            .join(sessions, sessions.c.user_id == users.c.id)
            .where(sessions.c.token_hash == _digest(token), sessions.c.revoked == False,  # noqa: E712
                   sessions.c.expires_at > utcnow(), users.c.active == True)  # noqa: E712
        ).first()
    return row


def end_session(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(sessions.update().where(sessions.c.token_hash == _digest(token)).values(revoked=True))


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


class LoginLimiter:
    """At most ``max_failures`` failed logins per key (client address, account) in a window.

    Counted in the database, so every process serving the same database shares the
    count, and checked *before* the password is (:meth:`admit`), in one transaction
    that locks the keys' rows (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
    SQLite). An admitted attempt is *pending* until :meth:`settle` records how it went;
    failures plus pending attempts never pass the limit, so however many requests
    arrive at once, at most ``max_failures`` passwords are tried. A request that
    could only be refused because of pending attempts waits for them (up to
    ``wait_for_pending`` seconds): parallel logins from one office still succeed.
    A success clears the account's failures. A key's window starts with its first
    attempt; once ``window`` seconds have passed its counts start again.
    """

    def __init__(self, engine: Engine, max_failures: int = 5, window: float = 300.0, wait_for_pending: float = 20.0):
        self.engine, self.max_failures = engine, max_failures
        self.window, self.wait_for_pending = timedelta(seconds=window), wait_for_pending

    def admit(self, *keys: str) -> float:
        """0.0 when the attempt may go ahead (it is now pending: call :meth:`settle`), else the seconds to wait."""
        keys = tuple(sorted(set(keys)))  # one lock order for every transaction: no deadlocks
        deadline = time.monotonic() + self.wait_for_pending
        while True:
            verdict = self._try_admit(keys)
            if verdict is not None:
                return verdict
            if time.monotonic() > deadline:
                return 1.0  # still undecided attempts ahead of this one: ask the client to retry
            time.sleep(0.05 + random.random() * 0.05)

    def _try_admit(self, keys: tuple[str, ...]) -> float | None:
        """0.0 admitted, > 0 refused (seconds to wait), None: only pending attempts stand in the way."""
        now = utcnow()
        with self.engine.begin() as conn:
            _insert_missing(conn, keys, now)
            rows = conn.execute(
                select(login_limits).where(login_limits.c.key.in_(keys)).order_by(login_limits.c.key).with_for_update()
            ).all()
            if len(rows) != len(keys):
                raise RuntimeError(f"login_limits rows missing for {keys}")  # rows are never deleted
            counts = {r.key: (0, 0) if r.window_started + self.window <= now else (r.failures, r.pending) for r in rows}
            waits = [(r.window_started + self.window - now).total_seconds() for r in rows if counts[r.key][0] >= self.max_failures]
            if waits:
                return max(max(waits), 0.001)
            if any(f + p >= self.max_failures for f, p in counts.values()):
                return None
            for r in rows:
                failures, pending = counts[r.key]
                fresh = failures == pending == 0
                conn.execute(login_limits.update().where(login_limits.c.key == r.key).values(
                    failures=failures, pending=pending + 1, window_started=now if fresh else r.window_started))
        return 0.0

    def settle(self, client_key: str, account_key: str, *, succeeded: bool) -> None:
        """Record how an admitted attempt went: a failure on both keys, or a success that clears the account."""
        keys = sorted({client_key, account_key})
        t = login_limits
        with self.engine.begin() as conn:
            for key in keys:
                conn.execute(t.update().where(t.c.key == key, t.c.pending > 0).values(pending=t.c.pending - 1))
                if not succeeded:
                    conn.execute(t.update().where(t.c.key == key).values(failures=t.c.failures + 1))
            if succeeded:
                conn.execute(t.update().where(t.c.key == account_key).values(failures=0))


def _insert_missing(conn, keys: tuple[str, ...], now) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = [{"key": k, "failures": 0, "pending": 0, "window_started": now} for k in keys]
    conn.execute(insert(login_limits).values(rows).on_conflict_do_nothing(index_elements=["key"]))


def parse_proxies(values) -> tuple[IPv4Network | IPv6Network, ...]:
    """Trusted proxy addresses or CIDR networks; ValueError naming the bad entry."""
    out = []
    for value in values:
        try:
            out.append(ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted proxy {value!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)") from None
    return tuple(out)


def client_address(peer: str | None, forwarded_for: list[str], trusted: tuple[IPv4Network | IPv6Network, ...]) -> str:
    """The address the per-client login limit counts.

    The peer, unless the peer is a trusted proxy: then the nearest address in
    ``X-Forwarded-For`` (read right to left, skipping trusted proxies), since only
    the proxies' own additions can be believed. With no trusted proxies (the
    default) the header is ignored, so a client cannot pick its own address.
    """
    if not peer:
        return "?"
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:64]
    return hops[0][:64] if hops else peer


def _trusted(address: str, trusted) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_cookie_warning(host: str, secure_cookies: bool) -> str | None:
    """The start-up warning for session cookies without ``Secure`` on a non-loopback address, else None."""
    if secure_cookies or is_loopback(host):
        return None
    return (
        f"WARNING: listening on {host} without --secure-cookies: session cookies lack the Secure flag, so a browser "
        "sends them over plain HTTP, where anyone on the network can read them and take over the session. Serve "
        "behind HTTPS and pass --secure-cookies (or listen on 127.0.0.1 only)."
    )
