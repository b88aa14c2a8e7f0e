"""``synpref curate run --engine ray`` against the local engine on the same input: the same kept ids,
removed ids with reasons, Stage 2 decisions, judgements, attributes, embeddings and scores (to 1e-6),
and the same LLM calls; a killed model actor and a killed LLM actor change nothing and repay at most
the calls in flight; the LLM budget stops both engines at the same batch; a driver killed with SIGKILL
(its own local Ray instance with it) resumes like the local engine. Tiny random BERT RMs,
two OpenAI-compatible stub judges on 127.0.0.1, one local Ray instance (2 CPUs, node on 127.0.0.1)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'synpref[scale]' to test the Ray engine")
import pyarrow.parquet as pq  # noqa: E402
import yaml  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from synpref.curate.cli import curate_group  # noqa: E402
from synpref.curate.run import run_curation  # noqa: E402
from synpref.curate.util import read_jsonl  # noqa: E402
from synpref.engine.ray_cluster import RayCluster  # noqa: E402
from synpref.llm.testing import FakeOpenAIServer, scripted_judge  # noqa: E402
from synpref.store.pool import read_pool  # noqa: E402
from test_curate_run import make_pools  # noqa: E402
from test_curate_steps import _stage2_only  # noqa: E402
from test_engine_ray import KillOnce, _our_workers  # noqa: E402

BATCH, N_POOL, N_GOLD = 16, 64, 8
CONCURRENCY = 3  # per endpoint: at most this many calls of an endpoint in flight, on either engine


@pytest.fixture(scope="module")
def cluster():
    with RayCluster(actors=2, num_cpus=2, object_store_bytes=256 * 2**20) as started:
        yield started


@pytest.fixture(scope="module")
def judges():
    """Two stub judge endpoints (answering after 20 ms, so calls overlap)."""
    with FakeOpenAIServer(scripted_judge, model="judge-a", delay=0.02) as a, FakeOpenAIServer(scripted_judge, model="judge-b", delay=0.02) as b:
        yield a, b


def _config(root: Path, judges, tiny_bert_dir, **over) -> dict:
    cfg = _stage2_only(root, judges[0].base_url, tiny_bert_dir, BATCH, **over)
    cfg["endpoints"] = [{"base_url": s.base_url, "model": s.model, "backoff": 0.01, "concurrency": CONCURRENCY,
                         "params": {"temperature": 0.7, "seed": 3}} for s in judges]
    return cfg


def _requests(judges) -> int:
    return sum(len(s.requests) for s in judges)


def _parts(folder: Path) -> list[dict]:
    rows = []
    for part in sorted(folder.glob("part-*.parquet")):
        rows += pq.read_table(part).to_pylist()
    return rows


def outputs(run: Path) -> dict:
    """Everything a run decided, in order: pools' ids, the ledger, Stage 2's parts, attributes, embeddings."""
    scores = _parts(run / "stage2" / "scores")
    return {
        "curated": [r.id for r in read_pool(run / "curated")],
        "recycled": [r.id for r in read_pool(run / "recycled")],
        "gold": [r.id for r in read_pool(run / "gold")],
        "ledger": [{k: v for k, v in e.items() if k not in ("p_current", "p_gold")} for f in sorted((run / "ledger").glob("*.jsonl"))
                   for e in read_jsonl(f)],
        "decisions": [{k: v for k, v in d.items() if k not in ("p_current", "p_gold")} for d in _parts(run / "stage2" / "decisions")],
        "judgements": _parts(run / "stage2" / "judgements"),
        "attributes": _parts(run / "attributes"),
        "score_ids": [(s["pair_id"], s["label"]) for s in scores],
        "scores": np.array([[s["p_current"], s["p_gold"]] for s in scores], dtype="float64"),
        "vectors": np.load(run / "embed" / "vectors.npy"),
    }


def assert_same(ray_run: dict, local_run: dict) -> None:
    for key in ("curated", "recycled", "gold", "ledger", "decisions", "judgements", "attributes", "score_ids"):
        assert ray_run[key] == local_run[key], key
    assert ray_run["scores"].shape == local_run["scores"].shape
    assert np.abs(ray_run["scores"] - local_run["scores"]).max() <= 1e-6
    assert np.abs(ray_run["vectors"] - local_run["vectors"]).max() <= 1e-6


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, judges, tiny_bert_dir):
    """The local engine's run of the module's pools, its outputs and the LLM requests it made."""
    root = tmp_path_factory.mktemp("pools")
    make_pools(root, n=N_POOL, n_gold=N_GOLD)
    before = _requests(judges)
    summ = run_curation(_config(root, judges, tiny_bert_dir), root / "local")
    assert summ["status"] == "done" and "engine" not in summ
    return {"root": root, "summary": summ, "outputs": outputs(root / "local"), "requests": _requests(judges) - before}


class KillWhen(threading.Thread):
    """SIGKILL the first worker named ``marker`` once ``ready()`` holds."""

    def __init__(self, marker: str, ready, timeout: float = 600):
        super().__init__(daemon=True)
        self.killer, self.ready, self.deadline = KillOnce(marker, timeout), ready, time.monotonic() + timeout
        self.killed = None

    def run(self):
        while time.monotonic() < self.deadline and not self.killer.stop.is_set():
            if self.ready():
                self.killer.deadline = self.deadline
                self.killer.run()
                self.killed = self.killer.killed
                return
            time.sleep(0.01)


def test_killed_actors_lose_nothing_and_repay_only_calls_in_flight(local_run, cluster, judges, tiny_bert_dir, tmp_path):
    """Through the CLI: one model actor killed while it scores a batch, one LLM actor killed mid-step."""
    root = local_run["root"]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(_config(root, judges, tiny_bert_dir)))
    before = _requests(judges)
    model_killer = KillWhen("BatchWorker", lambda: (tmp_path / "run" / "stage2" / "scores").is_dir())
    llm_killer = KillWhen("LLMWorker", lambda: _requests(judges) - before >= local_run["requests"] // 2)
    model_killer.start()
    llm_killer.start()
    try:
        result = CliRunner().invoke(curate_group, ["run", str(tmp_path / "run.yaml"), "-o", str(tmp_path / "run"), "--quiet",
                                                   "--engine", "ray"])
    finally:
        model_killer.killer.stop.set()
        llm_killer.killer.stop.set()
    assert result.exit_code == 0, result.output
    assert model_killer.killed and llm_killer.killed, "an actor to kill was not seen"
    assert_same(outputs(tmp_path / "run"), local_run["outputs"])
    summ = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summ["stage2"] == local_run["summary"]["stage2"] and sum(summ["stage2"].values()) == N_POOL
    repaid = _requests(judges) - before - local_run["requests"]
    assert 0 <= repaid <= 2 * CONCURRENCY  # at most the killed actor's calls in flight (its share of each endpoint)
    # the heavy steps ran on the actors, two of each kind
    steps = summ["engine"]["steps"]
    assert summ["engine"]["name"] == "ray" and set(steps) >= {"attributes", "embed", "stage2/score", "stage2/judge"}
    assert steps["stage2/score"]["batches"] == N_POOL // BATCH and steps["embed"]["items"] == N_POOL + N_GOLD
    assert steps["stage2/score"]["workers"] >= 2 and steps["stage2/judge"]["workers"] >= 2
    deadline = time.monotonic() + 30
    while (_our_workers("BatchWorker") or _our_workers("LLMWorker")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _our_workers("BatchWorker") and not _our_workers("LLMWorker")  # the run's actors are gone with it


def _judged_per_batch(run: Path) -> list[int]:
    return [pq.read_metadata(p).num_rows for p in sorted((run / "stage2" / "judgements").glob("part-*.parquet"))]


class DriverStopped(BaseException):
    """Stands for a driver killed right after a part file is in place (what ``kill -9`` there leaves)."""


def test_a_stopped_driver_resumes_like_local_and_the_budget_holds(local_run, cluster, judges, tiny_bert_dir, tmp_path, monkeypatch):
    """The driver stops once pool batch 3's judgements are written (the batch not marked done: the state
    a ``kill -9`` there leaves; the local engine's kill -9 is tested in test_curate_steps.py); the
    resumed run, capped just above what was paid, stops before redoing batch 3 saying what it has
    spent, as the local engine would (the check counts a batch's planned calls, cached or not); lifted, it ends with the local engine's outputs,
    having paid each call once."""
    from synpref.curate import parts

    root = local_run["root"]
    before = _requests(judges)
    real_write = parts.PartDir.write

    def write(self, n, rows):
        out = real_write(self, n, rows)
        if self.folder.name == "judgements" and n == 3:
            raise DriverStopped()
        return out

    monkeypatch.setattr(parts.PartDir, "write", write)
    with pytest.raises(DriverStopped):
        run_curation(_config(root, judges, tiny_bert_dir), tmp_path / "run", engine=cluster)
    monkeypatch.setattr(parts.PartDir, "write", real_write)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["batches"]["stage2/judge"]["done"] == 2  # pool batches 1 and 2 done; 3's part written, not marked
    # resumed at a cap of what is paid + 1
    judged = _judged_per_batch(root / "local")  # pool batches 1..4 of the local run
    paid = (N_POOL + N_GOLD) + 2 * sum(judged[:3])  # attributes: 1 call a pair; the judge: 2 endpoints x 1 sample
    assert judged[3] > 0
    capped = _config(root, judges, tiny_bert_dir, judge={"max_calls": paid + 1})
    summ = run_curation(capped, tmp_path / "run", engine=cluster)
    # batch 3's answers are cached, but the check counts its planned calls before it, as locally: it stops there
    assert summ["status"].startswith(f"stopped at the LLM budget: stage2/judge batch 3 of 4 would pass judge.max_calls={paid + 1}: "
                                     f"the run has spent {paid:,} calls"), summ["status"]
    summ = run_curation(_config(root, judges, tiny_bert_dir), tmp_path / "run", engine=cluster)
    assert summ["status"] == "done"
    assert_same(outputs(tmp_path / "run"), local_run["outputs"])
    assert _requests(judges) - before == local_run["requests"]  # nothing paid twice: no call was in flight at the kill
    assert summ["llm_cumulative"]["calls"] == local_run["summary"]["llm_cumulative"]["calls"]


def _session_processes(sid: int) -> list[int]:
    """PIDs of the processes in session ``sid`` (a killed driver's own Ray instance, if any survived it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_a_driver_killed_with_sigkill_resumes_like_local(local_run, judges, tiny_bert_dir, tmp_path):
    """A real ``kill -9`` of the whole driver (``synpref curate run --engine ray`` in its own session, with
    the local Ray instance it started) half-way through its LLM calls; the rerun starts a fresh Ray
    instance, resumes, ends with the local engine's outputs and repays at most the calls in flight."""
    root = local_run["root"]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(_config(root, judges, tiny_bert_dir)))
    cmd = [sys.executable, "-m", "synpref", "curate", "run", str(tmp_path / "run.yaml"), "-o", str(tmp_path / "run"), "--quiet",
           "--engine", "ray"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"HF_HUB_OFFLINE": "1"}  # its own local Ray
    before = _requests(judges)
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while _requests(judges) - before < local_run["requests"] // 2 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert driver.poll() is None, f"the run ended before it could be killed: {driver.stdout.read().decode()[-2000:]}"
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        for pid in _session_processes(driver.pid):  # what of its Ray instance outlived the driver
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    assert driver.returncode == -signal.SIGKILL
    paid_before_kill = _requests(judges) - before
    assert 0 < paid_before_kill < local_run["requests"]
    assert not (tmp_path / "run" / "summary.json").exists() or json.loads((tmp_path / "run" / "summary.json").read_text())["status"] != "done"
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert_same(outputs(tmp_path / "run"), local_run["outputs"])
    summ = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summ["status"] == "done" and summ["stage2"] == local_run["summary"]["stage2"]
    repaid = _requests(judges) - before - local_run["requests"]
    assert 0 <= repaid <= 2 * CONCURRENCY  # at most the calls in flight at the kill (each endpoint's concurrency)
