"""``build_report``: merge result folders and write report.md and a self-contained report.html.

Nothing is rescored: results come from each folder's results.json (or, with
``recompute=True``, are recomputed from its items.jsonl by the metric modules), and
models are compared on the items they share (see :mod:`synpref.evaluate.merge`).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from . import plots
from .constants import BOOTSTRAP_RESAMPLES
from .merge import compare_on_shared_items, merge_results, recompute
from .runner import ITEMS_FILE, RESULTS_FILE
from .tables import (
    bench_notes,
    benchmark_table,
    best_of_k_table,
    length_notes,
    matrix_tables,
    ordered_benchmarks,
    ordered_models,
    overview_table,
    own_items_table,
    summary_table,
    title_of,
)

HEADER_NOTE = (
    "Scores are percentages; brackets give the 95% bootstrap confidence interval (1000 resamples of items within "
    "subsets). `*` marks an incomplete benchmark (missing subsets/domains, a --limit, or only the items shared "
    "with other models): such numbers are not leaderboard numbers. The length baselines score each response by its length (longer wins / shorter wins). "
    "Numbers side by side were computed on the same items: when models were scored on different items, each "
    "benchmark compares them on the items they share and lists each model's own run separately, with its count."
)


def build_report(out_dirs, out_dir, *, recompute_metrics: bool = False, plots_enabled: bool = True, resamples: int = BOOTSTRAP_RESAMPLES) -> Path:
    """Write results.json (merged), items.jsonl (merged, when inputs differ), report.md and report.html.

    ``resamples`` is the bootstrap size of the scores this recomputes (``recompute_metrics``,
    or models cut down to the items they share with the others).
    """
    out_dir = Path(out_dir)
    dirs = [Path(d) for d in out_dirs]
    run = merge_results(dirs)
    if recompute_metrics:
        recompute(run, resamples=resamples)
    results = compare_on_shared_items(run, resamples=resamples)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    rows = run.rows()
    if [d.resolve() for d in dirs] != [out_dir.resolve()] and rows:
        with (out_dir / ITEMS_FILE).open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out_dir / "report.md").write_text(render_markdown(results))
    (out_dir / "report.html").write_text(render_html(results, with_plots=plots_enabled and plots.available()))
    return out_dir


def summary_text(out_dir) -> str:
    """The short table a command prints when it has written OUT_DIR (the full results stay in its files)."""
    out_dir = Path(out_dir)
    results = json.loads((out_dir / RESULTS_FILE).read_text(encoding="utf-8"))
    lines = [_md_table(*summary_table(results)), ""]
    lines.append("* = incomplete (a subset missing, a --limit, or compared on the items shared with other models): not a leaderboard number")
    lines.append(f"full results: {out_dir / RESULTS_FILE}; report: {out_dir / 'report.md'}, {out_dir / 'report.html'}")
    return "\n".join(lines)


# -- Markdown -------------------------------------------------------------------
OWN_ITEMS_TITLE = (
    "Each model on its own run's items (rows differ in their items, so compare a row only with the "
    "baselines beside it, which were scored on the same items):"
)


def _md_table(header, rows) -> str:
    esc = lambda s: str(s).replace("|", "\\|")
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(results: dict) -> str:
    out = ["# synpref evaluation report", "", HEADER_NOTE, ""]
    out += [f"- {n}" for n in length_notes(results)] + [""]
    out += ["## Overview", "", _md_table(*overview_table(results)), ""]
    for bench in ordered_benchmarks(results):
        out += [f"## {title_of(bench, results)}", ""]
        out += [f"- {n}" for n in bench_notes(results, bench)] + [""]
        if results["benchmarks"][bench].get("absent_reason"):
            continue
        out += [_md_table(*benchmark_table(results, bench)), ""]
        own = own_items_table(results, bench)
        if own:
            out += [OWN_ITEMS_TITLE, "", _md_table(*own), ""]
        detail = benchmark_table(results, bench, detail=True)
        if detail[1]:
            out += ["Details:", "", _md_table(*detail), ""]
        for model, header, rows in matrix_tables(results, bench):
            out += [f"Style matrix, all domains ({model}):", "", _md_table(header, rows), ""]
        bok = best_of_k_table(results, bench)
        if bok:
            out += ["Best-of-K accuracy:", "", _md_table(*bok), ""]
    return "\n".join(out)


# -- HTML -----------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}tr.score td{font-weight:bold;background:#fafafa}
.note{color:#555;font-size:.9em}img{max-width:100%}details{margin:.5em 0}
"""


_CODE_SPAN = re.compile(r"`([^`]+)`")


def inline_html(text) -> str:
    """Escaped HTML of a line written for Markdown, its `code` spans as <code>."""
    return _CODE_SPAN.sub(r"<code>\1</code>", html.escape(str(text)))


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{inline_html(h)}</th>" for h in header)
    body = ""
    for r in rows:
        cls = ' class="score"' if str(r[0]).startswith("**") else ""
        body += f"<tr{cls}>" + "".join(f"<td>{inline_html(str(c).strip('*') if i == 0 else c)}</td>" for i, c in enumerate(r)) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_notes(notes) -> str:
    return "<ul class='note'>" + "".join(f"<li>{inline_html(n)}</li>" for n in notes) + "</ul>"


def _img(src: str | None, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">' if src else ""


def render_html(results: dict, *, with_plots: bool = True) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>synpref evaluation report</title>", f"<style>{_CSS}</style></head><body>"]
    parts += ["<h1>synpref evaluation report</h1>", f"<p class='note'>{inline_html(HEADER_NOTE)}</p>"]
    parts += ["<p class='note'>Models: " + ", ".join(html.escape(m) for m in ordered_models(results)) + "</p>"]
    parts.append(_html_notes(length_notes(results)))
    parts += ["<h2>Overview</h2>", _html_table(*overview_table(results))]
    if with_plots:
        parts.append(_img(plots.overview_figure(results), "overview"))
    for bench in ordered_benchmarks(results):
        parts.append(f"<h2>{html.escape(title_of(bench, results))}</h2>")
        parts.append(_html_notes(bench_notes(results, bench)))
        if results["benchmarks"][bench].get("absent_reason"):
            continue
        parts.append(_html_table(*benchmark_table(results, bench)))
        own = own_items_table(results, bench)
        if own:
            parts += [f"<p>{inline_html(OWN_ITEMS_TITLE)}</p>", _html_table(*own)]
        if with_plots:
            parts.append(_img(plots.subset_figure(results, bench), f"{bench} subsets"))
            parts.append(_img(plots.matrix_figure(results, bench), f"{bench} matrix"))
            parts.append(_img(plots.best_of_k_figure(results, bench), f"{bench} best-of-K"))
        for model, header, rows in matrix_tables(results, bench):
            parts += [f"<p>Style matrix, all domains ({inline_html(model)}):</p>", _html_table(header, rows)]
        bok = best_of_k_table(results, bench)
        if bok:
            parts += ["<p>Best-of-K accuracy:</p>", _html_table(*bok)]
        detail = benchmark_table(results, bench, detail=True)
        if detail[1]:
            parts += ["<details><summary>All statistics</summary>", _html_table(*detail), "</details>"]
    parts.append("</body></html>")
    return "\n".join(parts)
