"""Field mapping for sources no built-in format knows, and the ``mapped`` reader.

A :class:`FieldMapping` maps canonical names to source fields (dotted paths allowed):

* ``prompt`` (optional: without it chosen/rejected must be whole conversations),
* either ``chosen`` + ``rejected`` (chosen preferred), or ``response_a`` + ``response_b``
  with a label: ``label_field`` and the values meaning ``a`` wins, ``b`` wins and
  (optionally) tie,
* ``margin`` (optional, numeric).

Label values are compared as strings; whole floats compare like integers (``1.0``
== ``"1"``) and booleans as ``true``/``false``. A row whose label matches none of the
values is quarantined (``bad_label``, field = the label field).

CLI: ``FieldMapping.from_cli(["prompt=question", "chosen=good", "rejected=bad"])``.
YAML: ``map: {prompt: question, ...}`` plus optional ``label_field``, ``label_a_wins``,
``label_b_wins``, ``label_tie``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import UserValueError


class MappingError(UserValueError):
    """A field mapping that cannot be used; on the command line the fix is a --map/--label-* flag."""

    def __init__(self, message: str):
        super().__init__(message, cli="give the fields with --map KEY=FIELD (e.g. --map prompt=question --map chosen=good "
                                      "--map rejected=bad), or --mapping FILE.yaml")

from .common import FormatError, lookup, number, scalar_extras
from .registry import Reader, register

CANONICAL = ("prompt", "chosen", "rejected", "response_a", "response_b", "margin")
LABEL_OPTIONS = ("label_field", "label_a_wins", "label_b_wins", "label_tie")


def label_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class FieldMapping:
    fields: dict[str, str] = field(default_factory=dict)
    label_field: str | None = None
    label_a_wins: str | None = None
    label_b_wins: str | None = None
    label_tie: str | None = None

    def __post_init__(self):
        for opt in ("label_a_wins", "label_b_wins", "label_tie"):
            value = getattr(self, opt)
            if value is not None:
                setattr(self, opt, label_text(value))
        self._check()

    # -- validation -------------------------------------------------------
    def _check(self) -> None:
        if not isinstance(self.fields, dict) or not self.fields:
            raise MappingError("field mapping is empty: give e.g. prompt=question chosen=good rejected=bad")
        unknown = sorted(set(self.fields) - set(CANONICAL))
        if unknown:
            raise MappingError(f"unknown mapping key(s) {unknown}; allowed: {', '.join(CANONICAL)}")
        for key, src in self.fields.items():
            if not isinstance(src, str) or not src.strip():
                raise MappingError(f"mapping {key}= needs a source field name, got {src!r}")
        has_pair = {"chosen", "rejected"} & set(self.fields)
        has_ab = {"response_a", "response_b"} & set(self.fields)
        if has_pair and has_ab:
            raise MappingError("map either chosen+rejected or response_a+response_b, not both")
        if has_pair and has_pair != {"chosen", "rejected"}:
            raise MappingError("mapping needs both chosen= and rejected=")
        if has_ab and has_ab != {"response_a", "response_b"}:
            raise MappingError("mapping needs both response_a= and response_b=")
        if not has_pair and not has_ab:
            raise MappingError("mapping needs chosen= and rejected= (or response_a= and response_b= with a label)")
        if has_ab:
            if not self.label_field or self.label_a_wins is None or self.label_b_wins is None:
                raise MappingError("response_a/response_b need label_field, label_a_wins and label_b_wins")
            values = [v for v in (self.label_a_wins, self.label_b_wins, self.label_tie) if v is not None]
            if len(set(values)) != len(values):
                raise MappingError(f"label values must differ, got {values}")
        elif any(getattr(self, o) is not None for o in LABEL_OPTIONS):
            raise MappingError("label options only apply to response_a/response_b mappings")

    @property
    def labelled(self) -> bool:
        return "response_a" in self.fields

    # -- constructors -----------------------------------------------------
    @classmethod
    def from_cli(cls, map_items: list[str], label_field=None, label_a_wins=None, label_b_wins=None, label_tie=None) -> "FieldMapping":
        fields: dict[str, str] = {}
        for item in map_items:
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise MappingError(f"bad mapping {item!r}: expected KEY=FIELD, e.g. prompt=question")
            if key in fields:
                raise MappingError(f"mapping key {key!r} given twice")
            fields[key] = value
        return cls(fields, label_field, label_a_wins, label_b_wins, label_tie)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "FieldMapping":
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("map"), dict):
            raise MappingError(f"{path}: expected a mapping with a 'map:' table (map: {{prompt: question, ...}})")
        unknown = sorted(set(data) - {"map", *LABEL_OPTIONS})
        if unknown:
            raise MappingError(f"{path}: unknown key(s) {unknown}; allowed: map, {', '.join(LABEL_OPTIONS)}")
        try:
            return cls({str(k): v for k, v in data["map"].items()}, **{o: data.get(o) for o in LABEL_OPTIONS})
        except MappingError as e:
            raise MappingError(f"{path}: {e}") from None


@register("mapped")
class MappedReader(Reader):
    """Pairs and ties from rows described by a :class:`FieldMapping` (never auto-detected)."""

    def __init__(self, source: str = "", *, mapping: FieldMapping, **options):
        super().__init__(source, **options)
        self.mapping = mapping
        self.used = {path.split(".")[0] for path in mapping.fields.values()} | ({mapping.label_field} if mapping.label_field else set())

    def read(self, obj: dict, row: int):
        m, f = self.mapping, self.mapping.fields
        prompt = lookup(obj, f["prompt"]) if "prompt" in f else None
        kind = "pair"
        if m.labelled:
            a = (lookup(obj, f["response_a"]), f["response_a"])
            b = (lookup(obj, f["response_b"]), f["response_b"])
            label = label_text(lookup(obj, m.label_field))
            if label == m.label_a_wins:
                first, second = a, b
            elif label == m.label_b_wins:
                first, second = b, a
            elif label == m.label_tie:
                first, second, kind = a, b, "tie"
            else:
                allowed = [v for v in (m.label_a_wins, m.label_b_wins, m.label_tie) if v is not None]
                raise FormatError(f"label {label!r} is none of {allowed}", m.label_field, "bad_label")
        else:
            first, second = (lookup(obj, f["chosen"]), f["chosen"]), (lookup(obj, f["rejected"]), f["rejected"])
        if prompt is None and not isinstance(first[0], list):
            raise FormatError("no prompt mapped and the responses are not whole conversations", "prompt", "missing_field")
        margin = number(obj, f["margin"]) if "margin" in f and kind == "pair" else None
        meta = scalar_extras(obj, self.used)
        return [self.pair(row, prompt, first, second, prompt_field=f.get("prompt", "prompt"), kind=kind, margin=margin, meta=meta)]
