"""HelpSteer (v1): one response per row rated 0-4 on five attributes.

Grouping rule (streaming, one-group buffer): consecutive rows with the same
``prompt`` become ONE ``ratings`` record with one candidate per row, ratings =
``helpfulness`` (``rating_attribute``) and ``meta['attributes']`` holding all
five attribute values per candidate, ``meta['rows']`` the source rows. A prompt
seen in a single row gives a one-candidate ratings record (kept: nothing is
skipped; ``expand_to_pairs`` yields no pair for it). Groups are flushed when the
prompt changes, at ``max_group`` rows, or at the end of the file, so memory is
bounded. Non-consecutive repeats of a prompt form separate records. The record's
provenance row is the group's first row. A bad row is quarantined alone; its
group goes on without it.
"""

from __future__ import annotations

from ..schema import Message, Record, RecordError
from .common import FormatError, conversation, number, reason_of, scalar_extras, text
from .registry import Reader, register

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


@register("helpsteer", priority=40)
class HelpSteerReader(Reader):
    def __init__(self, source: str = "", *, rating_attribute: str = "helpfulness", max_group: int = 64, **options):
        super().__init__(source, **options)
        self.rating_attribute = rating_attribute
        self.max_group = max_group
        self._prompt: str | None = None
        self._group: list[tuple[int, str, dict]] = []  # (row, response, attributes)

    @staticmethod
    def matches(obj: dict) -> bool:
        return "prompt" in obj and "response" in obj and "helpfulness" in obj

    def read(self, obj: dict, row: int):
        prompt, response = text(obj, "prompt"), text(obj, "response")
        if not response.strip() and not self.allow_degenerate:
            raise FormatError("field 'response' is empty", "response", "empty_response")
        number(obj, self.rating_attribute)
        attributes = {a: obj[a] for a in ATTRIBUTES if a in obj}
        for a in attributes:
            number(obj, a)
        attributes.update(scalar_extras(obj, ("prompt", "response", *ATTRIBUTES)))
        out = self.finish() if self._group and (prompt != self._prompt or len(self._group) >= self.max_group) else []
        self._prompt = prompt
        self._group.append((row, response, attributes))
        return out

    def finish(self):
        if not self._group:
            return []
        rows = [r for r, _, _ in self._group]
        rec = Record(
            conversation(self._prompt, "prompt"),
            tuple((Message("assistant", resp),) for _, resp, _ in self._group),
            "ratings",
            ratings=tuple(float(attrs[self.rating_attribute]) for _, _, attrs in self._group),
            provenance=self.provenance(rows[0]),
            meta={"rows": rows, "rating_attribute": self.rating_attribute, "attributes": [a for _, _, a in self._group]},
        )
        self._group = []
        try:
            return [self.checked(rec, [f"response (row {r})" for r in rows])]
        except RecordError as e:  # the group's error, returned: it must not be blamed on the row being read
            return [FormatError(str(e), e.field, reason_of(e), row=rows[0])]
