"""The login rate limit under parallel requests and across server processes, forwarded headers,
logout ending the session, and the start-up warning about cookies without Secure.

Real ``synpref annotate serve`` processes on 127.0.0.1 over SQLite and PostgreSQL.
"""

import re
import threading
import uuid
from collections import Counter

import httpx
import pytest

from synpref.annotate import make_engine, upgrade
from synpref.annotate.security import client_address, insecure_cookie_warning, parse_proxies
from synpref.annotate.testing import create_database, server_process, write_run
from synpref.annotate.users import add_user

PASSWORD = "right-password"
MAX_FAILURES = 5  # the serve command's default


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'annotate.sqlite'}"
    return create_database(request.getfixturevalue("pg_base"), f"l_{uuid.uuid4().hex[:10]}")


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run", [])


def accounts(db_url, *names):
    engine = make_engine(db_url)
    upgrade(engine)
    for name in names:
        add_user(engine, name, PASSWORD)
    engine.dispose()


def try_login(base: str, username: str, password: str, headers: dict | None = None, start: threading.Barrier | None = None) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=120) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
        if start is not None:
            start.wait(60)
        return c.post("/login", data={"username": username, "password": password, "csrf_token": token}, headers=headers or {}, follow_redirects=False)


def test_parallel_wrong_passwords_over_two_processes_stop_at_the_limit(tmp_path, run_dir, db_url):
    accounts(db_url, "alice")
    n = 40
    start = threading.Barrier(n)
    statuses: list[int] = []
    with server_process(run_dir, db_url, log_path=tmp_path / "a.log") as first, server_process(run_dir, db_url, log_path=tmp_path / "b.log") as second:
        def attempt(i):
            statuses.append(try_login((first, second)[i % 2], "alice", f"wrong-{i}", start=start).status_code)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert Counter(statuses) == {401: MAX_FAILURES, 429: n - MAX_FAILURES}, Counter(statuses)
        for base in (first, second):  # the right password is refused too, by both processes
            late = try_login(base, "alice", PASSWORD)
            assert late.status_code == 429 and int(late.headers["Retry-After"]) > 0


def test_parallel_right_passwords_from_one_client_all_log_in(tmp_path, run_dir, db_url):
    # attempts still being checked hold places under the limit; later ones wait for them, not 429
    names = [f"ann{i:02d}" for i in range(12)]
    accounts(db_url, *names)
    start = threading.Barrier(len(names))
    statuses: list[int] = []
    with server_process(run_dir, db_url, log_path=tmp_path / "s.log") as base:
        threads = [threading.Thread(target=lambda n=n: statuses.append(try_login(base, n, PASSWORD, start=start).status_code)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
    assert statuses == [303] * len(names)


def test_forged_forwarded_for_does_not_escape_the_per_client_limit(tmp_path, run_dir):
    db_url = f"sqlite:///{tmp_path / 'annotate.sqlite'}"
    accounts(db_url, "alice", "bob")
    with server_process(run_dir, db_url, log_path=tmp_path / "s.log") as base:
        for i in range(MAX_FAILURES):  # a different account and a different forged address each time
            forged = {"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"198.51.100.{i}", "Forwarded": f"for=198.51.100.{i}"}
            assert try_login(base, f"nobody{i}", "guess", forged).status_code == 401
        assert try_login(base, "bob", PASSWORD, {"X-Forwarded-For": "203.0.113.99"}).status_code == 429  # the loopback client is blocked
        assert try_login(base, "alice", PASSWORD).status_code == 429


def test_trusted_proxy_forwarded_for_picks_the_client(tmp_path, run_dir):
    db_url = f"sqlite:///{tmp_path / 'annotate.sqlite'}"
    accounts(db_url, "alice", "bob")
    with server_process(run_dir, db_url, extra=["--trusted-proxy", "127.0.0.0/8"], log_path=tmp_path / "s.log") as base:
        for i in range(MAX_FAILURES):
            # what the client wrote (left) is ignored: the proxy appended the real address
            assert try_login(base, f"nobody{i}", "guess", {"X-Forwarded-For": f"10.9.9.{i}, 203.0.113.7"}).status_code == 401
        assert try_login(base, "alice", PASSWORD, {"X-Forwarded-For": "203.0.113.7"}).status_code == 429
        assert try_login(base, "alice", PASSWORD, {"X-Forwarded-For": "203.0.113.8"}).status_code == 303  # another client
        assert try_login(base, "bob", PASSWORD).status_code == 303  # the proxy itself (no header) is its own client


def test_client_address_trusts_only_configured_proxies():
    none = parse_proxies([])
    proxies = parse_proxies(["10.0.0.0/8", "192.0.2.1"])
    assert client_address("127.0.0.1", ["6.6.6.6"], none) == "127.0.0.1"
    assert client_address("198.51.100.5", ["6.6.6.6"], proxies) == "198.51.100.5"  # not a proxy: header ignored
    assert client_address("10.1.2.3", ["6.6.6.6, 203.0.113.7"], proxies) == "203.0.113.7"
    assert client_address("10.1.2.3", ["203.0.113.7, 192.0.2.1", "10.4.4.4"], proxies) == "203.0.113.7"  # proxies skipped
    assert client_address("10.1.2.3", [], proxies) == "10.1.2.3"
    assert client_address(None, [], proxies) == "?"
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_proxies(["not-an-ip"])


def test_logout_without_its_csrf_token_still_ends_the_session(tmp_path, run_dir, db_url):
    accounts(db_url, "alice")
    with server_process(run_dir, db_url, log_path=tmp_path / "s.log") as base:
        with httpx.Client(base_url=base, timeout=60) as c:
            token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
            assert c.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}).status_code == 303
            session = c.cookies["synpref_session"]
            assert c.get("/api/me").status_code == 200
            out = c.post("/logout", data={}, follow_redirects=False)
            assert out.status_code == 303 and out.headers["location"] == "/login"
        # the old cookie, replayed, is dead server-side
        assert httpx.get(base + "/api/me", cookies={"synpref_session": session}).status_code == 401
        # logging out with a stale or unknown cookie only clears it
        stale = httpx.post(base + "/logout", cookies={"synpref_session": session}, follow_redirects=False)
        assert stale.status_code == 303 and 'synpref_session=""' in stale.headers["set-cookie"]


def test_insecure_cookies_are_announced_loudly_off_loopback(tmp_path, run_dir):
    assert insecure_cookie_warning("127.0.0.1", False) is None and insecure_cookie_warning("::1", False) is None
    assert insecure_cookie_warning("localhost", False) is None and insecure_cookie_warning("0.0.0.0", True) is None
    assert "--secure-cookies" in insecure_cookie_warning("0.0.0.0", False)
    assert "--secure-cookies" in insecure_cookie_warning("annotate.example.org", False)
    db_url = f"sqlite:///{tmp_path / 'annotate.sqlite'}"
    for extra, warned in ((["--host", "0.0.0.0"], True), (["--host", "0.0.0.0", "--secure-cookies"], False), ([], False)):
        log = tmp_path / f"serve-{len(extra)}.log"
        with server_process(run_dir, db_url, extra=extra, log_path=log):
            pass
        text = log.read_text()
        assert ("WARNING: listening on 0.0.0.0 without --secure-cookies" in text) is warned, (extra, text)
