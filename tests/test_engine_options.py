"""The engine options and the pieces the Ray engine relies on, without Ray: the local engine imports
no Ray, a missing Ray is one clear line, a Decontaminator survives another process, and the
near-duplicate a pair is said to copy is the earliest kept one (so both engines name the same)."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from synpref.cli import main
from synpref.curate.prep import Decontaminator, lsh_ranges, minhash_signatures, pair_full_text, prep, words
from synpref.engine import EngineError, EngineSettings
from synpref.schema import make_pair
from synpref.store.pool import PoolWriter

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1", **env})


def _small_pool(path: Path) -> Path:
    with PoolWriter(path) as w:
        w.write_all([make_pair(f"question {i}", f"answer {i}", f"other {i}") for i in range(5)])
    return path


def test_ray_options_need_the_ray_engine(tmp_path):
    pool = _small_pool(tmp_path / "pool")
    for extra in (["--ray-address", "auto"], ["--ray-actors", "2"]):
        result = CliRunner().invoke(main, ["curate", "prep", str(pool), "-o", str(tmp_path / "out"), "--no-decontaminate", *extra])
        assert result.exit_code == 2 and "need --engine ray" in result.output
    with pytest.raises(EngineError, match="--ray-actors -1"):
        EngineSettings("ray", actors=-1)
    result = CliRunner().invoke(main, ["score", "m", "--input", str(pool), "--engine", "spark"])
    assert result.exit_code == 2 and "local" in result.output and "ray" in result.output


def test_local_engine_never_imports_ray(tmp_path):
    pool = _small_pool(tmp_path / "pool")
    out = _run(
        "import sys; from click.testing import CliRunner; from synpref.cli import main\n"
        f"r = CliRunner().invoke(main, ['curate', 'prep', {str(pool)!r}, '-o', {str(tmp_path / 'out')!r}, '--no-decontaminate'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_engine_ray_without_ray_is_one_clear_line(tmp_path):
    pool = _small_pool(tmp_path / "pool")
    out = _run(
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from click.testing import CliRunner; from synpref.cli import main\n"
        f"r = CliRunner().invoke(main, ['curate', 'prep', {str(pool)!r}, '-o', {str(tmp_path / 'out')!r}, '--engine', 'ray'])\n"
        "print(r.exit_code); print(r.output)"
    )
    code, *lines = out.stdout.strip().splitlines()
    assert code == "2", out.stdout + out.stderr
    assert "pip install 'synpref[scale]'" in "\n".join(lines) and "Traceback" not in out.stdout
    assert not (tmp_path / "out").exists()  # nothing written


def test_decontaminator_matches_in_another_process():
    prompt = "please explain in detail how the quick brown fox jumps over the lazy dog every single morning at dawn"
    deco = Decontaminator({"bench": [prompt], "short": ["four words at least"]})
    blob = pickle.dumps(deco).hex()
    code = ("import pickle; d = pickle.loads(bytes.fromhex(%r)); "
            "print(d.match('so: ' + %r.upper() + ' ok'), d.match('i said four words at least twice'), d.match('nothing here'))")
    for seed in ("1", "2"):  # another hash seed: grams hashed in this process would all miss there
        out = _run(code % (blob, prompt), PYTHONHASHSEED=seed)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["bench", "short", "None"]


def test_near_duplicate_names_the_earliest_kept_pair(tmp_path):
    """A pair sharing LSH bands with two kept pairs names the earlier one (not whichever a set yields first)."""
    threshold, perm = 0.3, 64
    ranges = lsh_ranges(threshold, perm)

    def bands(rec):
        values = minhash_signatures([words(pair_full_text(rec))], perm)[0]
        return {(i, values[s:e].tobytes()) for i, (s, e) in enumerate(ranges)}

    records, expected = [], {}
    for t in range(40):  # c's words are a's then b's: about half of c's shingles are a's, half b's
        wa, wb = [f"a{t}w{i}" for i in range(30)], [f"b{t}w{i}" for i in range(30)]
        a = make_pair(" ".join(wa[:10]), " ".join(wa[10:20]), " ".join(wa[20:]))
        b = make_pair(" ".join(wb[:10]), " ".join(wb[10:20]), " ".join(wb[20:]))
        c = make_pair(" ".join(wa), " ".join(wb[:15]), " ".join(wb[15:]))
        if bands(a) & bands(c) and bands(b) & bands(c) and not bands(a) & bands(b):
            records += [a, b, c]
            expected[c.id] = a.id
    assert len(expected) >= 8  # enough triples where both kept pairs are candidates
    with PoolWriter(tmp_path / "pool") as w:
        w.write_all(records)
    rep = prep(tmp_path / "pool", tmp_path / "out", decontaminate=False, near_dup=True, near_dup_threshold=threshold, num_perm=perm)
    removed = [json.loads(line) for line in (tmp_path / "out" / "removed.jsonl").read_text().splitlines()]
    assert rep["removed"] == {"near_duplicate": len(expected)}
    assert {r["id"]: r["detail"] for r in removed} == expected


def test_actor_plan_from_cluster_resources():
    from synpref.engine.ray_cluster import ActorPlan, plan_actors

    assert plan_actors({"CPU": 64, "GPU": 8}) == ActorPlan(8, 1, 1.0)  # one actor per GPU
    assert plan_actors({"CPU": 64, "GPU": 8}, actors=16) == ActorPlan(16, 1, 0.5)  # two per GPU
    assert plan_actors({"CPU": 64, "GPU": 8}, device="cpu") == ActorPlan(16, 4.0, 0)  # --device cpu: CPU actors
    assert plan_actors({"CPU": 2}) == ActorPlan(1, 2.0, 0) and plan_actors({"CPU": 2}).threads == 2
    assert plan_actors({"CPU": 2}, actors=4) == ActorPlan(4, 0.5, 0) and plan_actors({"CPU": 2}, actors=4).threads == 1


def test_remote_cache_groups_concurrent_lookups_and_writes_and_commits_before_returning(tmp_path):
    """The Ray engine's RemoteCache: concurrent calls reach the cache actor together, each gets its own
    answer, a failed send fails its callers only, and a write is committed when it returns."""
    import asyncio

    from synpref.engine.ray_curate import CacheActor, RemoteCache
    from synpref.llm import LLMCache

    sends = []

    class Method:
        def __init__(self, fn):
            self.fn = fn

        def remote(self, arg):
            sends.append((self.fn.__name__, len(arg)))

            async def answer():
                await asyncio.sleep(0.01)
                return self.fn(arg)
            return answer()

    class FakeActor:  # the actor's methods, awaited as Ray's ObjectRefs are
        def __init__(self, real):
            self.get_many, self.put_many = Method(real.get_many), Method(real.put_many)

    path = tmp_path / "cache.sqlite"
    cache = RemoteCache(FakeActor(CacheActor(str(path))))

    async def run():
        await asyncio.gather(*(cache.aput(f"k{i}", "m", f"text {i}", i, 1) for i in range(50)))
        assert LLMCache(path).get("k49") == {"text": "text 49", "prompt_tokens": 49, "completion_tokens": 1}  # committed
        got = await asyncio.gather(*(cache.aget(k) for k in ["k3", "missing", "k3", "k0"]))
        assert [g and g["text"] for g in got] == ["text 3", None, "text 3", "text 0"]

    asyncio.run(run())
    assert sends == [("put_many", 50), ("get_many", 4)]  # one round trip per group of concurrent calls

    def broken(keys):
        raise OSError("disk gone")

    failing = RemoteCache(FakeActor(CacheActor(str(path))))
    failing.actor.get_many = Method(broken)

    async def fails():
        with pytest.raises(OSError, match="disk gone"):
            await failing.aget("k1")
        assert (await cache.aget("k1"))["text"] == "text 1"  # another cache is unaffected, and so is a later call
        failing.actor.get_many = Method(CacheActor(str(path)).get_many)
        assert (await failing.aget("k2"))["text"] == "text 2"

    asyncio.run(fails())

    async def again():
        return await cache.aget("k5")

    assert asyncio.run(again())["text"] == "text 5"  # a third event loop, the same RemoteCache


def test_cache_get_many_matches_get_and_put_many_commits(tmp_path):
    from synpref.llm import LLMCache

    c = LLMCache(tmp_path / "c.sqlite")
    c.put_many([(f"k{i}", "m", f"t{i}", i, 2 * i) for i in range(1200)])
    keys = [f"k{i}" for i in range(0, 1300, 7)] + ["k7", "nope"]
    assert c.get_many(keys) == [c.get(k) for k in keys]
    assert LLMCache(tmp_path / "c.sqlite").totals()["calls"] == 1200
