"""Engine and sessions: SQLite (WAL, the embedded default) and PostgreSQL.
The schema comes only from the Alembic migrations (headend/alembic,
`wattkeeper db upgrade`); nothing here creates tables."""
import os

from sqlalchemy import event
from sqlmodel import Session, create_engine

from .. import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from . import jsonfast


def make_engine(url, echo=False):
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30},
                               json_deserializer=jsonfast.loads)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _rec):
            # Let SQLAlchemy (not the sqlite3 module) emit BEGIN; see _on_begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # IMMEDIATE: take the write lock at BEGIN, so a transaction never
            # fails half-way when it upgrades from reading to writing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        return engine
    engine = create_engine(url, echo=echo, pool_pre_ping=True, json_deserializer=jsonfast.loads)

    @event.listens_for(engine, "connect")
    def _no_jit(dbapi_conn, _rec):
        # PostgreSQL compiles a query to machine code when its estimated cost
        # passes jit_above_cost, which the ingest's set-based statements over a
        # batch's arrays do: compiling took ~360 ms of a ~15 ms query (the
        # meters of 64 boards, EXPLAIN ANALYZE). Every query here is short,
        # so the JIT only adds latency (PostgreSQL's docs: it pays off for
        # long analytic queries). Behind PgBouncer's transaction pooling a
        # session's SET does not follow it: set it on the database there
        # (docs/deploying.md).
        cur = dbapi_conn.cursor()
        cur.execute("SET jit = off")
        cur.close()
        dbapi_conn.commit()
    return engine


class SessionFactory:
    """Callable returning a new Session bound to the engine."""

    def __init__(self, engine):
        self.engine = engine

    def __call__(self):
        return Session(self.engine, expire_on_commit=False)


def session_factory(engine):
    return SessionFactory(engine)


def is_postgres(engine_or_session):
    bind = getattr(engine_or_session, "bind", None) or engine_or_session
    return bind.dialect.name == "postgresql"
