"""CurateConfig: every key of a ``synpref curate run`` config, typed, with help text.

:func:`load_config` turns a YAML file (or a dict) into nested dataclasses and refuses, with the
key's full path (``stage2.band``, ``endpoints[1].model``):

* a key the config does not know, at any depth, naming the keys known there and the closest one;
* a value of the wrong type (a number where a flag belongs, a word where a number belongs);
* a value out of range or not among the allowed choices.

The ``rm`` section takes any :class:`~synpref.train.TrainConfig` field except the three the run
sets for each reward model (``data``, ``run_dir``, ``seed``); its help text and checks are
TrainConfig's own. An endpoint is a :class:`synpref.llm.client.Endpoint`.

:func:`config_reference` lists every key with its type, default and help: ``synpref curate config``
prints it as an annotated YAML template (``--format markdown``: the table of docs/curation.md).
"""

from __future__ import annotations

import difflib
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, make_dataclass
from pathlib import Path
from typing import Literal

from ..llm.client import Endpoint
from ..train.config import TrainConfig, _f


class ConfigError(ValueError):
    """A curation config the run cannot use; the message is one line naming the key."""


def _section(cls, help: str):
    return field(default_factory=cls, metadata={"help": help})


# -- the sections ------------------------------------------------------------------------------
@dataclass
class PrepConfig:
    enabled: bool = _f(True, "Run the preparation step (empty responses, duplicates, decontamination) before curating; "
                       "false: curate the pool as it is.")
    near_dup: bool = _f(False, "Also remove near-duplicates (MinHash LSH over word 5-grams).")
    near_dup_threshold: float = _f(0.9, "Jaccard similarity at or above which a pair is a near-duplicate.", min=0.0, max=1.0)
    decontaminate: bool = _f(True, "Remove pairs sharing a word 13-gram with a benchmark prompt found under data_dir "
                             "or with an extra prompt.")
    extra_prompts: list[str] = _f([], "Extra prompt files (.txt or .jsonl) to decontaminate against.")


@dataclass
class JudgeConfig:
    n_samples: int = _f(3, "Samples asked of each judge endpoint per pair (self-consistency).", min=1)
    seed: int = _f(0, "Seed of the order in which each sample shows the two candidates.")
    max_examples: int = _f(8, "Nearest human-verified pairs shown in the judge prompt as examples (0: none, "
                           "and no embeddings are computed when stage1.iterations is 0 too).", min=0)
    max_chars: int = _f(1500, "Characters kept of each message of the judged pair.", min=1)
    example_chars: int = _f(300, "Characters kept of each message of an example pair.", min=1)
    params: dict = _f({}, "Sampling parameters sent with every judge call (temperature, max_tokens, seed, ...); "
                      "they override the endpoint's own params.")
    max_repairs: int = _f(2, "Rounds an invalid JSON answer is sent back with the validation error.", min=0)
    max_calls: int | None = _f(None, "Most LLM calls the run may pay for, all steps together (attributes, Stage 1 labels, Stage 2 "
                               "judges; cached answers are free): a batch that would pass it is not started, the run stops "
                               "saying how many more calls it needs and resumes when the value is raised (null: no cap).", min=0)
    max_tokens: int | None = _f(None, "Most LLM tokens (prompt + completion) the run may pay for, counted and capped like "
                                "max_calls, a batch's need estimated from the tokens measured per call (null: no cap).", min=0)


@dataclass
class AttributesConfig:
    enabled: bool = _f(True, "Ask the first endpoint for each pair's preference attributes (task category, objectivity, "
                       "controversiality, desired attributes, guideline).")
    max_chars: int = _f(1200, "Characters kept of each message in the attribute prompt.", min=1)


# The rm section: TrainConfig's fields, minus those the run sets, with curation's defaults (small, fast RMs).
_SET_BY_RUN = {
    "data": "the run trains each reward model on its own labelled pairs",
    "run_dir": "each reward model is trained in its own folder of RUN_DIR",
    "seed": "every reward model uses the config's top-level seed",
    "device": "the device is not part of the config: pass `synpref curate run --device`",
}
_RM_DEFAULTS = {"max_length": 128, "epochs": 1.0, "train_top_layers": 2, "precision": "fp32", "eval_fraction": 0.0,
                "progress": False, "tensorboard": False, "pairs_per_step": 16, "learning_rate": 5e-5}


def _rm_fields():
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        if f.name in _SET_BY_RUN:
            continue
        default = _RM_DEFAULTS.get(f.name, f.default if f.default is not MISSING else f.default_factory())
        yield f.name, hints[f.name], _f(default, f.metadata["help"])


RMConfig = make_dataclass("RMConfig", list(_rm_fields()), namespace={
    "__doc__": "Settings of every reward model the run trains: any TrainConfig field but data, run_dir, seed and device.",
    "__set_by_run__": _SET_BY_RUN})
RMConfig.__module__ = __name__


@dataclass
class Stage1Config:
    iterations: int = _f(8, "Human-in-the-loop rounds (0: no Stage 1; Stage 2 then cross-fits current RMs on the pool's labels).", min=0)
    verify_budget: int = _f(16, "Pairs sent to the humans per round, in the protocol's priority order.", min=0)
    seed_gold: int = _f(32, "Pairs sent to the humans first when the config has no gold pool.", min=0)
    human: Literal["files", "original_labels"] = _f(
        "files", "Who answers verification batches: files (humans, through RUN_DIR/verification/decisions; the run "
        "waits, exit code 3) | original_labels (the pool's own labels play the humans: experiments and tests).")
    silver_init: int = _f(256, "Pool pairs that start in silver with their given labels.", min=0)
    k_max: int = _f(8, "Most neighbours retrieved per gold pair (k_for: k_max when the RM gets it wrong, fewer when it is sure).", min=1)


# The names of synpref.curate.stages.STAGE2_RULES (a test keeps the two equal).
Stage2RuleName = Literal["skywork", "attribute_gated"]


@dataclass
class Stage2Config:
    enabled: bool = _f(True, "Run Stage 2 (gold and current RMs, judges, keep/flip/discard) and write the output pools.")
    band: float = _f(0.0, "Pairs whose current-RM probability of their label is at most 0.5 + band go to the judges "
                       "(the skywork rule; attribute_gated judges the objective pairs).", min=0.0)
    recycle_flips: bool = _f(False, "Also write flipped pairs to curated/ (they are always in recycled/).")
    current_rm_pairs: int = _f(0, "Without Stage 1: train the current RMs on this many pool pairs (0: all).", min=0)
    current_rm_folds: int = _f(2, "Without Stage 1: cross-fit the current RMs over this many folds, so no pair is scored "
                               "by a model trained on it (1: one model on the whole pool).", min=1)
    rule: Stage2RuleName = _f("skywork", "The Stage 2 rule (docs/curation.md, Stage 2 rules): skywork (Skywork-Reward-V2's: current RM, "
                              "gold RM and judges) | attribute_gated (judges decide objective pairs, the gold RM gates subjective ones).")


@dataclass
class EngineConfig:
    batch_size: int = _f(1000, "Pairs per batch of every step: each step streams the pool in batches of this size, writes one "
                         "Parquet part per batch and resumes after a kill at the first unfinished batch; memory grows with it, "
                         "not with the pool.", min=1)


@dataclass
class CurateConfig:
    pool: str | None = _f(None, "Pool directory to curate (required); labels as given: candidate 0 preferred.")
    gold: str | None = _f(None, "Pool of human-verified pairs, trusted as gold (default: Stage 1 asks the humans for seed_gold pairs).")
    data_dir: str | None = _f(None, "Benchmark data folder whose prompts prep decontaminates against.")
    prep: PrepConfig = _section(PrepConfig, "Preparation of the pool.")
    endpoints: list[Endpoint] = _f([], "OpenAI-compatible judge endpoints (synpref.llm.Endpoint); empty: the embedded "
                                   "SmolLM2-135M judge is started on 127.0.0.1.")
    judge: JudgeConfig = _section(JudgeConfig, "The pairwise LLM judges.")
    attributes: AttributesConfig = _section(AttributesConfig, "Preference attributes of each pair.")
    embedder: str = _f("minilm", "Sentence-transformers model (name or path) embedding pairs for retrieval; minilm = all-MiniLM-L6-v2, packaged.")
    rm: RMConfig = _section(RMConfig, "Every reward model the run trains (any TrainConfig field but data, run_dir, seed, device).")
    stage1: Stage1Config = _section(Stage1Config, "Stage 1: human-in-the-loop rounds.")
    stage2: Stage2Config = _section(Stage2Config, "Stage 2: automatic keep / flip / discard.")
    engine: EngineConfig = _section(EngineConfig, "How the run's steps stream the pool.")
    seed: int = _f(0, "Seed of the run: pool samples, fold assignment, verification order, every RM's training.")

    def to_dict(self) -> dict:
        return asdict(self)


# Help for the keys of one endpoint (the Endpoint dataclass carries none); a test keeps it complete.
ENDPOINT_HELP = {
    "base_url": "Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1.",
    "model": "Model name sent with each request.",
    "name": "Label in votes and provenance (default: model).",
    "api_key_env": "Name of the environment variable holding the API key (never the key itself).",
    "concurrency": "Requests in flight at most.",
    "timeout": "Seconds per request.",
    "max_retries": "Retries on timeouts, connection errors, 408/409/425/429/5xx and malformed bodies.",
    "backoff": "Seconds before the first retry (then 2x, 4x ..., with jitter).",
    "json_mode": "Constrained output: none | json_object | json_schema (OpenAI) | llama_cpp (grammar from the schema).",
    "params": "Default sampling parameters of this endpoint (temperature, max_tokens, seed, ...).",
}


# -- loading -------------------------------------------------------------------------------------
def load_config(source) -> CurateConfig:
    """A CurateConfig from a YAML path, a dict or a CurateConfig; :class:`ConfigError` names what is wrong."""
    if isinstance(source, CurateConfig):
        data = source.to_dict()
    elif isinstance(source, Mapping):
        data = source
    else:
        data = _read_yaml(Path(source))
    cfg = _build(CurateConfig, {} if data is None else data, "")
    if not cfg.pool:
        raise ConfigError("the curation config needs 'pool': the pool directory to curate")
    try:  # TrainConfig's own checks (choices, ranges, incompatible options)
        TrainConfig(**asdict(cfg.rm), data=[], run_dir="check")
    except ValueError as e:
        raise ConfigError(f"rm: {e}") from None
    return cfg


def _read_yaml(path: Path):
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read the curation config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build(cls, data, path: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'the curation config'}: expected a mapping of keys, got {_shown(data)}")
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            raise ConfigError(_unknown_key(cls, path, str(key), known))
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        where = _join(path, f.name)
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name], where, f.metadata)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{where} is required")
    return cls(**values)


def _unknown_key(cls, path: str, key: str, known: list[str]) -> str:
    where = _join(path, key)
    reason = getattr(cls, "__set_by_run__", {}).get(key)
    if reason:
        return f"{where} cannot be set: {reason}"
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{_join(path, close[0])}'?)" if close else ""
    return f"unknown curation config key '{where}'{hint}; known keys{' of ' + path if path else ''}: {', '.join(known)}"


def _convert(hint, value, where: str, meta: Mapping):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _convert(hint, value, where, meta)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, args))}; got {_shown(value)}")
        return value
    if is_dataclass(hint):
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list; got {_shown(value)}")
        return [_convert(args[0], v, f"{where}[{i}]", {}) for i, v in enumerate(value)]
    if hint is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping; got {_shown(value)}")
        return dict(value)
    ok = {bool: isinstance(value, bool), int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool), str: isinstance(value, str)}
    if hint not in ok:
        raise TypeError(f"{where}: the config loader has no rule for type {hint!r}")
    if not ok[hint]:
        raise ConfigError(f"{where} must be {_TYPE_WORDS[hint]}; got {_shown(value)}")
    value = hint(value)
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{where} must be >= {meta['min']}; got {value}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{where} must be <= {meta['max']}; got {value}")
    return value


_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _shown(value) -> str:
    return f"{value!r} ({type(value).__name__})" if value is not None else "null"


def changed_keys(old: CurateConfig, new: CurateConfig) -> list[str]:
    """Full paths of the keys whose values differ."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    return sorted(k for k in set(a) | set(b) if a.get(k, MISSING) != b.get(k, MISSING))


def _flatten(value, path: str = "") -> dict:
    if isinstance(value, dict) and value:
        return {k: v for key, sub in value.items() for k, v in _flatten(sub, _join(path, str(key))).items()}
    if isinstance(value, list) and value and any(isinstance(v, dict) for v in value):
        return {k: v for i, sub in enumerate(value) for k, v in _flatten(sub, f"{path}[{i}]").items()}
    return {path: value}


# -- the reference: every key, its type, default and help ------------------------------------------
@dataclass(frozen=True)
class KeyInfo:
    path: str  # e.g. stage2.band, endpoints[].model
    type: str
    default: object  # MISSING for a required key
    help: str
    section: bool = False  # a nested section (its keys follow)


def config_reference() -> list[KeyInfo]:
    """Every key of the curation config, in file order, sections before their keys."""
    return list(_keys(CurateConfig, ""))


def _keys(cls, path: str):
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        where, hint = _join(path, f.name), hints[f.name]
        default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING else MISSING)
        help_text = f.metadata.get("help") or ENDPOINT_HELP.get(f.name, "") if cls is Endpoint else f.metadata.get("help", "")
        if is_dataclass(hint):
            yield KeyInfo(where, "section", None, help_text, section=True)
            yield from _keys(hint, where)
        elif typing.get_origin(hint) is list and is_dataclass(typing.get_args(hint)[0]):
            yield KeyInfo(where, "list", default, help_text, section=True)
            yield from _keys(typing.get_args(hint)[0], where + "[]")
        else:
            yield KeyInfo(where, _type_name(hint) + _range(f.metadata), default, help_text)


def _range(meta: Mapping) -> str:
    if "min" in meta and "max" in meta:
        return f" in [{meta['min']}, {meta['max']}]"
    return f" >= {meta['min']}" if "min" in meta else f" <= {meta['max']}" if "max" in meta else ""


def _type_name(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(map(str, args))
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if hint is dict or origin is dict:
        return "mapping"
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(hint, str(hint))


def _yaml_value(value) -> str:
    """``value`` as YAML flow text (5e-05 becomes 5.0e-05, which YAML reads back as a number)."""
    import yaml

    return "(required)" if value is MISSING else yaml.safe_dump([value], default_flow_style=True, width=10**6).strip()[1:-1]


def reference_markdown() -> str:
    """The table of docs/curation.md (a test keeps the two equal)."""
    lines = ["| key | type | default | what |", "|---|---|---|---|"]
    for k in config_reference():
        kind, default = ("", "") if k.type == "section" else (k.type, "required" if k.default is MISSING else f"`{_yaml_value(k.default)}`")
        lines.append(f"| `{k.path}` | {kind.replace('|', '&#124;')} | {default} | {k.help.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False, break_long_words=False)


def reference_yaml(width: int = 100) -> str:
    """Every key with its default, type and help as comments: a complete, valid config to start from."""
    out = ["# synpref curate run CONFIG.yaml: every key, its default and what it does.",
           "# A key left out takes its default; an unknown key is refused."]
    keys = config_reference()
    for k in keys:
        if "[]" in k.path:  # a key of a list item: listed under its list
            continue
        indent = "  " * k.path.count(".")
        name = k.path.rsplit(".", 1)[-1]
        out += _wrap(k.help, width, indent + "# ", indent + "# ")
        if k.type == "section":
            out.append(f"{indent}{name}:")
        elif k.section:  # a list of sections: the keys of one item, then the (empty) default
            out.append(f"{indent}# Each item has these keys:")
            for item in (i for i in keys if i.path.startswith(k.path + "[].")):
                default = "required" if item.default is MISSING else f"default {_yaml_value(item.default)}"
                note = f"{item.path.rsplit('.', 1)[-1]} ({item.type}, {default}): {item.help}"
                out += _wrap(note, width, indent + "#   ", indent + "#       ")
            out.append(f"{indent}{name}: {_yaml_value(k.default)}")
        else:
            out.append(f"{indent}{name}: {_yaml_value(k.default)}  # {k.type}")
    return "\n".join(out) + "\n"
