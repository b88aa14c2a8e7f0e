"""Click commands: ``synpref curate ...`` (curate_group) and ``synpref judge serve`` (judge_group)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from ..cli_options import device_option, engine_options, engine_session


@click.group("curate", help="Curate preference data: prep, the two-stage run, human verification files, lineage.")
def curate_group():
    pass


@curate_group.command("prep", help="Drop empty responses and duplicates, decontaminate against benchmark prompts "
                      "(those found under --data-dir, else under $SYNPREF_DATA_DIR, ./data or ../shared/data).")
@click.argument("pool", type=click.Path(exists=True))
@click.option("-o", "--out", "out", required=True, type=click.Path(), help="Output pool directory.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Benchmark data folder to decontaminate against (default: $SYNPREF_DATA_DIR, else ./data, ../shared/data).")
@click.option("--prompts", "extra", multiple=True, type=click.Path(exists=True), help="Extra prompt files (.txt or .jsonl); repeatable.")
@click.option("--no-decontaminate", is_flag=True, help="Skip the 13-gram decontamination.")
@click.option("--ngram", default=13, show_default=True, help="n of the shared n-gram that marks contamination.")
@click.option("--near-dup/--no-near-dup", default=False, show_default=True, help="MinHash LSH near-duplicate removal.")
@click.option("--near-dup-threshold", default=0.9, show_default=True, help="Jaccard threshold of near duplicates (0 to 1).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output pool.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Processes that tokenise, decontaminate and hash ahead of the main one (--engine local; 0: none). "
                   "Worth it only with idle cores; the output does not depend on it.")
@engine_options
def prep_cmd(pool, out, data_dir, extra, no_decontaminate, ngram, near_dup, near_dup_threshold, overwrite, workers, engine):
    from .prep import prep

    if not 0.0 <= near_dup_threshold <= 1.0:  # NaN too
        raise click.BadParameter(f"{near_dup_threshold} is not a Jaccard similarity (0 to 1)", param_hint="--near-dup-threshold")
    cluster = click.get_current_context().with_resource(engine_session(engine))  # None: prep in this process
    rep = prep(pool, out, data_dir=data_dir, extra_prompts=extra, decontaminate=not no_decontaminate, ngram=ngram,
               near_dup=near_dup, near_dup_threshold=near_dup_threshold, overwrite=overwrite, engine=cluster,
               workers=workers, progress=True)
    keys = ("read", "kept", "removed", "contaminated_by", "benchmarks_checked", "benchmarks_not_checked", "removed_file")
    click.echo(json.dumps({k: rep[k] for k in keys}, indent=2))
    if no_decontaminate:
        click.echo("synpref curate prep: NO decontamination (--no-decontaminate)", err=True)
        return
    checked, unchecked = rep["benchmarks_checked"], rep["benchmarks_not_checked"]
    against = ", ".join(f"{name} ({folder})" for name, folder in checked.items()) or "no benchmark"
    extra_note = f" and {len(extra)} --prompts file(s)" if extra else ""
    click.echo(f"synpref curate prep: decontaminated against {against}{extra_note}", err=True)
    if unchecked:
        click.echo(f"synpref curate prep: WARNING: NOT decontaminated against {', '.join(unchecked)} "
                   f"({next(iter(unchecked.values()))}); give --data-dir DIR holding them, or --prompts FILE", err=True)


@curate_group.command("run", help="Run (or resume) the whole curation described by CONFIG (YAML; every key: `synpref curate config`).")
@click.argument("config", type=click.Path(exists=True))
@click.option("-o", "--out", "run_dir", required=True, type=click.Path(), help="Run directory (resumable).")
@device_option("Device of the run's reward models (training and scoring) and embedder: cpu, cuda, cuda:N "
               "(default: cuda if available, else cpu).")
@click.option("--quiet", is_flag=True)
@click.option("--dry-run", is_flag=True, help="Print the LLM calls and tokens each unfinished step plans (and its pairs), "
              "from what RUN_DIR holds; call no LLM, train no model, write nothing.")
@engine_options
def run_cmd(config, run_dir, device, quiet, dry_run, engine):
    from .budget import BudgetExhausted
    from .config import ConfigError
    from .run import dry_run as plan_spend
    from .run import run_curation
    from .steps.base import WaitingForHumans

    try:
        if dry_run:
            _print_planned_spend(plan_spend(config, run_dir))
            return
        cluster = click.get_current_context().with_resource(engine_session(engine))  # None: the batches run in this process
        summ = run_curation(config, run_dir, progress=not quiet, device=device, engine=cluster)
    except ConfigError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
    except BudgetExhausted as e:  # a dry run whose LLM cache cannot be counted (a run reports it in its status)
        click.echo(f"Error: {e}", err=True)
        sys.exit(4)
    click.echo(json.dumps(summ, indent=2, default=str))
    if summ["status"].startswith(WaitingForHumans.status):
        sys.exit(3)
    if summ["status"].startswith(BudgetExhausted.status):
        click.echo(summ["status"], err=True)
        sys.exit(4)


@curate_group.command("plan", help="Measure, before paying for Stage 2, the accuracy of its signals (gold RM, current RM, each "
                      "judge) on the gold pairs, out of fold, and on a sample of the pool, and predict what Stage 2 will do: "
                      "keep / discard / flip fractions, residual noise, flip precision, the judge calls and tokens. Writes "
                      "plan.json, report.md, residual_noise.png and signals.jsonl to PLAN_DIR.")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), default=None,
              help="Plan folder; a run directory of CONFIG: its plan/ (the run's summary.json then sets the plan beside what "
                   "Stage 2 did). Without --run-dir the run's preparation steps run in PLAN_DIR/run.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="The run directory `synpref curate run` will use: the plan's preparation steps, judge answers (its "
                   "llm_cache.sqlite) and, without Stage 1, its RMs are the run's own, so the run does not pay for them "
                   "again; the plan goes to RUN_DIR/plan/ (with -o as well: its files to -o, plan.json to both).")
@click.option("--pool-sample", default=200, show_default=True, type=click.IntRange(min=1),
              help="Pool pairs, drawn at random (seeded by the config's seed), scored and judged to estimate the pool's label noise.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2),
              help="Folds of the gold pairs the out-of-fold gold RM is cross-fitted over.")
@click.option("--noise-rate", default=None, type=click.FloatRange(0.0, 1.0),
              help="Pool label-noise rate to assume instead of the estimate (when every signal is at chance).")
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Bootstrap resamples behind every derived interval (0: point estimates only).")
@device_option("Device of the RMs the plan trains and scores with: cpu, cuda, cuda:N (default: cuda if available, else cpu).")
@click.option("--quiet", is_flag=True, help="No progress lines (the table is still printed).")
def plan_cmd(config, out, run_dir, pool_sample, folds, noise_rate, bootstrap, device, quiet):
    from .config import ConfigError
    from .planner import PlanInputError
    from .planning import plan_curation

    try:
        plan = plan_curation(config, out, run_dir=run_dir, pool_sample=pool_sample, folds=folds, noise_rate=noise_rate,
                             bootstrap=bootstrap, device=device, progress=not quiet)
    except (ConfigError, PlanInputError) as e:
        click.echo(f"Error: {' '.join(str(e).split())}", err=True)
        sys.exit(2)
    click.echo(plan["table"])
    click.echo("")
    click.echo("wrote " + ", ".join(plan["files"]))


def _print_planned_spend(plan: dict) -> None:
    def num(v):
        return "?" if v is None else f"{v:,}"

    click.echo(f"{'step':<28} {'pairs':>10} {'calls/pair':>10} {'calls':>10} {'tokens':>12}")
    for s in plan["steps"]:
        bound = "" if s["exact"] else "  (at most: its inputs are not made yet)"
        click.echo(f"{s['step']:<28} {s['pairs']:>10,} {s['calls_per_pair']:>10} {s['calls']:>10,} {num(s['tokens']):>12}{bound}")
    click.echo(f"{'total':<28} {'':>10} {'':>10} {plan['calls']:>10,} {num(plan['tokens']):>12}")
    click.echo(f"spent so far: {plan['spent']['calls']:,} calls, {plan['spent']['tokens']:,} tokens; tokens per call: "
               f"{num(plan['tokens_per_call'])} ({plan['tokens_per_call_source']}); budget: judge.max_calls="
               f"{plan['budget']['max_calls']}, judge.max_tokens={plan['budget']['max_tokens']}")
    click.echo("dry run: no LLM was called, no model trained, nothing written")


@curate_group.command("config", help="Print every key of a curation config with its default and help: a YAML template to start from.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "markdown"]), default="yaml", show_default=True,
              help="yaml: an annotated config (valid as it is, once 'pool' is set); markdown: the table of docs/curation.md.")
def config_cmd(fmt):
    from .config import reference_markdown, reference_yaml

    click.echo(reference_yaml() if fmt == "yaml" else reference_markdown(), nl=False)


def _require_run_dir(run_dir) -> None:
    """A usage error unless RUN_DIR is a curation run (config.yaml, ledger/) or holds verification files."""
    if not any((Path(run_dir) / name).exists() for name in ("config.yaml", "ledger", "verification")):
        raise click.UsageError(f"{run_dir} is not a curation run folder (it has no config.yaml, ledger/ or verification/): "
                               "give the -o folder of synpref curate run")


@curate_group.command("why", help="Why is PAIR_ID in or out of the curated data?")
@click.argument("run_dir", type=click.Path(exists=True))
@click.argument("pair_id")
def why_cmd(run_dir, pair_id):
    from .run import why

    _require_run_dir(run_dir)

    click.echo(json.dumps(why(run_dir, pair_id), indent=2, default=str))


@curate_group.command("export-verification", help="Write a verification batch (JSONL + CSV) of pairs from a pool, in priority order.")
@click.argument("run_dir", type=click.Path())
@click.option("--pool", type=click.Path(exists=True), default=None, help="Pool to sample from (default: RUN_DIR/curated).")
@click.option("-n", "--budget", default=50, show_default=True, help="Pairs in the batch.")
@click.option("--seed", default=0, show_default=True)
def export_cmd(run_dir, pool, budget, seed):
    from ..store.pool import read_pool
    from .attributes import priority_key
    from .util import stable_rand
    from .verification import export_verification, import_verification

    done = set(import_verification(run_dir)["decisions"])
    recs = [r for r in read_pool(pool or Path(run_dir) / "curated") if r.meta.get("curate", {}).get("source_id", r.id) not in done]
    recs.sort(key=lambda r: (priority_key(r.meta.get("attributes")), stable_rand("export", seed, r.id)))
    items = []
    for r in recs[:budget]:
        j = (r.meta.get("curate") or {}).get("judge")
        items.append({"record": r, "pair_id": r.id, "attributes": r.meta.get("attributes"),
                      "llm_precheck": {"label": j["label"], "confidence": j["confidence"]} if j and j.get("label") else None})
    path = export_verification(run_dir, items)
    click.echo(f"wrote {len(items)} pairs to {path} (+ .csv)")


@curate_group.command("import-verification", help="Read decisions: RUN_DIR/verification/decisions/*.jsonl (plus FILES copied in); "
                      "print each pair's resolved decision. Exit code 1 when a line could not be imported.")
@click.argument("run_dir", type=click.Path(exists=True))
@click.argument("files", nargs=-1, type=click.Path(exists=True))
def import_cmd(run_dir, files):
    import shutil

    from ..verification import decisions_dir
    from .verification import import_verification

    _require_run_dir(run_dir)
    not_jsonl = [f for f in files if not f.endswith(".jsonl")]
    if not_jsonl:  # the run reads decisions/*.jsonl only: a copied .csv would sit there unread
        raise click.UsageError(f"FILES: {not_jsonl[0]} is not a .jsonl decisions file; give the JSON Lines file the "
                               "annotation tool exported (one decision object per line)")
    dest = decisions_dir(run_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        if Path(f).resolve().parent != dest.resolve():
            shutil.copy(f, dest / Path(f).name)
    rep = import_verification(run_dir, warn=False)  # the lines are printed below
    click.echo(json.dumps({"files": rep["files"], "pairs": len(rep["decisions"]), "counts": rep["counts"], "decisions": rep["decisions"],
                           "invalid_rows": rep["invalid_rows"], "invalid": rep["invalid"]}, indent=2))
    if rep["invalid_rows"]:
        for b in rep["invalid"]:
            click.echo(f"error: {b['message']}", err=True)
        click.echo(f"{rep['invalid_rows']} decision line(s) not imported: fix or remove them (the run waits until then)", err=True)
        sys.exit(1)


@click.group("judge", help="The embedded LLM judge (SmolLM2-135M-Instruct on llama.cpp).")
def judge_group():
    pass


@judge_group.command("serve", help="Serve the embedded judge (OpenAI-compatible) on 127.0.0.1 until interrupted.")
@click.option("--port", default=8765, show_default=True)
@click.option("--model", "model_path", default=None, type=click.Path(exists=True), help="A GGUF file (default: SmolLM2-135M-Instruct).")
@click.option("--n-ctx", default=2048, show_default=True)
def serve_cmd(port, model_path, n_ctx):
    import signal

    from ..llm import JudgeServer
    from ..model.loading import check_gguf

    if model_path:
        check_gguf(Path(model_path))  # before llama.cpp starts on it

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # SIGTERM and SIGINT stop the server cleanly (also when started in the background)
    signal.signal(signal.SIGINT, stop)
    with JudgeServer(model_path, port=port, n_ctx=n_ctx) as server:
        click.echo(f"judge serving at {server.base_url} (model {server.endpoint().model}); Ctrl-C stops it")
        sys.stdout.flush()
        try:
            while server.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
