"""A tiny real OpenAI-compatible HTTP server on 127.0.0.1 with scripted answers (for tests and demos).

``responder(body, n)`` gets the parsed request body and the 0-based request count and
returns one of: a string (the assistant's content), ``(status, text)`` for an error,
``("sleep", seconds, content)`` to answer late, or a full response dict.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus


class FakeOpenAIServer:
    """The server: an asyncio loop in a thread (keep-alive HTTP/1.1, each answer in one write), the responder
    in a pool of threads (responders may block: tests sleep in them to hold calls in flight), or on the loop
    with ``blocking=False`` (a responder that never blocks, such as :func:`scripted_judge`: half the stub's
    CPU per call, for benchmarks). A thread per connection, as ``http.server`` runs them, convoyed: at 8-32
    connections most of a call's time was the stub's, not the client's (``bench/llm_client.py``)."""

    def __init__(self, responder, *, model: str = "fake-model", delay: float = 0.0, blocking: bool = True):
        self.responder = responder
        self.blocking = blocking
        self.model = model
        self.delay = delay
        self.requests: list[dict] = []
        self.completed: list[dict] = []  # requests whose answer was fully sent
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="fake-openai")
        self._writers: set[asyncio.StreamWriter] = set()
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FakeOpenAIServer":
        self.thread.start()
        self._started.wait()
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self.thread.join(timeout=30)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, sock=self._sock))
        self._started.set()
        self._loop.run_forever()

    async def _close(self) -> None:
        self._server.close()
        for w in list(self._writers):
            w.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                method = line.split(b" ", 1)[0]
                length = 0
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = h.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                raw = await reader.readexactly(length) if length else b""
                if method == b"GET":
                    await self._send(writer, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
                else:
                    await self._answer(writer, json.loads(raw or b"{}"))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # a responder's bug: shown, and the connection closed without an answer (as http.server does)
            traceback.print_exc()
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, body: dict) -> None:
        with self._lock:
            n = len(self.requests)
            self.requests.append(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        out = await self._loop.run_in_executor(self._pool, self.responder, body, n) if self.blocking else self.responder(body, n)
        if isinstance(out, tuple) and out and out[0] == "sleep":
            await asyncio.sleep(out[1])
            out = out[2]
        if isinstance(out, tuple):
            await self._send(writer, out[0], {"error": {"message": str(out[1])}})
            return
        if isinstance(out, dict):
            await self._send(writer, 200, out)
            return
        prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
        await self._send(writer, 200, body=body, obj={
            "id": f"cmpl-{n}", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(out.split()), "total_tokens": prompt_tokens + len(out.split())},
        })

    async def _send(self, writer: asyncio.StreamWriter, status: int, obj, body=None) -> None:
        data = (json.dumps(obj) if not isinstance(obj, str) else obj).encode()
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        await writer.drain()  # raises ConnectionError when the client is gone: not completed
        if body is not None and status == 200:
            with self._lock:
                self.completed.append(body)


def scripted_judge(body: dict, n: int) -> str:
    """A deterministic judge/annotator: attribute requests get a fixed valid five-tuple; judge requests
    prefer the candidate whose text is longer (a rule tests can predict)."""
    msgs = body.get("messages", [])
    system = msgs[0]["content"] if msgs else ""
    user = msgs[-1]["content"] if msgs else ""
    if "annotate preference data" in system:
        return json.dumps({"task_category": "open QA", "objectivity": "objective", "controversiality": "low",
                           "desired_attributes": ["correct", "helpful"], "guideline": "Prefer the correct, helpful answer."})
    last = user.rsplit("[Candidate 1]", 1)[-1]
    c1, _, c2 = last.partition("[Candidate 2]")
    c2 = c2.rsplit("JSON:", 1)[0]
    return json.dumps({"better": 1 if len(c1.strip()) >= len(c2.strip()) else 2})
