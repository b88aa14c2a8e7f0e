"""Report tables as plain data (header + rows of cells), shared by the Markdown and HTML writers."""

from __future__ import annotations

from .constants import BENCHMARK_ORDER
from .registry import get_benchmark

BASELINE = "baseline"


def ordered_models(results: dict) -> list[str]:
    """Reward models (in run order) first, then the length baselines."""
    models = results["models"]
    return [m for m in models if models[m].get("kind") != BASELINE] + [m for m in models if models[m].get("kind") == BASELINE]


def ordered_benchmarks(results: dict) -> list[str]:
    names = list(results["benchmarks"])
    return [b for b in BENCHMARK_ORDER if b in names] + [b for b in names if b not in BENCHMARK_ORDER]


def title_of(bench: str, results: dict) -> str:
    module = results["benchmarks"][bench].get("module", bench)
    try:
        title = get_benchmark(module).title
    except ValueError:
        title = bench
    return f"{title} ({bench.split(':', 1)[1]})" if ":" in bench else title


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def with_ci(block: dict | None) -> str:
    if not block or block.get("score") is None:
        return "—"
    ci = block.get("ci95")
    text = pct(block["score"])
    if ci and ci[0] is not None:
        text += f" [{pct(ci[0])}, {pct(ci[1])}]"
    return text


def score_cell(block: dict | None, *, ci: bool = True) -> str:
    """A model's score on a benchmark for the tables: with its CI, `*` when incomplete."""
    if block is None or block.get("absent"):
        return "absent"
    if block.get("not_comparable"):
        return "— (not comparable, see notes)"
    return (with_ci(block) if ci else pct(block.get("score"))) + ("" if block.get("complete") else " *")


def overview_table(results: dict, *, ci: bool = True) -> tuple[list[str], list[list[str]]]:
    models = ordered_models(results)
    rows = []
    for bench in ordered_benchmarks(results):
        rows.append([title_of(bench, results), *(score_cell(results["models"][m]["benchmarks"].get(bench), ci=ci) for m in models)])
    overall_row = ["Overall (mean of 7)"]
    for m in models:
        ov = results["models"][m].get("overall") or {}
        overall_row.append(pct(ov["score"]) if ov.get("score") is not None else "— (needs all 7 complete)")
    rows.append(overall_row)
    return ["Benchmark", *models], rows


def summary_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """The overview without CIs, with the number of items each row's scores were computed on."""
    header, rows = overview_table(results, ci=False)
    counts = []
    for bench in ordered_benchmarks(results):
        info = results["benchmarks"][bench]
        counts.append("—" if info.get("absent_reason") else str(info.get("n_items")))
    return [header[0], "items", *header[1:]], [[r[0], n, *r[1:]] for r, n in zip(rows, [*counts, ""])]


def benchmark_table(results: dict, bench: str, *, detail: bool = False) -> tuple[list[str], list[list[str]]]:
    """Subset scores (or, with ``detail``, every other statistic) for every model."""
    models = ordered_models(results)
    keys: list[str] = []
    for m in models:
        block = results["models"][m]["benchmarks"].get(bench) or {}
        source = block.get("stats", {}) if detail else block.get("subsets", {})
        for k in source:
            if k not in keys and not (detail and k.startswith(("subset/", "section/"))):
                keys.append(k)
    rows = []
    for k in keys:
        row = [k]
        for m in models:
            block = results["models"][m]["benchmarks"].get(bench) or {}
            row.append(with_ci((block.get("stats" if detail else "subsets") or {}).get(k)))
        rows.append(row)
    score_row = ["**score**"]
    for m in models:
        score_row.append(with_ci(results["models"][m]["benchmarks"].get(bench)))
    if not detail:
        rows.append(score_row)
    return ["", *models], rows


def bench_notes(results: dict, bench: str) -> list[str]:
    info = results["benchmarks"][bench]
    notes = []
    if info.get("absent_reason"):
        return [f"absent: {info['absent_reason']}"]
    comparison = info.get("comparison")
    if comparison:
        notes.append(
            f"source: `{info.get('source')}`; the models were scored on different items, so every score here is on the "
            f"{comparison['shared_items']} items all of them were scored on (incomplete, `*`)"
        )
        counts = ", ".join(f"{m}: {comparison['own_items'][m]}" for m in ordered_models(results) if m in comparison["own_items"])
        notes.append(f"items in each model's own run: {counts}; own-run scores are listed below the table, each with its count")
        notes += [f"{m}: not comparable: {why}" for m, why in comparison["not_comparable"].items()]
    else:
        notes.append(f"source: `{info.get('source')}`, {info.get('n_items')} items")
    notes += list(info.get("notes") or [])
    if info.get("missing"):
        notes.append("incomplete, missing: " + ", ".join(info["missing"]))
    if info.get("limited_to") and not comparison:
        notes.append(f"incomplete: limited to {info['limited_to']} items")
    for m in ordered_models(results):
        block = results["models"][m]["benchmarks"].get(bench) or {}
        if block.get("n_dropped_candidates"):
            notes.append(f"{m}: {block['n_dropped_candidates']} candidates dropped by the length policy (every comparison with them counts as wrong)")
    return notes


def own_items_table(results: dict, bench: str) -> tuple[list[str], list[list[str]]] | None:
    """Reward models whose own run covered other items than the shared ones: their own score, its item
    count, and each length baseline on exactly those items (where rows for all of them exist)."""
    baselines = [m for m in ordered_models(results) if results["models"][m].get("kind") == BASELINE]
    rows = []
    for m in ordered_models(results):
        own = (results["models"][m]["benchmarks"].get(bench) or {}).get("own_items")
        if not own or m in baselines:
            continue
        on_same = own.get("baselines_on_these_items") or {}
        cells = [with_ci(on_same[b]) if b in on_same else "— (no rows for these items)" for b in baselines]
        rows.append([m, str(own.get("n_items")), score_cell(own), *cells])
    return (["model (own run)", "items", "score", *(f"{b} (same items)" for b in baselines)], rows) if rows else None


def length_notes(results: dict) -> list[str]:
    """How many inputs each model saw cut to fit its max_length (texts scored in this run)."""
    notes = []
    for m in ordered_models(results):
        outcomes = results["models"][m].get("length_outcomes_of_texts_scored_this_run")
        if outcomes and (outcomes.get("truncated") or outcomes.get("response_truncated") or outcomes.get("dropped")):
            policy = results["models"][m].get("text_policy", {})
            notes.append(
                f"{m}: max_length {policy.get('max_length')}: {outcomes.get('truncated', 0)} inputs lost old context, "
                f"{outcomes.get('response_truncated', 0)} responses were cut to their beginning, {outcomes.get('dropped', 0)} dropped "
                f"(of {sum(outcomes.values())} texts scored in this run)"
            )
    return notes


def best_of_k_table(results: dict, bench: str) -> tuple[list[str], list[list[str]]] | None:
    ks = (1, 2, 4, 8, 16, 32)
    rows = []
    for m in ordered_models(results):
        curves = ((results["models"][m]["benchmarks"].get(bench) or {}).get("extras") or {}).get("best_of_k") or {}
        for task, c in curves.items():
            rows.append([f"{m} / {task}", *(pct(c["model"][k - 1]) if k <= len(c["k"]) else "—" for k in ks)])
            if m == ordered_models(results)[0]:
                rows.append([f"oracle / {task}", *(pct(c["oracle"][k - 1]) if k <= len(c["k"]) else "—" for k in ks)])
    return (["model / task", *(f"K={k}" for k in ks)], rows) if rows else None


def matrix_tables(results: dict, bench: str) -> list[tuple[str, list[str], list[list[str]]]]:
    from .constants import RM_BENCH_STYLES

    out = []
    for m in ordered_models(results):
        matrices = ((results["models"][m]["benchmarks"].get(bench) or {}).get("extras") or {}).get("matrix") or {}
        mat = matrices.get("all domains")
        if mat:
            header = ["chosen \\ rejected", *RM_BENCH_STYLES]
            rows = [[RM_BENCH_STYLES[i], *(pct(v) for v in mat[i])] for i in range(len(mat))]
            out.append((m, header, rows))
    return out
