"""Click commands ``synpref eval`` and ``synpref report`` (registered by synpref.cli): parse, call, print."""

from __future__ import annotations

from pathlib import Path

import click

from ..cli_options import device_option, engine_options, engine_session


@click.command(name="eval")
@click.argument("models", nargs=-1)
@click.option("--bench", "benches", default="", help="Comma-separated benchmarks or 'all': rewardbench, rewardbench2, ppe-preference, ppe-correctness, rmb, rm-bench, judgebench.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), help="Folder holding each benchmark's published layout (e.g. ../shared/data).")
@click.option("--pairs", "pairs_files", multiple=True, type=click.Path(exists=True), help="Preference file(s) in any known format: pairwise accuracy.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(), help="Output folder (results.json, items.jsonl, report.md/.html).")
@click.option("--limit", type=int, help="At most N items per benchmark (results are marked incomplete).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "auto"]), default="fp32", show_default=True)
@click.option("--max-batch-tokens", default=0, show_default=True, help="Token budget of one batch (0: auto, 2048 on CPU, 16384 on GPU).")
@device_option()
@click.option("--no-baselines", is_flag=True, help="Skip the length-only baselines.")
@click.option("--cache-dir", type=click.Path(), help="Cache folder: rewards per model, the judge's answers in llm_cache.sqlite (default OUT/cache).")
@click.option("--hub/--no-hub", "use_hub", default=None, help="Load benchmarks without a local folder from the hub (default: when it can be used; with HF_HUB_OFFLINE=1 "
              "or no connection such a benchmark is absent, and the hub is not tried).")
@click.option("--judge-endpoint", help="OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1): evaluate a chat model as a pairwise judge.")
@click.option("--judge-model", help="Model name to send to --judge-endpoint.")
@click.option("--judge-api-key-env", help="Name of the environment variable holding the endpoint's API key.")
@click.option("--judge-both-orders", is_flag=True, help="Ask the judge in both candidate orders (disagreement = tie).")
@click.option("--judge-seed", default=0, show_default=True, help="Seed of the order the two candidates are shown in.")
@engine_options
def eval_command(models, benches, data_dir, pairs_files, out_dir, limit, precision, max_batch_tokens, device, no_baselines, cache_dir, use_hub, judge_endpoint, judge_model, judge_api_key_env, judge_both_orders, judge_seed, engine):
    """Score reward MODELS (and/or a generative judge) on the reward-model benchmarks and/or preference files."""
    import os

    from .runner import run_evaluation

    if not benches and not pairs_files:
        raise click.UsageError("give --bench and/or --pairs")
    judges = []
    if judge_endpoint or judge_model:
        if not (judge_endpoint and judge_model):
            raise click.UsageError("--judge-endpoint and --judge-model go together")
        if judge_api_key_env and not os.environ.get(judge_api_key_env):
            raise click.UsageError(f"--judge-api-key-env {judge_api_key_env}: the environment variable {judge_api_key_env} is not set "
                                   "(export it, or drop the option for an endpoint without a key)")
        from .judge import OpenAIJudge

        judges.append(OpenAIJudge(judge_endpoint, judge_model, api_key_env=judge_api_key_env, both_orders=judge_both_orders, seed=judge_seed))
    cluster = click.get_current_context().with_resource(engine_session(engine))  # None: score in this process
    results = run_evaluation(
        list(models),
        benches or [],
        Path(data_dir) if data_dir else None,
        Path(out_dir),
        pairs_files=pairs_files,
        limit=limit,
        precision=precision,
        baselines=not no_baselines,
        cache_dir=Path(cache_dir) if cache_dir else None,
        use_hub=use_hub,
        max_batch_tokens=max_batch_tokens,
        device=device,
        judges=judges,
        engine=cluster,
    )
    from ..text import length_summary
    from .report import summary_text

    click.echo(summary_text(out_dir))
    for name, info in results["benchmarks"].items():
        if info.get("absent_reason"):
            click.echo(f"{name}: absent: {info['absent_reason']}", err=True)
    for name, block in results["models"].items():
        if block.get("kind") == "reward-model":
            click.echo(f"{name}: {length_summary(block['text_policy'], block['length_outcomes_of_texts_scored_this_run'])} "
                       "(texts scored in this run)")


@click.command(name="report")
@click.argument("out_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(), help="Where to write the merged report (default: the only OUT_DIR).")
@click.option("--recompute", is_flag=True, help="Recompute metrics from items.jsonl (no rescoring).")
def report_command(out_dirs, out_dir, recompute):
    """Rebuild or merge evaluation reports from OUT_DIRs without rescoring.

    Models scored on different items (a --limit, a judge that skips best-of-N items) are
    compared on the items they share; each model's own run is listed with its item count.
    """
    from .report import build_report, summary_text

    if out_dir is None:
        if len(out_dirs) != 1:
            raise click.UsageError("merging several folders needs -o/--out")
        out_dir = out_dirs[0]
    try:
        target = build_report([Path(d) for d in out_dirs], Path(out_dir), recompute_metrics=recompute)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(summary_text(target))
