"""The ``synpref`` command line: parses, calls the library, prints. Nothing else.

Errors, in one place (:class:`SynprefGroup`): a mistake in the command (a
:class:`~synpref.errors.UserError`, or one of the types :func:`_user_mistakes` lists: a
bad path, an unknown name, an existing output, an input that cannot be read) is printed
as one line, ``Error: ...``, naming the flag that fixes it, and exits 2, as click's own
usage errors and a command's ``click.ClickException`` do. ``synpref --debug`` (or ``SYNPREF_DEBUG=1``) shows the traceback
instead. Anything else is a bug: its traceback is shown, with a line asking to report it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import sys
import traceback
import types
import typing
from pathlib import Path

import click

from . import __version__
from .cli_options import device_option, engine_options, engine_session
from .text import LENGTH_POLICIES


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _user_mistakes() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the command asked for something that cannot be done", not a bug."""
    from .errors import UserError
    from .registry import UnknownNameError  # unknown format, benchmark, ...
    from .schema import RecordError  # a record that cannot be read (with its file and row)
    from .text import LengthError  # an input longer than max_length under the 'error' policy

    found: list[type[BaseException]] = [UserError, UnknownNameError, RecordError, LengthError,
                                        FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError]
    for module, name in (("synpref.ingest", "ReadError"), ("synpref.model.device", "DeviceError"),
                         ("synpref.curate.config", "ConfigError")):
        try:  # modules of optional extras: absent ones raise nothing to catch
            found.append(getattr(__import__(module, fromlist=[name]), name))
        except ImportError:
            pass
    return tuple(found)


def user_message(error: BaseException) -> str:
    """One line for a user mistake: the CLI wording of a UserError (the flag to pass), else its message."""
    from .errors import UserError

    text = error.cli_message() if isinstance(error, UserError) else str(error)
    if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    return " ".join(text.split()) or type(error).__name__


class UserMistake(click.ClickException):
    """A user mistake shown as one line; exit 2 like click's usage errors."""

    exit_code = 2


class SynprefGroup(click.Group):
    """The top-level group: turns user mistakes into one line and exit 2 (see the module docstring)."""

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug")
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except click.ClickException as e:
            if type(e) is click.ClickException:  # a command's own one-line error: a user mistake too
                e.exit_code = 2
            raise
        except _user_mistakes() as e:
            if debug:
                raise
            raise UserMistake(f"{user_message(e)} (synpref --debug shows the traceback)") from None
        except Exception as e:
            if debug:
                raise
            traceback.print_exc()
            click.echo(f"synpref: this is a bug in synpref ({type(e).__name__}), not a mistake in the command. Please report it "
                       "with the command you ran and the traceback above.", err=True)
            ctx.exit(1)


@click.group(cls=SynprefGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="synpref")
@click.option("--debug", is_flag=True, envvar="SYNPREF_DEBUG", help="Show the traceback of an error instead of one line.")
def main(debug: bool) -> None:
    """synpref: curate preference data, train and evaluate Bradley-Terry reward models."""
    _quiet_libraries()


# -- ingest --------------------------------------------------------------------
@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(), help="Pool directory to write.")
@click.option("--report", "report_path", type=click.Path(), help="Also write the JSON report here.")
@click.option("--format", "format_name", help="Reader to use for every source (default: detect per file).")
@click.option("--map", "map_items", multiple=True, metavar="FIELD=SOURCE", help="Field mapping, e.g. --map prompt=question.")
@click.option("--mapping", "mapping_yaml", type=click.Path(exists=True), help="Field mapping as a YAML file.")
@click.option("--label-field", help="Field holding a label that says which response wins.")
@click.option("--label-a-wins", help="Value of --label-field meaning response A wins.")
@click.option("--label-b-wins", help="Value of --label-field meaning response B wins.")
@click.option("--label-tie", help="Value of --label-field meaning a tie.")
@click.option("--max-field-chars", default=1_000_000, show_default=True, help="Longer fields are quarantined.")
@click.option("--overwrite", is_flag=True, help="Replace an existing pool in OUT.")
def ingest(sources, out_dir, report_path, format_name, map_items, mapping_yaml, label_field, label_a_wins, label_b_wins, label_tie, max_field_chars, overwrite):
    """Read preference files in any known format into a pool (Parquet).

    Every input record ends up kept, quarantined (OUT/quarantine.jsonl, with the
    reason) or counted as a duplicate: read == kept + quarantined + duplicates.
    An ingest that keeps no record is an error (exit 2, the report still written).
    """
    from .formats.mapping import FieldMapping
    from .ingest import NothingKeptError
    from .ingest import ingest as run_ingest

    try:
        mapping = None
        if mapping_yaml:
            mapping = FieldMapping.from_yaml(mapping_yaml)
        elif map_items or label_field:
            mapping = FieldMapping.from_cli(list(map_items), label_field, label_a_wins, label_b_wins, label_tie)
        report = run_ingest(
            list(sources),
            out_dir,
            format=format_name,
            mapping=mapping,
            report_path=report_path,
            max_field_chars=max_field_chars,
            overwrite=overwrite,
        )
    except NothingKeptError as e:  # the report and quarantine are written: show them, then why
        _print_ingest_report(e.report, out_dir)
        raise click.ClickException(str(e)) from None
    _print_ingest_report(report, out_dir)


def _print_ingest_report(report: dict, out_dir) -> None:
    click.echo(
        f"read {report['read']}  kept {report['kept']}  quarantined {report['quarantined']}  "
        f"duplicates {report['duplicates']}  -> {out_dir}"
    )
    for reason, n in sorted(report.get("reasons", {}).items()):
        click.echo(f"  quarantined for {reason}: {n}")
    if report["kept"]:
        for source, counts in report.get("per_source", {}).items():
            if not counts["kept"]:
                click.echo(f"warning: {source}: no record kept ({counts['read_rows']} rows, {counts['quarantined']} quarantined)", err=True)


# -- train ---------------------------------------------------------------------
def _click_type(hint):
    """Map a dataclass field's type hint to (click type, multiple, is_flag)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _click_type(args[0])
    if origin is list:
        return _click_type(typing.get_args(hint)[0])[0], True, False
    if hint is bool:
        return bool, False, True
    return hint, False, False


def dataclass_options(cls, skip: tuple[str, ...] = ()):
    """Decorate a click command with one option per dataclass field (help from metadata)."""
    hints = typing.get_type_hints(cls)

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            ctype, multiple, is_flag = _click_type(hints[f.name])
            flag = "--" + f.name.replace("_", "-")
            help_text = f.metadata.get("help", "") + _default_note(f)
            if is_flag:
                fn = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=help_text)(fn)
            else:
                fn = click.option(flag, f.name, type=ctype, multiple=multiple, default=None, help=help_text)(fn)
        return fn

    return decorate


def _default_note(f: dataclasses.Field) -> str:
    """`` [default: X]`` for help texts, as click's show_default writes it (the options themselves default
    to None, so that a config file's value is not overridden by an option that was not given)."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return ""
    if value is None or value == [] or value == {}:
        return ""
    if isinstance(value, bool):
        return f"  [default: {'--' if value else '--no-'}{f.name.replace('_', '-')}]"
    return f"  [default: {value}]"


def _flag_names(message: str, names) -> str:
    """A config error worded for the command line: ``length_policy='x'`` becomes ``--length-policy='x'``."""
    for name in sorted(names, key=len, reverse=True):  # a name with '_' is a field wherever it stands; others only before '='
        pattern = rf"(?<![\w.-]){name}\b" if "_" in name else rf"(?<![\w.-]){name}(?==)"
        message = re.sub(pattern, "--" + name.replace("_", "-"), message)
    return message


def _build_config(cls, config_file, values: dict):
    """Dataclass defaults < config file (YAML/JSON) < command-line options; a bad value is a usage error naming the flag."""
    import yaml

    merged: dict = {}
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except yaml.YAMLError as e:
            raise click.BadParameter(f"{config_file} is not valid YAML or JSON: {' '.join(str(e).split())}", param_hint="'--config'") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter(f"{config_file} must hold a mapping of {cls.__name__} fields", param_hint="'--config'")
        merged.update(loaded)
    merged.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items() if v not in (None, ())})
    try:
        return cls.from_dict(merged)
    except (ValueError, TypeError) as e:  # the config's own validation: a bad value, an unknown field
        names = [f.name for f in dataclasses.fields(cls)]
        where = f" (from --config {config_file} or the command line)" if config_file else ""
        raise click.UsageError(f"{_flag_names(str(e), names)}{where}; see synpref train --help") from None


def _train_command():
    from .train.config import TrainConfig

    @main.command(name="train")
    @click.option("--config", "config_file", type=click.Path(exists=True), help="YAML or JSON file with TrainConfig fields.")
    @click.option("-o", "--out", "out", type=click.Path(), help="Run directory (same as --run-dir).")
    @dataclass_options(TrainConfig, skip=("device",))
    @device_option(TrainConfig.help()["device"])
    def train_cmd(config_file, out, **values):
        """Train a Bradley-Terry reward model on pools (see --data).

        Several processes: ``accelerate launch --config_file
        configs/accelerate/cpu_2proc_gloo.yaml -m synpref train ...`` (CPU, gloo) or
        ``configs/accelerate/multi_gpu_ddp.yaml`` on GPUs.
        """
        from .train import train as run_train
        from .train.finalize import summary_table

        if out:
            values["run_dir"] = out
        config = _build_config(TrainConfig, config_file, values)
        summary = run_train(config)
        click.echo(summary_table(summary))

    return train_cmd


_train_command()


# -- score ---------------------------------------------------------------------
LENGTH_POLICY_HELP = ("How inputs longer than max_length are handled (default: truncate, so every input gets a reward; "
                      "the checkpoint's training policy is not used for scoring; see synpref.text.scoring_policy).")


@main.command()
@click.argument("model")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True), help="A pool dir or any file the readers understand.")
@click.option("-o", "--out", "out_path", type=click.Path(), help="JSONL with the reward of every candidate (default: stdout summary only).")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(["fp32", "bf16", "auto"]))
@click.option("--max-batch-tokens", default=0, show_default=True, help="Token budget of one batch (0: auto, 2048 on CPU, 16384 on GPU).")
@click.option("--max-length", type=int, help="Override the checkpoint's max_length.")
@click.option("--length-policy", type=click.Choice(LENGTH_POLICIES), help=LENGTH_POLICY_HELP)
@device_option()
@engine_options
def score(model, input_path, out_path, precision, max_batch_tokens, max_length, length_policy, device, engine):
    """Score every candidate of every record; print pairwise accuracy for pairs."""
    from .errors import UserValueError
    from .formats import UnknownFormatError
    from .ingest import read_records
    from .model import RewardModel
    from .scoring import score_records
    from .text import LengthStats, length_summary, scoring_policy

    errors: list = []
    try:
        records = list(read_records([input_path], errors=errors))
    except UnknownFormatError as e:
        raise click.ClickException(f"{e} Then score the pool: synpref score MODEL --input POOL") from None
    for err in errors[:10]:
        click.echo(f"skipped: {err}", err=True)
    if errors:
        click.echo(f"skipped {len(errors)} unreadable rows/records (listed above, first 10; synpref ingest quarantines the same)", err=True)
    if not records:
        why = f"all {len(errors)} rows were unreadable (listed above)" if errors else "it holds no rows"
        raise UserValueError(f"--input {input_path}: nothing to score: {why}")
    stats = LengthStats()
    if engine.name == "ray":  # a model per Ray actor, the same chunks and batches: the same rewards
        from .engine.ray_scoring import RayChunkScorer, RecordModel
        from .evaluate.scorers import saved_scoring_policy
        from .scoring import score_records_with

        policy = saved_scoring_policy(model, max_length=max_length, length_policy=length_policy)  # what each actor applies

        spec = RecordModel(model, precision=precision, max_batch_tokens=max_batch_tokens, device=device,
                           max_length=max_length, length_policy=length_policy)
        with engine_session(engine) as cluster:
            rows = score_records_with(RayChunkScorer(cluster, spec, device=device, stats=stats), records, progress=True)
    else:
        rm = RewardModel.from_pretrained(model, device=device)
        rm.policy = policy = scoring_policy(rm.policy, max_length=max_length, length_policy=length_policy)
        rows = score_records(rm, records, precision=precision, max_batch_tokens=max_batch_tokens, stats=stats, progress=True)
    if out_path:
        with open(out_path, "w") as fh:
            for row in rows:  # a dropped candidate's reward is written as null
                rewards = [None if math.isnan(x) else x for x in row["rewards"]]
                fh.write(json.dumps({**row, "rewards": rewards}) + "\n")
    pairs = [r for r in rows if r["kind"] == "pair"]
    scorable = [r for r in pairs if not any(math.isnan(x) for x in r["rewards"])]
    if scorable:
        correct = sum(1 for r in scorable if r["rewards"][0] > r["rewards"][1])
        click.echo(f"pairs: {len(scorable)}  accuracy (chosen strictly higher): {correct / len(scorable):.4f}")
    if len(scorable) < len(pairs):
        click.echo(f"pairs not scored (a candidate dropped by --length-policy {policy.length_policy}, reward NaN, "
                   f"null in the file): {len(pairs) - len(scorable)}")
    click.echo(f"records: {len(rows)}")
    click.echo(length_summary(policy, stats))


# -- demo ----------------------------------------------------------------------
@main.command()
@click.option("-o", "--out", "out_dir", default="runs/demo", show_default=True, type=click.Path(), help="Where the pool and run go.")
@click.option("--model", default="minilm", show_default=True, help="Backbone to fine-tune.")
@click.option("--epochs", default=None, type=float, help="Training epochs (default: the demo's own).")
def demo(out_dir, model, epochs):
    """End to end on embedded data: ingest, train a reward model, report held-out accuracy."""
    from .demo import run_demo
    from .model.loading import check_reference

    check_reference(model)  # before the demo writes its pool
    run_demo(Path(out_dir), model=model, epochs=epochs, echo=click.echo)


# -- model utilities -----------------------------------------------------------
@main.command(name="convert-gguf")
@click.argument("gguf", type=click.Path(exists=True))
def convert_gguf_cmd(gguf):
    """Convert a GGUF once into a cached standard checkpoint; print its path."""
    from .model import convert_gguf

    click.echo(str(convert_gguf(Path(gguf))))


def _register_optional(module: str, attr: str, name: str, extra: str) -> None:
    """Add a subsystem's command; if its dependencies are missing, a stub says which extra to install."""
    try:
        mod = __import__(f"synpref.{module}", fromlist=[attr])
    except ModuleNotFoundError as e:
        if (e.name or "").startswith("synpref"):
            raise
        missing = str(e)

        @main.command(name=name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        def _needs_extra():
            raise click.ClickException(f"'synpref {name}' needs the '{extra}' extra: pip install 'synpref[{extra}]' ({missing})")

        _needs_extra.help = f"(not installed: pip install 'synpref[{extra}]')"
        return
    main.add_command(getattr(mod, attr), name=name)


for _module, _attr, _name, _extra in [
    ("evaluate.cli", "eval_command", "eval", "eval"),
    ("evaluate.cli", "report_command", "report", "eval"),
    ("serve.cli", "serve_command", "serve", "serve"),
    ("serve.cli", "bon_command", "bon", "serve"),
    ("curate.cli", "curate_group", "curate", "curate"),
    ("curate.cli", "judge_group", "judge", "curate"),
    ("annotate.cli", "annotate_group", "annotate", "annotate"),
]:
    _register_optional(_module, _attr, _name, _extra)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
