"""LLMClient against a real tiny HTTP server on 127.0.0.1 with scripted answers."""

import asyncio
import json
import time

import pytest

from synpref.llm import Endpoint, LLMCache, LLMClient, LLMError
from synpref.llm.client import extract_json
from synpref.llm.testing import FakeOpenAIServer

MSGS = [{"role": "user", "content": "hello there"}]
SCHEMA = {"type": "object", "properties": {"better": {"type": "integer", "enum": [1, 2]}}, "required": ["better"]}


def client(server, tmp_path=None, **kw):
    ep = Endpoint(base_url=server.base_url, model="fake-model", backoff=0.01, **kw)
    return LLMClient(ep, LLMCache(tmp_path / "c.sqlite") if tmp_path else None)


def test_chat_and_token_accounting():
    with FakeOpenAIServer(lambda b, n: "hi you") as srv:
        c = client(srv)
        out = asyncio.run(c.chat(MSGS))
    assert out.text == "hi you" and not out.cached
    assert c.usage.calls == 1 and c.usage.prompt_tokens == 2 and c.usage.completion_tokens == 2


def test_retries_on_5xx_then_success():
    def resp(body, n):
        return (503, "busy") if n < 2 else "ok"

    with FakeOpenAIServer(resp) as srv:
        c = client(srv, max_retries=3)
        assert asyncio.run(c.chat(MSGS)).text == "ok"
    assert c.usage.retries == 2 and c.usage.calls == 1 and len(srv.requests) == 3


def test_gives_up_after_retries_and_4xx_is_final():
    with FakeOpenAIServer(lambda b, n: (500, "down")) as srv:
        c = client(srv, max_retries=2)
        with pytest.raises(LLMError, match="3 attempts"):
            asyncio.run(c.chat(MSGS))
    assert len(srv.requests) == 3 and c.usage.failures == 1
    with FakeOpenAIServer(lambda b, n: (400, "bad request")) as srv:
        c = client(srv, max_retries=2)
        with pytest.raises(LLMError, match="HTTP 400"):
            asyncio.run(c.chat(MSGS))
    assert len(srv.requests) == 1


def test_timeout_is_retried():
    def resp(body, n):
        return ("sleep", 1.0, "late") if n == 0 else "fast"

    with FakeOpenAIServer(resp) as srv:
        c = client(srv, timeout=0.3, max_retries=2)
        assert asyncio.run(c.chat(MSGS)).text == "fast"
    assert c.usage.retries == 1


def test_bounded_concurrency():
    active, peak = [0], [0]

    def resp(body, n):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        time.sleep(0.1)
        active[0] -= 1
        return "x"

    with FakeOpenAIServer(resp) as srv:
        c = client(srv, concurrency=2)

        async def many():
            return await asyncio.gather(*(c.chat([{"role": "user", "content": str(i)}]) for i in range(8)))

        asyncio.run(many())
    assert peak[0] <= 2 and len(srv.requests) == 8


def test_json_repair_then_valid(tmp_path):
    answers = ["I think the first one", '{"better": 3}', 'Sure: {"better": 2} done']

    with FakeOpenAIServer(lambda b, n: answers[min(n, 2)]) as srv:
        c = client(srv, tmp_path)
        obj = asyncio.run(c.chat_json(MSGS, SCHEMA, max_repairs=2))
    assert obj == {"better": 2} and c.usage.repairs == 2
    # the repair prompt carries the error and the bad answer
    last = srv.requests[-1]["messages"]
    assert last[-2]["content"] == '{"better": 3}' and "invalid" in last[-1]["content"]


def test_json_repair_is_bounded():
    with FakeOpenAIServer(lambda b, n: "no json here") as srv:
        c = client(srv)
        with pytest.raises(LLMError, match="no valid JSON"):
            asyncio.run(c.chat_json(MSGS, SCHEMA, max_repairs=1))
    assert len(srv.requests) == 2 and c.usage.invalid == 1


def test_cache_hits_across_clients_and_sample_index(tmp_path):
    with FakeOpenAIServer(lambda b, n: f"answer {n}") as srv:
        c1 = client(srv, tmp_path, params={"temperature": 0.7, "seed": 5})
        a = asyncio.run(c1.chat(MSGS, sample=0))
        b = asyncio.run(c1.chat(MSGS, sample=1))
        assert a.text != b.text and len(srv.requests) == 2
        assert [r["seed"] for r in srv.requests] == [5, 6]  # seed + sample index
        c2 = client(srv, tmp_path, params={"temperature": 0.7, "seed": 5})  # a "rerun": new client, same cache file
        again = asyncio.run(c2.chat(MSGS, sample=1))
        assert again.cached and again.text == b.text and len(srv.requests) == 2
        assert c2.usage.cache_hits == 1 and c2.usage.calls == 0
        other = asyncio.run(c2.chat(MSGS, sample=1, params={"temperature": 0.2}))  # other sampling params: a new call
        assert not other.cached and len(srv.requests) == 3


def test_json_mode_llama_cpp_sends_schema():
    with FakeOpenAIServer(lambda b, n: '{"better": 1}') as srv:
        c = client(srv, json_mode="llama_cpp")
        asyncio.run(c.chat_json(MSGS, SCHEMA))
    assert srv.requests[0]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_extract_json():
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('blah {"a": {"b": "}"}} tail') == {"a": {"b": "}"}}
    with pytest.raises(ValueError):
        extract_json("nothing")


def test_cache_totals_count_every_paid_answer_per_model(tmp_path):
    cache = LLMCache(tmp_path / "c.sqlite")
    with FakeOpenAIServer(lambda b, n: "two words") as srv:
        for model, prompts in (("m1", ["a b", "c d e"]), ("m2", ["f"])):
            c = LLMClient(Endpoint(base_url=srv.base_url, model=model), cache)
            for p in prompts + prompts:  # asked twice: the second time from the cache
                asyncio.run(c.chat([{"role": "user", "content": p}]))
    want = {"calls": 3, "prompt_tokens": 6, "completion_tokens": 6,
            "per_model": {"m1": {"calls": 2, "prompt_tokens": 5, "completion_tokens": 4}, "m2": {"calls": 1, "prompt_tokens": 1, "completion_tokens": 2}}}
    assert cache.totals() == want
    assert LLMCache.read_totals(tmp_path / "c.sqlite") == want  # read-only, from another connection
    cache.close()
    assert LLMCache.read_totals(tmp_path / "c.sqlite") == want


def test_read_totals_without_a_cache_is_zero_and_creates_nothing(tmp_path):
    assert LLMCache.read_totals(tmp_path / "none.sqlite") == {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "per_model": {}}
    assert not (tmp_path / "none.sqlite").exists()


def test_read_totals_of_an_unreadable_file_is_unknown_and_logged(tmp_path, caplog):
    import logging
    import sqlite3

    odd = tmp_path / "odd.sqlite"  # a SQLite file whose calls table is not a cache's: OperationalError
    db = sqlite3.connect(odd)
    db.execute("CREATE TABLE calls (key TEXT)")
    db.commit()
    db.close()
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    for path, error in ((odd, "OperationalError"), (junk, "DatabaseError")):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="synpref.llm.cache"):
            out = LLMCache.read_totals(path)
        assert out["calls"] is None and out["prompt_tokens"] is None and error in out["error"]
        assert f"LLM token totals are unknown: {path} cannot be read as an LLM cache ({error}" in caplog.text
