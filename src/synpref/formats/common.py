"""Helpers shared by the format readers: field access, transcripts, prefix splitting, checks.

Errors raised here are :class:`FormatError`, a ``schema.RecordError`` that also
carries a ``reason`` code (used as the quarantine reason): ``missing_field``,
``wrong_type``, ``empty_response``, ``identical_candidates``, ``bad_label``,
``bad_transcript``, ``inconsistent_label`` or ``invalid_record``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from ..schema import Conversation, Message, Provenance, Record, RecordError, _norm_text, as_candidate, as_conversation, validate

_MISSING = object()
SCALARS = (str, int, float, bool)


class FormatError(RecordError):
    """``row`` is set when the error belongs to an earlier row than the one being read (grouping readers)."""

    def __init__(self, message: str, field: str | None = None, reason: str = "invalid_record", *, row: int | None = None):
        super().__init__(message, field)
        self.reason = reason
        self.row = row


# schema.RecordError has no reason code; map its messages onto ours (see report: schema change suggested).
_SCHEMA_REASONS = (
    ("empty response", "empty_response"),
    ("identical", "identical_candidates"),
    ("has no messages", "empty_response"),
    ("needs 'role' and 'content'", "missing_field"),
    ("lone surrogate", "invalid_unicode"),
    ("must be", "wrong_type"),
)


def reason_of(err: RecordError) -> str:
    reason = getattr(err, "reason", None)
    if reason:
        return reason
    msg = str(err)
    return next((r for needle, r in _SCHEMA_REASONS if needle in msg), "invalid_record")


# -- field access -----------------------------------------------------------
def lookup(obj: Any, path: str, default: Any = _MISSING, *, name: str | None = None) -> Any:
    """``obj['a']['b']`` for ``path='a.b'``; a missing or null value raises ``missing_field``.

    ``name`` is the field name used in errors when ``obj`` is nested (``answers[2].text``).
    """
    name = name or path
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            if default is not _MISSING:
                return default
            raise FormatError(f"missing field {name!r}", name, "missing_field")
        cur = cur[part]
    if cur is None:
        if default is not _MISSING:
            return default
        raise FormatError(f"field {name!r} is null", name, "missing_field")
    return cur


def has(obj: Any, path: str) -> bool:
    return lookup(obj, path, None) is not None


def typed(value: Any, field: str, types: type | tuple[type, ...]) -> Any:
    if value is None:
        raise FormatError(f"field {field!r} is null", field, "missing_field")
    numeric = types in (float, (int, float))
    if not isinstance(value, types) or (numeric and isinstance(value, bool)):
        want = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise FormatError(f"field {field!r} must be {want}, got {type(value).__name__}", field, "wrong_type")
    return value


def text(obj: Any, path: str, *, name: str | None = None) -> str:
    return typed(lookup(obj, path, name=name), name or path, str)


def number(obj: Any, path: str, *, name: str | None = None) -> float:
    return float(typed(lookup(obj, path, name=name), name or path, (int, float)))


def items(obj: Any, path: str) -> list:
    return typed(lookup(obj, path), path, list)


def flag(value: Any, field: str) -> bool:
    """A correctness label: true/false, or the numbers 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise FormatError(f"field {field!r} must be true/false or 1/0, got {value!r}", field, "bad_label")


def flags(obj: Any, path: str, n: int) -> tuple[bool, ...]:
    """One correctness label per candidate from the list at ``path``."""
    values = items(obj, path)
    if len(values) != n:
        raise FormatError(f"field {path!r} holds {len(values)} labels for {n} candidates", path, "invalid_record")
    return tuple(flag(v, f"{path}[{i}]") for i, v in enumerate(values))


def scalar_extras(obj: dict, used: Iterable[str]) -> dict:
    """Top-level scalar fields not consumed by the reader, for ``Record.meta``."""
    used = set(used)
    return {k: v for k, v in obj.items() if k not in used and isinstance(v, SCALARS)}


def conversation(value: Any, field: str) -> Conversation:
    """A prompt: a string (one user turn) or a list of role/content messages."""
    if value is None:
        raise FormatError(f"field {field!r} is null", field, "missing_field")
    try:
        return as_conversation(value, field)
    except RecordError as e:
        raise FormatError(str(e), e.field, reason_of(e)) from None


def candidate(value: Any, field: str) -> Conversation:
    """A response: a string (one assistant turn) or a list of messages."""
    if value is None:
        raise FormatError(f"field {field!r} is null", field, "missing_field")
    try:
        return as_candidate(value, field)
    except RecordError as e:
        raise FormatError(str(e), e.field, reason_of(e)) from None


# -- conversations ------------------------------------------------------------
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_hh_transcript(transcript: Any, field: str) -> Conversation:
    """Split ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` into messages (contents stripped)."""
    transcript = typed(transcript, field, str)
    if transcript.startswith(("Human:", "Assistant:")):
        transcript = "\n\n" + transcript
    parts = _HH_TURN.split(transcript)
    if parts[0].strip() or len(parts) < 3:
        raise FormatError(f"field {field!r} is not a '\\n\\nHuman: ... \\n\\nAssistant: ...' transcript", field, "bad_transcript")
    return tuple(Message(_HH_ROLES[role], content.strip()) for role, content in zip(parts[1::2], parts[2::2]))


def _same(a: Message, b: Message) -> bool:
    return a.role == b.role and (a.content == b.content or _norm_text(a.content) == _norm_text(b.content))


def split_common_prefix(a: Sequence[Message], b: Sequence[Message]) -> tuple[Conversation, Conversation, Conversation]:
    """``(shared prefix, tail of a, tail of b)``; each tail keeps at least its last message."""
    k, limit = 0, min(len(a), len(b)) - 1
    while k < limit and _same(a[k], b[k]):
        k += 1
    return tuple(a[:k]), tuple(a[k:]), tuple(b[k:])


def _starts_with(conv: Sequence[Message], prefix: Sequence[Message]) -> bool:
    return len(conv) > len(prefix) and all(_same(x, y) for x, y in zip(conv, prefix))


def context_and_candidates(prompt: Any, responses: Sequence[tuple[Any, str]], prompt_field: str = "prompt") -> tuple[Conversation, list[Conversation]]:
    """Shared context and per-response continuations.

    ``prompt`` may be None (implicit prompt: the responses are whole conversations).
    A response that already repeats the prompt is not prefixed again; whatever
    all responses share beyond the prompt moves into the context.
    """
    context = conversation(prompt, prompt_field) if prompt is not None else ()
    fulls = []
    for value, field in responses:
        cand = candidate(value, field)
        fulls.append(cand if _starts_with(cand, context) else context + cand)
    if len(fulls) != 2:  # only pairs are split further; lists keep the given context
        return context, [f[len(context):] for f in fulls]
    shared, ta, tb = split_common_prefix(*fulls)
    return shared, [ta, tb]


def checked(rec: Record, candidate_fields: Sequence[str], *, allow_degenerate: bool = False) -> Record:
    """``schema.validate``, with ``candidates[i]`` renamed to the source field it came from."""
    try:
        return validate(rec, allow_degenerate=allow_degenerate)
    except RecordError as e:
        field = e.field or ""
        m = re.fullmatch(r"candidates\[(\d+)\]", field)
        if m and int(m.group(1)) < len(candidate_fields):
            field = candidate_fields[int(m.group(1))]
        elif field == "candidates":
            field = ",".join(candidate_fields)
        raise FormatError(str(e), field, reason_of(e)) from None


def pair_record(
    provenance: Provenance,
    prompt: Any,
    first: tuple[Any, str],
    second: tuple[Any, str],
    *,
    prompt_field: str = "prompt",
    kind: str = "pair",
    margin: float | None = None,
    meta: dict | None = None,
    allow_degenerate: bool = False,
) -> Record:
    """A checked pair (``first`` preferred) or tie from a prompt and two ``(value, source_field)``."""
    context, (a, b) = context_and_candidates(prompt, [first, second], prompt_field)
    rec = Record(context, (a, b), kind, margin=margin, provenance=provenance, meta=meta or {})
    return checked(rec, [first[1], second[1]], allow_degenerate=allow_degenerate)
