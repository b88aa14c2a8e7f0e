"""A tiny real OpenAI-compatible HTTP server on 127.0.0.1 with scripted answers (for tests and demos).

``responder(body, n)`` gets the parsed request body and the 0-based request count and
returns one of: a string (the assistant's content), ``(status, text)`` for an error,
``("sleep", seconds, content)`` to answer late, or a full response dict.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAIServer:
    def __init__(self, responder, *, model: str = "fake-model", delay: float = 0.0):
        self.responder = responder
        self.model = model
        self.delay = delay
        self.requests: list[dict] = []
        self.completed: list[dict] = []  # requests whose answer was fully sent
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length, so a client reuses its connections
            disable_nagle_algorithm = True  # a delayed ACK must never hold an answer back (~40 ms)
            wbufsize = 1 << 16  # headers and body leave in one write (flushed per answer): one segment, one wake-up of the client

            def log_message(self, *a):
                pass

            def _send(self, status: int, obj, body=None) -> None:
                data = (json.dumps(obj) if not isinstance(obj, str) else obj).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                if body is not None and status == 200:
                    with outer._lock:
                        outer.completed.append(body)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with outer._lock:
                    n = len(outer.requests)
                    outer.requests.append(body)
                if outer.delay:
                    time.sleep(outer.delay)
                out = outer.responder(body, n)
                if isinstance(out, tuple) and out and out[0] == "sleep":
                    time.sleep(out[1])
                    out = out[2]
                if isinstance(out, tuple):
                    self._send(out[0], {"error": {"message": str(out[1])}})
                    return
                if isinstance(out, dict):
                    self._send(200, out)
                    return
                prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
                self._send(200, body=body, obj={
                    "id": f"cmpl-{n}", "object": "chat.completion", "model": body.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": out}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(out.split()), "total_tokens": prompt_tokens + len(out.split())},
                })

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FakeOpenAIServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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
