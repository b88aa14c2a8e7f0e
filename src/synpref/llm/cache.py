"""On-disk cache of LLM calls (SQLite), so a rerun or a resume never pays for a call twice.

Key: sha256 of the canonical JSON of (endpoint model, prompt messages, sampling
parameters, sample index). The endpoint URL is deliberately NOT in the key: the
same model served elsewhere gives the same cached answer. Every write commits at
once (WAL journal), so a ``kill -9`` loses at most the call in flight. Commits do
not wait for the disk (``synchronous=NORMAL``): a commit is in the WAL file, which
survives the process being killed; only a power cut can lose the last answers
(they are paid again, the cache is never corrupt).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

_TOTALS_SQL = ("SELECT model, COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0) "
               "FROM calls GROUP BY model")


def cache_key(model: str, messages: list[dict], params: dict, sample: int) -> str:
    body = json.dumps({"model": model, "messages": messages, "params": params, "sample": sample},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class LLMCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # see the module docstring: safe against kill -9, not a power cut
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, model TEXT, text TEXT, "
            "prompt_tokens INTEGER, completion_tokens INTEGER, created REAL)"
        )
        self.db.commit()

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self.db.execute("SELECT text, prompt_tokens, completion_tokens FROM calls WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        return {"text": row[0], "prompt_tokens": row[1], "completion_tokens": row[2]}

    def put(self, key: str, model: str, text: str, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO calls VALUES (?,?,?,?,?,?)",
                            (key, model, text, prompt_tokens, completion_tokens, time.time()))
            self.db.commit()

    def get_many(self, keys: list[str]) -> list[dict | None]:
        """:meth:`get` of each key, in one query per 500 keys (a remote cache's batched lookup)."""
        found = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                part = list(dict.fromkeys(keys[i : i + 500]))
                marks = ",".join("?" * len(part))
                for key, text, pt, ct in self.db.execute(
                        f"SELECT key, text, prompt_tokens, completion_tokens FROM calls WHERE key IN ({marks})", part):
                    found[key] = {"text": text, "prompt_tokens": pt, "completion_tokens": ct}
        return [found.get(k) for k in keys]

    def put_many(self, rows: list[tuple[str, str, str, int, int]]) -> None:
        """:meth:`put` of each (key, model, text, prompt_tokens, completion_tokens), committed together
        before returning: every answer written is in the cache once this returns."""
        now = time.time()
        with self._lock:
            self.db.executemany("INSERT OR REPLACE INTO calls VALUES (?,?,?,?,?,?)", [(*r, now) for r in rows])
            self.db.commit()

    # The client's interface (awaited, so a remote cache such as the Ray engine's answers the same calls).
    async def aget(self, key: str) -> dict | None:
        return self.get(key)

    async def aput(self, key: str, model: str, text: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.put(key, model, text, prompt_tokens, completion_tokens)

    def __len__(self) -> int:
        with self._lock:
            return self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def totals(self) -> dict:
        """Paid calls and tokens of every answer stored here, in all and per model. Each paid answer
        is stored exactly once, as it arrives, so the totals cover every run that used this cache
        (a run killed with ``kill -9`` included)."""
        with self._lock:
            return _totals(self.db.execute(_TOTALS_SQL).fetchall())

    @staticmethod
    def read_totals(path: str | Path) -> dict:
        """:meth:`totals` of the cache file at ``path``, read-only: zeros when there is no file.

        A file that cannot be read (not a cache, corrupt, locked) gives ``None`` counts with an
        ``error``, and a logged warning: the totals are unknown, not zero.
        """
        path = Path(path)
        if not path.is_file():
            return _totals([])
        try:
            db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
            try:
                return _totals(db.execute(_TOTALS_SQL).fetchall())
            finally:
                db.close()
        except sqlite3.DatabaseError as e:
            log.warning("LLM token totals are unknown: %s cannot be read as an LLM cache (%s: %s); the totals report "
                        "no counts (the file is left as it is)", path, type(e).__name__, e)
            return {"calls": None, "prompt_tokens": None, "completion_tokens": None, "per_model": {},
                    "error": f"{path}: {type(e).__name__}: {e}"}

    def close(self) -> None:
        with self._lock:
            self.db.close()


def _totals(rows: list[tuple]) -> dict:
    return {"calls": sum(r[1] for r in rows), "prompt_tokens": sum(r[2] for r in rows), "completion_tokens": sum(r[3] for r in rows),
            "per_model": {r[0]: {"calls": r[1], "prompt_tokens": r[2], "completion_tokens": r[3]} for r in rows}}
