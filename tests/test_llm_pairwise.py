"""The one pairwise judge prompt, shared by curation's judges and the evaluation judge."""

from __future__ import annotations

import asyncio

from synpref.curate import JudgePanel
from synpref.curate.attributes import attribute_messages
from synpref.evaluate.items import make_item
from synpref.evaluate.judge import OpenAIJudge
from synpref.llm import Endpoint, LLMCache, LLMClient
from synpref.llm.pairwise import SYSTEM, JudgeAnswer, ask_judge, clip, judge_messages, pair_block, shown_order
from synpref.llm.testing import FakeOpenAIServer, scripted_judge
from synpref.schema import make_pair


def test_the_prompt_text_is_pinned():
    """Curation's cached answers stay valid only while the prompt stays byte for byte the same."""
    rec = make_pair("What is 2 + 2?", "It is 4.", "It is 5.")
    msgs = judge_messages(rec.context, rec.candidates[1], rec.candidates[0], attributes={"task_category": "math", "desired_attributes": ["correct"],
                                                                                         "guideline": "be right"})
    assert msgs[0] == {"role": "system", "content": SYSTEM}
    assert msgs[1]["content"] == ("Task: math; desired: correct\nGuideline: be right\n[Conversation]\n[user]\nWhat is 2 + 2?\n\n"
                                  "[Candidate 1]\nIt is 5.\n\n[Candidate 2]\nIt is 4.\n\nJSON:")
    ex = [{"record": rec, "label": "B", "attributes": None}]
    user = judge_messages(rec.context, *rec.candidates, examples=ex)[1]["content"]
    assert user.startswith("Human-verified examples of similar pairs:\n\n### Example 1\n[Conversation]\n[user]\nWhat is 2 + 2?\n"
                           "[Candidate 1]\nIt is 4.\n[Candidate 2]\nIt is 5.\nVerdict: {\"better\": 2}\n\n### Now judge this pair\n")
    # the attribute annotator shows the pair the same way (its candidates get half the budget)
    assert attribute_messages(rec, 1200)[1]["content"] == pair_block(rec.context, *rec.candidates, context_chars=1200, candidate_chars=600)


def test_clip_keeps_both_ends_and_none_keeps_everything():
    text = "a" * 50 + "b" * 50
    assert clip(text, None) == text and clip(text, 100) == text
    assert clip(text, 20) == "a" * 10 + "\n[...]\n" + "b" * 10


def test_shown_order_is_seeded_and_balanced():
    orders = [shown_order(3, "pair", i) for i in range(200)]
    assert orders == [shown_order(3, "pair", i) for i in range(200)]
    assert 60 < orders.count((1, 0)) < 140 and set(orders) == {(0, 1), (1, 0)}
    assert JudgeAnswer(1).winner((1, 0)) == 1 and JudgeAnswer(2).winner((1, 0)) == 0 and JudgeAnswer(None).winner((0, 1)) is None


def test_curation_and_evaluation_send_the_same_prompt(tmp_path):
    """Without examples or attributes the panel's question is one of the evaluation judge's two (both orders)."""
    recs = [make_pair(f"Question {i}?", f"A careful answer {i}.", f"no {i}") for i in range(4)]
    with FakeOpenAIServer(scripted_judge, model="m") as srv:
        panel = JudgePanel([LLMClient(Endpoint(srv.base_url, "m"), LLMCache(tmp_path / "c.sqlite"))], n_samples=1, max_examples=0)
        out = panel.judge_many([{"record": r} for r in recs])
        assert all(j.label == "A" for j in out)
        curation_asked = [r["messages"] for r in srv.requests]
        srv.requests.clear()
        items = [make_item("pairs", "all", str(i), r.context, list(r.candidates), [0]) for i, r in enumerate(recs)]
        scored, stats = OpenAIJudge(srv.base_url, "m", both_orders=True).evaluate_items(items, cache_dir=tmp_path / "eval")
        evaluation_asked = [r["messages"] for r in srv.requests]
    assert len(curation_asked) == 4 and len(evaluation_asked) == 8
    assert all(m in evaluation_asked for m in curation_asked)
    assert all(it.rewards == [1.0, 0.0] for it in scored)


def test_ask_judge_tells_a_bad_answer_from_a_failed_call():
    rec = make_pair("q", "a", "b")
    msgs = judge_messages(rec.context, *rec.candidates)

    def ask(responder, **kw):
        with FakeOpenAIServer(responder) as srv:
            client = LLMClient(Endpoint(srv.base_url, "fake-model", max_retries=0))
            return asyncio.run(ask_judge(client, msgs, **kw)), client.usage

    answer, _ = ask(lambda b, n: 'Sure. {"better": 2}')
    assert answer == JudgeAnswer(2)
    answer, usage = ask(lambda b, n: "no idea", max_repairs=0)
    assert answer.better is None and answer.unparseable and "no valid JSON" in answer.error and usage.invalid == 1
    answer, usage = ask(lambda b, n: "no idea" if n == 0 else '{"better": 1}', max_repairs=1)
    assert answer.better == 1 and usage.repairs == 1
    answer, usage = ask(lambda b, n: (400, "bad request"))
    assert answer.better is None and not answer.unparseable and "HTTP 400" in answer.error and usage.failures == 1
