"""Click commands ``serve`` and ``bon`` (offline best-of-N, implemented in ``synpref.evaluate.bon``); the main ``synpref`` CLI registers them."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import click

from ..cli_options import device_option
from ..text import LENGTH_POLICIES

_length_options = [
    click.option("--max-length", type=int, help="Override the checkpoint's max_length (tokens)."),
    click.option(
        "--length-policy",
        type=click.Choice(LENGTH_POLICIES),
        help="Override the checkpoint's length policy (see synpref.text).",
    ),
    device_option(),
]


def _with(options):
    def deco(f):
        for option in reversed(options):
            f = option(f)
        return f

    return deco


@click.command("serve")
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--api-key", envvar="SYNPREF_API_KEY", help="Require 'Authorization: Bearer KEY' (env SYNPREF_API_KEY).")
@click.option("--batching/--no-batching", default=True, show_default=True, help="Dynamic micro-batching across requests.")
@click.option("--max-batch-tokens", default=0, show_default=True, type=int, help="Token budget of a micro-batch (0: auto, 2048 on CPU, 16384 on GPU).")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=float, help="How long a micro-batch waits for more requests.")
@click.option("--max-items", default=256, show_default=True, type=int, help="Most conversations/candidates per request.")
@click.option("--max-chars", default=100_000, show_default=True, type=int, help="Most characters per item.")
@click.option("--normalize", is_flag=True, help="Return (reward - mean) / std by default (stats saved with the checkpoint).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "auto"]), default="fp32", show_default=True)
@click.option("--served-model-name", help="Name reported by the API (default: MODEL).")
@click.option("--graceful-timeout", default=30.0, show_default=True, type=float, help="Seconds to drain in-flight requests on shutdown.")
@click.option("--threads", type=int, help="torch CPU threads for the model (default: torch's choice); 1 suits shared machines.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One line per request on stderr: client, method, path, status, latency, items scored.")
@_with(_length_options)
def serve_command(model, host, port, api_key, batching, max_batch_tokens, max_wait_ms, max_items, max_chars, normalize, precision, served_model_name, graceful_timeout, threads, access_log, max_length, length_policy, device):
    """Serve reward model MODEL over HTTP (/v1/score, /v1/compare, /v1/best-of-n, /get_reward)."""
    from .config import ServeConfig

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from .server import load_reward_model, serve

    config = ServeConfig(
        batching=batching,
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        precision=precision,
        max_items=max_items,
        max_chars=max_chars,
        normalize=normalize,
        api_key=api_key or None,
        model_name=served_model_name or str(model),
        access_log=access_log,
    )
    rm = load_reward_model(model, device=device, max_length=max_length, length_policy=length_policy)
    if normalize and not (rm.meta.get("reward_mean") is not None and rm.meta.get("reward_std")):
        raise click.UsageError("--normalize needs reward_mean/reward_std saved with the checkpoint; this one has none")
    serve(rm, config, host, port, graceful_timeout=graceful_timeout)


def _length_errors_as_usage(rows):
    from ..text import LengthError

    try:
        yield from rows
    except LengthError as e:
        raise click.ClickException(f"{e} (e.g. --length-policy truncate)") from None


class _BonProgress:
    """A prompts bar, and after the first scored chunk one line estimating the whole run."""

    def __init__(self, total: int, limited: bool):
        from tqdm.auto import tqdm

        self.total, self.limited = total, limited
        self.done = 0
        self.started = time.perf_counter()
        self.bar = tqdm(total=total, desc="best-of-N", unit="prompt", dynamic_ncols=True)

    def __call__(self, prompts: int) -> None:
        first = self.done == 0
        self.done += prompts
        self.bar.update(prompts)
        if first and self.done < self.total:
            seconds = (time.perf_counter() - self.started) / self.done * self.total
            hint = "" if self.limited else " (--limit N scores the first N prompts only)"
            self.bar.write(f"bon: {self.done} of {self.total} prompts scored in {time.perf_counter() - self.started:.0f} s; "
                           f"all of them will take about {_duration(seconds)}{hint}", file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@click.command("bon")
@click.argument("model")
@click.option("-i", "--input", "inputs", multiple=True, required=True, type=click.Path(exists=True), help="Candidates file(s) or directories.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="JSONL: one row per prompt.")
@click.option("--normalize", is_flag=True, help="Report normalised rewards (the choice does not change).")
@click.option("--max-n", type=int, help="Largest N of the best-of-N curve (default: most candidates of any prompt).")
@click.option("--limit", type=int, help="Only the first LIMIT prompts (a quick look).")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Save the curve as OUT.curve.png.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="A progress bar, and a time estimate after the first 256 prompts.")
@click.option("--max-batch-tokens", default=0, show_default=True, type=int, help="Token budget of one batch (0: auto, 2048 on CPU, 16384 on GPU).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "auto"]), default="fp32", show_default=True)
@click.option("--max-length", type=int, help="Override the checkpoint's max_length (tokens).")
@click.option("--length-policy", type=click.Choice(LENGTH_POLICIES),
              help="How candidates longer than max_length are handled (default: truncate, so every candidate gets a reward; "
                   "see synpref.text.scoring_policy).")
@device_option()
def bon_command(model, inputs, out_path, normalize, max_n, limit, plot, progress, max_batch_tokens, precision, max_length, length_policy, device):
    """Best-of-N: choose the highest-reward candidate for each prompt in the input.

    Inputs: candidate files ({"prompt", "candidates", "correct"?}), PPE best-of-K files,
    RMB BoN_set or any file or pool synpref reads whose records have two or more candidates.
    Writes OUT (JSONL: id, chosen, rewards, ranking, and correctness when labelled).
    When correctness labels exist, also prints the best-of-N curve (N = 1..max, exact
    over all N-subsets of each prompt's scored candidates) against oracle and random
    choice, and writes it to OUT.curve.json (and OUT.curve.png unless --no-plot).
    """
    from collections import Counter
    from itertools import islice

    from ..errors import UserValueError
    from ..evaluate.bon import read_bon_items, run_bon
    from ..evaluate.bon_curve import bon_curves, curve_table, dropped_counts, plot_curves
    from ..formats import UnknownFormatError
    from ..model import model_title
    from ..text import LengthStats, length_summary, scoring_policy
    from .server import load_reward_model

    counted_rejections: list = []
    try:  # a quick first pass: the number of prompts, for progress and a time estimate
        total = sum(1 for _ in islice(read_bon_items(inputs, counted_rejections), limit))
    except UnknownFormatError as e:
        raise click.ClickException(f"{e} (convert such a file with synpref ingest --map ..., then pass the pool to --input)") from None
    if total == 0:
        first = counted_rejections[0] if counted_rejections else None
        why = f"all {len(counted_rejections)} rows were skipped (first: {first})" if first else "it holds no rows"
        raise UserValueError(f"--input {', '.join(inputs)}: no prompt with two or more candidates to choose from: {why}")
    rejected, length_stats = [], LengthStats()
    rm = load_reward_model(model, device=device)
    rm.policy = scoring_policy(rm.policy, max_length=max_length, length_policy=length_policy)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    labelled_rewards, labelled_correct, n_rows, n_chosen_correct, n_no_choice = [], [], 0, 0, 0
    bar = _BonProgress(total, limit is not None) if progress else None
    with out.open("w", encoding="utf-8") as fh:
        rows = run_bon(rm, islice(read_bon_items(inputs, rejected), limit), normalize=normalize, stats=length_stats,
                       max_batch_tokens=max_batch_tokens, precision=precision, on_chunk=bar)
        try:
            for row in _length_errors_as_usage(rows):
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n_rows += 1
                if "correct" in row:
                    labelled_rewards.append([math.nan if r is None else r for r in row["rewards"]])
                    labelled_correct.append(row["correct"])
                    n_chosen_correct += row["chosen_correct"] is True
                    n_no_choice += row["chosen"] is None
        finally:
            if bar is not None:
                bar.close()
    click.echo(f"{n_rows} prompts -> {out} (skipped rows: {len(rejected)})", err=True)
    click.echo(length_summary(rm.policy, length_stats), err=True)
    for reason, n in sorted(Counter(r.reason for r in rejected).items()):
        click.echo(f"  skipped {n}: {reason}", err=True)
    for r in rejected[:10]:
        click.echo(f"  skipped: {r}", err=True)
    if not labelled_correct:
        click.echo("no correctness labels: no best-of-N curve", err=True)
        return
    curve = bon_curves(labelled_rewards, labelled_correct, max_n=max_n)
    dropped = dropped_counts(labelled_rewards)
    chosen = len(labelled_correct) - n_no_choice
    click.echo(f"chosen candidate correct on {n_chosen_correct}/{chosen} labelled prompts (all candidates)"
               + (f"; {n_no_choice} prompts had no scored candidate, so no choice, and are not counted" if n_no_choice else ""))
    if dropped["dropped_candidates"]:
        click.echo(f"{dropped['dropped_candidates']} candidates of {dropped['prompts_with_dropped_candidates']} prompts were dropped by "
                   f"--length-policy {rm.policy.length_policy} (no reward): the curve leaves them out for the reward model, "
                   "oracle and random alike (N-subsets are drawn from each prompt's scored candidates)")
    click.echo(curve_table(curve))
    curve_path = out.with_name(out.name + ".curve.json")
    title = model_title(model, rm.meta)
    curve_path.write_text(json.dumps({"model": title, "exact": True, **dropped, "text_policy": rm.policy.to_dict(), "rows": curve}, indent=2))
    if plot:
        png = plot_curves(curve, out.with_name(out.name + ".curve.png"), title=f"Best-of-N: {title}")
        click.echo(f"curve: {curve_path}, plot: {png}", err=True)
    else:
        click.echo(f"curve: {curve_path}", err=True)
