"""Generative judges: any OpenAI-compatible chat endpoint as a pairwise judge.

The judge is asked with the shared pairwise prompt (:mod:`synpref.llm.pairwise`, the one
curation's judges use), here without examples or attributes and without clipping: the
conversation and two responses shown as Candidate 1 / Candidate 2, answer ``{"better": 1|2}``.
Which candidate is shown first is drawn from a hash of (seed, benchmark, item id); with
``both_orders`` the pair is also asked the other way round, and two disagreeing answers make
a tie. Its verdict becomes rewards the benchmark metrics read: winner 1, loser 0, a tie 0.5
each (a tie is wrong under every strict metric), an unparseable or failed answer NaN (counted
wrong). Nothing is dropped silently: paid calls, cache hits, tokens, unparseable answers,
failures and order disagreements are counted in ``results.json`` (``scoring``).

Calls go through :class:`~synpref.llm.LLMClient` (bounded concurrency, retries, token
accounting) and its :class:`~synpref.llm.LLMCache` in ``CACHE_DIR/llm_cache.sqlite``: a
resumed or repeated evaluation pays for no answer twice, unparseable ones included (they are
counted again, never silently re-asked); a failed call is not cached and is asked again on
the next run.

Only items with two candidates are judged (RewardBench, PPE Preference, RMB pairwise,
JudgeBench, --pairs files); best-of-N items are skipped and the benchmark is marked incomplete
with the count.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

from ..llm import Endpoint, LLMCache, LLMClient
from ..llm.pairwise import JudgeAnswer, ask_judge, judge_messages, shown_order
from .items import EvalItem, ScoredItem

log = logging.getLogger(__name__)

TIE = 0.5
CACHE_FILE = "llm_cache.sqlite"


class OpenAIJudge:
    """A chat model behind ``{base_url}/chat/completions`` judging pairs."""

    kind = "generative-judge"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        both_orders: bool = False,
        seed: int = 0,
        temperature: float = 0.0,
        max_tokens: int = 512,
        timeout: float = 120.0,
        retries: int = 2,
        workers: int = 4,
        json_mode: str = "none",
        max_repairs: int = 0,
        name: str | None = None,
    ):
        """``api_key_env`` names the environment variable holding the key; ``workers`` bounds the
        requests in flight; ``max_repairs`` repair rounds for an invalid answer (0: the judge's
        first answer is what is measured); ``json_mode`` as in :class:`~synpref.llm.Endpoint`."""
        self.name = name or f"judge: {model}"
        self.endpoint = Endpoint(base_url=base_url, model=model, name=self.name, api_key_env=api_key_env,
                                 concurrency=workers, timeout=timeout, max_retries=retries, json_mode=json_mode,
                                 params={"temperature": temperature, "max_tokens": max_tokens, "seed": seed})
        self.both_orders = both_orders
        self.seed = seed
        self.max_repairs = max_repairs

    @property
    def model(self) -> str:
        return self.endpoint.model

    def describe(self) -> dict:
        return {"model": self.model, "kind": self.kind, "endpoint": self.endpoint.base_url, "both_orders": self.both_orders,
                "seed": self.seed, "max_repairs": self.max_repairs, "prompt": "synpref.llm.pairwise"}

    def order(self, item: EvalItem) -> tuple[int, int]:
        """(candidate shown first, candidate shown second) for ``item``; the same for every judge."""
        return shown_order(self.seed, item.benchmark, item.item_id)

    # -- evaluation -------------------------------------------------------------------
    def evaluate_items(self, items: list[EvalItem], *, cache_dir: Path, progress: bool = False) -> tuple[list[ScoredItem], dict]:
        start = time.perf_counter()
        pairwise = [it for it in items if len(it.candidates) == 2]
        questions: dict[str, list[dict]] = {}  # distinct prompts (identical ones are asked once)
        plan = []  # (item, [(question key, order shown)])
        for it in pairwise:
            first = self.order(it)
            asked = []
            for order in [first, first[::-1]] if self.both_orders else [first]:
                msgs = judge_messages(it.context, it.candidates[order[0]], it.candidates[order[1]])
                key = json.dumps(msgs, ensure_ascii=False, sort_keys=True)
                questions.setdefault(key, msgs)
                asked.append((key, order))
            plan.append((it, asked))
        client = LLMClient(self.endpoint, LLMCache(Path(cache_dir) / CACHE_FILE))
        try:
            answers = asyncio.run(self._ask_all(client, questions, progress))
        finally:
            client.cache.close()
        usage = client.usage
        stats = {"items_judged": len(pairwise), "items_skipped_not_pairwise": len(items) - len(pairwise), "questions": len(questions),
                 "calls": usage.calls, "from_cache": usage.cache_hits, "prompt_tokens": usage.prompt_tokens,
                 "completion_tokens": usage.completion_tokens, "retries": usage.retries, "repairs": usage.repairs,
                 "unparseable": sum(a.unparseable for a in answers.values()),
                 "failed": sum(a.better is None and not a.unparseable for a in answers.values()), "order_disagreements": 0, "ties": 0}
        self._log_missing(answers, stats)
        scored = []
        for it, asked in plan:
            rewards = self._rewards([answers[key].winner(order) for key, order in asked], stats)
            scored.append(ScoredItem(it.benchmark, it.subset, it.item_id, rewards, it.correct, it.meta))
        stats["seconds"] = time.perf_counter() - start
        return scored, stats

    async def _ask_all(self, client: LLMClient, questions: dict[str, list[dict]], progress: bool) -> dict[str, JudgeAnswer]:
        bar = None
        if progress and questions:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(questions), desc=f"judging {self.name}", unit="question")

        async def one(key: str, msgs: list[dict]) -> tuple[str, JudgeAnswer]:
            answer = await ask_judge(client, msgs, max_repairs=self.max_repairs)
            if bar is not None:
                bar.update(1)
            return key, answer

        try:
            return dict(await asyncio.gather(*(one(k, m) for k, m in questions.items())))
        finally:
            await client.aclose()
            if bar is not None:
                bar.close()

    def _log_missing(self, answers: dict[str, JudgeAnswer], stats: dict) -> None:
        for kind, what in (("failed", "got no answer (the call failed)"), ("unparseable", "got an answer with no valid verdict")):
            if stats[kind]:
                first = next(a.error for a in answers.values() if a.better is None and a.unparseable == (kind == "unparseable"))
                again = "they are asked again on the next run" if kind == "failed" else "the answers stay cached (a rerun does not ask again)"
                log.warning("%s: %d of %d questions %s (first: %s); those items count as wrong; %s",
                            self.name, stats[kind], len(answers), what, first, again)

    @staticmethod
    def _rewards(wins: list, stats: dict) -> list[float]:
        if any(w is None for w in wins):
            return [float("nan"), float("nan")]
        if len(set(wins)) > 1:
            stats["order_disagreements"] += 1
            stats["ties"] += 1
            return [TIE, TIE]
        return [1.0 if i == wins[0] else 0.0 for i in range(2)]
