"""Every command, given a bad path, an empty input and a typo, ends in one ``Error:`` line and a non-zero
exit, never a traceback; and the one place that decides this (``synpref.cli.SynprefGroup``).

No model is trained or loaded here: every case fails before that.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from synpref.cli import main
from synpref.schema import make_pair
from synpref.store.pool import PoolWriter

# (case name, arguments, a fragment of the expected error line); paths are relative to the test's folder.
CASES = {
    "ingest": [
        ("bad path", ["ingest", "nope.jsonl", "-o", "out"], "does not exist"),
        ("empty input", ["ingest", "empty.jsonl", "-o", "out"], "empty.jsonl"),
        ("typo", ["ingest", "pairs.jsonl", "-o", "out", "--format", "prompt-chosen-rejectd"], "unknown format"),
    ],
    "train": [
        ("bad path", ["train", "--data", "nope", "-o", "run"], "'nope' does not exist"),
        ("empty input", ["train", "--data", "empty_pool", "-o", "run"], "holds no records to train on: its ingest read 0"),
        ("typo", ["train", "--data", "pool", "--model", "minilmm", "-o", "run"], "did you mean 'minilm'?"),
        ("typo in a value", ["train", "--data", "pool", "--length-policy", "truncat", "-o", "run"], "--length-policy='truncat'"),
    ],
    "score": [
        ("bad path", ["score", "minilm", "--input", "nope.jsonl"], "does not exist"),
        ("empty input", ["score", "minilm", "--input", "empty.jsonl"], "nothing to score"),
        ("typo", ["score", "minilmm", "--input", "pool"], "did you mean 'minilm'?"),
    ],
    "eval": [
        ("bad path", ["eval", "minilm", "--pairs", "nope.jsonl", "-o", "ev"], "does not exist"),
        ("empty input", ["eval", "minilm", "--pairs", "empty.jsonl", "-o", "ev"], "nothing to evaluate"),
        ("typo", ["eval", "minilm", "--bench", "judgbench", "-o", "ev"], "did you mean judgebench?"),
        ("typo in the model", ["eval", "minilmm", "--pairs", "pairs.jsonl", "-o", "ev"], "did you mean 'minilm'?"),
    ],
    "report": [
        ("bad path", ["report", "nope"], "does not exist"),
        ("empty input", ["report", "empty_dir"], "no results.json"),
        ("typo", ["report", "empty_dir", "--recompte"], "Did you mean '--recompute'?"),
    ],
    "serve": [
        ("bad path", ["serve", "runs/rm/model"], "no such checkpoint folder"),
        ("empty input", ["serve", "empty_dir"], "is a folder but not a checkpoint"),
        ("typo", ["serve", "minilmm"], "did you mean 'minilm'?"),
    ],
    "bon": [
        ("bad path", ["bon", "minilm", "--input", "nope.jsonl", "-o", "bon.jsonl"], "does not exist"),
        ("empty input", ["bon", "minilm", "--input", "empty.jsonl", "-o", "bon.jsonl"], "no prompt with two or more candidates"),
        ("typo", ["bon", "smollm2", "--input", "candidates.jsonl", "-o", "bon.jsonl"], "did you mean 'smollm2-135m'?"),
    ],
    "demo": [
        ("bad path", ["demo", "--model", "runs/rm/model", "-o", "demo"], "no such checkpoint folder"),
        ("empty input", ["demo", "--model", "empty_dir", "-o", "demo"], "is a folder but not a checkpoint"),
        ("typo", ["demo", "--model", "minilmm", "-o", "demo"], "did you mean 'minilm'?"),
    ],
    "convert-gguf": [
        ("bad path", ["convert-gguf", "nope.gguf"], "does not exist"),
        ("empty input", ["convert-gguf", "empty.gguf"], "is not a GGUF file"),
        ("typo", ["convert-gguf", "pairs.jsonl"], "is not a GGUF file"),
    ],
    "curate prep": [
        ("bad path", ["curate", "prep", "nope", "-o", "prepped"], "does not exist"),
        ("empty input", ["curate", "prep", "empty_dir", "-o", "prepped"], "no pool shards"),
        ("typo", ["curate", "prep", "pool", "-o", "prepped", "--data-dir", "../shared/dat"], "does not exist"),
    ],
    "curate run": [
        ("bad path", ["curate", "run", "nope.yaml", "-o", "crun"], "does not exist"),
        ("empty input", ["curate", "run", "empty.yaml", "-o", "crun"], "needs 'pool'"),
        ("typo", ["curate", "run", "typo.yaml", "-o", "crun"], "did you mean 'stage2'?"),
    ],
    "curate plan": [
        ("bad path", ["curate", "plan", "nope.yaml", "-o", "cplan"], "does not exist"),
        ("empty input", ["curate", "plan", "empty.yaml", "-o", "cplan"], "needs 'pool'"),
        ("typo", ["curate", "plan", "typo.yaml", "-o", "cplan"], "did you mean 'stage2'?"),
        ("typo in a flag", ["curate", "plan", "typo.yaml", "-o", "cplan", "--pool-sampel", "9"], "No such option"),
    ],
    "curate config": [  # takes no path and no input
        ("typo", ["curate", "config", "--format", "yml"], "'yml' is not one of"),
    ],
    "curate why": [
        ("bad path", ["curate", "why", "nope", "some-id"], "does not exist"),
        ("empty input", ["curate", "why", "empty_dir", "some-id"], "is not a curation run folder"),
        ("typo", ["curate", "why", "empty_dir", "some-id", "--jsn"], "No such option"),
    ],
    "curate export-verification": [
        ("bad path", ["curate", "export-verification", "nope"], "no pool shards"),
        ("empty input", ["curate", "export-verification", "empty_dir"], "no pool shards"),
        ("typo", ["curate", "export-verification", "empty_dir", "--budget", "ten"], "'ten' is not a valid integer"),
    ],
    "curate import-verification": [
        ("bad path", ["curate", "import-verification", "nope"], "does not exist"),
        ("empty input", ["curate", "import-verification", "empty_dir"], "is not a curation run folder"),
        ("typo", ["curate", "import-verification", "empty_dir", "--jsn"], "No such option"),
    ],
    "annotate serve": [  # an empty run folder is a valid start (the app waits for batches): no empty case
        ("bad path", ["annotate", "serve", "nope"], "does not exist"),
        ("typo", ["annotate", "serve", "empty_dir", "--port", "eighty"], "'eighty' is not a valid integer"),
    ],
    "annotate import": [
        ("bad path", ["annotate", "import", "nope"], "does not exist"),
        ("empty input", ["annotate", "import", "empty_dir"], "has no verification/ folder"),
        ("typo", ["annotate", "import", "empty_dir", "--bd", "x"], "No such option"),
    ],
    "annotate export": [
        ("bad path", ["annotate", "export", "nope"], "does not exist"),
        ("empty input", ["annotate", "export", "empty_dir"], "has no verification/ folder"),
        ("typo", ["annotate", "export", "empty_dir", "-k", "two"], "'two' is not a valid integer"),
    ],
    "annotate users": [  # a fresh run folder has no accounts yet: listing none is no mistake
        ("bad path", ["annotate", "users", "list", "nope"], "does not exist"),
        ("empty input", ["annotate", "users", "add", "empty_dir", "", "--password", "pw-123456"], "username"),
        ("typo", ["annotate", "users", "add", "empty_dir", "ann1", "--role", "admn", "--password", "x"], "'admn' is not one of"),
        ("typo in a name", ["annotate", "users", "disable", "empty_dir", "bob"], "no user 'bob'"),
    ],
    "judge serve": [
        ("bad path", ["judge", "serve", "--model", "nope.gguf"], "does not exist"),
        ("empty input", ["judge", "serve", "--model", "empty.gguf"], "is not a GGUF file"),
        ("typo", ["judge", "serve", "--port", "eighty"], "'eighty' is not a valid integer"),
    ],
}


def _params():
    for command, cases in CASES.items():
        for case in cases:
            if hasattr(case, "marks"):  # a pytest.param with marks
                yield pytest.param(*case.values, marks=case.marks, id=f"{command}: {case.values[0]}")
            else:
                yield pytest.param(*case, id=f"{command}: {case[0]}")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with the inputs the cases name, as the current directory."""
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "empty.gguf").write_bytes(b"")
    (tmp_path / "typo.yaml").write_text("pool: pool\nstag2: {}\n")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"prompt": "2+2?", "chosen": "4", "rejected": "5"}) + "\n")
    (tmp_path / "candidates.jsonl").write_text(json.dumps({"prompt": "2+2?", "candidates": ["4", "5"], "correct": [True, False]}) + "\n")
    with PoolWriter(tmp_path / "pool") as writer:
        writer.write(make_pair("2+2?", "4", "5"))
    empty_pool = tmp_path / "empty_pool"  # what `synpref ingest` leaves for an input with no record
    empty_pool.mkdir()
    (empty_pool / "report.json").write_text(json.dumps({"read": 0, "kept": 0, "quarantined": 0, "duplicates": 0}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNPREF_DATA_DIR", str(tmp_path / "no-data"))  # prep finds no benchmarks: fast
    return tmp_path


def assert_one_error_line(result, fragment: str):
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert result.exit_code != 0 and result.exit_code is not None, result.output
    assert "Traceback" not in result.output and "this is a bug" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert len(errors) == 1 and fragment in errors[0], result.output


@pytest.mark.parametrize("case, args, fragment", list(_params()))
def test_every_command_refuses_a_mistake_in_one_line(workdir, case, args, fragment):
    before = {p.name for p in workdir.iterdir()}
    result = CliRunner().invoke(main, args)
    assert_one_error_line(result, fragment)
    if args[0] in ("train", "demo", "eval", "bon", "curate") and args[:2] != ["curate", "run"]:
        created = {p.name for p in workdir.iterdir()} - before
        assert not created, f"{args}: a refused command wrote {created}"


def test_every_command_is_covered():
    """A new command gets its cases here."""
    listed = {name.split()[0] for name in CASES}
    for name, command in main.commands.items():
        assert name in listed, f"synpref {name} has no error cases in CASES"
        for sub in getattr(command, "commands", {}):
            assert f"{name} {sub}" in CASES or f"{name} users" in CASES and sub == "users", f"synpref {name} {sub}"


def test_user_mistakes_exit_2_and_name_the_flag(workdir):
    from synpref.curate.prep import prep

    assert CliRunner().invoke(main, ["curate", "prep", "pool", "-o", "prepped"]).exit_code == 0
    again = CliRunner().invoke(main, ["curate", "prep", "pool", "-o", "prepped"])
    assert again.exit_code == 2
    assert_one_error_line(again, "already holds a pool; pass --overwrite to replace it")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):  # the Python API names its argument
        prep("pool", "prepped")


def test_debug_shows_the_traceback(workdir):
    from synpref.model import ModelNotFoundError

    result = CliRunner().invoke(main, ["--debug", "score", "minilmm", "--input", "pool"])
    assert isinstance(result.exception, ModelNotFoundError) and "minilmm" in str(result.exception)
    assert CliRunner().invoke(main, ["score", "minilmm", "--input", "pool"], env={"SYNPREF_DEBUG": "1"}).exception is not None


def test_a_bug_shows_its_traceback_and_asks_for_a_report(workdir, monkeypatch):
    import synpref.evaluate.report as report

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    (workdir / "ev").mkdir()
    (workdir / "ev" / "results.json").write_text("{}")
    monkeypatch.setattr(report, "build_report", broken)
    result = CliRunner().invoke(main, ["report", "ev"])
    assert result.exit_code == 1
    assert "Traceback" in result.output and "ZeroDivisionError: a bug" in result.output
    assert "this is a bug in synpref (ZeroDivisionError)" in result.output and "report it" in result.output


def test_model_mistakes_name_the_id_the_offline_mode_and_the_packaged_names(monkeypatch):
    from synpref.model import ModelNotFoundError, check_reference

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        check_reference("acme/no-such-model")
    message = str(err.value)
    assert "'acme/no-such-model'" in message and "HF_HUB_OFFLINE=1" in message and "minilm, smollm2-135m" in message
    assert "\n" not in message
    with pytest.raises(ModelNotFoundError, match="did you mean 'minilm'"):
        check_reference("minilmm")


def test_a_run_folder_given_as_the_model_points_to_its_model(tmp_path):
    from synpref.model import ModelNotFoundError, check_reference

    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="did you mean .*run/model"):
        check_reference(tmp_path / "run")
    check_reference(tmp_path / "run" / "model")


def test_train_checks_the_model_before_writing_the_run_folder(workdir):
    from synpref.model import ModelNotFoundError
    from synpref.train import TrainConfig, train

    with pytest.raises(ModelNotFoundError):
        train(TrainConfig(data=["pool"], model="acme/no-such-model", run_dir="run", progress=False))
    assert not (workdir / "run").exists()  # no config.json, no versions.json left behind
