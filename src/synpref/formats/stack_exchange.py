"""Stack Exchange preferences: ``question`` (HTML) and ``answers[]`` with ``text`` and ``pm_score``.

One ``ratings`` record per question, ratings = ``pm_score``; every question is
kept, also with a single answer (``expand_to_pairs`` then yields no pair). HTML is
kept as is unless the reader is built with ``strip_html=True`` (tags removed,
entities unescaped). ``meta`` holds qid, date, answer_ids and selected flags.
"""

from __future__ import annotations

import html
import re

from ..schema import Message, Record
from .common import FormatError, conversation, items, lookup, number, scalar_extras, text, typed
from .registry import Reader, register

_TAG = re.compile(r"<[^>]+>")


def html_to_text(s: str) -> str:
    return html.unescape(_TAG.sub("", s)).strip()


@register("stack-exchange", priority=40)
class StackExchangeReader(Reader):
    def __init__(self, source: str = "", *, strip_html: bool = False, **options):
        super().__init__(source, **options)
        self.clean = html_to_text if strip_html else (lambda s: s)

    @staticmethod
    def matches(obj: dict) -> bool:
        return "question" in obj and isinstance(obj.get("answers"), list)

    def read(self, obj: dict, row: int):
        question = self.clean(text(obj, "question"))
        answers = items(obj, "answers")
        if not answers:
            raise FormatError("field 'answers' is empty", "answers", "missing_field")
        fields = [f"answers[{i}].text" for i in range(len(answers))]
        for i, a in enumerate(answers):
            typed(a, f"answers[{i}]", dict)
        rec = Record(
            conversation(question, "question"),
            tuple((Message("assistant", self.clean(text(a, "text", name=f))),) for a, f in zip(answers, fields)),
            "ratings",
            ratings=tuple(number(a, "pm_score", name=f"answers[{i}].pm_score") for i, a in enumerate(answers)),
            provenance=self.provenance(row),
            meta={
                **scalar_extras(obj, ("question", "answers")),
                "answer_ids": [a.get("answer_id") for a in answers],
                "selected": [bool(lookup(a, "selected", False)) for a in answers],
            },
        )
        return [self.checked(rec, fields)]
