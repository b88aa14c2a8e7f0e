"""RM-Bench: ``prompt``, ``chosen[3]``, ``rejected[3]`` (styles: 0 concise, 1 detailed plain,
2 detailed markdown), ``subset``, ``id``; the domain is the row's ``domain`` field (hub rows)
or else the file name (``chat_filtered.json`` -> ``chat``).

Each row gives 9 pairs, chosen style i over rejected style j, with meta {id, subset,
domain, chosen_style, rejected_style} plus the row's other scalar fields. A bad
pair (say an empty response) is rejected alone; the row's other pairs are kept.

With ``styles_as_one_record=True`` (what the RM-Bench benchmark reads) each row is
instead one ``best-of-n`` record: the three chosen then the three rejected
responses, the chosen ones correct, ``meta['styles']`` naming each candidate's style.
``expand_to_pairs`` turns it into the same 9 pairs.
"""

from __future__ import annotations

from ..schema import Record, RecordError
from .common import FormatError, context_and_candidates, items, scalar_extras, text, typed
from .registry import Reader, register
from .sources import strip_data_suffix

STYLES = ("concise", "detailed_plain", "detailed_markdown")


def _responses(obj: dict, field: str) -> list[str]:
    values = items(obj, field)
    if len(values) != len(STYLES):
        raise FormatError(f"field {field!r} must hold {len(STYLES)} responses, got {len(values)}", field, "invalid_record")
    return [typed(v, f"{field}[{i}]", str) for i, v in enumerate(values)]


@register("rm-bench", priority=40)
class RMBenchReader(Reader):
    def __init__(self, source: str = "", *, styles_as_one_record: bool = False, **options):
        super().__init__(source, **options)
        self.styles_as_one_record = styles_as_one_record

    @staticmethod
    def matches(obj: dict) -> bool:
        chosen = obj.get("chosen")
        return "prompt" in obj and isinstance(chosen, list) and bool(chosen) and all(isinstance(c, str) for c in chosen)

    def domain(self, obj: dict) -> str:
        own = obj.get("domain")
        return own if isinstance(own, str) and own else strip_data_suffix(self.source).removesuffix("_filtered")

    def read(self, obj: dict, row: int):
        prompt = text(obj, "prompt")
        chosen, rejected = _responses(obj, "chosen"), _responses(obj, "rejected")
        base = {**scalar_extras(obj, ("prompt", "chosen", "rejected")), "domain": self.domain(obj)}
        if self.styles_as_one_record:
            return [self._one_record(row, prompt, chosen, rejected, base)]
        out: list = []
        for i, c in enumerate(chosen):
            for j, r in enumerate(rejected):
                meta = {**base, "chosen_style": STYLES[i], "rejected_style": STYLES[j]}
                try:
                    out.append(self.pair(row, prompt, (c, f"chosen[{i}]"), (r, f"rejected[{j}]"), meta=meta))
                except RecordError as e:
                    out.append(e)
        return out

    def _one_record(self, row: int, prompt: str, chosen: list[str], rejected: list[str], meta: dict) -> Record:
        fields = [f"chosen[{i}]" for i in range(len(STYLES))] + [f"rejected[{j}]" for j in range(len(STYLES))]
        context, cands = context_and_candidates(prompt, list(zip(chosen + rejected, fields)))
        rec = Record(
            context,
            tuple(cands),
            "best-of-n",
            correct=(True,) * len(chosen) + (False,) * len(rejected),
            provenance=self.provenance(row),
            meta={**meta, "styles": list(STYLES) * 2},
        )
        return self.checked(rec, fields)
