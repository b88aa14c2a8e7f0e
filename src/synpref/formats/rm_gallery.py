"""RM-Gallery preference sets (e.g. ``anthropic_helpful_0521.jsonl``).

``evaluation_sample.input`` is the role/content conversation; ``evaluation_sample.outputs[]``
are the responses, each with ``content`` (or ``answer.content``) and ``content_label``
chosen/rejected. One chosen + one rejected gives a pair; more outputs give a ``ranking``
(chosen rank 0, rejected rank 1). Any other label is quarantined (``bad_label``).
"""

from __future__ import annotations

from ..schema import Record
from .common import FormatError, context_and_candidates, items, lookup, text
from .registry import Reader, register

OUTPUTS = "evaluation_sample.outputs"
RANKS = {"chosen": 0, "rejected": 1}


def _output(out, i: int) -> tuple[str, str, str]:
    """(content, label, content field name) for outputs[i]."""
    base = label_base = f"{OUTPUTS}[{i}]"
    inner = out
    if isinstance(out, dict) and isinstance(out.get("answer"), dict):
        inner, base = out["answer"], base + ".answer"
    content = text(inner, "content", name=f"{base}.content")
    label = next((x.get(k) for x in (out, inner) for k in ("content_label", "label") if x.get(k) is not None), None)
    if not isinstance(label, str) or label not in RANKS:
        raise FormatError(f"{label_base}.content_label must be chosen or rejected, got {label!r}", f"{label_base}.content_label", "bad_label")
    return content, label, f"{base}.content"


@register("rm-gallery", priority=50)
class RMGalleryReader(Reader):
    @staticmethod
    def matches(obj: dict) -> bool:
        return isinstance(obj.get("evaluation_sample"), dict) and "outputs" in obj["evaluation_sample"]

    def read(self, obj: dict, row: int):
        prompt = lookup(obj, "evaluation_sample.input")
        outputs = [_output(o, i) for i, o in enumerate(items(obj, OUTPUTS))]
        labels = [label for _, label, _ in outputs]
        if "chosen" not in labels or "rejected" not in labels:
            raise FormatError(f"outputs need a chosen and a rejected answer, got labels {labels}", OUTPUTS, "bad_label")
        meta = {
            "unique_id": obj.get("unique_id"),
            "domain": lookup(obj, "evaluation_sample.data_info.domain", None),
            "data_source": lookup(obj, "evaluation_sample.data_info.source", None),
            "group": lookup(obj, "extra_metadata.group", None),
        }
        meta = {k: v for k, v in meta.items() if v is not None}
        prov = self.provenance(row)
        if len(outputs) == 2:
            (chosen, _, chosen_field), (rejected, _, rejected_field) = sorted(outputs, key=lambda o: RANKS[o[1]])
            return [self.pair(row, prompt, (chosen, chosen_field), (rejected, rejected_field), prompt_field="evaluation_sample.input", meta=meta)]
        context, cands = context_and_candidates(prompt, [(c, f) for c, _, f in outputs], "evaluation_sample.input")
        rec = Record(context, tuple(cands), "ranking", ranks=tuple(RANKS[l] for l in labels), provenance=prov, meta=meta)
        return [self.checked(rec, [f for _, _, f in outputs])]
