"""Tables of the annotation store (SQLAlchemy Core) and engine set-up.

The schema is created and upgraded only by the alembic migrations in
``migrations/``; ``metadata`` here mirrors them for queries. ``decisions`` is an
append-only event log (database triggers refuse UPDATE and DELETE): the current
label of a pair is always derived from it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

from ..verification import verification_dir

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),  # "admin" | "annotator"
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

# Failed-login counts per key ("ip:ADDR", "user:name"); see security.LoginLimiter.
login_limits = Table(
    "login_limits",
    metadata,
    Column("key", String(160), primary_key=True),
    Column("failures", Integer, nullable=False),  # failed attempts in the window
    Column("pending", Integer, nullable=False),  # admitted attempts whose password is being checked
    Column("window_started", DateTime, nullable=False),
)

pairs = Table(
    "pairs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pair_id", String(255), nullable=False, unique=True),
    Column("batch", String(64), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("tier", Integer, nullable=False),  # protocol order, see protocol.tier
    Column("task_category", String(128)),
    Column("context", Text, nullable=False),  # JSON list of {"role","content"}
    Column("response_a", Text, nullable=False),
    Column("response_b", Text, nullable=False),
    Column("attributes", Text),  # JSON or NULL
    Column("precheck", Text),  # JSON or NULL
    Column("content_id", String(64), nullable=False),
    Column("is_check", Boolean, nullable=False, default=False),  # gold check item
    Column("check_answer", String(1)),  # "A" | "B" for checks
    Column("imported_at", DateTime, nullable=False),
)

batch_imports = Table(
    "batch_imports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file_name", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("pairs_added", Integer, nullable=False),
    Column("pairs_skipped", Integer, nullable=False),
    Column("imported_at", DateTime, nullable=False),
    UniqueConstraint("file_name", "sha256", name="uq_batch_imports_file_sha"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pair_pk", Integer, ForeignKey("pairs.id"), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("assigned_at", DateTime, nullable=False),
    # Which source response is displayed as "A": "response_a" or "response_b".
    Column("shown_as_a", String(16), nullable=False),
    UniqueConstraint("pair_pk", "user_id", name="uq_assignments_pair_user"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("submission_id", String(64), nullable=False, unique=True),  # idempotency key
    Column("assignment_id", Integer, ForeignKey("assignments.id"), nullable=False, index=True),
    Column("pair_pk", Integer, ForeignKey("pairs.id"), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),
    Column("content_id", String(64), nullable=False),
    Column("shown_as_a", String(16), nullable=False),
    Column("choice_shown", String(16), nullable=False),  # what was clicked: A | B | undecidable
    Column("decision", String(16), nullable=False),  # translated to source sides
    Column("note", Text),
)

exports = Table(
    "exports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file_name", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("n_decisions", Integer, nullable=False),
)

exported_decisions = Table(
    "exported_decisions",
    metadata,
    Column("export_id", Integer, ForeignKey("exports.id"), primary_key=True),
    Column("decision_id", Integer, ForeignKey("decisions.id"), primary_key=True),
)


def utcnow() -> datetime:
    """Naive UTC (stored as is on every backend)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(dt: datetime) -> str:
    return dt.replace(tzinfo=timezone.utc).isoformat()


def default_url(run_dir: str | Path) -> str:
    return f"sqlite:///{verification_dir(Path(run_dir).resolve()) / 'annotate.sqlite'}"


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and write-locking transactions.

    ``BEGIN IMMEDIATE`` makes every SQLite transaction take the write lock up
    front, so read-check-insert sequences (claiming a pair) cannot interleave.
    """
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
