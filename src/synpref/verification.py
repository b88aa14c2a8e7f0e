"""The human-verification contract between a curation run and its annotators.

Both sides import this module and nothing else for it: the curation run
(``synpref.curate``) writes pending pairs and reads decisions, the annotation app
(``synpref.annotate``) reads pending pairs and writes decisions. Standard library
only (plus ``synpref.schema``'s role names), so either side can use it alone.

Folders, under ``RUN_DIR/verification/``:
    ``pending/batch-NNN.jsonl``  pairs to verify (:func:`validate_pending_row`), written by the run
    ``checks/*.jsonl``           gold check items: pending rows plus ``"answer": "A"|"B"`` (the app only)
    ``decisions/*.jsonl``        one decision per line (:func:`decision_row`), written by the app or by hand

Vocabulary: a decision is ``"A"`` (``response_a`` is better), ``"B"``, or
``"undecidable"`` (cannot determine: the pair is discarded). The legacy spellings
``discard``, ``discarded`` and ``cannot determine`` are read as ``undecidable``;
only the canonical names are written.

Resolution (:func:`resolve`, the one rule both sides apply):
    1. each annotator's current decision on a pair is their latest by ``time``
       (equal times: the one read last wins, files in name order, lines in order);
    2. the pair's outcome is the decision of a strict majority (more than half) of
       the current decisions: ``A``, ``B`` or ``undecidable``; without one (a tie,
       or a plurality short of half) it is ``disputed``. A disputed pair gets no
       human label: the curation run discards it, as it does an undecidable one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

from .schema import ROLES

# -- folders -------------------------------------------------------------------------------
VERIFICATION_DIR = "verification"
PENDING_DIR = "pending"
CHECKS_DIR = "checks"
DECISIONS_DIR = "decisions"


def verification_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / VERIFICATION_DIR


def pending_dir(run_dir: str | Path) -> Path:
    return verification_dir(run_dir) / PENDING_DIR


def checks_dir(run_dir: str | Path) -> Path:
    return verification_dir(run_dir) / CHECKS_DIR


def decisions_dir(run_dir: str | Path) -> Path:
    return verification_dir(run_dir) / DECISIONS_DIR


# -- vocabulary ----------------------------------------------------------------------------
A, B, UNDECIDABLE = "A", "B", "undecidable"
SIDES = (A, B)
DECISIONS = (A, B, UNDECIDABLE)
LEGACY_DECISIONS = {"discard": UNDECIDABLE, "discarded": UNDECIDABLE, "cannot determine": UNDECIDABLE}
# Outcomes of a pair besides a decision: below k decisions (the app's policy), no strict majority.
PENDING, DISPUTED = "pending", "disputed"
# What annotators read for each decision.
LABELS = {A: "A better", B: "B better", UNDECIDABLE: "cannot determine"}


class ContractError(ValueError):
    """A row that breaks the contract; the message names the field and what it accepts."""


def parse_decision(value) -> str:
    """The canonical decision for ``value`` (legacy spellings mapped), else ContractError."""
    if value in DECISIONS:
        return value
    if isinstance(value, str) and value.strip().lower() in LEGACY_DECISIONS:
        return LEGACY_DECISIONS[value.strip().lower()]
    raise ContractError(f"field 'decision' is {value!r}: use one of {', '.join(map(repr, DECISIONS))}")


# -- pending rows --------------------------------------------------------------------------
PENDING_FIELDS = ("pair_id", "batch", "priority", "context", "response_a", "response_b", "attributes", "llm_precheck")
MAX_PAIR_ID = 255


def validate_pending_row(obj, *, check: bool = False) -> dict:
    """Return ``obj`` when it is a pending pair (a check item when ``check``), else raise ContractError.

    ``{"pair_id", "batch", "priority": int, "context": [{"role", "content"}], "response_a", "response_b",
    "attributes": {...} | null, "llm_precheck": {"label": "A"|"B", "confidence"} | null}``; check items
    add ``"answer": "A"|"B"``.
    """
    if not isinstance(obj, dict):
        raise ContractError("not a JSON object")
    for key, kind in (("pair_id", str), ("batch", str), ("priority", int), ("context", list), ("response_a", str), ("response_b", str)):
        value = obj.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ContractError(f"field {key!r} missing or not {kind.__name__}")
    if not obj["pair_id"] or len(obj["pair_id"]) > MAX_PAIR_ID:
        raise ContractError(f"field 'pair_id' empty or longer than {MAX_PAIR_ID} characters")
    for m in obj["context"]:
        if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
            raise ContractError(f"field 'context': every message needs a role ({', '.join(ROLES)}) and string content")
    attrs = obj.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        raise ContractError("field 'attributes' must be an object or null")
    pre = obj.get("llm_precheck")
    if pre is not None and not (isinstance(pre, dict) and pre.get("label") in SIDES):
        raise ContractError("field 'llm_precheck' must be null or have label 'A' or 'B'")
    if check and obj.get("answer") not in SIDES:
        raise ContractError("field 'answer': check items need 'A' or 'B'")
    return obj


# -- decision rows -------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """One decision line: ``decision`` in source sides, ``time`` timezone-aware (UTC)."""

    pair_id: str
    annotator: str
    decision: str
    time: datetime
    note: str | None = None


def parse_time(value) -> datetime:
    """An ISO-8601 time as an aware datetime; a time without an offset is UTC."""
    if not isinstance(value, str):
        raise ContractError(f"field 'time' is {value!r}: use an ISO-8601 time such as 2026-01-01T10:00:00Z")
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ContractError(f"field 'time' is {value!r}: use an ISO-8601 time such as 2026-01-01T10:00:00Z") from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t


def format_time(t: datetime) -> str:
    """ISO-8601 in UTC with its offset; a naive datetime is taken as UTC."""
    return (t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)).isoformat()


def decision_row(pair_id: str, decision: str, annotator: str, time: datetime, note: str | None = None) -> dict:
    """The line written for one decision (canonical vocabulary only)."""
    return {"pair_id": pair_id, "decision": parse_decision(decision), "annotator": annotator, "time": format_time(time), "note": note}


def parse_decision_row(obj) -> Decision:
    """A decision line read back (legacy spellings mapped), else ContractError naming the field."""
    if not isinstance(obj, dict):
        raise ContractError("not a JSON object")
    pair_id, annotator, note = obj.get("pair_id"), obj.get("annotator"), obj.get("note")
    if not isinstance(pair_id, str) or not pair_id:
        raise ContractError(f"field 'pair_id' is {pair_id!r}: it must be the pair's id from the pending batch")
    if not isinstance(annotator, str) or not annotator:
        raise ContractError(f"field 'annotator' is {annotator!r}: name who decided (a non-empty string)")
    if note is not None and not isinstance(note, str):
        raise ContractError("field 'note' must be a string or null")
    return Decision(pair_id, annotator, parse_decision(obj.get("decision")), parse_time(obj.get("time")), note)


# -- resolution ----------------------------------------------------------------------------
T = TypeVar("T")


def latest_per_annotator(events: Iterable[T], *, key: Callable[[T], Hashable] = lambda d: (d.pair_id, d.annotator),
                         time: Callable[[T], datetime] = lambda d: d.time) -> list[T]:
    """Each (pair, annotator)'s current decision: the latest by ``time``; on equal times the later event in
    ``events`` wins. Returned in the order of ``events``."""
    best: dict[Hashable, tuple[datetime, int, T]] = {}
    for i, e in enumerate(events):
        k, t = key(e), time(e)
        if k not in best or t >= best[k][0]:
            best[k] = (t, i, e)
    return [e for _, _, e in sorted(best.values(), key=lambda b: b[1])]


def consensus(votes: Sequence[str], k: int = 1) -> str:
    """A pair's outcome from its annotators' current decisions: ``pending`` below ``k`` of them, the
    decision of a strict majority (more than half), else ``disputed``."""
    if not votes or len(votes) < k:
        return PENDING
    top, n = Counter(votes).most_common(1)[0]
    return top if 2 * n > len(votes) else DISPUTED


@dataclass(frozen=True)
class Resolution:
    decision: str  # A | B | undecidable | disputed
    votes: dict[str, int]  # current decisions per value
    annotators: list[str]  # whose current decisions these are, sorted

    def to_dict(self) -> dict:
        return {"decision": self.decision, "votes": dict(self.votes), "annotators": list(self.annotators)}


def resolve(decisions: Iterable[Decision]) -> dict[str, Resolution]:
    """pair_id -> its resolution under the contract's rule (see the module docstring)."""
    by_pair: dict[str, list[Decision]] = {}
    for d in latest_per_annotator(decisions):
        by_pair.setdefault(d.pair_id, []).append(d)
    out = {}
    for pair_id, current in by_pair.items():
        counts = Counter(d.decision for d in current)
        out[pair_id] = Resolution(consensus([d.decision for d in current]), {v: counts[v] for v in DECISIONS if counts[v]},
                                  sorted(d.annotator for d in current))
    return out
