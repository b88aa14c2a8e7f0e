"""What a run may spend on LLM calls (``judge.max_calls``, ``judge.max_tokens``) and what it plans to.

Spent is read from the run's cache (:meth:`synpref.llm.LLMCache.totals`): every paid answer is
stored there once, as it arrives, so the count covers every invocation of the run, a killed one
included, and a cached answer costs nothing. Before each batch of a step that pays for LLM calls
(``attributes``, Stage 1's ``label``, ``stage2/judge``) the runner asks :meth:`LLMBudget.check`:
when the batch's pairs x calls per pair (x the tokens measured per call) would take the run past
a cap, the run stops there (:class:`~synpref.curate.steps.base.BudgetExhausted`, exit code 4),
saying what it has spent and about how much more it needs to finish; rerun with the cap raised
(the only keys a run directory lets change) and it resumes at that batch. Repairs of invalid JSON
answers are extra calls the estimate does not foresee, so a batch can pass a cap by its repairs.

:func:`planned_spend` is ``synpref curate run --dry-run``: the pairs, calls and tokens of every
unfinished LLM step, from what the run directory holds, without calling an LLM or training a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from .steps.base import BatchStep, BudgetExhausted


@dataclass(frozen=True)
class Spent:
    calls: int
    tokens: int  # prompt + completion

    @property
    def tokens_per_call(self) -> float | None:
        return self.tokens / self.calls if self.calls else None


def spent(ctx) -> Spent:
    """Calls and tokens paid so far by the run (its cache's totals)."""
    from ..llm import LLMCache

    t = LLMCache.read_totals(ctx.llm.cache_path)
    if t["calls"] is None:
        raise BudgetExhausted(f"the LLM budget cannot be checked: {t['error']}; move the file away to start the cache afresh")
    return Spent(t["calls"], t["prompt_tokens"] + t["completion_tokens"])


@dataclass(frozen=True)
class StepSpend:
    """An LLM step's planned spend; ``exact`` False: an upper bound (the step's inputs are not made yet)."""

    step: str
    pairs: int
    calls_per_pair: int
    exact: bool

    @property
    def calls(self) -> int:
        return self.pairs * self.calls_per_pair

    def to_dict(self, tokens_per_call: float | None) -> dict:
        return {"step": self.step, "pairs": self.pairs, "calls_per_pair": self.calls_per_pair, "calls": self.calls,
                "tokens": None if tokens_per_call is None else round(self.calls * tokens_per_call), "exact": self.exact}


def step_spends(ctx, steps) -> list[StepSpend]:
    """The planned spend of every unfinished, enabled step that pays for LLM calls, in run order."""
    out = []
    for step in steps:
        if not isinstance(step, BatchStep) or ctx.state.done(step.name) or not step.enabled(ctx):
            continue
        per_pair = step.llm_calls_per_pair(ctx)
        if per_pair:
            pairs, exact = step.llm_plan(ctx)
            out.append(StepSpend(step.name, pairs, per_pair, exact))
    return out


CHARS_PER_TOKEN = 4  # a rough English average, for an estimate before any call is measured
PROMPT_SAMPLE = 32


def estimated_prompt_tokens(ctx) -> float | None:
    """Mean prompt tokens of a judge call, from the judge prompt of the pool's first pairs at
    ``CHARS_PER_TOKEN`` characters a token (no examples, no attributes, no completion: a floor); None for an empty pool."""
    from itertools import islice

    from ..llm.pairwise import judge_messages
    from ..store.pool import read_pool

    j = ctx.cfg.judge
    sizes = [sum(len(m["content"]) for m in judge_messages(r.context, r.candidates[0], r.candidates[1], max_chars=j.max_chars))
             for r in islice(read_pool(ctx.cfg.pool, batch_size=PROMPT_SAMPLE), PROMPT_SAMPLE)]
    return sum(sizes) / len(sizes) / CHARS_PER_TOKEN if sizes else None


def planned_spend(ctx, steps) -> dict:
    """``synpref curate run --dry-run``: spent so far, and per unfinished LLM step its pairs, calls and tokens."""
    done = spent(ctx)
    per = step_spends(ctx, steps)
    tpc, source = done.tokens_per_call, "measured on the calls this run paid for"
    if tpc is None and per:
        tpc = estimated_prompt_tokens(ctx)
        source = (f"estimated: the judge prompt of the pool's first {PROMPT_SAMPLE} pairs at {CHARS_PER_TOKEN} characters a token, "
                  "without examples or completion (a floor; measured once the run has paid for a call)")
    return {"spent": {"calls": done.calls, "tokens": done.tokens},
            "tokens_per_call": None if tpc is None else round(tpc, 1),
            "tokens_per_call_source": source if tpc is not None else "unknown: the pool has no pair to measure a prompt on",
            "steps": [s.to_dict(tpc) for s in per],
            "calls": sum(s.calls for s in per), "tokens": None if tpc is None else round(sum(s.calls for s in per) * tpc),
            "exact": all(s.exact for s in per),
            "budget": {"max_calls": ctx.cfg.judge.max_calls, "max_tokens": ctx.cfg.judge.max_tokens}}


class LLMBudget:
    """The caps of a run; :meth:`check` before each batch of an LLM step (see the module docstring)."""

    def __init__(self, ctx, steps):
        self.ctx, self.steps = ctx, steps
        self.max_calls, self.max_tokens = ctx.cfg.judge.max_calls, ctx.cfg.judge.max_tokens

    @property
    def active(self) -> bool:
        return self.max_calls is not None or self.max_tokens is not None

    def check(self, step: BatchStep, n: int, index: int, total: int) -> None:
        """Stop before batch ``n`` (the ``index``-th of ``total``) of ``step`` if it would pass a cap."""
        if not self.active:
            return
        per_pair = step.llm_calls_per_pair(self.ctx)
        if not per_pair:
            return
        need = step.llm_pairs(self.ctx, n) * per_pair
        if not need:
            return
        done = spent(self.ctx)
        tpc = done.tokens_per_call
        over_calls = self.max_calls is not None and done.calls + need > self.max_calls
        # before any call is measured a batch's tokens are unknown: it runs unless the cap is already reached
        over_tokens = self.max_tokens is not None and (done.tokens + need * tpc > self.max_tokens if tpc is not None
                                                       else done.tokens >= self.max_tokens)
        if over_calls or over_tokens:
            raise BudgetExhausted(self._message(step, index, total, done))

    def _message(self, step, index: int, total: int, done: Spent) -> str:
        per = step_spends(self.ctx, self.steps)  # this step's unfinished batches and every later LLM step
        calls = sum(s.calls for s in per)
        tpc = done.tokens_per_call
        bound = "" if all(s.exact for s in per) else "at most "
        parts = ", ".join(f"{s.step} {s.pairs} pairs x {s.calls_per_pair}" for s in per)
        tokens = f" and ~{round(calls * tpc):,} tokens ({tpc:.0f} a call, measured)" if tpc is not None else ""
        caps = []
        if self.max_calls is not None:
            caps.append(f"judge.max_calls to {done.calls + calls} or more")
        if self.max_tokens is not None and tpc is not None:
            caps.append(f"judge.max_tokens to {round(done.tokens + calls * tpc)} or more")
        elif self.max_tokens is not None:
            caps.append("judge.max_tokens")
        cap_words = ", ".join(f"{k}={v}" for k, v in (("judge.max_calls", self.max_calls), ("judge.max_tokens", self.max_tokens))
                              if v is not None)
        return (f"{step.name} batch {index + 1} of {total} would pass {cap_words}: the run has spent {done.calls:,} calls and "
                f"{done.tokens:,} tokens; to finish it needs {bound}{calls:,} more calls{tokens} ({parts} calls a pair); "
                f"raise {' and '.join(caps)} in the config and rerun the same command (nothing paid is paid again)")
