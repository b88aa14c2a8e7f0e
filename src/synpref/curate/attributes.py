"""Preference attributes: the five-tuple (task category, objectivity, controversiality,
desired attributes, instance guideline) an LLM writes for every pair, as validated JSON.

Stored with the pair as ``meta['attributes']`` (and in the run's ``attributes/part-NNNNN.parquet``).
"""

from __future__ import annotations

import asyncio

from ..llm import LLMClient, LLMError
from ..llm.pairwise import pair_block
from ..schema import Record

ATTRIBUTE_SCHEMA = {
    "type": "object",
    "properties": {
        "task_category": {"type": "string", "minLength": 1, "maxLength": 40},
        "objectivity": {"type": "string", "enum": ["objective", "subjective"]},
        "controversiality": {"type": "string", "enum": ["low", "medium", "high"]},
        "desired_attributes": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 40}, "minItems": 1, "maxItems": 5},
        "guideline": {"type": "string", "minLength": 1, "maxLength": 300},
    },
    "required": ["task_category", "objectivity", "controversiality", "desired_attributes", "guideline"],
    "additionalProperties": False,
}

SYSTEM = (
    "You annotate preference data. Read the conversation and the two candidate responses and describe what a good "
    "response to the LAST user turn must do. Answer with a JSON object with exactly these keys: "
    '"task_category" (a short label such as coding, math, open QA, creative writing, advice, safety), '
    '"objectivity" ("objective" if the request has a verifiably correct answer, else "subjective"), '
    '"controversiality" ("low", "medium" or "high": how much reasonable people would disagree on the best answer), '
    '"desired_attributes" (1 to 5 short properties a good response has), '
    '"guideline" (one or two sentences: how to decide which response is better for this instance). '
    "Do not say which candidate is better."
)


def attribute_messages(rec: Record, max_chars: int = 1200) -> list[dict]:
    user = pair_block(rec.context, rec.candidates[0], rec.candidates[1], context_chars=max_chars, candidate_chars=max_chars // 2)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


async def annotate_one(client: LLMClient, rec: Record, *, max_chars: int = 1200, params: dict | None = None,
                       max_repairs: int = 2) -> dict:
    """``{"attributes": {...}}`` or ``{"attributes": None, "error": "..."}`` (never raises for a bad answer)."""
    try:
        obj = await client.chat_json(attribute_messages(rec, max_chars), ATTRIBUTE_SCHEMA, params=params, max_repairs=max_repairs)
        return {"attributes": obj}
    except LLMError as e:
        return {"attributes": None, "error": str(e)[:500]}


async def _annotate_all(client: LLMClient, records: list[Record], **kw) -> list[dict]:
    try:
        return await asyncio.gather(*(annotate_one(client, r, **kw) for r in records))
    finally:
        await client.aclose()


def annotate_attributes(client: LLMClient, records: list[Record], **kw) -> list[dict]:
    """Attributes for each record, in order (sync; calls run concurrently, bounded by the endpoint)."""
    return asyncio.run(_annotate_all(client, records, **kw))


def priority_key(attrs: dict | None) -> tuple[int, int]:
    """The verification protocol's order: objective before subjective, then low < medium < high controversiality."""
    if not attrs:
        return (2, 3)
    return ({"objective": 0, "subjective": 1}.get(attrs.get("objectivity"), 2),
            {"low": 0, "medium": 1, "high": 2}.get(attrs.get("controversiality"), 3))
