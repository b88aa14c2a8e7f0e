"""The reward server under hostile or heavy input: body limits while streaming, bad text and
nesting on one keep-alive connection, 500s that keep the connection, a busy model that does
not block /health, and one empty-response rule with ingest.

Real uvicorn on 127.0.0.1 (``RunningServer`` from test_serve) with the tiny random BERT.
"""

from __future__ import annotations

import http.client
import json
import logging
import select
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from synpref.model import RewardModel
from synpref.schema import Message, Record, RecordError, validate
from synpref.serve import ServeConfig, create_app
from test_serve import RunningServer, conv

MiB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def rm(tiny_bert_dir):
    return RewardModel.from_pretrained(tiny_bert_dir, device="cpu")


@pytest.fixture(scope="module")
def server(rm):
    running = RunningServer(create_app(rm, ServeConfig(max_items=16, max_chars=5000, max_body_bytes=4 * MiB)))
    yield running
    running.stop()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class KeepAlive:
    """One HTTP/1.1 connection; every request must go over the same socket."""

    def __init__(self, url: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", _port(url), timeout=60)
        self.conn.connect()
        self.local = self.conn.sock.getsockname()

    def post(self, path: str, raw, content_type: str | None = "application/json") -> tuple[int, dict]:
        headers = {"Content-Type": content_type} if content_type else {}
        self.conn.request("POST", path, body=raw, headers=headers, encode_chunked=not isinstance(raw, bytes))
        response = self.conn.getresponse()
        data = response.read()
        assert response.getheader("connection") != "close", (path, raw[:80])
        assert self.conn.sock is not None and self.conn.sock.getsockname() == self.local, "the connection was replaced"
        return response.status, json.loads(data)

    def close(self):
        self.conn.close()


# -- 5: the body limit holds while the body streams in ---------------------------------------
def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakRss:
    """Highest resident size of this process (the server runs in it) while the block runs."""

    def __enter__(self):
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.base


def stream_body(port: int, total: int, *, chunked: bool, path: str = "/v1/score") -> tuple[int, dict, bytes, int]:
    """POST ``total`` bytes from one reused 64 KiB block, stopping as soon as the server answers.

    Returns (status, headers, body, bytes sent); the sender never holds more than the block.
    """
    block = b"x" * (64 * 1024)
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode())
    piece = (f"{len(block):x}\r\n".encode() + block + b"\r\n") if chunked else block
    sent = 0
    sock.setblocking(False)
    try:
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break  # the server answered before the body was complete
            if writable:
                try:
                    sock.sendall(piece)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(block)
        if chunked and sent >= total:
            sock.sendall(b"0\r\n\r\n")
        sock.setblocking(True)
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = sock.recv(65536)
            if not data:
                break
            raw += data
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        return int(lines[0].split()[1]), headers, rest[:length], sent
    finally:
        sock.close()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_oversized_body_is_refused_while_it_streams_with_bounded_memory(server, chunked):
    total = 256 * MiB  # 64 x the 4 MiB limit
    with PeakRss() as rss:
        status, headers, body, sent = stream_body(_port(server.url), total, chunked=chunked)
    assert status == 413, body
    assert rss.growth < 48 * MiB, f"RSS grew by {rss.growth / MiB:.0f} MiB for a {total / MiB:.0f} MiB body"
    assert sent < total / 4, f"{sent / MiB:.0f} MiB sent before the refusal"  # the kernel buffers a few MiB
    error = json.loads(body)["error"]
    assert error["status"] == 413 and str(4 * MiB) in error["message"]
    assert httpx.get(server.url + "/health").status_code == 200


def test_a_client_that_sends_everything_first_gets_the_413_and_keeps_its_connection(server):
    # requests/http.client write the whole body before reading: they must see the 413, not a reset
    client = KeepAlive(server.url)
    try:
        for framing in ("content-length", "chunked"):
            raw = json.dumps({"conversations": [conv(0)], "padding": "z" * (5 * MiB)}).encode()
            body = raw if framing == "content-length" else iter([raw[i : i + MiB] for i in range(0, len(raw), MiB)])
            status, answer = client.post("/v1/score", body)
            assert status == 413 and answer["error"]["status"] == 413, framing
            ok, answer = client.post("/v1/score", json.dumps({"conversations": [conv(2)]}).encode())
            assert ok == 200 and len(answer["rewards"]) == 1
    finally:
        client.close()


def test_a_body_just_under_the_limit_is_read(server):
    filler = "y" * (4 * MiB - 400)
    body = json.dumps({"conversations": [conv(0)], "padding": filler}).encode()
    assert len(body) < 4 * MiB
    assert httpx.post(server.url + "/v1/score", content=body, headers=JSON).status_code == 200


# -- 6: bad text and deep nesting are 4xx; the keep-alive connection survives ------------------
SURROGATE = '"\\ud800"'  # a JSON escape for a lone high surrogate
DEEP = 1500


@pytest.mark.parametrize(
    "path, raw, status, field",
    [
        ("/v1/score", '{"conversations": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": %s}]]}' % SURROGATE, 422, "conversations[0][1].content"),
        ("/v1/score", '{"conversations": [[{"role": "user", "content": "ok \\udc00 end"}, {"role": "assistant", "content": "a"}]]}', 422, "conversations[0][0].content"),
        ("/v1/compare", '{"prompt": %s, "a": "x", "b": "y"}' % SURROGATE, 422, "prompt"),
        ("/v1/compare", '{"prompt": "q", "a": "x", "b": %s}' % SURROGATE, 422, "b"),
        ("/v1/best-of-n", '{"prompt": "q", "candidates": ["fine", %s]}' % SURROGATE, 422, "candidates[1]"),
        ("/get_reward", '{"query": ["<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n\\ud83d!<|im_end|>"]}', 422, "query[0]"),
        ("/get_reward", '{"messages": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": %s}]]}' % SURROGATE, 422, "messages[0][1].content"),
        ("/v1/score", '{"conversations": ' + "[" * DEEP + "]" * DEEP + "}", 400, None),
        ("/v1/score", "[" * 5000, 400, None),
        ("/v1/compare", '{"prompt": "q", "a": "x", "b": ' + '{"k": ' * DEEP + "1" + "}" * DEEP + "}", 400, None),
        ("/v1/score", '{"conversations": [[{"role": ' + "[" * 900 + "]" * 900 + ', "content": "x"}]]}', 422, "conversations[0][0].role"),
        ("/v1/score", '{"conversations": [], "n": ' + "9" * 5000 + "}", 400, None),
    ],
    ids=["score-assistant", "score-low-surrogate", "compare-prompt", "compare-b", "bon", "get_reward-query",
         "get_reward-messages", "nested-1500", "open-5000", "nested-objects", "nested-role-900", "huge-integer"],
)
def test_bad_text_and_deep_nesting_are_4xx_on_one_connection(server, path, raw, status, field):
    client = KeepAlive(server.url)
    try:
        got, body = client.post(path, raw.encode())
        assert (got, body["error"]["field"]) == (status, field), body
        assert body["error"]["message"]
        # the same connection carries the next request
        ok, answer = client.post("/v1/score", json.dumps({"conversations": [conv(1)]}).encode())
        assert ok == 200 and len(answer["rewards"]) == 1
    finally:
        client.close()


class FailingModel(RewardModel):
    """A model that fails on one input: a stand-in for a real bug deep in scoring."""

    def score_encoded(self, encoded, **kw):
        if any(e is not None and len(e) > 40 for e in encoded):
            raise RuntimeError("simulated failure inside the model")
        return super().score_encoded(encoded, **kw)


def test_a_500_is_json_logged_and_keeps_the_connection(rm, caplog):
    failing = FailingModel(rm.model, rm.tokenizer, policy=rm.policy)
    running = RunningServer(create_app(failing, ServeConfig()))
    client = KeepAlive(running.url)
    try:
        with caplog.at_level(logging.ERROR, logger="synpref.serve.app"):
            status, body = client.post("/v1/score", json.dumps({"conversations": [conv(9)]}).encode())
        assert status == 500 and "simulated failure" in body["error"]["message"]
        assert any("internal error on POST /v1/score" in r.getMessage() and r.exc_info for r in caplog.records)
        status, body = client.post("/v1/score", json.dumps({"conversations": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]}).encode())
        assert status == 200 and len(body["rewards"]) == 1
        metrics = httpx.get(running.url + "/metrics").text
        assert 'synpref_requests_total{endpoint="/v1/score",status="500"} 1' in metrics
    finally:
        client.close()
        running.stop()


# -- 7: tokenization and the model run off the event loop ---------------------------------------
def test_health_and_metrics_answer_while_a_big_request_is_worked_on(rm):
    # long contexts (cut by truncate-left) and short responses: a legal request that takes seconds
    policy = rm.policy.override(length_policy="truncate-left")
    busy = RewardModel(rm.model, rm.tokenizer, policy=policy)
    running = RunningServer(create_app(busy, ServeConfig(max_chars=100_000)))
    context = ("the quick brown fox jumps over the lazy dog " * 2300)[:99_000]
    big = {"conversations": [[{"role": "user", "content": f"{i} {context}"}, {"role": "assistant", "content": f"answer {i}"}] for i in range(96)]}
    done: dict = {}

    def post_big():
        r = httpx.post(running.url + "/v1/score", json=big, timeout=600)
        done.update(status=r.status_code, rewards=r.json().get("rewards"), at=time.monotonic())

    try:
        worker = threading.Thread(target=post_big)
        worker.start()
        time.sleep(0.3)  # the body (9.5 MB) is in; encoding has started
        waits = []
        with httpx.Client(base_url=running.url, timeout=60) as c:
            while worker.is_alive() and len(waits) < 20:
                t0 = time.monotonic()
                assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200
                waits.append((time.monotonic() - t0, t0))
                time.sleep(0.05)
        worker.join(600)
        answered_in_flight = [w for w, asked in waits if asked < done["at"]]
        assert answered_in_flight and max(answered_in_flight) < 1.0, f"/health + /metrics took {max(answered_in_flight):.2f} s while the big request ran"
        assert len(answered_in_flight) >= 3, f"the big request finished too soon to tell ({waits})"
        assert done["status"] == 200 and len(done["rewards"]) == 96 and all(r is not None for r in done["rewards"])
    finally:
        running.stop()


# -- 8: JSON only; one empty-response rule for ingest and the server ---------------------------
def test_bodies_must_be_declared_json(server):
    body = json.dumps({"conversations": [conv(0)]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        client = KeepAlive(server.url)
        try:
            status, answer = client.post("/v1/score", body.encode(), content_type)
        finally:
            client.close()
        assert status == 415 and "application/json" in answer["error"]["message"], content_type
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        assert httpx.post(server.url + "/v1/score", content=body, headers={"Content-Type": content_type}).status_code == 200


EMPTY_RESPONSES = ["", "   ", "\n\t "]


@pytest.mark.parametrize("empty", EMPTY_RESPONSES, ids=["empty", "spaces", "whitespace"])
def test_an_empty_response_is_refused_by_the_rule_ingest_uses(server, empty):
    # the ingest rule: validate() refuses this pair
    with pytest.raises(RecordError, match="empty response"):
        validate(Record((Message("user", "q"),), ((Message("assistant", empty),), (Message("assistant", "fine"),))))
    # ... and every endpoint refuses the same response
    cases = [
        ("/v1/compare", {"prompt": "q", "a": empty, "b": "fine"}, "a"),
        ("/v1/compare", {"prompt": "q", "a": "fine", "b": [{"role": "assistant", "content": empty}]}, "b"),
        ("/v1/best-of-n", {"prompt": "q", "candidates": ["fine", empty]}, "candidates[1]"),
        ("/v1/score", {"conversations": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": empty}]]}, "conversations[0]"),
        ("/get_reward", {"messages": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": empty}]]}, "messages[0]"),
        ("/get_reward", {"query": ["Hi there" + empty], "prompts": ["Hi there"]}, "query[0]"),
    ]
    for path, body, field in cases:
        r = httpx.post(server.url + path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"]["field"] == field and "empty response" in r.json()["error"]["message"], r.text
