"""Request bodies -> conversations, with 4xx errors that name the offending field.

Every endpoint turns its JSON into :class:`~synpref.schema.Message` tuples with
the schema's own helpers and then into token ids with ``RewardModel.encode`` (the
one text function). Status codes: 400 body is not a JSON object, 415 the body is
not declared JSON, 422 a field is missing or has the wrong type/value (an empty
response, by the same rule as ingest: ``schema.check_response``; text that is
not valid Unicode), 413 a request limit is exceeded (the body size is enforced
while it is read: ``synpref.http_limits``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..schema import Conversation, RecordError, as_candidate, as_conversation, LONE_SURROGATE, check_response
from ..text import Encoded, LengthError
from .config import ServeConfig


class PayloadError(Exception):
    def __init__(self, field: str | None, message: str, status: int = 422):
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status

    def to_dict(self) -> dict:
        return {"error": {"field": self.field, "message": self.message, "status": self.status}}




def check_content_type(value: str | None) -> None:
    """Bodies must be declared JSON (a browser may send text/plain cross-site without asking first)."""
    media = (value or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        shown = repr(value[:80]) if value else "none"
        raise PayloadError(None, f"Content-Type must be application/json, got {shown}; send the JSON body with 'Content-Type: application/json'", 415)


def parse_body(body: bytes) -> dict:
    try:
        obj = json.loads(body)
    except ValueError as e:  # bad JSON, bad UTF-8, an integer of more than 4300 digits
        raise PayloadError(None, f"malformed JSON: {str(e)[:200]}", 400) from None
    except RecursionError:
        raise PayloadError(None, "malformed JSON: nested too deeply (no endpoint needs more than 4 levels)", 400) from None
    if not isinstance(obj, dict):
        raise PayloadError(None, f"the request body must be a JSON object, got {_json_type(obj)}", 400)
    return obj


def field(obj: dict, name: str, types: type | tuple[type, ...], *, required: bool = True, default: Any = None) -> Any:
    if name not in obj or obj[name] is None:
        if required:
            raise PayloadError(name, f"missing required field {name!r}")
        return default
    value = obj[name]
    # bool is an int in Python; never accept it where a number or list is expected.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise PayloadError(name, f"{name!r} must be {_type_names(types)}, got {_json_type(value)}")
    return value


def normalize_flag(obj: dict, config: ServeConfig) -> bool:
    return field(obj, "normalize", bool, required=False, default=config.normalize)


def item_list(obj: dict, name: str, config: ServeConfig, *, min_items: int = 1) -> list:
    items = field(obj, name, list)
    if len(items) < min_items:
        raise PayloadError(name, f"{name!r} needs at least {min_items} item(s), got {len(items)}")
    if len(items) > config.max_items:
        raise PayloadError(name, f"{name!r} has {len(items)} items, more than the limit {config.max_items}", 413)
    return items


def conversation(value: Any, name: str) -> Conversation:
    """A full conversation: a list of {role, content} messages ending with the scored assistant turn."""
    if not isinstance(value, list):
        raise PayloadError(name, f"{name} must be a list of messages, got {_json_type(value)}")
    conv = _schema(as_conversation, value, name)
    check_text(conv, name, from_string=False)
    return scored(conv, name)


def prompt(value: Any, name: str) -> Conversation:
    """A prompt: a user string or a list of messages."""
    if not isinstance(value, (str, list)):
        raise PayloadError(name, f"{name} must be a string or a list of messages, got {_json_type(value)}")
    conv = _schema(as_conversation, value, name)
    check_text(conv, name, from_string=isinstance(value, str))
    return conv


def candidate(value: Any, name: str) -> Conversation:
    """A candidate: an assistant string or a list of messages ending with a non-empty assistant turn."""
    if not isinstance(value, (str, list)):
        raise PayloadError(name, f"{name} must be a string or a list of messages, got {_json_type(value)}")
    conv = _schema(as_candidate, value, name)
    check_text(conv, name, from_string=isinstance(value, str))
    return scored(conv, name)


def scored(conv: Conversation, name: str) -> Conversation:
    """``conv`` if its last turn is a response ingest would keep (``schema.check_response``), else 422."""
    try:
        check_response(conv, repr(name), name)
    except RecordError as e:
        raise PayloadError(name, f"{e}; send a non-empty assistant response as the last turn") from None
    return conv


def check_text(conv: Conversation, name: str, *, from_string: bool) -> None:
    """Refuse a lone surrogate (a JSON ``\\ud800`` escape with no pair): it is not text any tokenizer can encode."""
    for j, m in enumerate(conv):
        if m.content.isascii():
            continue
        found = LONE_SURROGATE.search(m.content)
        if found:
            where = name if from_string else f"{name}[{j}].content"
            raise PayloadError(
                where,
                f"{where} holds a lone surrogate (U+{ord(found.group()):04X}) at character {found.start()}, which is not valid "
                "Unicode; send the character itself or a complete surrogate pair",
            )


def check_chars(conv: Conversation, name: str, config: ServeConfig) -> None:
    n = sum(len(m.content) for m in conv)
    if n > config.max_chars:
        raise PayloadError(name, f"{name} has {n} characters, more than the limit {config.max_chars}", 413)


def encode_all(rm, conversations: Sequence[Conversation], names: Sequence[str], config: ServeConfig) -> list[Encoded | None]:
    """Token ids by the one text function; None for items the length policy drops."""
    out = []
    for conv, name in zip(conversations, names):
        check_chars(conv, name, config)
        try:
            out.append(rm.encode(conv, item_id=name))
        except LengthError as e:
            raise PayloadError(name, str(e), 413) from None
        except ValueError as e:  # empty conversation, last turn not an assistant turn
            raise PayloadError(name, f"{name}: {e}") from None
    return out


def _schema(helper, value, name):
    try:
        return helper(value, name)
    except RecordError as e:
        raise PayloadError(e.field or name, str(e)) from None


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


_NAMES = {str: "a string", list: "a list", dict: "an object", bool: "a boolean", int: "an integer", float: "a number"}


def _type_names(types) -> str:
    return " or ".join(_NAMES.get(t, t.__name__) for t in _as_tuple(types))


def _json_type(value) -> str:
    if value is None:
        return "null"
    for t, name in ((bool, "a boolean"), (str, "a string"), (list, "a list"), (dict, "an object"), (int, "a number"), (float, "a number")):
        if isinstance(value, t):
            return name
    return type(value).__name__
