"""The Ray engine against the local engine on the same input: prep (kept ids in order, removed ids
with reasons and details, the report), RM scores to 1e-6 in float32 (score and eval), and a Ray
worker killed mid-step changing nothing. One local Ray instance (2 CPUs, node on 127.0.0.1, no
dashboard, a 256 MB object store) serves the whole module."""

import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'synpref[scale]' to test the Ray engine")
from click.testing import CliRunner  # noqa: E402

from synpref.cli import main  # noqa: E402
from synpref.curate.prep import prep  # noqa: E402
from synpref.engine.ray_cluster import RayCluster  # noqa: E402
from synpref.engine.ray_scoring import RayChunkScorer, RecordModel  # noqa: E402
from synpref.ingest import read_records  # noqa: E402
from synpref.schema import Message, Record, make_pair  # noqa: E402
from synpref.scoring import score_records, score_records_with  # noqa: E402
from synpref.store.pool import PoolWriter, read_pool  # noqa: E402
from synpref.text import LengthError, LengthStats  # noqa: E402

BENCH_PROMPT = "please explain in detail how the quick brown fox jumps over the lazy dog every single morning at dawn"


@pytest.fixture(scope="module")
def cluster():
    with RayCluster(actors=2, num_cpus=2, object_store_bytes=256 * 2**20) as started:
        yield started


def test_local_instance_listens_on_loopback_only(cluster):
    psutil = pytest.importorskip("psutil")
    ours = {p.pid for p in psutil.Process().children(recursive=True)}
    listening = [c.laddr.ip for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert listening and set(listening) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def test_worker_prints_reach_stderr_not_stdout(cluster, capfd):
    """stdout is the command's (a summary JSON a script parses): Ray workers' prints are forwarded to stderr."""
    import time

    @ray.remote
    def speak():
        print("synpref-worker-print")
        return 1

    assert ray.get(speak.remote()) == 1
    out = err = ""
    for _ in range(100):  # Ray forwards worker output asynchronously: wait up to 10 s for it
        captured = capfd.readouterr()
        out, err = out + captured.out, err + captured.err
        if "synpref-worker-print" in err:
            break
        time.sleep(0.1)
    assert "synpref-worker-print" in err and "synpref-worker-print" not in out


# -- killing one Ray worker of this test's instance -------------------------------------------------
def _ancestors(pid: int):
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return
        yield pid


def _our_workers(marker: str) -> list[int]:
    """PIDs of this test process's Ray workers whose process title names ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and marker in title and os.getpid() in _ancestors(int(entry.name)):
            found.append(int(entry.name))
    return found


class KillOnce(threading.Thread):
    """Kill (SIGKILL) the first worker named ``marker`` of this test's Ray once it is seen."""

    def __init__(self, marker: str, timeout: float = 120):
        super().__init__(daemon=True)
        self.marker, self.deadline, self.killed = marker, time.monotonic() + timeout, None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            pids = _our_workers(self.marker)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                self.killed = pids[0]
                return
            time.sleep(0.02)


# -- prep -----------------------------------------------------------------------------------------
def _messy_pool(path: Path, n: int = 60) -> Path:
    """Every outcome, across 3 shards of 7-row row groups: duplicates in later shards, near duplicates,
    contamination, empty responses, a tie, rankings and ratings that expand to several pairs."""
    base = [make_pair(f"q question number {i} about topic {i % 5}?", f"A long and careful answer {i} " * 3, f"short {i}") for i in range(n)]
    contaminated = make_pair(f"Question: {BENCH_PROMPT.upper()} thanks", "answer one here", "answer two here")
    empty = Record((Message("user", "hi"),), ((Message("assistant", "  "),), (Message("assistant", "x"),)))
    tie = Record((Message("user", "tie?"),), ((Message("assistant", "a"),), (Message("assistant", "b"),)), kind="tie")
    near = [make_pair(b.context[0].content, b.candidates[0][-1].content + " !", b.candidates[1][-1].content) for b in base[:10]]
    answers = tuple((Message("assistant", f"ranked answer {k} with some words"),) for k in range(3))
    ranking = Record((Message("user", "rank these"),), answers, kind="ranking", ranks=(0, 1, 2))
    ratings = Record((Message("user", "rate these"),), answers, kind="ratings", ratings=(3.0, 1.0, 2.0))
    recs = base + [base[1], contaminated, empty, tie, contaminated, ranking] + near + base[5:8] + [ratings, ranking]
    with PoolWriter(path, row_group_size=7, rows_per_shard=30) as w:
        w.write_all(recs)
    return path


def _outputs(report: dict, with_pool: bool = True):
    """The report (less its paths), the kept ids in pool order, the removed lines (any order)."""
    out = Path(report["output"])
    report = {k: v for k, v in report.items() if k not in ("output", "removed_file")}
    removed = sorted((out / "removed.jsonl").read_text().splitlines())
    return report, [r.id for r in read_pool(out)] if with_pool else None, removed


def _compare_prep(tmp_path, cluster, pool, **kw):
    local = prep(pool, tmp_path / "local", **kw)
    on_ray = prep(pool, tmp_path / "ray", engine=cluster, **kw)
    assert _outputs(on_ray) == _outputs(local)
    assert not (tmp_path / "ray" / ".ray-prep").exists()  # the staging folder is gone
    return local


def test_prep_on_ray_equals_local(tmp_path, cluster):
    pool = _messy_pool(tmp_path / "pool")
    (tmp_path / "prompts.txt").write_text(BENCH_PROMPT + "\n")
    report = _compare_prep(tmp_path, cluster, pool, extra_prompts=[tmp_path / "prompts.txt"], near_dup=True, near_dup_threshold=0.8)
    assert set(report["removed"]) == {"contaminated", "duplicate", "empty_response", "near_duplicate", "not_a_pair"}
    assert report["removed"]["near_duplicate"] == 11 and report["kept"] > 60  # 10 before synpref-1 (SHA-1 signatures)


def test_prep_on_ray_equals_local_on_real_pairs(tmp_path, cluster, shared_data):
    """hh-rlhf train rows, with copies, against the shared benchmarks' prompts (and RewardBench rows in the pool)."""
    rows = list(read_records([shared_data / "hh-rlhf" / "train-sample"], allow_degenerate=True))
    bench = list(read_records([shared_data / "reward-bench-v1-sample"]))[:20]
    with PoolWriter(tmp_path / "pool", row_group_size=100, rows_per_shard=400) as w:
        w.write_all(rows[:600] + bench + rows[100:200] + rows[550:650])
    report = _compare_prep(tmp_path, cluster, tmp_path / "pool", data_dir=shared_data, near_dup=True)
    assert report["removed"]["duplicate"] >= 150 and report["contaminated_by"].get("rewardbench", 0) >= 10


def test_prep_survives_a_killed_worker(tmp_path, cluster):
    pool = _messy_pool(tmp_path / "pool", n=400)
    killer = KillOnce("PairFeatures")
    killer.start()
    try:
        _compare_prep(tmp_path, cluster, pool, decontaminate=False, near_dup=True, near_dup_threshold=0.8)
    finally:
        killer.stop.set()
    assert killer.killed, "no PairFeatures worker was seen to kill"


def test_curate_prep_cli_engine_ray(tmp_path, cluster):
    pool = _messy_pool(tmp_path / "pool")
    outs = {}
    for engine in ("local", "ray"):
        result = CliRunner().invoke(main, ["curate", "prep", str(pool), "-o", str(tmp_path / engine), "--no-decontaminate",
                                           "--near-dup", "--engine", engine])
        assert result.exit_code == 0, result.output
        outs[engine] = [r.id for r in read_pool(tmp_path / engine)]
    assert outs["ray"] == outs["local"]
    assert ray.is_initialized()  # the command used this process's Ray and left it running


# -- scoring --------------------------------------------------------------------------------------
def _records(n: int = 300) -> list[Record]:
    return [make_pair(f"prompt {i} " + "word " * (i % 37), f"a good answer {i} " * (1 + i % 5), f"bad {i}") for i in range(n)]


def _max_difference(a: list[dict], b: list[dict]) -> float:
    assert [r["id"] for r in a] == [r["id"] for r in b]
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra["rewards"], rb["rewards"]))


def test_scores_on_ray_equal_local(cluster, tiny_bert_dir):
    from synpref.model import RewardModel

    records = _records()
    local = score_records(RewardModel.from_pretrained(tiny_bert_dir, device="cpu"), records, max_batch_tokens=2048)
    scorer = RayChunkScorer(cluster, RecordModel(str(tiny_bert_dir), max_batch_tokens=2048, device="cpu"), device="cpu")
    on_ray = score_records_with(scorer, records)
    assert _max_difference(local, on_ray) <= 1e-6
    assert scorer.plan.count == 2 and sum(t.texts for t in scorer.timings) == 2 * len(records)  # every text, once


def test_scoring_survives_a_killed_actor(cluster, tiny_bert_dir):
    from synpref.model import RewardModel

    records = _records(600)
    local = score_records(RewardModel.from_pretrained(tiny_bert_dir, device="cpu"), records)
    killer = KillOnce("ScoringActor")
    killer.start()
    try:
        on_ray = score_records_with(RayChunkScorer(cluster, RecordModel(str(tiny_bert_dir), device="cpu"), device="cpu"), records)
    finally:
        killer.stop.set()
    assert killer.killed, "no ScoringActor was seen to kill"
    assert _max_difference(local, on_ray) <= 1e-6


def test_a_length_error_on_ray_names_the_record(cluster, tiny_bert_dir):
    records = [make_pair("hi", "fine", "ok"), make_pair("long " * 400, "x", "y")]
    spec = RecordModel(str(tiny_bert_dir), max_length=64, length_policy="error", device="cpu")
    with pytest.raises(LengthError, match=records[1].id):
        score_records_with(RayChunkScorer(cluster, spec, device="cpu", stats=LengthStats()), records)


def test_score_cli_engine_ray(tmp_path, cluster, tiny_bert_dir):
    with PoolWriter(tmp_path / "pool") as w:
        w.write_all(_records(50))
    rows = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.jsonl"
        result = CliRunner().invoke(main, ["score", str(tiny_bert_dir), "--input", str(tmp_path / "pool"), "-o", str(out),
                                           "--device", "cpu", "--engine", engine])
        assert result.exit_code == 0, result.output
        rows[engine] = [json.loads(line) for line in out.read_text().splitlines()]
    assert _max_difference(rows["local"], rows["ray"]) <= 1e-6


def test_eval_on_ray_equals_local(tmp_path, cluster, tiny_bert_dir):
    from synpref.evaluate.runner import run_evaluation

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": r.context[0].content, "chosen": r.candidates[0][-1].content,
                                         "rejected": r.candidates[1][-1].content}) + "\n" for r in _records(80)))
    run_evaluation([str(tiny_bert_dir)], [], None, tmp_path / "local", pairs_files=[pairs], device="cpu", baselines=False,
                   progress=False, write_report=False)
    result = CliRunner().invoke(main, ["eval", str(tiny_bert_dir), "--pairs", str(pairs), "-o", str(tmp_path / "ray"),
                                       "--device", "cpu", "--no-baselines", "--engine", "ray"])
    assert result.exit_code == 0, result.output
    items = {name: [json.loads(line) for line in (tmp_path / name / "items.jsonl").read_text().splitlines()] for name in ("local", "ray")}
    assert len(items["ray"]) == len(items["local"]) == 80
    for a, b in zip(items["local"], items["ray"]):
        assert {k: v for k, v in a.items() if k != "rewards"} == {k: v for k, v in b.items() if k != "rewards"}
        assert all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a["rewards"], b["rewards"]))
    results = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert results["models"][str(tiny_bert_dir)]["engine"]["name"] == "ray"



def test_prep_on_ray_of_a_pool_without_rows(tmp_path, cluster):
    import pyarrow.parquet as pq

    from synpref.store.pool import RECORD_SCHEMA

    (tmp_path / "pool").mkdir()
    pq.write_table(RECORD_SCHEMA.empty_table(), tmp_path / "pool" / "part-00000.parquet")
    local, on_ray = (prep(tmp_path / "pool", tmp_path / name, decontaminate=False, engine=engine)
                     for name, engine in (("local", None), ("ray", cluster)))
    assert _outputs(on_ray, with_pool=False) == _outputs(local, with_pool=False)
    assert local["read"] == 0 and local["kept"] == 0
    for name in ("local", "ray"):
        assert not list((tmp_path / name).glob("part-*.parquet")) and (tmp_path / name / "removed.jsonl").read_text() == ""
