"""Annotation store and logic on SQLite and on a throwaway PostgreSQL."""

import json
from itertools import islice

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from synpref.annotate import Policy, export_decisions, import_run
from synpref.annotate.agreement import agreement, cohen_kappa, krippendorff_alpha
from synpref.annotate.assign import next_assignment
from synpref.annotate.db import assignments, decisions, pairs
from synpref.annotate.decisions import record, translate
from synpref.annotate.protocol import tier
from synpref.annotate.testing import pending_pairs, write_run
from synpref.annotate.users import UserError, add_user, authenticate, list_users, set_active
from synpref.verification import consensus


@pytest.fixture(scope="module")
def records(shared_data):
    from synpref.ingest import read_records

    return list(islice(read_records([shared_data / "hh-rlhf" / "train-sample" / "helpful_train_sample.jsonl"], errors=[]), 60))


@pytest.fixture
def run_dir(tmp_path, records):
    checks = [dict(p, pair_id="check-" + p["pair_id"], batch="checks", answer="A") for p in pending_pairs(records[40:], 3, seed=7)]
    return write_run(tmp_path / "run", pending_pairs(records, 12), checks)


# -- pure logic -----------------------------------------------------------------
def test_translate_maps_display_side_to_source_side():
    assert translate("A", "response_a") == "A"
    assert translate("A", "response_b") == "B"
    assert translate("B", "response_b") == "A"
    assert translate("undecidable", "response_b") == "undecidable"


def test_protocol_tier_puts_objective_low_controversy_first():
    order = sorted(
        [None, {"objectivity": "subjective", "controversiality": "low"}, {"objectivity": "objective", "controversiality": "high"},
         {"objectivity": "objective", "controversiality": "low"}], key=tier)
    assert order[0] == {"objectivity": "objective", "controversiality": "low"}
    assert order[-1] is None


def test_consensus_discards_undecidable_and_marks_disputes():
    assert consensus(["A"], 2) == "pending"
    assert consensus(["A", "A"], 2) == "A"
    assert consensus(["A", "B"], 2) == "disputed"
    assert consensus(["undecidable", "undecidable"], 2) == "undecidable"
    assert consensus(["B", "B", "undecidable"], 3) == "B"


def test_agreement_metrics_match_reference_values():
    # perfect agreement and a textbook kappa: po = 0.7, pe = 0.5 -> 0.4
    assert cohen_kappa([("A", "A"), ("B", "B")]) == 1.0
    pairs_ = [("A", "A")] * 4 + [("B", "B")] * 3 + [("A", "B")] * 2 + [("B", "A")]
    assert cohen_kappa(pairs_) == pytest.approx(0.4)
    # value checked against the `krippendorff` package (nominal) during development
    units = [["A", "A", "B"], ["B", "B"], ["A", "A", "A"], ["undecidable", "B"], ["A"]]
    assert krippendorff_alpha(units) == pytest.approx(0.3793103448, abs=1e-9)
    assert krippendorff_alpha([["A", "A"], ["A", "A"]]) is None
    assert agreement({1: {"x": "A", "y": "A"}, 2: {"x": "B", "y": "A"}})["metric"] == "cohen_kappa"
    assert agreement({1: {"x": "A", "y": "A"}, 2: {"z": "B", "y": "A"}})["metric"] == "krippendorff_alpha"


# -- store ------------------------------------------------------------------------
def test_import_is_idempotent_and_reports_bad_lines(engine, run_dir):
    bad = run_dir / "verification" / "pending" / "batch-002.jsonl"
    bad.write_text('{"pair_id": "x"}\nnot json\n')
    first = import_run(engine, run_dir)
    assert (first.added, len(first.errors)) == (15, 2)
    again = import_run(engine, run_dir)
    assert again.added == 0
    with engine.connect() as conn:
        assert conn.execute(select(pairs.c.id)).all().__len__() == 15
        assert conn.execute(select(pairs.c.id).where(pairs.c.is_check == True)).all().__len__() == 3  # noqa: E712


def test_assignment_respects_k_priority_and_never_repeats(engine, run_dir):
    import_run(engine, run_dir)
    policy = Policy(k=2, gold_every=0)
    people = [add_user(engine, f"u{i}", "password1") for i in range(3)]
    seen = {u: [] for u in people}
    for _round in range(20):
        for u in people:
            a = next_assignment(engine, u, policy)
            if a is None:
                continue
            assert next_assignment(engine, u, policy) == a  # open assignment is served again
            record(engine, user_id=u, assignment_id=a, choice="A", note=None)
            with engine.connect() as conn:
                seen[u].append(conn.execute(select(assignments.c.pair_pk).where(assignments.c.id == a)).scalar())
    for got in seen.values():
        assert len(got) == len(set(got)), "a pair was given twice to one annotator"
    with engine.connect() as conn:
        holders = conn.execute(text("SELECT pair_pk, COUNT(*) FROM assignments GROUP BY pair_pk")).all()
        first = conn.execute(select(pairs.c.id).where(pairs.c.is_check == False).order_by(pairs.c.priority, pairs.c.tier, pairs.c.id)).scalar()  # noqa: E712
    assert all(n == 2 for _, n in holders) and len(holders) == 12
    assert seen[people[0]][0] == first


def test_gold_checks_are_mixed_in(engine, run_dir):
    import_run(engine, run_dir)
    u = add_user(engine, "checked", "password1")
    kinds = []
    for _ in range(9):
        a = next_assignment(engine, u, Policy(k=1, gold_every=2))
        with engine.connect() as conn:
            kinds.append(conn.execute(select(pairs.c.is_check).join(assignments, assignments.c.pair_pk == pairs.c.id).where(assignments.c.id == a)).scalar())
        record(engine, user_id=u, assignment_id=a, choice="A", note=None)
    assert [bool(k) for k in kinds] == [False, False, True, False, False, True, False, False, True]


def test_decisions_are_append_only_and_idempotent(engine, run_dir):
    import_run(engine, run_dir)
    u = add_user(engine, "ann", "password1")
    a = next_assignment(engine, u, Policy())
    first = record(engine, user_id=u, assignment_id=a, choice="A", note="n", submission_id="s1")
    again = record(engine, user_id=u, assignment_id=a, choice="A", note="n", submission_id="s1")
    assert again.duplicate and again.decision_id == first.decision_id
    record(engine, user_id=u, assignment_id=a, choice="B", note=None, submission_id="s2")  # a changed mind
    with engine.connect() as conn:
        assert conn.execute(select(decisions.c.choice_shown).order_by(decisions.c.id)).scalars().all() == ["A", "B"]
    for sql in ("UPDATE decisions SET decision = 'B'", "DELETE FROM decisions"):
        with pytest.raises(DBAPIError):
            with engine.begin() as conn:
                conn.execute(text(sql))


def test_export_follows_the_contract_and_is_incremental(engine, run_dir):
    import_run(engine, run_dir)
    alice, bob = add_user(engine, "alice", "password1"), add_user(engine, "bob", "password1")
    policy = Policy(k=2, gold_every=0)
    chosen = {}
    for u in (alice, bob):
        a = next_assignment(engine, u, policy)
        with engine.connect() as conn:
            shown = conn.execute(select(assignments.c.shown_as_a, pairs.c.pair_id).join(pairs, pairs.c.id == assignments.c.pair_pk).where(assignments.c.id == a)).first()
        record(engine, user_id=u, assignment_id=a, choice="A", note="checked by hand" if u == alice else None)
        chosen[u] = (shown.pair_id, "A" if shown.shown_as_a == "response_a" else "B")
    assert chosen[alice][0] == chosen[bob][0]  # k = 2: both got the first pair
    path = export_decisions(engine, run_dir, k=2)
    assert path.parent == run_dir / "verification" / "decisions" and path.suffix == ".jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [set(x) for x in lines] == [{"pair_id", "decision", "annotator", "time", "note"}] * 2
    by = {x["annotator"]: x for x in lines}
    assert by["alice"]["decision"] == chosen[alice][1] and by["bob"]["decision"] == chosen[bob][1]
    assert by["alice"]["note"] == "checked by hand" and by["bob"]["note"] is None
    assert by["alice"]["time"].endswith("+00:00")
    assert export_decisions(engine, run_dir, k=2) is None  # nothing new
    assert len(export_decisions(engine, run_dir, k=2, everything=True).read_text().splitlines()) == 2


def test_users_hash_passwords_and_can_be_disabled(engine):
    add_user(engine, "carol", "s3cret-pass", "admin")
    with pytest.raises(UserError):
        add_user(engine, "carol", "another-pass")
    with pytest.raises(UserError):
        add_user(engine, "dave", "short")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE username = 'carol'")).scalar()
    assert stored.startswith("$argon2") and "s3cret" not in stored
    assert authenticate(engine, "carol", "s3cret-pass") is not None
    assert authenticate(engine, "carol", "wrong") is None
    set_active(engine, "carol", False)
    assert authenticate(engine, "carol", "s3cret-pass") is None
    assert list_users(engine)[0]["active"] is False


def test_expired_lease_frees_the_slot_but_never_for_the_same_annotator(engine, run_dir):
    import_run(engine, run_dir)
    policy = Policy(k=1, gold_every=0, lease_minutes=30)
    slow, quick = add_user(engine, "slow", "password1"), add_user(engine, "quick", "password1")
    held = next_assignment(engine, slow, policy)
    with engine.connect() as conn:
        held_pair = conn.execute(select(assignments.c.pair_pk).where(assignments.c.id == held)).scalar()
    taken = next_assignment(engine, quick, policy)
    with engine.connect() as conn:
        assert conn.execute(select(assignments.c.pair_pk).where(assignments.c.id == taken)).scalar() != held_pair
    record(engine, user_id=quick, assignment_id=taken, choice="A", note=None)
    with engine.begin() as conn:  # the slow annotator's lease runs out
        conn.execute(text("UPDATE assignments SET assigned_at = :t WHERE id = :i"), {"t": "2000-01-01 00:00:00", "i": held})
    again = next_assignment(engine, quick, policy)
    with engine.connect() as conn:
        assert conn.execute(select(assignments.c.pair_pk).where(assignments.c.id == again)).scalar() == held_pair
    assert next_assignment(engine, slow, policy) == held  # still theirs to finish; accepted late
    record(engine, user_id=slow, assignment_id=held, choice="B", note=None)


def test_admin_numbers_progress_agreement_and_check_accuracy(engine, run_dir):
    from synpref.annotate import stats

    import_run(engine, run_dir)
    policy = Policy(k=2, gold_every=2)
    people = [add_user(engine, n, "password1") for n in ("x", "y")]
    for _ in range(6):
        for u in people:
            a = next_assignment(engine, u, policy)
            with engine.connect() as conn:
                shown, is_check = conn.execute(select(assignments.c.shown_as_a, pairs.c.is_check).join(pairs, pairs.c.id == assignments.c.pair_pk).where(assignments.c.id == a)).first()
            # both always pick the source response_a: perfect agreement, all checks right (answer A)
            record(engine, user_id=u, assignment_id=a, choice="A" if shown == "response_a" else "B", note=None)
    prog = stats.progress(engine, k=2)
    assert prog["pairs"] == 12 and prog["complete"] == 4 and prog["verified_a"] == 4 and prog["decisions_collected"] == 8
    rows = {r["username"]: r for r in stats.annotators(engine)}
    assert rows["x"]["decisions"] == 4 and rows["x"]["checks"] == 2 and rows["x"]["check_accuracy"] == 1.0
    report = stats.agreement_report(engine)
    assert report["overall"]["metric"] == "cohen_kappa" and report["overall"]["n_items"] == 4
    assert sum(a["n_items"] for a in report["per_category"].values()) == 4


def test_llm_hint_only_for_objective_pairs_and_on_the_displayed_side(engine, tmp_path, records):
    from synpref.annotate.pair_view import pair_view

    base = pending_pairs(records, 2)
    objective = dict(base[0], pair_id="obj", priority=0, attributes=dict(base[0]["attributes"] or {}, objectivity="objective"),
                     llm_precheck={"label": "A", "confidence": 0.9})
    subjective = dict(base[1], pair_id="subj", priority=1, attributes=dict(base[1]["attributes"] or {}, objectivity="subjective"),
                      llm_precheck={"label": "A", "confidence": 0.9})
    run = write_run(tmp_path / "hint-run", [objective, subjective])
    import_run(engine, run)
    u = add_user(engine, "viewer", "password1")
    views = []
    for _ in range(2):
        a = next_assignment(engine, u, Policy(k=1, gold_every=0))
        with engine.connect() as conn:
            shown_as_a = conn.execute(select(assignments.c.shown_as_a).where(assignments.c.id == a)).scalar()
        views.append((pair_view(engine, a, u), shown_as_a))
        record(engine, user_id=u, assignment_id=a, choice="A", note=None)
    (obj_view, shown), (subj_view, _) = views
    assert obj_view["hint"]["label"] == ("A" if shown == "response_a" else "B")
    assert obj_view["A"] == (objective["response_a"] if shown == "response_a" else objective["response_b"])
    assert subj_view["hint"] is None
    assert pair_view(engine, obj_view["assignment_id"], u + 1000) is None  # not theirs
