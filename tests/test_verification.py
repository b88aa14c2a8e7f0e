"""The human-verification contract (synpref.verification): its rule, both sides using it, and the three
bugs it fixes end to end (annotation app -> export -> import -> Stage 1), on SQLite and PostgreSQL."""

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from synpref.annotate import Policy, export_decisions, import_run
from synpref.annotate.assign import next_assignment
from synpref.annotate.db import assignments, pairs
from synpref.annotate.decisions import display_side, record
from synpref.annotate.users import add_user
from synpref.curate.cli import curate_group
from synpref.curate.run import run_curation, why
from synpref.curate.util import read_jsonl
from synpref.curate.verification import export_verification, read_pending
from synpref.schema import make_pair
from synpref.store.pool import PoolWriter
from synpref.verification import (
    ContractError,
    Decision,
    consensus,
    decision_row,
    latest_per_annotator,
    parse_decision,
    parse_decision_row,
    resolve,
    validate_pending_row,
)

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)


def dec(pair_id, annotator, decision, minutes=0):
    return Decision(pair_id, annotator, decision, T0 + timedelta(minutes=minutes))


# -- the rule ---------------------------------------------------------------------------------
def test_legacy_spellings_read_as_undecidable_and_only_canonical_names_are_written():
    for legacy in ("discard", "discarded", "cannot determine", " Cannot Determine "):
        assert parse_decision(legacy) == "undecidable"
    assert [parse_decision(v) for v in ("A", "B", "undecidable")] == ["A", "B", "undecidable"]
    for bad in ("maybe", "a", None, 1):
        with pytest.raises(ContractError, match="field 'decision'"):
            parse_decision(bad)
    row = decision_row("p1", "discarded", "ann1", datetime(2026, 1, 1, 10, 0), None)
    assert row == {"pair_id": "p1", "decision": "undecidable", "annotator": "ann1", "time": "2026-01-01T10:00:00+00:00", "note": None}
    assert parse_decision_row(row) == Decision("p1", "ann1", "undecidable", T0, None)


def test_decision_rows_name_the_broken_field():
    good = {"pair_id": "p1", "decision": "A", "annotator": "ann1", "time": "2026-01-01T10:00:00Z", "note": None}
    assert parse_decision_row(good).time == T0
    assert parse_decision_row({**good, "time": "2026-01-01T10:00:00"}).time == T0  # no offset: UTC
    for change, field in (({"time": "t"}, "time"), ({"time": None}, "time"), ({"annotator": ""}, "annotator"),
                          ({"pair_id": 3}, "pair_id"), ({"note": 5}, "note"), ({"decision": "C"}, "decision")):
        with pytest.raises(ContractError, match=f"field '{field}'"):
            parse_decision_row({**good, **change})
    with pytest.raises(ContractError, match="not a JSON object"):
        parse_decision_row(["A"])


def test_latest_decision_per_pair_and_annotator_is_by_time_not_reading_order():
    events = [dec("p1", "ann1", "B", minutes=60), dec("p1", "ann1", "A", minutes=0), dec("p1", "ann2", "A"), dec("p1", "ann2", "B")]
    current = latest_per_annotator(events)
    assert [(d.annotator, d.decision) for d in current] == [("ann1", "B"), ("ann2", "B")]  # equal times: the one read last


def test_strict_majority_consensus():
    assert consensus(["A", "A", "B", "undecidable"]) == "disputed"  # a plurality of half is no majority
    assert consensus(["A", "A", "B"]) == "A"
    assert consensus(["undecidable", "undecidable", "A"]) == "undecidable"
    assert consensus(["undecidable", "undecidable", "A", "B"]) == "disputed"
    assert consensus(["A", "B"]) == "disputed"
    assert consensus(["B"]) == "B"
    assert consensus([]) == "pending" and consensus(["A"], k=2) == "pending"


def test_resolve_counts_each_annotators_current_decision_once():
    got = resolve([dec("p1", "ann1", "A", 0), dec("p1", "ann1", "B", 60),  # a changed mind
                   dec("p2", "a1", "A"), dec("p2", "a2", "A"), dec("p2", "a3", "B"), dec("p2", "a4", "undecidable"),
                   dec("p3", "a1", "A"), dec("p3", "a1", "A"), dec("p3", "a2", "A")])  # the same line twice counts once
    assert got["p1"].to_dict() == {"decision": "B", "votes": {"B": 1}, "annotators": ["ann1"]}
    assert got["p2"].to_dict() == {"decision": "disputed", "votes": {"A": 2, "B": 1, "undecidable": 1}, "annotators": ["a1", "a2", "a3", "a4"]}
    assert got["p3"].to_dict() == {"decision": "A", "votes": {"A": 2}, "annotators": ["a1", "a2"]}


def test_pending_rows_are_validated_by_one_schema():
    row = {"pair_id": "p1", "batch": "batch-000", "priority": 0, "context": [{"role": "user", "content": "hi"}],
           "response_a": "a", "response_b": "b", "attributes": None, "llm_precheck": {"label": "A", "confidence": 0.8}}
    assert validate_pending_row(row) is row
    for change, field in (({"priority": True}, "priority"), ({"response_b": None}, "response_b"), ({"pair_id": ""}, "pair_id"),
                          ({"context": [{"role": "robot", "content": "x"}]}, "context"), ({"attributes": []}, "attributes"),
                          ({"llm_precheck": {"label": "C"}}, "llm_precheck")):
        with pytest.raises(ContractError, match=f"field '{field}'"):
            validate_pending_row({**row, **change})
    with pytest.raises(ContractError, match="field 'answer'"):
        validate_pending_row(row, check=True)
    assert validate_pending_row({**row, "answer": "B"}, check=True)


def test_the_curation_side_validates_pending_rows_too(tmp_path):
    rec = make_pair("a question?", "a long answer", "short")
    with pytest.raises(ContractError, match=f"pair '{rec.id}'.*llm_precheck"):
        export_verification(tmp_path, [{"record": rec, "llm_precheck": {"label": "maybe"}}])
    path = export_verification(tmp_path, [{"record": rec}])
    assert [r["pair_id"] for r in read_pending(tmp_path, path.stem)] == [rec.id]
    row = json.loads(path.read_text())
    path.write_text(json.dumps(row) + "\n" + json.dumps({**row, "priority": "first"}) + "\n")
    with pytest.raises(ContractError, match=rf"{path.name}:2: field 'priority'"):
        read_pending(tmp_path, path.stem)


# -- reading files -------------------------------------------------------------------------------
def test_read_jsonl_reports_every_unreadable_line_and_flags_a_torn_last_one(tmp_path, caplog):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\nnot json\n[1]\n\n{"b": 2}\n{"c": 3, "d')
    bad = []
    assert list(read_jsonl(path, bad)) == [{"a": 1}, {"b": 2}]
    assert [(b.line, b.torn) for b in bad] == [(2, False), (3, False), (6, True)]
    assert "not valid JSON" in bad[0].error and "torn" in str(bad[2]) and str(bad[0]).startswith(f"{path}:2: ")
    with caplog.at_level(logging.WARNING, logger="synpref.curate.util"):
        assert list(read_jsonl(path)) == [{"a": 1}, {"b": 2}]  # without a list to collect them: one warning each
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all(f"{path}:{n}: " in m for n, m in zip((2, 3, 6), messages))


def test_import_cli_prints_each_pairs_outcome_and_every_bad_line(tmp_path):
    run = tmp_path / "run"
    (run / "verification" / "decisions").mkdir(parents=True)
    t = "2026-01-01T10:00:00Z"
    lines = [json.dumps({"pair_id": "p1", "decision": "cannot determine", "annotator": "ann1", "time": t, "note": None}),
             json.dumps({"pair_id": "p2", "decision": "discarded", "annotator": "ann1", "time": t}),
             json.dumps({"pair_id": "p3", "decision": "A", "annotator": "ann1", "time": t}),
             "this is not json",
             json.dumps({"pair_id": "p3", "decision": "A", "annotator": "ann2"}),  # no time
             '{"pair_id": "p4", "decis']  # torn: a copy still being written
    src = tmp_path / "x.jsonl"
    src.write_text("\n".join(lines))
    res = CliRunner().invoke(curate_group, ["import-verification", str(run), str(src)])
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["decisions"] == {"p1": {"decision": "undecidable", "votes": {"undecidable": 1}, "annotators": ["ann1"]},
                                "p2": {"decision": "undecidable", "votes": {"undecidable": 1}, "annotators": ["ann1"]},
                                "p3": {"decision": "A", "votes": {"A": 1}, "annotators": ["ann1"]}}
    copied = str(run / "verification" / "decisions" / "x.jsonl")
    assert out["invalid_rows"] == 3
    assert [(b["file"], b["line"], b["torn"]) for b in out["invalid"]] == [(copied, 4, False), (copied, 5, False), (copied, 6, True)]
    assert "field 'time'" in out["invalid"][1]["error"]
    for n in (4, 5, 6):
        assert f"x.jsonl:{n}: " in res.stderr
    assert "3 decision line(s) not imported" in res.stderr


def test_import_cli_refuses_a_file_that_is_not_jsonl_and_copies_nothing(tmp_path):
    run = tmp_path / "run"
    (run / "verification" / "decisions").mkdir(parents=True)
    (run / "config.yaml").write_text("{}")
    src = tmp_path / "decisions.csv"
    src.write_text("pair_id,decision\np1,A\n")
    res = CliRunner().invoke(curate_group, ["import-verification", str(run), str(src)])
    assert res.exit_code == 2
    assert "decisions.csv is not a .jsonl decisions file" in res.output and "Traceback" not in res.output
    assert list((run / "verification" / "decisions").iterdir()) == []


# -- end to end: annotation app -> export -> import -> Stage 1 (the ``engine`` fixture: SQLite and PostgreSQL) --
def _config(tmp_path, server_url, tiny_bert_dir):
    with PoolWriter(tmp_path / "pool") as w:
        w.write_all(make_pair(f"Question {i}: what should I know about topic {i}?", f"A careful, detailed answer about topic {i} with examples.",
                              f"no idea {i}") for i in range(20))
    return {
        "pool": str(tmp_path / "pool"),
        "prep": {"enabled": True, "decontaminate": False},
        "endpoints": [{"base_url": server_url, "model": "fake", "backoff": 0.01, "concurrency": 2}],
        "judge": {"n_samples": 1, "max_examples": 0},
        "attributes": {"enabled": False},
        "rm": {"model": str(tiny_bert_dir), "max_length": 48, "epochs": 1.0, "train_top_layers": 0, "pairs_per_step": 8,
               "precision": "fp32", "eval_fraction": 0.0, "progress": False, "tensorboard": False, "learning_rate": 1e-3},
        "stage1": {"iterations": 1, "human": "files", "seed_gold": 3, "verify_budget": 0, "silver_init": 8, "k_max": 2},
        "stage2": {"enabled": False},
    }


def _decide(engine, user_id, policy, script):
    """The annotator takes pairs in the app's order and decides (in source sides) those the script names."""
    held = {}
    while (a := next_assignment(engine, user_id, policy)) is not None:
        with engine.connect() as conn:
            pair_id, shown = conn.execute(select(pairs.c.pair_id, assignments.c.shown_as_a)
                                          .join(pairs, pairs.c.id == assignments.c.pair_pk).where(assignments.c.id == a)).first()
        held[pair_id] = (a, shown)
        if pair_id not in script:
            break  # keeps the assignment open, undecided
        record(engine, user_id=user_id, assignment_id=a, choice=display_side(script[pair_id], shown), note=None)
    return held


def test_human_decisions_reach_stage1_through_the_app(tmp_path, tiny_bert_dir, engine):
    from synpref.annotate import stats
    from synpref.llm.testing import FakeOpenAIServer, scripted_judge

    run = tmp_path / "run"
    with FakeOpenAIServer(scripted_judge) as srv:
        cfg = _config(tmp_path, srv.base_url, tiny_bert_dir)
        assert run_curation(cfg, run)["status"].startswith("waiting")
        disputed, relabelled, changed = [r["pair_id"] for r in read_pending(run, "batch-000")]

        # the annotation app: four annotators; the pool says "A" for every pair
        assert import_run(engine, run).added == 3
        people = {name: add_user(engine, name, "password1") for name in ("ann1", "ann2", "ann3", "ann4")}
        policy = Policy(k=4, gold_every=0)
        votes = {"ann1": "A", "ann2": "A", "ann3": "B", "ann4": "undecidable"}
        held = {}
        for name, uid in people.items():
            script = {disputed: votes[name], relabelled: "B"}
            if name == "ann1":
                script[changed] = "A"
            held[name] = _decide(engine, uid, policy, script)
        first = export_decisions(engine, run, k=1)
        a, shown = held["ann1"][changed]
        record(engine, user_id=people["ann1"], assignment_id=a, choice=display_side("B", shown), note="changed my mind")
        second = export_decisions(engine, run, k=1)
        later = [json.loads(x) for x in second.read_text().splitlines()]
        assert [(x["pair_id"], x["annotator"], x["decision"]) for x in later] == [(changed, "ann1", "B")]

        # a decisions file with a line that is not JSON: reported with file and line, and Stage 1 waits for the fix
        original = first.read_text()
        broken = original.splitlines(keepends=True)
        n = next(i for i, x in enumerate(broken) if json.loads(x)["pair_id"] == relabelled) + 1
        broken[n - 1] = broken[n - 1][: len(broken[n - 1]) // 2] + "\n"
        first.write_text("".join(broken))
        res = CliRunner().invoke(curate_group, ["import-verification", str(run)])
        assert res.exit_code == 1 and f"{first.name}:{n}: not valid JSON" in res.stderr
        out = json.loads(res.stdout)
        assert out["invalid_rows"] == 1 and (out["invalid"][0]["file"], out["invalid"][0]["line"]) == (str(first), n)
        summ = run_curation(cfg, run)
        assert summ["status"].startswith("waiting") and f"{first}:{n}: not valid JSON" in summ["status"]
        first.write_text(original)

        res = CliRunner().invoke(curate_group, ["import-verification", str(run)])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["invalid_rows"] == 0 and out["invalid"] == []
        assert out["decisions"][changed] == {"decision": "B", "votes": {"B": 1}, "annotators": ["ann1"]}
        assert out["decisions"][disputed] == {"decision": "disputed", "votes": {"A": 2, "B": 1, "undecidable": 1},
                                              "annotators": ["ann1", "ann2", "ann3", "ann4"]}
        assert out["decisions"][relabelled]["decision"] == "B" and out["decisions"][relabelled]["votes"] == {"B": 4}
        # the app applies the same rule
        prog = stats.progress(engine, k=1)
        assert (prog["verified_a"], prog["verified_b"], prog["disputed"], prog["undecidable"]) == (0, 2, 1, 0)

        assert run_curation(cfg, run)["status"] == "done"
    gold = json.loads((run / "labels" / "gold.json").read_text())
    assert gold[changed]["label"] == "B" and gold[changed]["source"] == "human"  # the later decision replaced the earlier one
    assert gold[relabelled]["label"] == "B"  # the human label, not the pool's "A"
    assert disputed not in gold  # no strict majority: never labelled
    assert disputed in json.loads((run / "state.json").read_text())["rejected"]
    seed = {e["pair_id"]: e for e in read_jsonl(run / "ledger" / "stage1__seed.jsonl")}
    assert seed[disputed]["decision"] == "discarded" and "disputed" in seed[disputed]["reason"]
    w = why(run, disputed)
    assert w["status"] == "out" and w["human"]["decision"] == "disputed"
