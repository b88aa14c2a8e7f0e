"""An OpenAI-compatible chat client (vLLM, SGLang, llama.cpp server, OpenAI, ...).

* async with bounded concurrency (a semaphore per client), per-request timeout,
  retries with exponential backoff on timeouts, connection errors, 429 and 5xx;
* plain-http endpoints through :mod:`.http1` (a keep-alive HTTP/1.1 client: httpx cost ~1 ms of
  CPU per call, the limit of a fast endpoint), https and proxied ones through httpx;
* ``chat_json``: structured output validated against a JSON schema
  (``jsonschema``); an invalid answer is sent back with the validation error for
  a bounded number of repair rounds;
* token accounting in :class:`Usage` (paid calls, cache hits, tokens, retries);
* every successful completion is cached on disk (:class:`~synpref.llm.cache.LLMCache`)
  under (model, messages, sampling parameters, sample index): asking again is free.

``sample`` is the self-consistency index: sample ``i`` of a prompt is a distinct
call (its own cache entry); when ``params`` has a ``seed`` the request sends
``seed + i`` so servers that honour seeds return reproducible, distinct samples.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from .cache import LLMCache, cache_key
from .http1 import Http1Pool, direct


class LLMError(RuntimeError):
    """A call failed for good (after retries) or an answer never validated."""


class LLMInvalidAnswer(LLMError):
    """The endpoint answered, but no answer validated (after the repair rounds): the model's fault, not the call's."""


@dataclass
class Endpoint:
    """One OpenAI-compatible endpoint and the model it serves."""

    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    name: str | None = None  # label in votes and provenance (default: model)
    api_key_env: str | None = None  # name of the environment variable holding the key (never the key itself)
    concurrency: int = 4
    timeout: float = 120.0
    max_retries: int = 3
    backoff: float = 0.5  # first retry waits backoff s, then 2x, 4x ... (+ jitter)
    json_mode: str = "none"  # none | json_object | json_schema (OpenAI) | llama_cpp (json_object + schema, grammar-constrained)
    params: dict = field(default_factory=dict)  # default sampling parameters (temperature, max_tokens, seed...)

    @property
    def label(self) -> str:
        return self.name or self.model

    @classmethod
    def from_dict(cls, d: dict) -> "Endpoint":
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Usage:
    calls: int = 0  # paid HTTP completions that succeeded
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0  # calls that failed after all retries
    repairs: int = 0  # repair rounds asked for invalid JSON
    invalid: int = 0  # chat_json calls that never validated
    cached_prompt_tokens: int = 0  # tokens of the answers read from the cache (paid once, by an earlier call)
    cached_completion_tokens: int = 0

    def add(self, other: "Usage") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def extract_json(text: str) -> Any:
    """Parse ``text`` as JSON, else the first balanced ``{...}`` object in it (code fences allowed)."""
    text = (text or "").strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidates = [text] + ([fenced.group(1)] if fenced else [])
    for cand in candidates:
        try:
            return json.loads(cand)
        except ValueError:
            pass
    start = text.find("{")
    while start != -1:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    try:
                        return json.loads(text[start : i + 1])
                    except ValueError:
                        break
        start = text.find("{", start + 1)
    raise ValueError("no JSON object found in the answer")


class LLMClient:
    def __init__(self, endpoint: Endpoint, cache: LLMCache | None = None, *, transport: httpx.AsyncBaseTransport | None = None):
        self.endpoint = endpoint
        self.cache = cache
        self.usage = Usage()
        self._transport = transport
        self._loop = None
        self._http: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None

    # -- plumbing -----------------------------------------------------------------
    def _ensure_loop_objects(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            headers = {}
            if self.endpoint.api_key_env and os.environ.get(self.endpoint.api_key_env):
                headers["Authorization"] = f"Bearer {os.environ[self.endpoint.api_key_env]}"
            base = self.endpoint.base_url.rstrip("/") + "/"
            if self._transport is None and direct(base):  # see .http1: httpx's CPU per call was the limit of fast endpoints
                self._http = Http1Pool(base, headers, self.endpoint.timeout, self.endpoint.concurrency)
            else:
                self._http = httpx.AsyncClient(base_url=base, headers=headers, timeout=self.endpoint.timeout, transport=self._transport)
            self._sem = asyncio.Semaphore(max(1, self.endpoint.concurrency))
            self._loop = loop

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
            self._loop = None

    def _request_params(self, params: dict | None, sample: int) -> dict:
        p = {**self.endpoint.params, **(params or {})}
        if "seed" in p and p["seed"] is not None:
            p["seed"] = int(p["seed"]) + sample
        return p

    async def _post(self, body: dict) -> tuple[int, bytes]:
        """(status, body) of one chat completion request; raises httpx's transport and timeout errors."""
        if isinstance(self._http, Http1Pool):  # the JSON bytes httpx's json= sends
            return await self._http.post("chat/completions", json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                                                                        allow_nan=False).encode())
        resp = await self._http.post("chat/completions", json=body)
        return resp.status_code, resp.content

    # -- calls --------------------------------------------------------------------
    async def chat(self, messages: list[dict], *, params: dict | None = None, sample: int = 0) -> Completion:
        """One chat completion (cached). Raises :class:`LLMError` after the retries are spent."""
        self._ensure_loop_objects()
        p = self._request_params(params, sample)
        key = cache_key(self.endpoint.model, messages, p, sample)
        if self.cache is not None:
            hit = await self.cache.aget(key)
            if hit is not None:
                self.usage.cache_hits += 1
                self.usage.cached_prompt_tokens += int(hit["prompt_tokens"] or 0)
                self.usage.cached_completion_tokens += int(hit["completion_tokens"] or 0)
                return Completion(hit["text"], hit["prompt_tokens"], hit["completion_tokens"], cached=True)
        body = {"model": self.endpoint.model, "messages": messages, **p}
        last_error = "no attempt"
        async with self._sem:
            for attempt in range(self.endpoint.max_retries + 1):
                if attempt:
                    self.usage.retries += 1
                    delay = self.endpoint.backoff * (2 ** (attempt - 1))
                    await asyncio.sleep(delay * (1 + 0.25 * random.random()))
                try:
                    status, content = await self._post(body)
                except (httpx.TimeoutException, httpx.TransportError) as e:
                    last_error = f"{type(e).__name__}: {e}"
                    continue
                if status in _RETRY_STATUS:
                    last_error = f"HTTP {status}: {content.decode(errors='replace')[:200]}"
                    continue
                if status >= 400:
                    self.usage.failures += 1
                    raise LLMError(f"{self.endpoint.label}: HTTP {status}: {content.decode(errors='replace')[:300]}")
                try:
                    data = json.loads(content)
                    text = data["choices"][0]["message"]["content"] or ""
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    last_error = f"malformed response: {e}"
                    continue
                usage = data.get("usage") or {}
                comp = Completion(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
                self.usage.calls += 1
                self.usage.prompt_tokens += comp.prompt_tokens
                self.usage.completion_tokens += comp.completion_tokens
                if self.cache is not None:  # LLMCache, or the Ray engine's RemoteCache: the same awaited pair
                    await self.cache.aput(key, self.endpoint.model, comp.text, comp.prompt_tokens, comp.completion_tokens)
                return comp
        self.usage.failures += 1
        raise LLMError(f"{self.endpoint.label}: failed after {self.endpoint.max_retries + 1} attempts: {last_error}")

    def _format_params(self, schema: dict) -> dict:
        mode = self.endpoint.json_mode
        if mode == "json_object":
            return {"response_format": {"type": "json_object"}}
        if mode == "llama_cpp":
            return {"response_format": {"type": "json_object", "schema": schema}}
        if mode == "json_schema":
            return {"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}}
        return {}

    async def chat_json(self, messages: list[dict], schema: dict, *, params: dict | None = None, sample: int = 0,
                        max_repairs: int = 2) -> dict:
        """A JSON object valid under ``schema``; invalid answers get up to ``max_repairs`` repair rounds.

        Raises :class:`LLMInvalidAnswer` when no answer validates (counted in ``usage.invalid``) and
        :class:`LLMError` when a call fails.
        """
        import jsonschema

        p = {**(params or {}), **self._format_params(schema)}
        convo = list(messages)
        error = ""
        for round_ in range(max_repairs + 1):
            if round_:
                self.usage.repairs += 1
            comp = await self.chat(convo, params=p, sample=sample)
            try:
                return parse_answer(comp.text, schema)
            except (ValueError, jsonschema.ValidationError) as e:
                error = e.message if isinstance(e, jsonschema.ValidationError) else str(e)
                convo = convo + [
                    {"role": "assistant", "content": comp.text},
                    {"role": "user", "content": f"That answer is invalid ({error}). Reply with only a JSON object that "
                                                 f"matches this JSON schema: {json.dumps(schema)}"},
                ]
        self.usage.invalid += 1
        raise LLMInvalidAnswer(f"{self.endpoint.label}: no valid JSON after {max_repairs} repairs: {error}")


_VALIDATORS: dict[str, Any] = {}
_BY_ID: dict[int, tuple[dict, dict, Any]] = {}  # id(schema) -> (schema, a copy of it, validator): no dumps per answer
_VALID_TEXTS: set[tuple[int, str]] = set()  # (id(validator), answer text) known valid: a judge repeats a few short answers
_VALID_TEXTS_MAX, _VALID_TEXT_CHARS = 4096, 256


def _validator(schema: dict):
    """A validator of ``schema``, built (and the schema checked) once per distinct schema: building one
    per answer cost more than the whole rest of a call to a fast endpoint."""
    import copy

    import jsonschema

    hit = _BY_ID.get(id(schema))
    if hit is not None and hit[0] is schema and hit[1] == schema:  # the same dict, unchanged since
        return hit[2]
    key = json.dumps(schema, sort_keys=True)
    v = _VALIDATORS.get(key)
    if v is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        v = _VALIDATORS[key] = cls(schema)
    if len(_BY_ID) < 256:
        _BY_ID[id(schema)] = (schema, copy.deepcopy(schema), v)
    return v


def validate_json(obj: Any, schema: dict) -> None:
    """``jsonschema.validate(obj, schema)`` (the same error: the best match) with a cached validator."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(obj))
    if error is not None:
        raise error


def parse_answer(text: str, schema: dict) -> Any:
    """:func:`extract_json` of ``text``, validated under ``schema`` (:func:`validate_json`'s errors). Validity is a
    function of the text, so a short text that validated once is not validated again (about 40 us a call)."""
    obj = extract_json(text)
    v = _validator(schema)
    memo = (id(v), text)
    if memo not in _VALID_TEXTS:
        validate_json(obj, schema)
        if len(text) <= _VALID_TEXT_CHARS:
            if len(_VALID_TEXTS) >= _VALID_TEXTS_MAX:
                _VALID_TEXTS.clear()
            _VALID_TEXTS.add(memo)
    return obj


def run_sync(coro):
    """Run a coroutine from synchronous code (a fresh event loop)."""
    return asyncio.run(coro)
