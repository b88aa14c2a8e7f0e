"""Preparation: a pool in, a clean pool out, every removed pair kept in a side file with its reason.

Steps, in order, for each record streamed from the input pool:

1. ``not_a_pair``: ties are removed (they carry no preference); rankings and
   ratings are first expanded to pairs by :func:`synpref.schema.expand_to_pairs`.
2. ``empty_response``: a candidate whose scored turn is empty or white space.
3. ``duplicate``: the same content id (``Record.id``) was already kept (global, on-disk id set).
4. ``contaminated``: the pair (context and both responses) shares a word 13-gram
   with a first-turn prompt of a benchmark synpref evaluates or of an extra prompt
   file. Benchmarks are found under ``data_dir``, or, when none is given, under the
   default data folders (``synpref.evaluate.loading.default_data_dirs``: $SYNPREF_DATA_DIR,
   else ./data and ../shared/data); the report lists the benchmarks checked (with their
   folders) and those not checked (with the reason). Text is lower-cased and split on
   ``\\w+``; prompts shorter than n words are matched as a whole word sequence.
5. ``near_duplicate`` (optional): MinHash LSH (datasketch) over word 5-gram
   shingles of the whole pair, Jaccard >= ``near_dup_threshold`` with a kept pair.

Memory: records stream through in batches; the exact-duplicate id set is on disk
(SQLite); the benchmark n-gram set is proportional to the benchmarks (not the
pool); the optional MinHash LSH index holds one small signature per kept pair.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from pathlib import Path

from ..errors import OutputExistsError
from ..evaluate.constants import BENCHMARK_ORDER
from ..schema import Record, expand_to_pairs
from ..store.pool import PoolWriter, pool_files, read_pool, record_to_row
from .util import atomic_write_json

_WORD = re.compile(r"\w+")
REMOVED = "removed.jsonl"
REPORT = "prep_report.json"


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngram_hashes(tokens: list[str], n: int) -> set[int]:
    return {hash(" ".join(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


def benchmark_prompts(data_dir, benches=BENCHMARK_ORDER) -> dict[str, list[str]]:
    """First-turn prompts of every benchmark found under ``data_dir`` (None: the default data folders; no hub)."""
    return gather_benchmark_prompts(data_dir, benches)[0]


def gather_benchmark_prompts(data_dir=None, benches=BENCHMARK_ORDER) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """(prompts by benchmark, folder of each benchmark checked, reason each other benchmark was not checked).

    ``data_dir`` None searches :func:`~synpref.evaluate.loading.default_data_dirs` in
    order, each benchmark in the first folder that holds it. The hub is never used.
    """
    from ..evaluate.loading import DATA_DIR_VARIABLE, default_data_dirs, find_folder

    roots = [Path(data_dir)] if data_dir is not None else default_data_dirs()
    prompts, checked, unchecked = {}, {}, {}
    for name in benches:
        folder = next((f for f in (find_folder(name, root) for root in roots) if f is not None), None)
        if folder is None:
            where = ", ".join(map(str, roots)) if roots else f"no data folder (none of ${DATA_DIR_VARIABLE}, ./data, ../shared/data exists)"
            unchecked[name] = f"no local folder for it under {where}"
            continue
        found = _folder_prompts(name, str(folder.resolve()))
        if found:
            prompts[name], checked[name] = list(found), str(folder)
        else:
            unchecked[name] = f"{folder}: no prompts could be read"
    return prompts, checked, unchecked


@functools.lru_cache(maxsize=32)
def _folder_prompts(name: str, folder: str) -> tuple[str, ...]:
    """The distinct first-turn prompts of benchmark ``name`` read from ``folder`` (read once per process)."""
    from ..evaluate.loading import load_benchmark

    lb = load_benchmark(name, {name: folder}, use_hub=False)
    firsts = (next((m.content for m in it.context if m.role == "user"), None) for it in lb.items)
    return tuple(dict.fromkeys(p for p in firsts if p))


def read_prompt_file(path) -> list[str]:
    """Prompts from a .txt (one per line) or .jsonl (field prompt/question/instruction or a messages list) file."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if path.suffix == ".jsonl":
                obj = json.loads(line)
                if isinstance(obj, str):
                    out.append(obj)
                    continue
                for k in ("prompt", "question", "instruction", "input"):
                    if isinstance(obj.get(k), str):
                        out.append(obj[k])
                        break
                else:
                    msgs = obj.get("messages") or obj.get("context") or []
                    first = next((m.get("content") for m in msgs if isinstance(m, dict) and m.get("role") == "user"), None)
                    if first:
                        out.append(first)
            else:
                out.append(line)
    return out


class Decontaminator:
    """Benchmark n-grams (and whole short prompts) -> the benchmark they come from.

    The n-grams are keyed by Python's ``hash``, which differs between processes, so a
    Decontaminator pickles as its prompts and is rebuilt where it is unpickled (a Ray
    worker): one built in one process and matched in another would miss everything.
    """

    def __init__(self, prompts: dict[str, list[str]], n: int = 13):
        self.prompts = prompts
        self.n = n
        self.grams: dict[int, str] = {}
        self.short: dict[str, str] = {}  # whole short prompts (fewer than n words) -> source
        self.counts = {}
        for src, ps in prompts.items():
            self.counts[src] = len(ps)
            for p in ps:
                toks = words(p)
                if len(toks) >= n:
                    for h in ngram_hashes(toks, n):
                        self.grams.setdefault(h, src)
                elif len(toks) >= 4:  # shorter ones would match everyday phrases
                    self.short.setdefault(" ".join(toks), src)
        self.short_lengths = sorted({len(k.split()) for k in self.short})

    def __reduce__(self):
        return (Decontaminator, (self.prompts, self.n))

    def match(self, text: str) -> str | None:
        toks = words(text)
        for i in range(len(toks) - self.n + 1):
            src = self.grams.get(hash(" ".join(toks[i : i + self.n])))
            if src:
                return src
        for L in self.short_lengths:
            for i in range(len(toks) - L + 1):
                src = self.short.get(" ".join(toks[i : i + L]))
                if src:
                    return src
        return None


def pair_full_text(rec: Record) -> str:
    return "\n".join([m.content for m in rec.context] + [m.content for c in rec.candidates for m in c])


def has_empty_response(rec: Record) -> bool:
    """A candidate with no turn, or whose scored (last) turn is empty or white space."""
    return any(not c or not c[-1].content.strip() for c in rec.candidates)


def removed_line(rec: Record, reason: str, detail=None) -> str:
    """One line of ``removed.jsonl``: the reason, its detail, the id and the whole record."""
    return json.dumps({"reason": reason, "detail": detail, "id": rec.id, "record": record_to_row(rec)}, ensure_ascii=False) + "\n"


def pair_minhash(rec: Record, num_perm: int):
    """MinHash (datasketch, its fixed seed) of the pair's word 5-gram shingles."""
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm)
    toks = words(pair_full_text(rec))
    for i in range(max(1, len(toks) - 4)):
        m.update(" ".join(toks[i : i + 5]).encode())
    return m


def near_dup_index(threshold: float, num_perm: int):
    """The LSH index of near-duplicates: two pairs are near duplicates when one of its
    bands (``.hashranges`` of the signature) is equal in both."""
    from datasketch import MinHashLSH

    return MinHashLSH(threshold=threshold, num_perm=num_perm)


def _clean_locally(pool, out_dir: Path, deco, near_dup: bool, near_dup_threshold: float, num_perm: int,
                   counts: Counter, contaminated_by: Counter) -> None:
    """The steps in this process, streaming: writes the pool and removed.jsonl, fills ``counts``."""
    from ..ingest import _SeenIds  # the on-disk id set of ingest (flat memory)

    lsh = near_dup_index(near_dup_threshold, num_perm) if near_dup else None
    kept_order = 0  # LSH keys are (kept order, id): the earliest kept pair is the one a near duplicate names
    seen = _SeenIds(out_dir)
    writer = PoolWriter(out_dir)
    removed = open(out_dir / REMOVED, "w", encoding="utf-8")

    def drop(rec: Record, reason: str, detail=None):
        counts[reason] += 1
        removed.write(removed_line(rec, reason, detail))

    def process(batch: list[Record]):
        nonlocal kept_order
        fresh = seen.add_batch([r.id for r in batch])
        for rec, new in zip(batch, fresh):
            if not new:
                drop(rec, "duplicate")
                continue
            if deco is not None:
                src = deco.match(pair_full_text(rec))
                if src:
                    contaminated_by[src] += 1
                    drop(rec, "contaminated", src)
                    continue
            if lsh is not None:
                m = pair_minhash(rec, num_perm)
                near = lsh.query(m)
                if near:
                    drop(rec, "near_duplicate", min(near)[1])
                    continue
                lsh.insert((kept_order, rec.id), m)
                kept_order += 1
            writer.write(rec)
            counts["kept"] += 1

    batch: list[Record] = []
    try:
        for src in read_pool(pool):
            counts["read"] += 1
            if src.kind == "tie":
                drop(src, "not_a_pair", "tie")
                continue
            for rec in expand_to_pairs(src):
                if has_empty_response(rec):
                    drop(rec, "empty_response")
                    continue
                batch.append(rec)
                if len(batch) >= 1000:
                    process(batch)
                    batch = []
        process(batch)
    finally:
        writer.close()
        removed.close()
        seen.close()


def prep(pool, out_dir, *, data_dir=None, benches=BENCHMARK_ORDER, extra_prompts=(), decontaminate: bool = True,
         ngram: int = 13, near_dup: bool = False, near_dup_threshold: float = 0.9, num_perm: int = 64,
         overwrite: bool = False, progress: bool = False, engine=None) -> dict:
    """Clean ``pool`` into ``out_dir`` (a pool plus ``removed.jsonl`` and ``prep_report.json``); return the report.

    ``engine``: None (this process) or a started :class:`~synpref.engine.ray_cluster.RayCluster`
    (the same steps as Ray Data stages over the pool's shards; the same outputs).
    """

    pool_files(pool)  # a missing or empty input pool fails here, before anything is written
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.glob("part-*.parquet")):
        if not overwrite:
            raise OutputExistsError(f"{out_dir} already holds a pool")
        for p in out_dir.glob("part-*.parquet"):
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)

    deco = None
    sources, checked, unchecked = {}, {}, {}
    if decontaminate:
        prompts, checked, unchecked = gather_benchmark_prompts(data_dir, benches)
        for f in extra_prompts:
            prompts[f"file:{Path(f).name}"] = read_prompt_file(f)
        deco = Decontaminator(prompts, ngram)
        sources = deco.counts
    counts = Counter()
    contaminated_by = Counter()
    if engine is None:
        _clean_locally(pool, out_dir, deco, near_dup, near_dup_threshold, num_perm, counts, contaminated_by)
    else:
        from ..engine.ray_prep import clean_on_ray

        clean_on_ray(engine, pool, out_dir, deco, near_dup, near_dup_threshold, num_perm, counts, contaminated_by)
    report = {
        "input": str(pool),
        "output": str(out_dir),
        "read": counts.pop("read", 0),
        "kept": counts.pop("kept", 0),
        "removed": dict(sorted(counts.items())),
        "contaminated_by": dict(contaminated_by),
        "decontamination_sources": sources,
        "benchmarks_checked": checked,
        "benchmarks_not_checked": unchecked,
        "settings": {"ngram": ngram, "near_dup": near_dup, "near_dup_threshold": near_dup_threshold, "decontaminate": decontaminate},
        "removed_file": str(out_dir / REMOVED),
    }
    atomic_write_json(out_dir / REPORT, report)
    return report
