"""The ``synpref`` command line: parses, calls the library, prints. Nothing else."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="synpref")
def main() -> None:
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
    """
    from .formats.mapping import FieldMapping
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
    except (ValueError, FileExistsError) as e:  # unknown or undetectable format, bad mapping, existing pool
        raise click.ClickException(str(e)) from None
    _print_ingest_report(report, out_dir)


def _print_ingest_report(report: dict, out_dir) -> None:
    click.echo(
        f"read {report['read']}  kept {report['kept']}  quarantined {report['quarantined']}  "
        f"duplicates {report['duplicates']}  -> {out_dir}"
    )
    for reason, n in sorted(report.get("reasons", {}).items()):
        click.echo(f"  quarantined for {reason}: {n}")


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
            help_text = f.metadata.get("help", "")
            if is_flag:
                fn = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=help_text)(fn)
            else:
                fn = click.option(flag, f.name, type=ctype, multiple=multiple, default=None, help=help_text)(fn)
        return fn

    return decorate


def _build_config(cls, config_file, values: dict):
    """Dataclass defaults < config file (YAML/JSON) < command-line options."""
    merged: dict = {}
    if config_file:
        import yaml

        merged.update(yaml.safe_load(Path(config_file).read_text()) or {})
    merged.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items() if v not in (None, ())})
    return cls.from_dict(merged)


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

        if out:
            values["run_dir"] = out
        config = _build_config(TrainConfig, config_file, values)
        summary = run_train(config)
        click.echo(json.dumps(summary, indent=2, default=str))

    return train_cmd


_train_command()


# -- score ---------------------------------------------------------------------
@main.command()
@click.argument("model")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True), help="A pool dir or any file the readers understand.")
@click.option("-o", "--out", "out_path", type=click.Path(), help="JSONL with the reward of every candidate (default: stdout summary only).")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(["fp32", "bf16", "auto"]))
@click.option("--max-batch-tokens", default=0, show_default=True, help="Token budget of one batch (0: auto, 2048 on CPU, 16384 on GPU).")
@click.option("--max-length", type=int, help="Override the checkpoint's max_length.")
@click.option("--length-policy", type=click.Choice(LENGTH_POLICIES), help="Override the checkpoint's length policy.")
@device_option()
@engine_options
def score(model, input_path, out_path, precision, max_batch_tokens, max_length, length_policy, device, engine):
    """Score every candidate of every record; print pairwise accuracy for pairs."""
    from .formats import UnknownFormatError
    from .ingest import read_records
    from .model import RewardModel
    from .scoring import score_records
    from .text import LengthStats

    errors: list = []
    try:
        records = list(read_records([input_path], errors=errors))
    except UnknownFormatError as e:
        raise click.ClickException(f"{e} Then score the pool: synpref score MODEL --input POOL") from None
    for err in errors[:10]:
        click.echo(f"skipped: {err}", err=True)
    if errors:
        click.echo(f"skipped {len(errors)} unreadable rows/records (listed above, first 10; synpref ingest quarantines the same)", err=True)
    stats = LengthStats()
    if engine.name == "ray":  # a model per Ray actor, the same chunks and batches: the same rewards
        from .engine.ray_scoring import RayChunkScorer, RecordModel
        from .scoring import score_records_with

        spec = RecordModel(model, precision=precision, max_batch_tokens=max_batch_tokens, device=device,
                           max_length=max_length, length_policy=length_policy)
        with engine_session(engine) as cluster:
            rows = score_records_with(RayChunkScorer(cluster, spec, device=device, stats=stats), records, progress=True)
    else:
        rm = RewardModel.from_pretrained(model, device=device)
        rm.policy = rm.policy.override(max_length=max_length, length_policy=length_policy)
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
        click.echo(f"pairs not scored (a candidate dropped by the length policy, reward NaN): {len(pairs) - len(scorable)}")
    click.echo(f"records: {len(rows)}  length policy outcomes: {stats.to_dict()}")


# -- demo ----------------------------------------------------------------------
@main.command()
@click.option("-o", "--out", "out_dir", default="runs/demo", show_default=True, type=click.Path(), help="Where the pool and run go.")
@click.option("--model", default="minilm", show_default=True, help="Backbone to fine-tune.")
@click.option("--epochs", default=None, type=float, help="Training epochs (default: the demo's own).")
def demo(out_dir, model, epochs):
    """End to end on embedded data: ingest, train a reward model, report held-out accuracy."""
    from .demo import run_demo

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
