"""Security of the web app: login everywhere, CSRF, isolation between annotators, limits."""

import re
import uuid
from itertools import islice

import pytest
from fastapi.testclient import TestClient

from synpref.annotate import AnnotateConfig, Policy, create_app, make_engine
from synpref.annotate.testing import create_database, pending_pairs, write_run
from synpref.annotate.users import add_user, set_active

PASSWORD = "correct-horse"


@pytest.fixture(scope="module")
def records(shared_data):
    from synpref.ingest import read_records

    return list(islice(read_records([shared_data / "hh-rlhf" / "train-sample" / "harmless_train_sample.jsonl"], errors=[]), 20))


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request, tmp_path, records):
    run_dir = write_run(tmp_path / "run", pending_pairs(records, 10))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'annotate.sqlite'}"
    else:
        url = create_database(request.getfixturevalue("pg_base"), f"s_{uuid.uuid4().hex[:10]}")
    config = AnnotateConfig(run_dir=run_dir, db_url=url, policy=Policy(k=2, gold_every=0), max_body_bytes=16 * 1024, login_max_failures=3)
    application = create_app(config, make_engine(url))
    for name, role in (("alice", "annotator"), ("bob", "annotator"), ("root", "admin")):
        add_user(application.state.engine, name, PASSWORD, role)
    yield application
    application.state.engine.dispose()


def login(app, username, password=PASSWORD):
    client = TestClient(app)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token}, follow_redirects=False)
    return client, response


def csrf(client):
    return client.get("/api/me").json()["csrf_token"]


def _all_routes(routes):
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI >= 0.16x wraps included routers
        yield from _all_routes(inner.routes) if inner is not None else [route]


def protected_routes(app):
    for route in _all_routes(app.routes):
        path = getattr(route, "path", "")
        if path in ("/login", "/favicon.ico") or path.startswith("/static"):
            continue
        for method in sorted(getattr(route, "methods", None) or []):
            if method != "HEAD":
                yield method, re.sub(r"\{[^}]+\}", "1", path)


def test_every_protected_route_refuses_without_login(app):
    client = TestClient(app)
    routes = list(protected_routes(app))
    assert len(routes) >= 14
    for method, path in routes:
        r = client.request(method, path, follow_redirects=False, json={"choice": "A"} if method == "POST" else None)
        if path.startswith("/api/"):
            assert r.status_code == 401, (method, path)
        else:
            assert r.status_code == 303 and r.headers["location"] == "/login", (method, path)
        assert "csrf" not in r.text.lower()
    assert client.get("/login").status_code == 200


def test_session_cookie_flags_and_security_headers(app):
    client, response = login(app, "alice")
    assert response.status_code == 303
    cookie = [c for c in response.headers.get_list("set-cookie") if c.startswith("synpref_session=")][0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/annotate")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def test_forms_and_api_writes_need_the_csrf_token(app):
    client, _ = login(app, "alice")
    a = client.get("/api/next").json()["assignment_id"]
    r = client.post(f"/assignments/{a}/decision", data={"choice": "A", "submission_id": "x1", "csrf_token": "forged"})
    assert r.status_code == 403
    assert client.post(f"/api/assignments/{a}/decision", json={"choice": "A"}).status_code == 403
    ok = client.post(f"/api/assignments/{a}/decision", json={"choice": "A"}, headers={"X-CSRF-Token": csrf(client)})
    assert ok.status_code == 201
    # the login form itself carries a double-submit token
    fresh = TestClient(app)
    assert fresh.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "nope"}).status_code == 403


def test_annotator_cannot_read_or_change_another_annotators_work(app):
    alice, _ = login(app, "alice")
    bob, _ = login(app, "bob")
    a = alice.get("/api/next").json()
    decided = alice.post(f"/api/assignments/{a['assignment_id']}/decision", json={"choice": "B", "note": "alice's"}, headers={"X-CSRF-Token": csrf(alice)}).json()
    b = bob.get("/api/next").json()
    assert b["assignment_id"] != a["assignment_id"]
    assert "alice" not in str(b) and b["my_choice"] is None  # bob sees nothing of alice's decision on the same pair
    assert bob.get(f"/api/assignments/{a['assignment_id']}").status_code == 404
    assert bob.get(f"/assignments/{a['assignment_id']}").status_code == 404
    assert bob.get(f"/api/decisions/{decided['decision_id']}").status_code == 404
    assert bob.get("/api/decisions").json() == []
    token = csrf(bob)
    assert bob.post(f"/api/assignments/{a['assignment_id']}/decision", json={"choice": "A"}, headers={"X-CSRF-Token": token}).status_code == 404
    assert bob.post(f"/assignments/{a['assignment_id']}/decision", data={"choice": "A", "submission_id": "b1", "csrf_token": token}).status_code == 404
    assert "alice&#39;s" not in bob.get("/my").text
    assert [d["choice_shown"] for d in alice.get("/api/decisions").json()] == ["B"]
    assert bob.get("/admin").status_code == 403 and bob.get("/api/admin/stats").status_code == 403
    admin, _ = login(app, "root")
    assert admin.get("/api/admin/stats").status_code == 200


def test_oversized_and_malformed_requests_get_4xx_and_the_app_keeps_serving(app):
    client, _ = login(app, "alice")
    a = client.get("/api/next").json()["assignment_id"]
    headers = {"X-CSRF-Token": csrf(client)}
    url = f"/api/assignments/{a}/decision"
    assert client.post(url, content=b"x" * 200_000, headers={**headers, "content-type": "application/json"}).status_code == 413

    def chunks():
        for _ in range(40):
            yield b"y" * 1024

    assert client.post(url, content=chunks(), headers={**headers, "content-type": "application/json"}).status_code == 413
    for body in (b"{not json", b"[]", b'{"choice": "C"}', b'{"choice": "A", "note": 5}', b'{"choice": "A", "submission_id": ""}'):
        r = client.post(url, content=body, headers={**headers, "content-type": "application/json"})
        assert 400 <= r.status_code < 500, body
    assert client.post(f"/assignments/{a}/decision", data={"choice": "Z", "submission_id": "s", "csrf_token": headers["X-CSRF-Token"]}).status_code == 400
    assert client.post(f"/assignments/{a}/decision", data={"csrf_token": headers["X-CSRF-Token"]}).status_code == 422
    assert client.post(f"/assignments/{a}/decision", data={"choice": "A", "note": "n" * 3000, "submission_id": "s2", "csrf_token": headers["X-CSRF-Token"]}).status_code == 400
    assert client.get("/api/assignments/not-a-number").status_code == 422
    assert client.get("/api/decisions/99999999999999999999").status_code in (404, 422)
    # still serving, and nothing was stored by the bad requests
    assert client.get("/api/decisions").json() == []
    assert client.post(url, json={"choice": "A"}, headers=headers).status_code == 201


def test_login_is_rate_limited_and_disabled_accounts_lose_their_session(app):
    client, ok = login(app, "alice")
    assert ok.status_code == 303
    for _ in range(3):
        assert login(app, "bob", "wrong-password")[1].status_code == 401
    assert login(app, "bob")[1].status_code == 429  # even the right password, for now
    set_active(app.state.engine, "alice", False)
    assert client.get("/api/me").status_code == 401


def test_admin_imports_new_batches_from_the_web_page(app, records):
    admin, _ = login(app, "root")
    token = csrf(admin)
    assert admin.post("/admin/import", data={"csrf_token": "forged"}).status_code == 403
    pending = app.state.config.run_dir / "verification" / "pending"
    extra = [dict(p, batch="batch-002", pair_id="new-" + p["pair_id"]) for p in pending_pairs(records, 4, seed=5, batch="batch-002")]
    write_run(app.state.config.run_dir, extra)
    assert (pending / "batch-002.jsonl").exists()
    page = admin.post("/admin/import", data={"csrf_token": token})
    assert page.status_code == 200 and "Imported 4 new pairs" in page.text
    assert "Imported 0 new pairs" in admin.post("/admin/import", data={"csrf_token": token}).text
    assert admin.get("/api/admin/stats").json()["progress"]["pairs"] == 14
