"""The written verification protocol and the order it puts pairs in."""

from __future__ import annotations

from ..verification import A, B, LABELS, UNDECIDABLE

PROTOCOL = f"""\
1. Read the whole conversation, then both responses. Judge only the last assistant turn.
2. Read the preference attributes and the instance guideline: they say what matters for this
   task (e.g. correctness for maths, safety for risky requests, helpfulness for advice).
3. You may use tools (a calculator, a search engine, running code) to check facts.
   Never ask an LLM which response is better, and do not rely on the LLM pre-check hint:
   it is there only to point at something worth checking on objective pairs.
4. Choose "{LABELS[A]}" or "{LABELS[B]}" when one response is better under the guideline.
   Sides are shuffled: A and B say nothing about where a response came from.
5. Choose "{LABELS[UNDECIDABLE]}" when both are equally good or bad, when it depends on taste the
   guideline does not settle, or when you cannot check the facts. Such pairs are discarded,
   which is better than a guess. Add a short note saying why when it helps.
6. Some items are check items with a known answer; they are mixed in to keep quality high.
"""

SHORTCUTS = {"a": LABELS[A], "b": LABELS[B], "u": LABELS[UNDECIDABLE], "n": "write a note", "h": "show/hide hint"}

_OBJECTIVITY = {"objective": 0, "subjective": 1}
_CONTROVERSY = {"low": 0, "medium": 1, "high": 2}


def tier(attributes: dict | None) -> int:
    """Protocol order within a priority: objective and low-controversy pairs first.

    0..5 = objectivity * 3 + controversiality; pairs without attributes come last (6).
    """
    if not attributes:
        return 6
    obj = _OBJECTIVITY.get(attributes.get("objectivity"), 1)
    con = _CONTROVERSY.get(attributes.get("controversiality"), 2)
    return obj * 3 + con
