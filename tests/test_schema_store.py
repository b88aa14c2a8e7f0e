"""Records: validation, content ids, expansion rules, and lossless Parquet round trips."""

import pyarrow.parquet as pq
import pytest

from synpref.schema import Message, Provenance, Record, RecordError, expand_to_pairs, make_pair, validate
from synpref.store import RECORD_SCHEMA, PoolWriter, count_pool, read_pool


def _cands(*texts):
    return tuple((Message("assistant", t),) for t in texts)


def test_content_id_is_stable_across_whitespace_and_sources():
    a = make_pair("What is 2+2?", "4", "5", provenance=Provenance("a.jsonl", 3, "x"))
    b = make_pair("What is  2+2?\n", "4 ", "5", provenance=Provenance("b.jsonl", 9, "y"))
    assert a.id == b.id
    assert a.id != make_pair("What is 2+2?", "5", "4").id  # the label is part of the identity


def test_tie_and_ranking_ids_ignore_candidate_order():
    ctx = (Message("user", "q"),)
    t1 = validate(Record(ctx, _cands("x", "y"), "tie"))
    t2 = validate(Record(ctx, _cands("y", "x"), "tie"))
    assert t1.id == t2.id
    r1 = validate(Record(ctx, _cands("x", "y", "z"), "ranking", ranks=(0, 1, 2)))
    r2 = validate(Record(ctx, _cands("z", "x", "y"), "ranking", ranks=(2, 0, 1)))
    assert r1.id == r2.id


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"kind": "pair", "cands": ("same", "same")}, "candidates"),
        ({"kind": "pair", "cands": ("ok", "   ")}, "candidates[1]"),
        ({"kind": "ranking", "cands": ("a", "b"), "ranks": (0,)}, "ranks"),
        ({"kind": "ratings", "cands": ("a", "b"), "ratings": (1.0, float("nan"))}, "ratings"),
        ({"kind": "nonsense", "cands": ("a", "b")}, "kind"),
        ({"kind": "best-of-n", "cands": ("a", "b"), "correct": (True,)}, "correct"),
        ({"kind": "pair", "cands": ("a", "b"), "correct": (True, False)}, "correct"),
    ],
)
def test_validate_names_the_field(kwargs, field):
    rec = Record(
        (Message("user", "q"),),
        _cands(*kwargs["cands"]),
        kwargs["kind"],
        ranks=kwargs.get("ranks"),
        ratings=kwargs.get("ratings"),
        correct=kwargs.get("correct"),
    )
    with pytest.raises(RecordError) as err:
        validate(rec)
    assert err.value.field == field


def test_expansion_rule_for_ratings_ranking_and_ties():
    ctx = (Message("user", "q"),)
    ratings = validate(Record(ctx, _cands("a", "b", "c"), "ratings", ratings=(3.0, 1.0, 1.0)))
    pairs = [(p.chosen[-1].content, p.rejected[-1].content, p.margin) for p in expand_to_pairs(ratings)]
    assert pairs == [("a", "b", 2.0), ("a", "c", 2.0)]  # b and c tie: no pair between them
    assert list(expand_to_pairs(ratings, rating_gap=2.0)) == []
    ranking = validate(Record(ctx, _cands("a", "b", "c"), "ranking", ranks=(1, 0, 2)))
    got = [(p.chosen[-1].content, p.rejected[-1].content) for p in expand_to_pairs(ranking)]
    assert got == [("a", "c"), ("b", "a"), ("b", "c")]
    best_worst = [(p.chosen[-1].content, p.rejected[-1].content) for p in expand_to_pairs(ranking, mode="best-vs-worst")]
    assert best_worst == [("b", "c")]
    tie = validate(Record(ctx, _cands("a", "b"), "tie"))
    assert list(expand_to_pairs(tie)) == []
    assert all(p.meta["expanded_from"] == ranking.id for p in expand_to_pairs(ranking))


def test_allow_degenerate_accepts_empty_and_identical_candidates_only():
    ctx = (Message("user", "q"),)
    for cands in (_cands("same", "same"), _cands("ok", "  ")):
        rec = Record(ctx, cands, "pair")
        with pytest.raises(RecordError):
            validate(rec)
        assert validate(rec, allow_degenerate=True) is rec
    with pytest.raises(RecordError, match="end with an assistant"):
        validate(Record(ctx, ((Message("user", "x"),), (Message("assistant", "y"),)), "pair"), allow_degenerate=True)


def test_best_of_n_correctness_expansion_and_ids():
    ctx = (Message("user", "q"),)
    rec = validate(Record(ctx, _cands("a", "b", "c"), "best-of-n", correct=(True, False, True)))
    assert rec.correct_candidates == [0, 2]
    assert [(p.chosen[-1].content, p.rejected[-1].content, p.margin) for p in expand_to_pairs(rec)] == [("a", "b", None), ("c", "b", None)]
    swapped = validate(Record(ctx, _cands("c", "a", "b"), "best-of-n", correct=(True, True, False)))
    unlabelled = validate(Record(ctx, _cands("a", "b", "c"), "best-of-n"))
    assert rec.id == swapped.id and rec.id != unlabelled.id  # order-free, and the labels are part of the identity
    assert unlabelled.correct_candidates is None and list(expand_to_pairs(unlabelled)) == []
    none_right = validate(Record(ctx, _cands("a", "b"), "best-of-n", correct=(False, False)))
    assert none_right.correct_candidates == []  # unlike a ranking, "none is correct" is expressible
    ranking = validate(Record(ctx, _cands("a", "b", "c"), "ranking", ranks=(1, 0, 0)))
    assert ranking.correct_candidates == [1, 2] and make_pair("q", "a", "b").correct_candidates == [0]


def test_pool_round_trip_is_lossless(tmp_path):
    ctx = (Message("system", "be brief"), Message("user", "héllo ✓"), Message("assistant", "hi"), Message("user", "again"))
    records = [
        make_pair(ctx, "yes", "no", margin=0.5, weight=2.0, provenance=Provenance("f.jsonl", 7, "trl"), meta={"k": [1, 2]}),
        validate(Record(ctx, _cands("a", "b"), "tie", provenance=Provenance("g", 1, "arena"))),
        validate(Record(ctx, _cands("a", "b", "c"), "ranking", ranks=(0, 1, 1))),
        validate(Record(ctx, _cands("a", "b"), "ratings", ratings=(4.5, 1.25))),
        validate(Record(ctx, _cands("a", "b", "c"), "best-of-n", correct=(False, True, False))),
        validate(Record(ctx, _cands("a", "b"), "best-of-n")),
        validate(Record(ctx[:2], ((Message("assistant", "x"), Message("user", "y"), Message("assistant", "z")),) + _cands("w"), "pair")),
    ]
    with PoolWriter(tmp_path / "pool", row_group_size=2) as writer:
        writer.write_all(records)
    back = list(read_pool(tmp_path / "pool"))
    assert back == records
    assert [r.meta for r in back] == [r.meta for r in records]
    assert [r.id for r in back] == [r.id for r in records]
    assert count_pool(tmp_path / "pool") == 7
    schema = pq.read_schema(next((tmp_path / "pool").glob("part-*.parquet")))
    assert schema.equals(RECORD_SCHEMA, check_metadata=False)


def test_pool_writer_shards(tmp_path):
    recs = [make_pair(f"q{i}", "a", "b") for i in range(25)]
    with PoolWriter(tmp_path, row_group_size=4, rows_per_shard=10) as w:
        w.write_all(recs)
    assert len(list(tmp_path.glob("part-*.parquet"))) == 3
    assert [r.id for r in read_pool(tmp_path)] == [r.id for r in recs]


def test_pool_shard_written_before_correct_existed_still_reads(tmp_path):
    import pyarrow as pa

    from synpref.store import record_to_row

    rec = make_pair("q", "a", "b", provenance=Provenance("f.jsonl", 1, "x"))
    row = {k: v for k, v in record_to_row(rec).items() if k != "correct"}
    old_schema = pa.schema([f for f in RECORD_SCHEMA if f.name != "correct"], metadata={"synpref.schema": "record/1"})
    pq.write_table(pa.Table.from_pylist([row], schema=old_schema), tmp_path / "part-00000.parquet")
    assert list(read_pool(tmp_path)) == [rec]
