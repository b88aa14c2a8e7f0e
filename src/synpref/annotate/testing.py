"""Test helpers: a throwaway PostgreSQL, a small curation run, a server subprocess.

Used by ``tests/test_annotate_*.py``; kept in the package so any project that
embeds the app can test against the same fixtures.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ..verification import checks_dir, pending_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """Directory with Debian's PostgreSQL server binaries (newest), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run as the ``postgres`` OS user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_server(timeout: float = 60.0):
    """Start a throwaway cluster on 127.0.0.1:<free port>; yields a base URL without a db name."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
    root = Path(tempfile.mkdtemp(prefix="synpref-pg-"))
    data = root / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=timeout)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "-t", str(int(timeout)), "start"]),
                       check=True, capture_output=True, timeout=timeout + 10)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]), capture_output=True, timeout=timeout)
        shutil.rmtree(root, ignore_errors=True)


def create_database(base_url: str, name: str) -> str:
    """CREATE DATABASE name on the server; returns its URL."""
    import psycopg

    with psycopg.connect(base_url + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name comes from the test, not from users
    return f"{base_url}/{name}"


CATEGORIES = ["coding", "maths", "advice", "chitchat", "safety"]


def pending_pairs(records, n: int, seed: int = 0, batch: str = "batch-001") -> list[dict]:
    """Pairs in the pending-batch contract from ``synpref.schema.Record`` pairs."""
    rng = random.Random(seed)
    out = []
    for i, rec in enumerate(records):
        if len(out) >= n:
            break
        if rec.kind != "pair":
            continue
        objective = rng.random() < 0.5
        attrs = {
            "task_category": rng.choice(CATEGORIES),
            "objectivity": "objective" if objective else "subjective",
            "controversiality": rng.choice(["low", "medium", "high"]),
            "desired_attributes": ["helpful", "harmless"],
            "guideline": "Prefer the response that answers the user's request accurately and safely.",
        }
        out.append({
            "pair_id": f"p{i:05d}-{rec.id[:12]}",
            "batch": batch,
            "priority": len(out) // 10,
            "context": [m.to_dict() for m in rec.context],
            "response_a": "\n".join(m.content for m in rec.candidates[0]),
            "response_b": "\n".join(m.content for m in rec.candidates[1]),
            "attributes": attrs if rng.random() < 0.9 else None,
            "llm_precheck": {"label": rng.choice("AB"), "confidence": round(rng.uniform(0.5, 1.0), 2)} if objective else None,
        })
    return out


def write_run(run_dir: Path, pending: list[dict], checks: list[dict] = ()) -> Path:
    """Lay out RUN_DIR/verification/{pending,checks} like the curation run does."""
    pending_dir(run_dir).mkdir(parents=True, exist_ok=True)
    batches: dict[str, list[dict]] = {}
    for p in pending:
        batches.setdefault(p["batch"], []).append(p)
    for name, rows in batches.items():
        (pending_dir(run_dir) / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if checks:
        checks_dir(run_dir).mkdir(parents=True, exist_ok=True)
        (checks_dir(run_dir) / "checks-001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in checks))
    return run_dir


@contextlib.contextmanager
def server_process(run_dir: Path, db_url: str, *, extra: list[str] = (), timeout: float = 60.0, log_path: Path | None = None):
    """Run ``synpref annotate serve`` in a subprocess; yields its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "synpref.annotate.cli", "serve", str(run_dir), "--db", db_url, "--port", str(port), *extra]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}; see {log_path}")
            try:
                if httpx.get(base + "/login", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not come up")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if log_path:
            log.close()
