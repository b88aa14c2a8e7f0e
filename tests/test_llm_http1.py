"""The client's HTTP/1.1 transport to plain-http endpoints (synpref.llm.http1) beside httpx, its fallback."""

import asyncio
import socket
import threading

import httpx
import pytest

from synpref.llm import Endpoint, LLMCache, LLMClient
from synpref.llm.http1 import Http1Pool, direct
from synpref.llm.testing import FakeOpenAIServer, scripted_judge
from synpref.llm.pairwise import JUDGE_SCHEMA


class RawServer:
    """A socket server on 127.0.0.1 that answers the i-th request it reads with ``answers[i]`` (raw bytes),
    closes the connection when the answer is followed by ``None``, and answers nothing once they are spent."""

    def __init__(self, answers: list):
        self.answers, self.connections, self.requests, self.heads = list(answers), 0, 0, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                self.requests += 1
                self.heads.append(head.decode())
                if not self.answers:
                    continue
                conn.sendall(self.answers.pop(0))
                if self.answers and self.answers[0] is None:
                    self.answers.pop(0)
                    return

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: the port is free again
        self.sock.close()


def post(pool, content=b"{}"):
    async def go():
        try:
            return await pool.post("chat/completions", content)
        finally:
            await pool.aclose()

    return asyncio.run(go())


def test_framings_chunked_close_delimited_and_gzip():
    import gzip

    body = b'{"x": 1}'
    srv = RawServer([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"x\r\n5\r\n\": 1}\r\n0\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gzip.compress(body)) + gzip.compress(body),
                     b"HTTP/1.0 200 OK\r\n\r\n" + body, None])
    pool = Http1Pool(f"http://127.0.0.1:{srv.port}/v1/", {}, 5.0, 2)

    async def go():
        out = [await pool.post("chat/completions", b"{}") for _ in range(3)]
        await pool.aclose()
        return out

    assert asyncio.run(go()) == [(200, body)] * 3
    assert srv.connections == 1  # chunked and gzip answers kept the connection; the close-delimited one ended it
    srv.close()


def test_an_idle_connection_the_server_closed_is_not_reused():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    srv = RawServer([ok, None, ok])  # closes after the first answer although it was HTTP/1.1 keep-alive

    async def go():
        pool = Http1Pool(f"http://127.0.0.1:{srv.port}/v1", {}, 5.0, 2)
        first = await pool.post("chat/completions", b"{}")
        await asyncio.sleep(0.2)  # the close reaches the idle connection
        second = await pool.post("chat/completions", b"{}")
        await pool.aclose()
        return first, second

    assert asyncio.run(go()) == ((200, b"{}"), (200, b"{}"))
    assert srv.connections == 2 and srv.requests == 2
    srv.close()


def test_failures_are_httpx_exceptions():
    srv = RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", None])  # cut short
    with pytest.raises(httpx.RemoteProtocolError):
        post(Http1Pool(f"http://127.0.0.1:{srv.port}/v1", {}, 5.0, 1))
    srv.close()
    srv = RawServer([b"garbage\r\n\r\n"])
    with pytest.raises(httpx.RemoteProtocolError, match="status line"):
        post(Http1Pool(f"http://127.0.0.1:{srv.port}/v1", {}, 5.0, 1))
    srv.close()
    port = srv.port  # closed: nothing listens there now
    with pytest.raises(httpx.ConnectError):
        post(Http1Pool(f"http://127.0.0.1:{port}/v1", {}, 5.0, 1))
    srv = RawServer([])  # reads, never answers
    with pytest.raises(httpx.ReadTimeout):
        post(Http1Pool(f"http://127.0.0.1:{srv.port}/v1", {}, 0.3, 1))
    srv.close()


def test_direct_only_for_plain_http_without_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    assert direct("http://127.0.0.1:8000/v1")
    assert not direct("https://api.openai.com/v1") and not direct("http://user:pw@host:8000/v1")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert not direct("http://gpu-node:8000/v1")
    monkeypatch.setenv("NO_PROXY", "gpu-node")
    assert direct("http://gpu-node:8000/v1") and not direct("http://other:8000/v1")


def test_request_head_carries_host_length_and_the_key(monkeypatch):
    monkeypatch.setenv("SYNPREF_TEST_KEY", "sk-test")
    answer = b'{"choices":[{"message":{"content":"hi"}}],"usage":{}}'
    srv = RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)])
    c = LLMClient(Endpoint(base_url=f"http://127.0.0.1:{srv.port}/v1", model="m", api_key_env="SYNPREF_TEST_KEY", timeout=10))

    async def go():
        try:
            return (await c.chat([{"role": "user", "content": "é"}])).text
        finally:
            await c.aclose()

    assert asyncio.run(go()) == "hi"
    head = srv.heads[0].split("\r\n")
    body = '{"model":"m","messages":[{"role":"user","content":"é"}]}'.encode()
    assert head[0] == "POST /v1/chat/completions HTTP/1.1"
    assert {f"Host: 127.0.0.1:{srv.port}", "Authorization: Bearer sk-test", f"Content-Length: {len(body)}"} <= set(head)
    srv.close()


def test_same_requests_answers_usage_and_cache_as_httpx(tmp_path):
    msgs = [[{"role": "system", "content": "judge"}, {"role": "user", "content": f"[Candidate 1]\n{'a' * i}é\n\n[Candidate 2]\nbb\n\nJSON:"}]
            for i in range(6)]
    seen = {}
    for name, transport in (("http1", None), ("httpx", httpx.AsyncHTTPTransport())):
        with FakeOpenAIServer(scripted_judge) as srv:
            ep = Endpoint(base_url=srv.base_url, model="fake-model", concurrency=3, params={"seed": 7})
            c = LLMClient(ep, LLMCache(tmp_path / f"{name}.sqlite"), transport=transport)

            async def go():
                try:
                    out = await asyncio.gather(*(c.chat_json(m, JUDGE_SCHEMA, sample=s) for m in msgs for s in range(2)))
                    assert isinstance(c._http, Http1Pool) == (transport is None)
                    return out
                finally:
                    await c.aclose()

            answers = asyncio.run(go())
            cache = c.cache
            rows = sorted(cache.db.execute("SELECT key, model, text, prompt_tokens, completion_tokens FROM calls").fetchall())
            seen[name] = (answers, sorted(map(str, srv.requests)), c.usage.to_dict(), rows)
    assert seen["http1"] == seen["httpx"]
    assert seen["http1"][2]["calls"] == 12
