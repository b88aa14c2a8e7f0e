"""``synpref curate plan``: measure the signals Stage 2 decides with, then predict what Stage 2 will do.

The planner library (:mod:`synpref.curate.planner`) runs nothing; this module measures what it
reads, with the run's own machinery, in the run's own directory:

1. The run's preparation steps (``prep``, ``pairs``, ``attributes``, ``embed``: the config says
   which are on) run through the :class:`~synpref.curate.runner.Runner` in RUN_DIR, exactly as
   ``synpref curate run`` would run them; the run later finds them done and skips them. The
   attributes step pays one LLM call a pair (of the whole pool): ``attributes.enabled: false``
   plans without it.
2. Gold RM, out of fold: the gold pairs are cross-fitted over ``folds`` folds
   (:func:`~synpref.curate.rm.train_cross_fitted`, :func:`~synpref.curate.rm.fold_of` on the pair
   id), so each gold pair is scored by a model trained on the other folds only. The gold RM on
   the pool sample is the run's own: trained on every gold pair (a pool pair is never a gold pair).
3. Current RM: the run's Stage 2 current RMs when there is no Stage 1 (cross-fitted on the pool's
   labels, ``stage2.current_rm_folds`` / ``current_rm_pairs``, :class:`~synpref.curate.steps.stage2.rms.Stage2RMs`'s
   own stream); each pool-sample pair is scored by the model of its fold, the gold pairs (never in
   the pool) by the model of theirs. With ``stage1.iterations`` = 0 these models, and the gold RM,
   are trained where the run keeps them (RUN_DIR/stage2/), so the run does not train them again.
   With Stage 1 on, the run's current RM is Stage 1's best, unknown before the humans answer: the
   plan measures the cross-fitted stand-in instead, in PLAN_DIR/models/, and says so in its flags.
4. Judges: the run's panel (:meth:`~synpref.curate.endpoints.RunLLM.panel`, one prompt, one client,
   the run's cache) asks every judge on EVERY gold pair and every pool-sample pair (a gold pair is
   never shown itself as an example). Each judge's label is its own self-consistency vote
   (``Judgement.per_model``). Tokens per call and calls per vote are measured from those calls,
   answers read from the cache included (their tokens were paid once).
5. :func:`~synpref.curate.planner.make_plan` with the configured rule, then plan.json,
   residual_noise.png, report.md and signals.jsonl (one line per measured pair: its fold and the
   model that scored it) in PLAN_DIR.

The pool-sample pairs are asked with the very prompts the run's ``stage2/judge`` will send, in the
same cache: a sampled pair the run sends to the judges costs it nothing more.
"""

from __future__ import annotations

import heapq
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

from .config import ConfigError, load_config
from .rm import CrossFitScorer, RMScorer, fold_of, train_cross_fitted, train_rm
from .runner import PLAN_FILE, RunContext, Runner
from .stages import stage2_rule
from .util import atomic_write_json, atomic_write_text, stable_rand

JUDGE_CHUNK = 8  # pairs judged between two progress lines (a slow judge: a line every few calls)


class PlanError(ConfigError):
    """A plan that cannot be made from this config or these flags; one line naming the key or flag."""


def _check_endpoints(cfg) -> None:
    """Each configured endpoint accepts a connection (else one line naming ``endpoints[i].base_url``)."""
    for i, ep in enumerate(cfg.endpoints):
        u = urlparse(ep.base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise PlanError(f"endpoints[{i}].base_url = {ep.base_url!r} is not an http(s) URL")
        port = u.port or (443 if u.scheme == "https" else 80)
        try:
            socket.create_connection((u.hostname, port), timeout=min(10.0, float(ep.timeout))).close()
        except OSError as e:
            raise PlanError(f"endpoints[{i}].base_url = {ep.base_url}: the judge endpoint cannot be reached "
                            f"({e.strerror or e}); start it or fix endpoints[{i}].base_url") from None


def _is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / "state.json").is_file()


def resolve_dirs(out, run_dir) -> tuple[Path, Path, bool]:
    """(PLAN_DIR, RUN_DIR, whether RUN_DIR is the user's run directory)."""
    if run_dir is not None:
        run_dir = Path(run_dir)
        return (Path(out) if out is not None else run_dir / PLAN_FILE.parent), run_dir, True
    if out is None:
        raise PlanError("give -o PLAN_DIR (a folder for the plan, or a run directory) or --run-dir RUN_DIR")
    out = Path(out)
    if _is_run_dir(out):
        return out / PLAN_FILE.parent, out, True
    return out, out / "run", False  # the preparation steps run in PLAN_DIR/run


class _Phases:
    """Progress lines and the seconds of each phase."""

    def __init__(self, ctx):
        self.ctx, self.seconds = ctx, {}

    def run(self, title: str, fn, /, *a, **kw):
        self.ctx.log(f"plan: {title} ...")
        t = time.time()
        out = fn(*a, **kw)
        self.seconds[title] = round(time.time() - t, 2)
        self.ctx.log(f"plan: {title} done in {self.seconds[title]:.1f} s")
        return out


def _pool_sample(ctx, n: int) -> tuple[list[str], int]:
    """A seeded random sample of ``n`` of the pool pairs Stage 2 decides (not gold, not rejected: the n smallest
    seeded hashes), and how many pairs Stage 2 decides."""
    skip = set(ctx.gold()) | ctx.rejected()
    seed = ctx.cfg.seed
    decided = [p for p in ctx.pairs.pool_ids() if p not in skip]
    return heapq.nsmallest(n, decided, key=lambda p: stable_rand(seed, "plan-pool-sample", p)), len(decided)


def _gold_folds(gold_ids: list[str], seed: int, folds: int, gold_key: str) -> dict[int, int]:
    sizes = {f: 0 for f in range(folds)}
    for pid in gold_ids:
        sizes[fold_of(seed, folds, pid)] += 1
    empty = [f for f, s in sizes.items() if s == 0]
    if folds < 2 or empty:
        why = "--folds must be at least 2" if folds < 2 else f"fold {empty[0]} of {folds} gets none of them"
        raise PlanError(f"the gold set ({gold_key}) has {len(gold_ids)} pairs, too few to cross-fit the gold RM over "
                        f"--folds {folds} ({why}): give more gold pairs or a smaller --folds")
    return sizes


def measure(ctx, phases: _Phases, *, plan_dir: Path, own_models: bool, pool_sample: int, folds: int) -> dict:
    """Every signal on the gold set and the pool sample (see the module docstring); a dict of lists plus details."""
    cfg, pairs = ctx.cfg, ctx.pairs
    settings = ctx.rm_settings()
    gold = ctx.gold()
    gold_rows = pairs.rows_of(gold)
    gold_ids = [p for p in gold if p in gold_rows]
    gold_labels = [gold[p]["label"] for p in gold_ids]
    sizes = _gold_folds(gold_ids, cfg.seed, folds, f"gold: {cfg.gold}")
    gold_recs = pairs.take(gold_rows.values())
    g_records = [gold_recs[gold_rows[p]] for p in gold_ids]
    del gold_recs

    # the gold RM, out of fold on the gold pairs
    oof_dir = plan_dir / "models"
    oof = phases.run(f"gold RM cross-fitted over {folds} folds of {len(gold_ids)} gold pairs", train_cross_fitted, oof_dir,
                     lambda: iter(zip(gold_ids, g_records, gold_labels)), settings, folds, name="gold_rm", tag="plan: out-of-fold gold RM")
    p_gold = phases.run("scoring the gold pairs with their out-of-fold gold RM", CrossFitScorer(oof, ctx.device).probs,
                        gold_ids, g_records, gold_labels)

    # the run's gold RM (every gold pair) and current RMs
    models = ctx.dir / "stage2" if own_models else oof_dir
    gold_rm = phases.run("gold RM on every gold pair (the run's)", train_rm, models / "gold_rm", list(zip(g_records, gold_labels)),
                         settings, "stage2 gold RM")
    from .steps.stage2.rms import Stage2RMs

    current = phases.run("current RMs cross-fitted on the pool's labels (the run's, without Stage 1)", train_cross_fitted, models,
                         Stage2RMs._labelled_pool(ctx), settings, cfg.stage2.current_rm_folds)
    cur_scorer = CrossFitScorer(current, ctx.device)
    p_cur_gold = phases.run("scoring the gold pairs with the current RM", cur_scorer.probs, gold_ids, g_records, gold_labels)

    # the pool sample
    sample, decided = phases.run(f"drawing {pool_sample} pool pairs", _pool_sample, ctx, pool_sample)
    rows = pairs.rows_of(sample, pairs.pool_range)
    sample.sort(key=rows.__getitem__)
    recs = pairs.take(rows.values())
    s_records = [recs[rows[p]] for p in sample]
    del recs
    silver = ctx.labels("silver")
    s_labels = [silver.get(p, {}).get("label", "A") for p in sample]
    p_cur_pool = phases.run(f"scoring {len(sample)} pool pairs with the current RM", cur_scorer.probs, sample, s_records, s_labels)
    p_gold_pool = phases.run(f"scoring {len(sample)} pool pairs with the gold RM", RMScorer(gold_rm, ctx.device).probs, s_records, s_labels)

    # objectivity (the attributes step, when on)
    attrs_g = ctx.attributes.take(gold_rows.values())
    attrs_p = ctx.attributes.take(rows.values())
    g_attrs = [attrs_g[gold_rows[p]] for p in gold_ids]
    s_attrs = [attrs_p[rows[p]] for p in sample]

    # the judges, on every gold pair and every pool-sample pair
    judged = phases.run(f"judging {len(gold_ids)} gold + {len(sample)} pool pairs with every judge", _judge_all, ctx,
                        [(gold_ids, g_records, g_attrs, [gold_rows[p] for p in gold_ids], True),
                         (sample, s_records, s_attrs, [rows[p] for p in sample], False)])
    return {"pool_size": decided, "gold_ids": gold_ids, "gold_labels": gold_labels, "p_gold": p_gold, "p_current": p_cur_gold,
            "gold_objectivity": [(a or {}).get("objectivity") for a in g_attrs],
            "pool_ids": sample, "pool_labels": s_labels, "pool_p_current": p_cur_pool, "pool_p_gold": p_gold_pool,
            "pool_objectivity": [(a or {}).get("objectivity") for a in s_attrs],
            "judges": judged["judges"], "gold_judges": judged["labels"][0], "pool_judges": judged["labels"][1],
            "usage": judged["usage"], "votes": judged["votes"],
            "gold_rm_oof": {"folds": folds, "seed": cfg.seed, "models": {str(f): {"path": p, "trained_on": len(gold_ids) - sizes[f],
                                                                                  "scores": sizes[f]} for f, p in oof.models.items()}},
            "gold_rm": str(gold_rm), "current_rm": current.to_dict(), "oof": oof, "current": current}


def _judge_all(ctx, groups) -> dict:
    """Each judge's own label (its self-consistency vote) on every pair of every group, and the calls it took."""
    from ..llm import Usage
    from .judging import ExampleFinder, judge_pairs

    panel = ctx.llm.panel()
    names = [c.endpoint.label for c in panel.clients]
    before = Usage()
    for c in panel.clients:
        before.add(c.usage)
    finder = ExampleFinder(ctx, ctx.gold())
    total = sum(len(g[0]) for g in groups)
    done, last = 0, time.time()
    labels = []
    for ids, records, attrs, rows, is_gold in groups:
        out = {name: [] for name in names}
        for k in range(0, len(ids), JUDGE_CHUNK):
            sl = slice(k, k + JUDGE_CHUNK)
            js = judge_pairs(panel, finder, ids[sl], records[sl], attrs[sl], rows[sl], not_own_example=is_gold)
            for j in js:
                for name in names:
                    out[name].append(j["per_model"].get(name))
            done += len(js)
            if time.time() - last > 5 or done == total:
                ctx.log(f"plan: judged {done}/{total} pairs")
                last = time.time()
        labels.append(out)
    after = Usage()
    for c in panel.clients:
        after.add(c.usage)
    used = {k: v - before.to_dict()[k] for k, v in after.to_dict().items()}
    return {"judges": names, "labels": labels, "usage": used, "votes": total * len(names) * ctx.cfg.judge.n_samples}


def judge_cost(usage: dict, votes: int):
    """Tokens per call and calls per vote, from the calls the judges made (paid and read from the cache)."""
    from .planner import JudgeCost

    requests = usage["calls"] + usage["cache_hits"]
    if not requests or not votes:
        return JudgeCost(), requests
    prompt = usage["prompt_tokens"] + usage["cached_prompt_tokens"]
    completion = usage["completion_tokens"] + usage["cached_completion_tokens"]
    return JudgeCost(prompt / requests, completion / requests, max(1.0, requests / votes)), requests


def _predicted(plan) -> dict:
    """What the run's summary sets beside what Stage 2 did (runner.plan_beside_actual)."""
    p = plan.predictions or {}

    def v(name):
        return None if name not in p or p[name].value is None else round(p[name].value, 4)

    cost = plan.cost
    return {"keep_fraction": v("keep"), "discard_fraction": v("discard"), "flip_fraction": v("flip"), "judged_fraction": v("judged"),
            "residual_noise": None if plan.residual_noise is None or plan.residual_noise.value is None else round(plan.residual_noise.value, 4),
            "flip_precision": v("flip_precision"), "flip_recall": v("flip_recall"),
            "noise_rate": plan.noise.used, "pool_pairs": plan.settings["pool_size"],
            "judge_calls": None if cost is None or cost.calls.value is None else round(cost.calls.value),
            "judge_tokens": None if cost is None or cost.calls.value is None else round(cost.prompt_tokens.value + cost.completion_tokens.value)}


def plan_curation(config, out=None, *, run_dir=None, pool_sample: int = 200, folds: int = 5, noise_rate: float | None = None,
                  bootstrap: int = 1000, device: str | None = None, progress: bool = False) -> dict:
    """Measure, predict and write the plan (see the module docstring); plan.json's content, plus ``table`` and ``files``."""
    from .planner import GoldSignals, PlanInputError, PlanOptions, PoolSample, format_plan, make_plan
    from .run import open_run
    from .steps import AttributesStep, EmbedStep, PairsStep, PrepStep

    cfg = load_config(config)
    if not cfg.gold:
        raise PlanError("synpref curate plan measures every signal on human-verified pairs: set 'gold' in the config "
                        "(a pool of verified pairs)")
    if pool_sample < 1:
        raise PlanError(f"--pool-sample must be >= 1; got {pool_sample}")
    try:
        options = PlanOptions(bootstrap=bootstrap, seed=cfg.seed, noise_rate=noise_rate)
    except PlanInputError as e:
        flag = "--noise-rate" if "noise_rate" in str(e) else "--bootstrap"
        raise PlanError(f"{flag}: {e}") from None
    plan_dir, run_dir, users_run = resolve_dirs(out, run_dir)
    _check_endpoints(cfg)
    started = time.time()
    open_run(cfg, run_dir)
    plan_dir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(cfg, run_dir, device=device, progress=progress)
    phases = _Phases(ctx)
    try:
        runner = Runner(ctx, [PrepStep(), PairsStep(), AttributesStep(), EmbedStep()])
        status = phases.run("the run's preparation steps (prep, pairs, attributes, embed)", runner.run)
        if status != "done":
            raise PlanError(f"the run's preparation stopped: {status}")
        if not ctx.pairs.pool_rows:
            raise PlanError(f"the pool ({cfg.pool}) has no pair left to plan for after prep")
        own_models = cfg.stage1.iterations == 0
        m = measure(ctx, phases, plan_dir=plan_dir, own_models=own_models, pool_sample=pool_sample, folds=folds)
    finally:
        ctx.llm.close()
    cost, requests = judge_cost(m["usage"], m["votes"])
    rule = cfg.stage2.rule
    objectivity = {}
    if "objectivity" in stage2_rule(rule).uses:
        objectivity = {"gold_objectivity": m["gold_objectivity"], "pool_objectivity": m["pool_objectivity"]}
    gold = GoldSignals(m["gold_labels"], m["p_gold"], m["p_current"], m["gold_judges"])
    pool = PoolSample(m["pool_labels"], m["pool_p_current"], m["pool_judges"], m["pool_p_gold"])
    plan = phases.run(f"predicting ({bootstrap} bootstrap resamples)", make_plan, gold, pool, stage2=cfg.stage2, judge=cfg.judge,
                      pool_size=m["pool_size"], cost=cost,
                      options=options, rule=rule, **objectivity)
    if cfg.stage1.iterations:
        plan.flags.append(f"stage1.iterations is {cfg.stage1.iterations}: the run's current RM will be Stage 1's best, and its gold "
                          "set larger; this plan measured the current RM a run without Stage 1 uses (cross-fitted on the pool's labels)")
    for name, values in (("gold RM", m["p_gold"]), ("current RM", m["p_current"])):
        ties = sum(1 for v in values if v == 0.5)
        if ties:
            plan.flags.append(f"{name}: {ties} of {len(values)} gold pairs score exactly 0.5 (both candidates get the same reward, "
                              f"e.g. identical once truncated to rm.max_length={cfg.rm.max_length}); Stage 2 reads a tie as the RM "
                              "disagreeing with the label, so its accuracy counts them wrong")
    if m["current"].folds == 1:
        plan.flags.append("stage2.current_rm_folds is 1: the current RM scores pool pairs it was trained on, so it agrees with "
                          "their labels more than it should and the noise estimate is low")

    table = format_plan(plan)
    data = plan.to_dict()
    data["predicted"] = _predicted(plan)
    data["measured"] = {"gold_rm_out_of_fold": m["gold_rm_oof"], "gold_rm": m["gold_rm"], "current_rm": m["current_rm"],
                        "pool_sample": {"pairs": len(m["pool_ids"]), "seed": cfg.seed, "of": plan.settings["pool_size"]},
                        "judges": {"names": m["judges"], "votes": m["votes"], "requests": requests, **m["usage"]},
                        "rule": rule, "seconds": {**phases.seconds, "total": round(time.time() - started, 2)}}
    data["config"] = str(config) if isinstance(config, (str, Path)) else None
    data["run_dir"] = str(run_dir)
    files = _write(plan, data, table, plan_dir, m)
    if users_run and plan_dir.resolve() != (run_dir / PLAN_FILE.parent).resolve():
        atomic_write_json(run_dir / PLAN_FILE, data)
        files.append(str(run_dir / PLAN_FILE))
    data["table"], data["files"] = table, files
    return data


def _write(plan, data: dict, table: str, plan_dir: Path, m: dict) -> list[str]:
    from .planner import plot_residual_noise

    files = [plan_dir / "plan.json"]
    atomic_write_json(files[0], data)
    png = None
    if plan.sweep:
        png = plot_residual_noise(plan, plan_dir / "residual_noise.png")
        files.append(png)
    lines = [f"# Stage 2 plan ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "", "```", table, "```", ""]
    lines += ([f"![predicted residual noise against judge accuracy]({png.name})", ""] if png else
              ["No plot: the plan has no noise rate (give --noise-rate) or no judge decided a gold pair.", ""])
    lines += ["## What was measured", "",
              f"- gold RM: out of fold over {m['gold_rm_oof']['folds']} folds of the gold pairs (each scored by a model trained "
              "on the other folds); on the pool sample, the run's gold RM trained on every gold pair",
              f"- current RM: {m['current_rm']['folds']} fold(s) cross-fitted on the pool's labels (stage2.current_rm_folds)",
              f"- judges {', '.join(m['judges'])}: every gold pair and every pool-sample pair, {data['measured']['judges']['requests']} "
              f"requests for {m['votes']} votes", "", "## Assumptions", ""]
    lines += [f"- {a}" for a in plan.assumptions]
    md = plan_dir / "report.md"
    atomic_write_text(md, "\n".join(lines) + "\n")
    files.append(md)
    sig = plan_dir / "signals.jsonl"
    oof, cur = m["oof"], m["current"]
    rows = []
    for i, pid in enumerate(m["gold_ids"]):
        rows.append({"pair_id": pid, "set": "gold", "label": m["gold_labels"][i], "p_gold": m["p_gold"][i],
                     "gold_rm_fold": oof.fold(pid), "gold_rm_model": oof.models[oof.fold(pid)], "p_current": m["p_current"][i],
                     "current_rm_model": cur.models[cur.fold(pid)], "objectivity": m["gold_objectivity"][i],
                     "judges": {j: m["gold_judges"][j][i] for j in m["judges"]}})
    for i, pid in enumerate(m["pool_ids"]):
        rows.append({"pair_id": pid, "set": "pool sample", "label": m["pool_labels"][i], "p_gold": m["pool_p_gold"][i],
                     "gold_rm_model": m["gold_rm"], "p_current": m["pool_p_current"][i], "current_rm_fold": cur.fold(pid),
                     "current_rm_model": cur.models[cur.fold(pid)], "objectivity": m["pool_objectivity"][i],
                     "judges": {j: m["pool_judges"][j][i] for j in m["judges"]}})
    atomic_write_text(sig, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    files.append(sig)
    return [str(f) for f in files]
