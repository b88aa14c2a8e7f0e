"""The curation config: typed nested dataclasses, every mistake refused with the key's full path."""

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from synpref.curate.cli import curate_group
from synpref.curate.config import (ENDPOINT_HELP, ConfigError, CurateConfig, changed_keys, config_reference, load_config,
                                   reference_markdown, reference_yaml)
from synpref.llm.client import Endpoint
from synpref.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs" / "curate").glob("*.yaml"))
EP = {"base_url": "http://127.0.0.1:1/v1", "model": "m"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_each_shipped_config_loads_and_round_trips(path):
    cfg = load_config(path)
    raw = yaml.safe_load(path.read_text())
    assert cfg.pool == raw["pool"] and cfg.stage2.band == float(raw["stage2"]["band"])
    assert [e.model for e in cfg.endpoints] == [e["model"] for e in raw.get("endpoints", [])]
    assert all(isinstance(e, Endpoint) for e in cfg.endpoints)
    # the complete dump (what RUN_DIR/config.yaml holds) loads back to the same config
    again = load_config(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg and not changed_keys(cfg, again)


def test_shipped_configs_exist():
    assert len(SHIPPED) >= 3


def test_defaults_fill_every_key():
    cfg = load_config({"pool": "p"})
    assert isinstance(cfg, CurateConfig)
    assert cfg.stage2.current_rm_folds == 2 and cfg.rm.max_length == 128 and cfg.rm.length_policy == "truncate-left"
    assert cfg.stage1.human == "files" and cfg.endpoints == [] and cfg.prep.extra_prompts == []
    # one section's override leaves its other keys at their defaults
    cfg = load_config({"pool": "p", "stage2": {"band": 0.2}, "rm": {"epochs": 3}})
    assert cfg.stage2.band == 0.2 and cfg.stage2.enabled and cfg.rm.epochs == 3.0 and isinstance(cfg.rm.epochs, float)


@pytest.mark.parametrize("data, message", [
    ({"stage3": {}}, "unknown curation config key 'stage3' (did you mean 'stage2'?); known keys: pool, gold, data_dir, prep,"),
    ({"xyzzy": 1}, "unknown curation config key 'xyzzy'; known keys: pool, gold, data_dir, prep,"),
    ({"stage2": {"bnad": 0.1}}, "unknown curation config key 'stage2.bnad' (did you mean 'stage2.band'?); known keys of stage2: "
                                "enabled, band, recycle_flips, current_rm_pairs, current_rm_folds"),
    ({"rm": {"learnig_rate": 1e-3}}, "unknown curation config key 'rm.learnig_rate' (did you mean 'rm.learning_rate'?)"),
    ({"endpoints": [EP, {**EP, "bse_url": "x"}]}, "unknown curation config key 'endpoints[1].bse_url' (did you mean 'endpoints[1].base_url'?); "
                                                  "known keys of endpoints[1]: base_url, model,"),
    ({"prep": {"zzz": 1}}, "unknown curation config key 'prep.zzz'; known keys of prep: enabled,"),
    ({"rm": {"seed": 3}}, "rm.seed cannot be set: every reward model uses the config's top-level seed"),
    ({"rm": {"data": ["x"]}}, "rm.data cannot be set"),
])
def test_unknown_key_refused_with_its_full_path(data, message):
    with pytest.raises(ConfigError) as e:
        load_config({"pool": "p", **data})
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("data, message", [
    ({"stage2": {"band": "wide"}}, "stage2.band must be a number; got 'wide' (str)"),
    ({"prep": {"enabled": "yes"}}, "prep.enabled must be true or false; got 'yes' (str)"),
    ({"judge": {"n_samples": 2.5}}, "judge.n_samples must be a whole number; got 2.5 (float)"),
    ({"stage1": {"iterations": True}}, "stage1.iterations must be a whole number; got True (bool)"),
    ({"stage2": 0.1}, "stage2: expected a mapping of keys, got 0.1 (float)"),
    ({"endpoints": EP}, "endpoints must be a list; got"),
    ({"endpoints": [{"base_url": "u"}]}, "endpoints[0].model is required"),
    ({"endpoints": [{**EP, "concurrency": "8"}]}, "endpoints[0].concurrency must be a whole number; got '8' (str)"),
    ({"prep": {"extra_prompts": ["a", 3]}}, "prep.extra_prompts[1] must be a string; got 3 (int)"),
    ({"judge": {"params": [1]}}, "judge.params must be a mapping"),
    ({"stage1": {"human": "crowd"}}, "stage1.human must be one of files, original_labels; got 'crowd' (str)"),
    ({"stage2": {"current_rm_folds": 0}}, "stage2.current_rm_folds must be >= 1; got 0"),
    ({"prep": {"near_dup_threshold": 1.5}}, "prep.near_dup_threshold must be <= 1.0; got 1.5"),
    ({"rm": {"precision": "fp16"}}, "rm: invalid TrainConfig value(s): precision='fp16'"),
    ({"rm": {"max_length": "long"}}, "rm.max_length must be a whole number"),
])
def test_wrong_type_or_value_refused_with_its_path(data, message):
    with pytest.raises(ConfigError) as e:
        load_config({"pool": "p", **data})
    assert message in str(e.value)


def test_free_form_mappings_and_pool_required():
    cfg = load_config({"pool": "p", "judge": {"params": {"anything": 1}}, "endpoints": [{**EP, "params": {"top_k": 5}}]})
    assert cfg.judge.params == {"anything": 1} and cfg.endpoints[0].params == {"top_k": 5}
    with pytest.raises(ConfigError, match="needs 'pool'"):
        load_config({})
    with pytest.raises(ConfigError, match="needs 'pool'"):
        load_config({"pool": None})


def test_yaml_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pool: p\nstage2: {band: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML \(line \d+"):
        load_config(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="needs 'pool'"):
        load_config(empty)


def test_changed_keys_name_full_paths():
    a = load_config({"pool": "p", "endpoints": [EP]})
    b = load_config({"pool": "p", "stage2": {"band": 0.3}, "rm": {"epochs": 2}, "endpoints": [{**EP, "model": "n"}]})
    assert changed_keys(a, b) == ["endpoints[0].model", "rm.epochs", "stage2.band"]


def test_every_key_has_help_and_the_endpoint_help_is_complete():
    assert set(ENDPOINT_HELP) == {f.name for f in fields(Endpoint)}
    keys = config_reference()
    assert all(k.help for k in keys), [k.path for k in keys if not k.help]
    paths = {k.path for k in keys}
    assert {"stage2.band", "endpoints[].base_url", "rm.length_policy", "judge.params"} <= paths
    # rm: every TrainConfig field but those the run sets, with TrainConfig's help
    assert {p[3:] for p in paths if p.startswith("rm.")} == {f.name for f in fields(TrainConfig)} - {"data", "run_dir", "seed", "device"}
    assert next(k for k in keys if k.path == "rm.lora_r").help == TrainConfig.help()["lora_r"]


def test_docs_table_is_generated_from_the_dataclasses():
    doc = (ROOT / "docs" / "curation.md").read_text()
    found = re.search(r"<!-- curate-config-table:start -->\n(.*?)<!-- curate-config-table:end -->", doc, re.S)
    assert found, "docs/curation.md lost its config table markers"
    assert found.group(1) == reference_markdown(), ("docs/curation.md's config table is stale: paste the output of "
                                                    "`synpref curate config --format markdown` between its markers")


def test_config_command_prints_a_template_that_loads_to_the_defaults():
    res = CliRunner().invoke(curate_group, ["config"])
    assert res.exit_code == 0, res.output
    assert res.output == reference_yaml()
    assert "# Samples asked of each judge endpoint per pair" in res.output and "#   base_url (string, required)" in res.output
    template = yaml.safe_load(res.output)
    assert load_config({**template, "pool": "p"}) == load_config({"pool": "p"})
    assert isinstance(template["rm"]["learning_rate"], float)  # 5e-05 written so YAML reads a number back
    md = CliRunner().invoke(curate_group, ["config", "--format", "markdown"])
    assert md.exit_code == 0 and md.output == reference_markdown()


@pytest.mark.parametrize("content, message", [
    ({"pool": "p", "stage2": {"bnad": 0.1}}, "Error: unknown curation config key 'stage2.bnad' (did you mean 'stage2.band'?)"),
    ({"pool": "p", "judge": {"n_samples": "three"}}, "Error: judge.n_samples must be a whole number; got 'three' (str)"),
])
def test_cli_reports_a_config_mistake_in_one_line_with_exit_2(tmp_path, content, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(content))
    res = CliRunner().invoke(curate_group, ["run", str(path), "-o", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 2
    assert res.stderr.startswith(message) and res.stderr.count("\n") == 1 and "Traceback" not in res.output
    assert res.stdout == "" and not (tmp_path / "run").exists()  # nothing written for a refused config


def test_cli_refuses_an_unknown_device(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"pool": "p"}))
    res = CliRunner().invoke(curate_group, ["run", str(path), "-o", str(tmp_path / "run"), "--device", "cdua"])
    assert res.exit_code == 2 and "'cdua' is not a device" in res.stderr
