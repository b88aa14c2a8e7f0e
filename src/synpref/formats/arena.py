"""Chatbot Arena (lmsys 55k): ``prompt``, ``response_a``, ``response_b`` are JSON-encoded
lists of turns; ``winner_model_a`` / ``winner_model_b`` / ``winner_tie`` are one-hot.

Each side becomes the interleaved conversation user/assistant/...; the context is
only the prefix both sides share, so when an early answer differs the candidates
are the whole continuations (later user turns included, ending with the last
assistant turn). Winner a or b gives a pair (winner first), a tie a ``tie``.
A null turn is quarantined naming it (``response_a[1]``).
"""

from __future__ import annotations

import json

from ..schema import Message
from .common import FormatError, lookup, number, scalar_extras
from .registry import Reader, register

TURNS = ("prompt", "response_a", "response_b")
WINNERS = ("winner_model_a", "winner_model_b", "winner_tie")


def turn_list(obj: dict, field: str) -> list[str]:
    value = lookup(obj, field)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise FormatError(f"field {field!r} is not a JSON list of turns: {e}", field, "wrong_type") from None
    if not isinstance(value, list):
        raise FormatError(f"field {field!r} must be a list of turns, got {type(value).__name__}", field, "wrong_type")
    for i, turn in enumerate(value):
        if turn is None:
            raise FormatError(f"{field}[{i}] is null", f"{field}[{i}]", "missing_field")
        if not isinstance(turn, str):
            raise FormatError(f"{field}[{i}] must be a string, got {type(turn).__name__}", f"{field}[{i}]", "wrong_type")
    return value


def interleave(prompts: list[str], responses: list[str]) -> tuple[Message, ...]:
    return tuple(m for u, a in zip(prompts, responses) for m in (Message("user", u), Message("assistant", a)))


@register("arena", priority=40)
class ArenaReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return all(k in obj for k in TURNS) and "winner_model_a" in obj

    def read(self, obj: dict, row: int):
        prompt, resp_a, resp_b = (turn_list(obj, f) for f in TURNS)
        if not (len(prompt) == len(resp_a) == len(resp_b)):
            raise FormatError(f"turn counts differ: prompt {len(prompt)}, response_a {len(resp_a)}, response_b {len(resp_b)}", "response_a", "invalid_record")
        one_hot = [number(obj, w) if w in obj else 0.0 for w in WINNERS]
        if sorted(one_hot) != [0.0, 0.0, 1.0]:
            raise FormatError(f"winner_model_a/winner_model_b/winner_tie must be one-hot, got {one_hot}", "winner_model_a", "bad_label")
        winner = ("model_a", "model_b", "tie")[one_hot.index(1.0)]
        a = (interleave(prompt, resp_a), "response_a")
        b = (interleave(prompt, resp_b), "response_b")
        first, second = (b, a) if winner == "model_b" else (a, b)
        meta = {**scalar_extras(obj, (*TURNS, *WINNERS)), "winner": winner}
        return [self.pair(row, None, first, second, kind="tie" if winner == "tie" else "pair", meta=meta)]
