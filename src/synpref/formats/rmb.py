"""RMB (Reward Model Benchmark): two layouts sharing ``conversation_input`` (role/content/language).

* ``rmb-pairwise`` (``Pairwise_set/``): ``chosen.answer`` over ``reject.answer``.
* ``rmb-best-of-n`` (``BoN_set/``): a ``ranking`` with ``bon_best.answer`` rank 0 and every
  ``loser_list[].answer`` rank 1. Equal ranks mean ties in the schema, so losers are not
  compared with each other (they are merely unordered); ``expand_to_pairs`` gives
  best-over-each-loser pairs only.
"""

from __future__ import annotations

from ..schema import Message, Record
from .common import conversation, items, lookup, text, typed
from .registry import Reader, register


def _meta(obj: dict, *keys: str) -> dict:
    return {k: obj[k] for k in keys if obj.get(k) is not None}


@register("rmb-pairwise", priority=50)
class RMBPairwiseReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return "conversation_input" in obj and "chosen" in obj and "reject" in obj

    def read(self, obj: dict, row: int):
        meta = {
            **_meta(obj, "pair_uid", "category_path"),
            "chosen_model": lookup(obj, "chosen.llm_name", None),
            "rejected_model": lookup(obj, "reject.llm_name", None),
        }
        chosen = (text(obj, "chosen.answer"), "chosen.answer")
        rejected = (text(obj, "reject.answer"), "reject.answer")
        return [self.pair(row, lookup(obj, "conversation_input"), chosen, rejected, prompt_field="conversation_input", meta=meta)]


@register("rmb-best-of-n", priority=50)
class RMBBestOfNReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return "conversation_input" in obj and "bon_best" in obj and "loser_list" in obj

    def read(self, obj: dict, row: int):
        context = conversation(lookup(obj, "conversation_input"), "conversation_input")
        losers = items(obj, "loser_list")
        fields = ["bon_best.answer"] + [f"loser_list[{i}].answer" for i in range(len(losers))]
        answers = [text(obj, "bon_best.answer")] + [text(typed(l, f"loser_list[{i}]", dict), "answer", name=fields[i + 1]) for i, l in enumerate(losers)]
        models = [lookup(obj, "bon_best.llm_name", None)] + [l.get("llm_name") for l in losers]
        rec = Record(
            context,
            tuple((Message("assistant", a),) for a in answers),
            "ranking",
            ranks=(0,) + (1,) * len(losers),
            provenance=self.provenance(row),
            meta={**_meta(obj, "bon_uid", "category_path"), "models": models},
        )
        return [self.checked(rec, fields)]

