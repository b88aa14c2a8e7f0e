"""Preference records: one schema for pairs, ties, rankings and ratings.

A :class:`Record` holds a shared ``context`` (the conversation so far, a list of
messages) and two or more ``candidates``. Each candidate is the continuation a
reward model scores: usually one assistant message, but it may hold several
messages when the candidates diverge earlier (arena battles where each model
answered every turn). The reward model always scores the last assistant turn of
``context + candidate``.

What the record says about the candidates depends on ``kind``:

* ``pair``: candidates[0] is preferred to candidates[1] (``margin`` optional).
* ``tie``: the candidates are equally good (never turned into pairs).
* ``ranking``: ``ranks[i]`` is candidate i's rank, 0 best; equal ranks are ties.
* ``ratings``: ``ratings[i]`` is candidate i's score, higher better.
* ``best-of-n``: answers to one prompt for best-of-N selection (PPE best-of-K,
  RewardBench 2, RM-Bench styles, candidate files); ``correct[i]``, when given,
  says whether answer i is correct (any number may be, none or all included).

:func:`expand_to_pairs` states the one rule that turns rankings, ratings and
correctness labels into pairs; see its docstring. :attr:`Record.correct_candidates`
states which candidates a label marks best, the one rule evaluation uses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

ROLES = ("system", "user", "assistant", "tool")
KINDS = ("pair", "tie", "ranking", "ratings", "best-of-n")
# A UTF-16 surrogate on its own (a JSON "\ud800" escape with no pair) is not text: no UTF-8 file,
# Parquet column or tokenizer can hold it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_INT32 = (-(2**31), 2**31 - 1)  # ranks are stored as int32


class RecordError(ValueError):
    """A record breaks the schema; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict:
        return {"role": self.role, "content": self.content}


Conversation = tuple[Message, ...]


@dataclass(frozen=True)
class Provenance:
    """Where a record came from. ``label_source`` says who made the label."""

    source: str = ""
    row: int = -1
    format: str = ""
    label_source: str = "dataset"


@dataclass(frozen=True)
class Record:
    context: Conversation
    candidates: tuple[Conversation, ...]
    kind: str = "pair"
    ranks: tuple[int, ...] | None = None
    ratings: tuple[float, ...] | None = None
    correct: tuple[bool, ...] | None = None
    margin: float | None = None
    weight: float = 1.0
    provenance: Provenance = field(default_factory=Provenance)
    meta: dict = field(default_factory=dict, hash=False, compare=False)

    # -- derived (computed once: a record is immutable) -------------------------
    @functools.cached_property
    def id(self) -> str:
        return content_id(self)

    @functools.cached_property
    def prompt_id(self) -> str:
        """Hash of the context alone: groups records that share a prompt."""
        return _digest({"context": _norm_conv(self.context)})

    def conversation(self, i: int) -> Conversation:
        """The full conversation whose last assistant turn candidate ``i`` is."""
        return self.context + self.candidates[i]

    @property
    def chosen(self) -> Conversation:
        self._require_pair()
        return self.candidates[0]

    @property
    def rejected(self) -> Conversation:
        self._require_pair()
        return self.candidates[1]

    def _require_pair(self) -> None:
        if self.kind != "pair":
            raise RecordError(f"record kind is {self.kind!r}, not 'pair'", "kind")

    @property
    def correct_candidates(self) -> list[int] | None:
        """Indices of the candidates the label marks best; None when it marks none.

        A pair's first candidate, a ranking's best-ranked ones, a best-of-n record's
        correct ones (possibly none). Ties, ratings and unlabelled best-of-n records
        say nothing of the kind (None).
        """
        if self.kind == "pair":
            return [0]
        if self.kind == "ranking":
            best = min(self.ranks)
            return [i for i, r in enumerate(self.ranks) if r == best]
        if self.kind == "best-of-n" and self.correct is not None:
            return [i for i, ok in enumerate(self.correct) if ok]
        return None


# -- construction helpers ---------------------------------------------------
def message(role: str, content) -> Message:
    if not isinstance(role, str):
        raise RecordError(f"role must be a string, got {type(role).__name__}", "role")
    if role.lower() not in ROLES:
        raise RecordError(f"unknown role {role[:40]!r} (expected one of {', '.join(ROLES)})", "role")
    if not isinstance(content, str):
        raise RecordError(f"message content must be a string, got {type(content).__name__}", "content")
    return Message(role.lower(), content)


def as_conversation(value, field_name: str = "messages") -> Conversation:
    """Accept a string (one user turn), a list of dicts/Messages, or a Conversation."""
    if isinstance(value, str):
        return (message("user", value),)
    if not isinstance(value, (list, tuple)):
        raise RecordError(f"{field_name} must be a string or a list of messages, got {type(value).__name__}", field_name)
    out = []
    for i, m in enumerate(value):
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, dict):
            if "role" not in m or "content" not in m:
                raise RecordError(f"{field_name}[{i}] needs 'role' and 'content'", f"{field_name}[{i}]")
            try:
                out.append(message(m["role"], m["content"]))
            except RecordError as e:
                raise RecordError(f"{field_name}[{i}]: {e}", f"{field_name}[{i}].{e.field}") from None
        else:
            raise RecordError(f"{field_name}[{i}] must be a message object, got {type(m).__name__}", f"{field_name}[{i}]")
    return tuple(out)


def as_candidate(value, field_name: str) -> Conversation:
    """A candidate is an assistant string or a list of messages ending with an assistant turn."""
    if isinstance(value, str):
        return (Message("assistant", value),)
    conv = as_conversation(value, field_name)
    return conv


def make_pair(context, chosen, rejected, **kw) -> Record:
    return validate(Record(as_conversation(context, "context"), (as_candidate(chosen, "chosen"), as_candidate(rejected, "rejected")), "pair", **kw))


def check_response(candidate: Sequence[Message], name: str, field_name: str | None, *, allow_empty: bool = False) -> None:
    """The one rule for a scored continuation (ingest and the reward server alike).

    It must end with an assistant turn that is not empty or white space (``allow_empty``:
    a published benchmark row may have an empty one); else RecordError naming
    ``field_name`` (``name`` is how the message refers to it).
    """
    if not candidate:
        raise RecordError(f"{name} has no messages", field_name)
    if candidate[-1].role != "assistant":
        raise RecordError(f"{name} must end with an assistant message, ends with {candidate[-1].role!r}", field_name)
    if not allow_empty and not candidate[-1].content.strip():
        raise RecordError(f"{name} is an empty response", field_name)


def validate(rec: Record, *, allow_degenerate: bool = False) -> Record:
    """Check the invariants every stored record satisfies; raise RecordError naming the field.

    ``allow_degenerate`` accepts an empty response and two identical candidates: a
    published benchmark row is scored as published (the comparison then usually
    counts as wrong), while preference data for training never allows them.
    """
    if rec.kind not in KINDS:
        raise RecordError(f"kind must be one of {KINDS}, got {rec.kind!r}", "kind")
    n = len(rec.candidates)
    if n < 1 or (rec.kind in ("pair", "tie") and n != 2):
        raise RecordError(f"a {rec.kind} needs {'2' if rec.kind in ('pair', 'tie') else 'at least 1'} candidates, got {n}", "candidates")
    for i, cand in enumerate(rec.candidates):
        check_response(cand, f"candidate {i}", f"candidates[{i}]", allow_empty=allow_degenerate)
    for name, conv in (("context", rec.context), *((f"candidates[{i}]", c) for i, c in enumerate(rec.candidates))):
        for j, m in enumerate(conv):
            if LONE_SURROGATE.search(m.content):
                raise RecordError(f"{name} message {j} holds a lone surrogate (an unpaired \\u escape), which is not text", name)
    if not allow_degenerate and rec.kind in ("pair", "tie") and _norm_conv(rec.candidates[0]) == _norm_conv(rec.candidates[1]):
        raise RecordError("both candidates are identical", "candidates")
    if rec.kind == "ranking":
        if rec.ranks is None or len(rec.ranks) != n:
            raise RecordError(f"a ranking needs one rank per candidate ({n})", "ranks")
        if not all(isinstance(r, int) and not isinstance(r, bool) and _INT32[0] <= r <= _INT32[1] for r in rec.ranks):
            raise RecordError(f"ranks must be whole numbers of at most 32 bits, got {list(rec.ranks)[:10]}", "ranks")
    elif rec.ranks is not None:
        raise RecordError("ranks are only allowed on a ranking", "ranks")
    if rec.kind == "ratings":
        if rec.ratings is None or len(rec.ratings) != n:
            raise RecordError(f"ratings need one rating per candidate ({n})", "ratings")
        if any(r != r for r in rec.ratings):
            raise RecordError("ratings contain NaN", "ratings")
    elif rec.ratings is not None:
        raise RecordError("ratings are only allowed on a ratings record", "ratings")
    if rec.correct is not None:
        if rec.kind != "best-of-n":
            raise RecordError("correctness labels are only allowed on a best-of-n record", "correct")
        if len(rec.correct) != n or not all(isinstance(c, bool) for c in rec.correct):
            raise RecordError(f"correct needs one true/false label per candidate ({n})", "correct")
    if not (rec.weight >= 0):
        raise RecordError(f"weight must be >= 0, got {rec.weight}", "weight")
    if rec.margin is not None and rec.margin != rec.margin:
        raise RecordError("margin is NaN", "margin")
    return rec


# -- content id -------------------------------------------------------------
def _norm_text(s: str) -> str:
    return _norm_recent(s) if len(s) <= 100_000 else _normalised(s)


def _normalised(s: str) -> str:
    return " ".join(unicodedata.normalize("NFC", s).split())


# A freshly read record's texts are normalised three times (validate() by its format, by ingest, then
# its id): the last 64 texts are remembered (at most ~50 MB however long they are).
_norm_recent = functools.lru_cache(maxsize=64)(_normalised)


def _norm_conv(conv: Iterable[Message]) -> list[list[str]]:
    return [[m.role, _norm_text(m.content)] for m in conv]


def _digest(obj) -> str:
    # surrogatepass: an id exists even for text validate() refuses (the same bytes as UTF-8 otherwise)
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def content_id(rec: Record) -> str:
    """Stable id: hash of the normalised context, candidates and label.

    Normalisation is Unicode NFC plus collapsing runs of white space, so the same
    pair read from two sources (one with trailing newlines, say) gets one id. For
    ties, rankings and ratings the candidate order does not matter.
    """
    cands = [_norm_conv(c) for c in rec.candidates]
    if rec.kind == "pair":
        body = cands
    elif rec.kind == "tie":
        body = sorted(cands)
    else:
        labels = {"ranking": rec.ranks, "ratings": rec.ratings, "best-of-n": rec.correct}[rec.kind]
        body = sorted(zip(cands, labels)) if labels is not None else sorted(cands)
    return _digest({"k": rec.kind, "c": _norm_conv(rec.context), "r": body})


# -- expansion to pairs -----------------------------------------------------
def expand_to_pairs(rec: Record, *, rating_gap: float = 0.0, mode: str = "all") -> Iterator[Record]:
    """Turn one record into Bradley-Terry pairs, by one explicit rule.

    * pair -> itself.
    * tie -> nothing (a tie carries no preference; it stays a tie in the pool).
    * ranking -> for every i, j with ranks[i] < ranks[j], the pair (i over j).
      Equal ranks are ties and give no pair.
    * ratings -> for every i, j with ratings[i] - ratings[j] > rating_gap, the pair
      (i over j) with margin = ratings[i] - ratings[j].
    * best-of-n -> every correct answer over every incorrect one (as a ranking with
      correct answers rank 0, the others rank 1); without labels, nothing.

    ``mode`` limits which pairs a ranking or ratings record yields: ``all`` (every
    ordered pair above), ``best-vs-rest`` (only pairs whose winner is a best
    candidate), ``best-vs-worst`` (only best against worst). Each pair keeps the
    source record's provenance and weight; ``meta['expanded_from']`` is the source id.
    """
    if mode not in ("all", "best-vs-rest", "best-vs-worst"):
        raise ValueError(f"mode must be all, best-vs-rest or best-vs-worst, got {mode!r}")
    if rec.kind == "pair":
        yield rec
        return
    if rec.kind == "tie" or (rec.kind == "best-of-n" and rec.correct is None):
        return
    if rec.kind == "ranking":
        score = [-r for r in rec.ranks]
        gap = 0.0
    elif rec.kind == "best-of-n":
        score = [1 if ok else 0 for ok in rec.correct]
        gap = 0.0
    else:
        score = list(rec.ratings)
        gap = rating_gap
    best, worst = max(score), min(score)
    n = len(rec.candidates)
    for i in range(n):
        for j in range(n):
            diff = score[i] - score[j]
            if i == j or diff <= gap:
                continue
            if mode != "all" and score[i] != best:
                continue
            if mode == "best-vs-worst" and score[j] != worst:
                continue
            yield Record(
                rec.context,
                (rec.candidates[i], rec.candidates[j]),
                "pair",
                margin=float(diff) if rec.kind == "ratings" else None,
                weight=rec.weight,
                provenance=rec.provenance,
                meta={**rec.meta, "expanded_from": rec.id},
            )
