"""The reward server: every endpoint's contract, auth, limits, errors, batching, drain.

Servers run under real uvicorn on 127.0.0.1 (a thread each) with the tiny random BERT.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import socket
import threading
import time

import httpx
import pytest
import torch

from synpref.model import RewardModel
from synpref.schema import Message as M
from synpref.serve import MicroBatcher, ServeConfig, create_app
from synpref.serve.rendered import RenderedTextError, query_to_conversation
from synpref.serve.server import build_server

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TOL = 1e-4


class RunningServer:
    """uvicorn on a pre-bound loopback socket, in a thread; bounded start and stop."""

    def __init__(self, app, graceful_timeout: float = 5.0):
        # proto IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections, as it does for
        # sockets uvicorn binds itself (with proto 0 every response waits ~40 ms for a delayed ACK)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = build_server(app, graceful_timeout=graceful_timeout)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return
            time.sleep(0.05)
        raise RuntimeError("server did not start in 10 s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive()


def conv(i: int) -> list[dict]:
    msgs = [{"role": "user", "content": f"Question {i}: " + "tell me more " * (i * 7 % 23)}]
    if i % 4 == 0:
        msgs += [{"role": "assistant", "content": "Sure."}, {"role": "user", "content": "Go on " * (i % 5 + 1)}]
    return msgs + [{"role": "assistant", "content": f"Answer {i} " + "here is why " * (i % 11 + 1)}]


def as_messages(c: list[dict]):
    return tuple(M(m["role"], m["content"]) for m in c)


@pytest.fixture(scope="module")
def ckpt(tiny_bert_dir, tmp_path_factory):
    """The tiny BERT saved by synpref with reward mean/std, so normalisation is available."""
    rm = RewardModel.from_pretrained(tiny_bert_dir, device="cpu")
    return rm.save_pretrained(tmp_path_factory.mktemp("ckpt"), reward_mean=0.25, reward_std=2.0)


@pytest.fixture(scope="module")
def rm(ckpt):
    return RewardModel.from_pretrained(ckpt, device="cpu")


@pytest.fixture(scope="module")
def server(rm):
    config = ServeConfig(api_key=KEY, max_items=16, max_chars=2000, max_wait_ms=20, model_name="tiny")
    running = RunningServer(create_app(rm, config))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
        yield c


def close(a, b):
    return all(abs(x - y) < TOL for x, y in zip(a, b)) and len(a) == len(b)


# -- contracts and equality with RewardModel.score -----------------------------------
def test_score_equals_reward_model_score(client, rm):
    convs = [conv(i) for i in range(12)]
    r = client.post("/v1/score", json={"conversations": convs})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny" and body["normalized"] is False
    assert close(body["rewards"], rm.score([as_messages(c) for c in convs]))


def test_normalized_score_uses_saved_mean_and_std(client, rm):
    convs = [conv(i) for i in range(3)]
    body = client.post("/v1/score", json={"conversations": convs, "normalize": True}).json()
    assert body["normalized"] is True
    assert close(body["rewards"], rm.score([as_messages(c) for c in convs], normalize=True))


def test_compare_gives_bradley_terry_probability(client, rm):
    prompt = [{"role": "user", "content": "What is 2+2?"}]
    r = client.post("/v1/compare", json={"prompt": prompt, "a": "It is 4.", "b": "Fish."}).json()
    ra, rb = rm.score([(M("user", "What is 2+2?"), M("assistant", "It is 4.")), (M("user", "What is 2+2?"), M("assistant", "Fish."))])
    assert abs(r["reward_a"] - ra) < TOL and abs(r["reward_b"] - rb) < TOL
    assert abs(r["prob_a_beats_b"] - 1 / (1 + math.exp(rb - ra))) < 1e-6
    # a string prompt is one user turn: same answer
    r2 = client.post("/v1/compare", json={"prompt": "What is 2+2?", "a": "It is 4.", "b": "Fish."}).json()
    assert abs(r2["prob_a_beats_b"] - r["prob_a_beats_b"]) < 1e-9


def test_compare_with_a_huge_reward_gap_gives_a_probability(tiny_bert_dir):
    # A head scaled up 1e9 times: the two rewards differ by far more than the ~709 math.exp overflows at.
    steep = RewardModel.from_pretrained(tiny_bert_dir, device="cpu")
    with torch.no_grad():
        steep.model.classifier.weight.mul_(1e9)
    body = {"prompt": "What is 2+2?", "a": "It is 4.", "b": "Fish."}
    running = RunningServer(create_app(steep, ServeConfig()))
    try:
        ab = httpx.post(running.url + "/v1/compare", json=body)
        ba = httpx.post(running.url + "/v1/compare", json={**body, "a": body["b"], "b": body["a"]})
    finally:
        running.stop()
    assert ab.status_code == 200 and ba.status_code == 200, (ab.text, ba.text)
    ab, ba = ab.json(), ba.json()
    assert abs(ab["reward_a"] - ab["reward_b"]) > 1000
    winner_is_a = ab["reward_a"] > ab["reward_b"]
    assert ab["prob_a_beats_b"] == (1.0 if winner_is_a else 0.0)
    assert ba["prob_a_beats_b"] == (0.0 if winner_is_a else 1.0)


def test_best_of_n_ranks_candidates(client, rm):
    cands = [f"Candidate answer {i} " + "detail " * i for i in range(6)]
    body = client.post("/v1/best-of-n", json={"prompt": "Explain tides.", "candidates": cands}).json()
    expected = rm.score([(M("user", "Explain tides."), M("assistant", c)) for c in cands])
    assert close(body["rewards"], expected)
    assert body["ranking"] == sorted(range(6), key=lambda i: -expected[i])
    assert body["best"] == body["ranking"][0]


def test_get_reward_openrlhf_forms(client, rm):
    chatml = "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n<|endoftext|>"
    llama3 = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"
    expected = rm.score([(M("user", "Hi there"), M("assistant", "Hello! How can I help?"))])[0]
    body = client.post("/get_reward", json={"query": [chatml, llama3]}).json()
    assert close(body["rewards"], [expected, expected]) and body["scores"] == body["rewards"]
    # plain text needs its prompt to split off the response
    plain = client.post("/get_reward", json={"query": ["Hi there Hello! How can I help?"], "prompts": ["Hi there "], "labels": [""]}).json()
    assert abs(plain["rewards"][0] - rm.score([(M("user", "Hi there "), M("assistant", "Hello! How can I help?"))])[0]) < TOL
    msgs = client.post("/get_reward", json={"messages": [conv(1)]}).json()
    assert abs(msgs["rewards"][0] - rm.score([as_messages(conv(1))])[0]) < TOL


def test_rendered_text_is_parsed_never_scored_raw():
    with pytest.raises(RenderedTextError, match="prompts"):
        query_to_conversation("no markup here", None)
    with pytest.raises(RenderedTextError, match="start with its prompt"):
        query_to_conversation("abc", "xyz")
    with pytest.raises(RenderedTextError, match="assistant"):
        query_to_conversation("<|im_start|>user\nhi<|im_end|>\n", None)
    gemma = query_to_conversation("<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nyo<end_of_turn>\n", None)
    assert gemma == (M("user", "hi"), M("assistant", "yo"))


def test_health_and_metrics(server, client):
    health = httpx.get(server.url + "/health").json()  # no key needed
    assert health["status"] == "ok" and health["normalization_available"] is True and health["batching"] is True
    client.post("/v1/score", json={"conversations": [conv(0)]})
    text = client.get("/metrics").text
    assert 'synpref_requests_total{endpoint="/v1/score",status="200"}' in text
    assert "synpref_items_scored_total" in text and "# TYPE synpref_request_seconds histogram" in text
    assert 'synpref_batch_items_bucket{le="+Inf"}' in text


# -- auth, limits, errors -------------------------------------------------------------------
def test_api_key_is_required(server):
    body = {"conversations": [conv(0)]}
    assert httpx.post(server.url + "/v1/score", json=body).status_code == 401
    assert httpx.post(server.url + "/v1/score", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.post(server.url + "/v1/score", json=body, headers={"X-API-Key": KEY}).status_code == 200


@pytest.mark.parametrize(
    "path, body, status, field",
    [
        ("/v1/score", {"conversations": [conv(0)] * 17}, 413, "conversations"),
        ("/v1/score", {"conversations": [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "x" * 2001}]]}, 413, "conversations[0]"),
        ("/v1/best-of-n", {"prompt": "q", "candidates": ["a"] * 17}, 413, "candidates"),
        ("/v1/score", {}, 422, "conversations"),
        ("/v1/score", {"conversations": "hello"}, 422, "conversations"),
        ("/v1/score", {"conversations": []}, 422, "conversations"),
        ("/v1/score", {"conversations": [conv(0), "text"]}, 422, "conversations[1]"),
        ("/v1/score", {"conversations": [[{"role": "user", "content": "only a question"}]]}, 422, "conversations[0]"),
        ("/v1/score", {"conversations": [[{"role": "robot", "content": "x"}]]}, 422, "conversations[0][0].role"),
        ("/v1/score", {"conversations": [[{"role": "assistant", "content": 5}]]}, 422, "conversations[0][0].content"),
        ("/v1/score", {"conversations": [conv(0)], "normalize": "yes"}, 422, "normalize"),
        ("/v1/compare", {"prompt": "q", "a": "x"}, 422, "b"),
        ("/v1/compare", {"prompt": 3, "a": "x", "b": "y"}, 422, "prompt"),
        ("/v1/best-of-n", {"prompt": "q", "candidates": ["ok", 7]}, 422, "candidates[1]"),
        ("/get_reward", {"query": ["plain text"]}, 422, "query[0]"),
        ("/get_reward", {"query": ["a b"], "prompts": ["a", "b"]}, 422, "prompts"),
        ("/get_reward", {"query": [1]}, 422, "query[0]"),
    ],
)
def test_bad_requests_name_the_field(client, path, body, status, field):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field


def test_malformed_json_is_400(client):
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        r = client.post("/v1/score", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()


def test_too_long_for_the_model_is_413(rm):
    from synpref.serve.app import create_app as make

    short = RewardModel(rm.model, rm.tokenizer, policy=type(rm.policy)(max_length=16))
    running = RunningServer(make(short, ServeConfig()))
    try:
        r = httpx.post(running.url + "/v1/score", json={"conversations": [conv(0), conv(5)]})
        assert r.status_code == 413 and r.json()["error"]["field"] == "conversations[0]"
        assert "max_length" in r.json()["error"]["message"]
    finally:
        running.stop()


def test_normalize_without_saved_stats_is_422(tiny_bert_dir):
    bare = RewardModel.from_pretrained(tiny_bert_dir, device="cpu")
    with pytest.raises(ValueError, match="reward_mean"):
        create_app(bare, ServeConfig(normalize=True))
    running = RunningServer(create_app(bare, ServeConfig()))
    try:
        r = httpx.post(running.url + "/v1/score", json={"conversations": [conv(0)], "normalize": True})
        assert r.status_code == 422 and r.json()["error"]["field"] == "normalize"
    finally:
        running.stop()


# -- batching ----------------------------------------------------------------------------------
def test_concurrent_requests_are_merged_and_scores_do_not_depend_on_batching(rm):
    convs = [as_messages(conv(i)) for i in range(24)]
    expected = rm.score(convs)
    encoded = [rm.encode(c) for c in convs]
    for batching in (True, False):
        batcher = MicroBatcher(rm, batching=batching, max_wait_ms=50, max_batch_tokens=4096).start()
        from synpref.serve.metrics import Metrics

        batcher.metrics = metrics = Metrics()
        try:
            futures = [batcher.submit([e]) for e in encoded]  # 24 one-item requests at once
            got = [f.result(timeout=30)[0] for f in futures]
        finally:
            batcher.close(timeout=30)
        assert close(got, expected)
        merged = metrics.batch_requests.count < len(encoded)
        assert merged is batching  # on: fewer model calls than requests; off: one per request


def test_batching_off_server_gives_same_rewards(rm):
    convs = [conv(i) for i in range(8)]
    running = RunningServer(create_app(rm, ServeConfig(batching=False)))
    try:
        with httpx.Client(base_url=running.url, timeout=30) as c, cf.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda cv: c.post("/v1/score", json={"conversations": [cv]}).json()["rewards"][0], convs))
    finally:
        running.stop()
    assert close(results, rm.score([as_messages(c) for c in convs]))


def test_shutdown_drains_in_flight_requests(rm):
    # a long batching window keeps the request queued while shutdown starts
    running = RunningServer(create_app(rm, ServeConfig(max_wait_ms=1500)))
    with cf.ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(httpx.post, running.url + "/v1/score", json={"conversations": [conv(i)]}, timeout=30) for i in range(4)]
        time.sleep(0.5)
        running.stop()
        answers = [f.result(timeout=30) for f in pending]
    assert [a.status_code for a in answers] == [200] * 4
    expected = rm.score([as_messages(conv(i)) for i in range(4)])
    assert close([a.json()["rewards"][0] for a in answers], expected)
    with pytest.raises(httpx.TransportError):
        httpx.get(running.url + "/health", timeout=2)
