"""RewardBench 2: ``prompt``, ``chosen[]``, ``rejected[]``, ``num_correct``, ``subset``, ``id``.

One ``best-of-n`` record per row: the chosen then the rejected responses, the first
``num_correct`` correct (all chosen ones when ``num_correct`` is absent or 0). Ties
rows (ids ``ref:<n>`` / ``tied:<n>``) hold several correct answers.
"""

from __future__ import annotations

from ..schema import Record
from .common import FormatError, context_and_candidates, items, lookup, scalar_extras, typed
from .registry import Reader, register

USED = ("prompt", "chosen", "rejected")


@register("rewardbench2", priority=45)
class RewardBench2Reader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return "prompt" in obj and isinstance(obj.get("chosen"), list) and isinstance(obj.get("rejected"), list) and "num_correct" in obj

    def read(self, obj: dict, row: int):
        chosen, rejected = items(obj, "chosen"), items(obj, "rejected")
        fields = [f"chosen[{i}]" for i in range(len(chosen))] + [f"rejected[{j}]" for j in range(len(rejected))]
        n_correct = lookup(obj, "num_correct", None)
        n_correct = int(typed(n_correct, "num_correct", (int, float))) if n_correct else len(chosen)
        if not 0 < n_correct <= len(fields):
            raise FormatError(f"num_correct {n_correct} does not fit {len(fields)} responses", "num_correct", "invalid_record")
        context, cands = context_and_candidates(lookup(obj, "prompt"), list(zip(chosen + rejected, fields)))
        rec = Record(
            context,
            tuple(cands),
            "best-of-n",
            correct=tuple(i < n_correct for i in range(len(fields))),
            provenance=self.provenance(row),
            meta=scalar_extras(obj, USED),
        )
        return [self.checked(rec, fields)]
