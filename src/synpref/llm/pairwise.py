"""The one pairwise judge prompt: curation's judges and the evaluation judge both ask through it.

* **Prompt** (:data:`SYSTEM`, :func:`judge_messages`): the conversation and two candidates shown
  as "Candidate 1" / "Candidate 2", optionally preceded by the pair's attributes and guideline and
  by human-verified examples with their verdicts (curation shows up to 8 similar ones; the
  evaluation judge shows none). Texts longer than ``max_chars`` keep their two ends around
  ``[...]`` (curation clips; the evaluation judge shows everything).
* **Answer** (:data:`JUDGE_SCHEMA`, :func:`ask_judge`): a JSON object ``{"better": 1 | 2}``,
  parsed and validated by :meth:`LLMClient.chat_json`; a failed call and an answer that never
  parses are told apart (:class:`JudgeAnswer`).
* **Order** (:func:`shown_order`): which candidate is shown first is a hash of (seed, key), so the
  same run always asks the same questions and hits the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..schema import Conversation
from ..seeding import stable_rand
from .client import LLMClient, LLMError, LLMInvalidAnswer

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"better": {"type": "integer", "enum": [1, 2]}},
    "required": ["better"],
}

SYSTEM = (
    "You are an impartial judge of two AI assistant responses to the same conversation. Decide which candidate "
    "better answers the LAST user turn, following the guideline if one is given. Ignore the order of the candidates "
    "and their length. Answer with only a JSON object: {\"better\": 1} if Candidate 1 is better, {\"better\": 2} if "
    "Candidate 2 is better."
)


# -- rendering ----------------------------------------------------------------------------------
def clip(text: str, max_chars: int | None) -> str:
    """``text``, or its two ends around ``[...]`` when longer than ``max_chars`` (None: never clipped)."""
    if max_chars is None or len(text) <= max_chars:
        return text
    return text[: max_chars // 2] + "\n[...]\n" + text[-max_chars // 2 :]


def render_conversation(messages: Conversation, max_chars: int | None) -> str:
    return "\n\n".join(f"[{m.role}]\n{clip(m.content, max_chars)}" for m in messages)


def render_response(messages: Conversation, max_chars: int | None) -> str:
    return "\n\n".join(clip(m.content, max_chars) for m in messages)


def pair_block(context: Conversation, first: Conversation, second: Conversation, *, context_chars: int | None,
               candidate_chars: int | None) -> str:
    """The conversation and two candidates as every pairwise prompt shows them (judges, attributes)."""
    return (f"[Conversation]\n{render_conversation(context, context_chars)}\n\n[Candidate 1]\n{render_response(first, candidate_chars)}\n\n"
            f"[Candidate 2]\n{render_response(second, candidate_chars)}\n\nJSON:")


def _attribute_lines(attributes: dict) -> str:
    return (f"Task: {attributes.get('task_category')}; desired: {', '.join(attributes.get('desired_attributes') or [])}\n"
            f"Guideline: {attributes.get('guideline')}\n")


def _example_block(examples: Sequence[dict], max_chars: int | None) -> str:
    """``examples``: ``{"record", "label": "A"|"B", "attributes"?}``, the record in its own orientation."""
    parts = []
    for j, ex in enumerate(examples, 1):
        rec = ex["record"]
        attrs = ex.get("attributes") or {}
        better = 1 if ex["label"] == "A" else 2
        meta = ""
        if attrs:
            meta = (f"Task: {attrs.get('task_category')}; {attrs.get('objectivity')}; controversiality {attrs.get('controversiality')}; "
                    f"desired: {', '.join(attrs.get('desired_attributes') or [])}\nGuideline: {attrs.get('guideline')}\n")
        parts.append(f"### Example {j}\n{meta}[Conversation]\n{render_conversation(rec.context, max_chars)}\n[Candidate 1]\n"
                     f"{render_response(rec.candidates[0], max_chars)}\n[Candidate 2]\n{render_response(rec.candidates[1], max_chars)}\n"
                     f"Verdict: {{\"better\": {better}}}")
    return "\n\n".join(parts)


def judge_messages(context: Conversation, first: Conversation, second: Conversation, *, attributes: dict | None = None,
                   examples: Sequence[dict] = (), max_chars: int | None = None, example_chars: int | None = 300) -> list[dict]:
    """The chat messages asking which of ``first`` (Candidate 1) and ``second`` (Candidate 2) is better."""
    user = ""
    if examples:
        user += "Human-verified examples of similar pairs:\n\n" + _example_block(examples, example_chars) + "\n\n### Now judge this pair\n"
    if attributes:
        user += _attribute_lines(attributes)
    user += pair_block(context, first, second, context_chars=max_chars, candidate_chars=max_chars)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


# -- order ----------------------------------------------------------------------------------------
def shown_order(seed, *key) -> tuple[int, int]:
    """(candidate shown as Candidate 1, candidate shown as Candidate 2), drawn from a hash of (seed, key)."""
    return (1, 0) if stable_rand("order", seed, *key) < 0.5 else (0, 1)


# -- answer ---------------------------------------------------------------------------------------
@dataclass
class JudgeAnswer:
    """One answer: ``better`` is the shown position (1 or 2) the judge preferred, None when there is none."""

    better: int | None
    error: str | None = None  # why there is no answer
    unparseable: bool = False  # the endpoint answered, but never with valid JSON (else: the call failed)

    def winner(self, order: tuple[int, int]) -> int | None:
        """The preferred candidate's index in the pair, given the order it was shown in."""
        return None if self.better is None else order[self.better - 1]


async def ask_judge(client: LLMClient, messages: list[dict], *, params: dict | None = None, sample: int = 0,
                    max_repairs: int = 2) -> JudgeAnswer:
    """Ask once (cached by the client); never raises for a failed call or a bad answer."""
    try:
        obj = await client.chat_json(messages, JUDGE_SCHEMA, params=params, sample=sample, max_repairs=max_repairs)
    except LLMInvalidAnswer as e:
        return JudgeAnswer(None, str(e)[:300], unparseable=True)
    except LLMError as e:
        return JudgeAnswer(None, str(e)[:300])
    return JudgeAnswer(int(obj["better"]))
