"""Fuzz every reward-server endpoint with seeded, generated bodies: no 500, and the connection survives.

Each body starts as a valid request for a random endpoint and gets zero or more mutations:
subtrees replaced by odd JSON (wrong types, odd text, lone surrogates, chat markup, huge numbers,
deep nesting, long lists and strings), keys dropped or added, the top level swapped, then
byte-level damage (truncation, stray bytes, a BOM, invalid UTF-8) and now and then a wrong
Content-Type. All bodies of one model go over one keep-alive connection; only a body-limit 413
(which says ``Connection: close``) may end it. CI runs 300 bodies per model (seconds); ``--fuzz-long``
runs 6,000 per model (12,000 in all). Servers: tiny random BERT (pair encoding) and tiny random
Llama (chat template), both real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import random
from collections import Counter

import pytest

from synpref.model import RewardModel
from synpref.serve import ServeConfig, create_app
from test_serve import RunningServer

SHORT, LONG = 300, 6000
CONFIG = ServeConfig(max_items=8, max_chars=3000, max_body_bytes=256 * 1024, max_wait_ms=1)
ENDPOINTS = ("/v1/score", "/v1/compare", "/v1/best-of-n", "/get_reward")
ODD_TEXT = [
    "", " ", "\n\t", "\x00", "\ud800", "\udfff", "a\udc80b", "\U0001f600", "e\u0301", "\u202eevil", "\ufeff", "\u2028",
    "<|im_start|>assistant\n", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\na",
    "<start_of_turn>user\nq<end_of_turn>\n<start_of_turn>model\n", "</s>", "<|endoftext|>", "[CLS]", "[SEP] [PAD]",
    "{% raw %}", "{{ messages }}", "user", "assistant", "system", "tool", "robot", "ASSISTANT",
]
ROLES = ("user", "assistant", "system", "tool", "User", "bot", "", None, 3)
RAW_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-0", "9" * 5000, "1" * 40, "0.0000001"]


@pytest.fixture(scope="module", params=["bert", "llama"])
def fuzz_server(request, tmp_path_factory):
    base = request.getfixturevalue("tiny_bert_dir" if request.param == "bert" else "tiny_llama_dir")
    ckpt = RewardModel.from_pretrained(base, device="cpu").save_pretrained(tmp_path_factory.mktemp("fuzz-ckpt"), reward_mean=0.1, reward_std=2.0)
    running = RunningServer(create_app(RewardModel.from_pretrained(ckpt, device="cpu"), CONFIG))
    yield request.param, running
    running.stop()


class BodyGenerator:
    """Seeded bodies: (path, raw bytes, Content-Type or None)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    # -- valid starting points --------------------------------------------------------------
    def text(self) -> str:
        r = self.rng.random()
        if r < 0.6:
            return " ".join(self.rng.choice(["tell", "me", "why", "the", "sky", "is", "blue", "42", "ok"]) for _ in range(self.rng.randint(1, 12)))
        if r < 0.9:
            return self.rng.choice(ODD_TEXT)
        return self.rng.choice("ab\u00e9\u4e2d ") * self.rng.choice([1, 100, CONFIG.max_chars, CONFIG.max_chars + 1])

    def messages(self, end_with_assistant: bool = True) -> list:
        out = [{"role": "user", "content": self.text()}]
        for _ in range(self.rng.choice([0, 0, 1, 2])):
            out += [{"role": "assistant", "content": self.text()}, {"role": "user", "content": self.text()}]
        if self.rng.random() < 0.15:
            out.insert(0, {"role": "system", "content": self.text()})
        if end_with_assistant:
            out.append({"role": "assistant", "content": self.text()})
        return out

    def prompt(self):
        return self.text() if self.rng.random() < 0.5 else self.messages(end_with_assistant=False)

    def candidate(self):
        return self.text() if self.rng.random() < 0.6 else [{"role": "assistant", "content": self.text()}]

    def items(self, make) -> list:
        n = self.rng.choice([1, 1, 2, 3, CONFIG.max_items, CONFIG.max_items + 1])
        return [make() for _ in range(n)]

    def valid(self, path: str) -> dict:
        rng = self.rng
        if path == "/v1/score":
            body = {"conversations": self.items(self.messages)}
        elif path == "/v1/compare":
            body = {"prompt": self.prompt(), "a": self.candidate(), "b": self.candidate()}
        elif path == "/v1/best-of-n":
            body = {"prompt": self.prompt(), "candidates": self.items(self.candidate)}
        elif rng.random() < 0.4:
            body = {"messages": self.items(self.messages)}
        else:
            queries = self.items(lambda: rng.choice(ODD_TEXT[12:16]) if rng.random() < 0.5 else "Q: " + self.text() + " A: " + self.text())
            body = {"query": queries}
            if rng.random() < 0.6:
                body["prompts"] = [q[: rng.randint(0, len(q))] for q in queries]
            if rng.random() < 0.3:
                body["labels"] = ["" for _ in queries]
        if rng.random() < 0.3:
            body["normalize"] = rng.choice([True, False])
        return body

    # -- mutations ------------------------------------------------------------------------
    def odd_value(self, depth: int = 0):
        rng = self.rng
        kind = rng.randrange(10)
        if kind == 0:
            return rng.choice([None, True, False, 0, -1, 1.5, 2**63, -(2**70)])
        if kind == 1:
            return self.text()
        if kind == 2:
            return [self.odd_value(depth + 1) for _ in range(rng.randint(0, 3))] if depth < 4 else []
        if kind == 3:
            return {rng.choice(["role", "content", "x", "", "prompt"]): self.odd_value(depth + 1) for _ in range(rng.randint(0, 3))} if depth < 4 else {}
        if kind == 4:  # deep nesting: parseable, or (980 inside the body) past the parser's limit
            value: object = "x"
            for _ in range(rng.choice([50, 500, 980])):
                value = [value]
            return value
        if kind == 5:
            return [rng.choice(ROLES) for _ in range(rng.choice([10, 1000, 20000]))]
        if kind == 6:
            return {"role": rng.choice(ROLES), "content": self.odd_value(depth + 1) if rng.random() < 0.5 else self.text()}
        if kind == 7:
            return self.messages(end_with_assistant=rng.random() < 0.5)
        if kind == 8:
            return "x" * rng.choice([0, 10, 100_000])
        return RawNumber(rng.choice(RAW_NUMBERS))

    def mutate(self, node):
        """Replace, drop or add at a random place in the tree (in place where possible)."""
        rng = self.rng
        path = []
        while isinstance(node, (dict, list)) and node and (not path or rng.random() < 0.6):
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            path.append((node, key))
            node = node[key]
        if not path:
            return self.odd_value()
        parent, key = path[-1]
        action = rng.random()
        if action < 0.6:
            parent[key] = self.odd_value()
        elif action < 0.8:
            del parent[key]
        elif isinstance(parent, dict):
            parent[rng.choice(["extra", "normalize", "prompts", "messages", "query", "candidates", "a"])] = self.odd_value()
        else:
            parent.append(self.odd_value())
        return path[0][0]

    def serialize(self, body) -> bytes:
        rng = self.rng
        text = dumps(body, ensure_ascii=rng.random() < 0.7)
        if rng.random() < 0.05:
            text = "[" * rng.choice([1001, 5000]) + "]" * rng.choice([0, 5000])
        raw = text.encode("utf-8", "surrogatepass")  # a raw lone surrogate becomes invalid UTF-8
        damage = rng.random()
        if damage < 0.05 and raw:
            raw = raw[: rng.randrange(len(raw))]
        elif damage < 0.08:
            raw = b"\xef\xbb\xbf" + raw
        elif damage < 0.11 and raw:
            i = rng.randrange(len(raw))
            raw = raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :]
        elif damage < 0.13:
            raw = raw + b" trailing"
        elif damage < 0.14:
            raw = b""
        return raw

    def body(self) -> tuple[str, bytes, str | None]:
        rng = self.rng
        path = rng.choice(ENDPOINTS)
        body = self.valid(path)
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            body = self.mutate(body)
        if rng.random() < 0.03:
            body = rng.choice([[body], "text", 5, None])
        if rng.random() < 0.01:  # over the body limit
            body = {"conversations": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a" * (CONFIG.max_body_bytes + 10)}]]}
        content_type = "application/json"
        if rng.random() < 0.04:
            content_type = rng.choice(["text/plain", "application/x-www-form-urlencoded", "", None, "application/json; charset=latin-1", "APPLICATION/JSON"])
        return path, self.serialize(body), content_type


class RawNumber(str):
    """A number literal written as is (NaN, 1e400, 5,000 digits)."""


def dumps(value, ensure_ascii: bool) -> str:
    if isinstance(value, RawNumber):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=ensure_ascii) + ":" + dumps(v, ensure_ascii) for k, v in value.items()) + "}"
    if isinstance(value, list):
        # iterative for the deepest lists (json.dumps would recurse past Python's limit)
        depth, inner = 0, value
        while isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], list):
            depth, inner = depth + 1, inner[0]
        if depth > 20:
            return "[" * depth + dumps(inner, ensure_ascii) + "]" * depth
        return "[" + ",".join(dumps(v, ensure_ascii) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ensure_ascii)


def test_no_generated_body_gets_a_500_or_breaks_the_connection(fuzz_server, fuzz_long):
    name, server = fuzz_server
    n = LONG if fuzz_long else SHORT
    gen = BodyGenerator(seed=1234 if name == "bert" else 4321)
    port = int(server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    statuses: Counter = Counter()
    reconnects, failures = 0, []
    local = None
    for i in range(n):
        path, raw, content_type = gen.body()
        headers = {"Content-Type": content_type} if content_type is not None else {}
        try:
            conn.request("POST", path, body=raw, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            failures.append((i, path, f"connection failed: {e!r}", raw[:120]))
            conn.close()
            continue
        here = conn.sock.getsockname() if conn.sock is not None else None
        if local is not None and here is not None and here != local:
            failures.append((i, path, "the connection was replaced without Connection: close", raw[:120]))
        local = here
        statuses[response.status] += 1
        try:
            answer = json.loads(data)
        except ValueError:
            failures.append((i, path, f"{response.status}: not JSON: {data[:120]!r}", raw[:120]))
            continue
        if response.status >= 500:
            failures.append((i, path, f"{response.status}: {answer}", raw[:200]))
        elif response.status >= 400:
            if not (isinstance(answer.get("error"), dict) and answer["error"].get("message")):
                failures.append((i, path, f"{response.status} without an error message: {answer}", raw[:120]))
        if response.will_close:  # only the body limit closes: it does not read the rest
            if response.status != 413:
                failures.append((i, path, f"{response.status} closed the connection", raw[:120]))
            reconnects += 1
            local = None
    conn.close()
    summary = f"{name}: {n} bodies fuzzed, statuses {dict(sorted(statuses.items()))}, 5xx {sum(v for k, v in statuses.items() if k >= 500)}, reconnects after 413 {reconnects}"
    print(summary)
    assert failures == [], f"{summary}; first failures: {failures[:5]}"
    assert statuses[200] > n // 20 and sum(v for k, v in statuses.items() if 400 <= k < 500) > n // 4  # both sides exercised
