"""OpenRLHF sends already-rendered text; turn it back into messages.

synpref has exactly one text function (``synpref.text.encode``), which renders
messages with the *reward model's* template. A ``query`` string from OpenRLHF is
the prompt + response already rendered with the *policy's* template, so scoring
it as-is would be a second text path, and wrapping it in the RM template would
double the markup and the BOS. So every string is parsed back into messages:

1. Queries in a recognised chat markup (ChatML ``<|im_start|>``, Llama-3
   ``<|start_header_id|>``, Gemma ``<start_of_turn>``) are split into their turns;
   the last turn must be the assistant's and is the scored response.
2. Otherwise the request must carry ``prompts`` (OpenRLHF sends them): the
   query must start with its prompt; the prompt becomes one user turn and the
   rest of the query is the assistant response.
3. Anything else is refused with 422 naming ``query[i]``; send ``messages``
   (lists of ``{role, content}``) instead.

Trailing end-of-sequence markers (``</s>``, ``<|endoftext|>``, ...) are removed
from the response; the RM's template adds its own.
"""

from __future__ import annotations

import re

from ..schema import Conversation, Message, RecordError, check_response, message

_EOS_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<eos>", "</s>")

# (name, pattern of one turn with groups role/content, role renames, leading text to ignore)
_MARKUPS = (
    ("chatml", re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>\n?|(?=<\|im_start\|>)|\Z)", re.DOTALL), {}, ("<|endoftext|>",)),
    (
        "llama3",
        re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)(?:<\|eot_id\|>|(?=<\|start_header_id\|>)|\Z)", re.DOTALL),
        {},
        ("<|begin_of_text|>",),
    ),
    ("gemma", re.compile(r"<start_of_turn>(\w+)\n(.*?)(?:<end_of_turn>\n?|(?=<start_of_turn>)|\Z)", re.DOTALL), {"model": "assistant"}, ("<bos>",)),
)


class RenderedTextError(ValueError):
    pass


def _strip_eos(text: str) -> str:
    changed = True
    while changed:
        changed = False
        stripped = text.rstrip()
        for marker in _EOS_MARKERS:
            if stripped.endswith(marker):
                text, changed = stripped[: -len(marker)], True
    return text


def parse_markup(text: str) -> Conversation | None:
    """Messages from a chat-markup rendering, or None when no known markup is found."""
    for _name, pattern, renames, preamble in _MARKUPS:
        turns = list(pattern.finditer(text))
        if not turns:
            continue
        head = text[: turns[0].start()]
        for marker in preamble:
            head = head.replace(marker, "")
        if head.strip():
            raise RenderedTextError(f"text before the first turn: {head[:40]!r}")
        tail = _strip_eos(text[turns[-1].end() :])
        if tail.strip():
            raise RenderedTextError(f"text after the last turn: {tail[:40]!r}")
        try:
            msgs = [message(renames.get(t.group(1), t.group(1)), t.group(2)) for t in turns]
        except RecordError as e:
            raise RenderedTextError(str(e)) from None
        last = msgs[-1]
        return tuple(msgs[:-1]) + (Message(last.role, _strip_eos(last.content)),)
    return None


def query_to_conversation(query: str, prompt: str | None) -> Conversation:
    """One OpenRLHF ``query`` (plus its ``prompts`` entry if sent) as messages; see the module doc."""
    conv = parse_markup(query)
    if conv is None:
        if prompt is None:
            raise RenderedTextError(
                "not in a recognised chat markup (ChatML, Llama-3, Gemma); send 'prompts' alongside 'query', or send 'messages'"
            )
        if not query.startswith(prompt):
            raise RenderedTextError("the query does not start with its prompt (prompts[i])")
        conv = (Message("user", prompt), Message("assistant", _strip_eos(query[len(prompt) :])))
    try:
        check_response(conv, "the query", None)  # the rule ingest applies to every response
    except RecordError as e:
        raise RenderedTextError(str(e)) from None
    return conv
