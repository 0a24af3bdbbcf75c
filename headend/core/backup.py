"""Backing up and restoring the head-end's database (`wattkeeper db backup`
and `wattkeeper db restore`).

* SQLite: the online backup API (sqlite3.Connection.backup), page by page,
  consistent while the head-end keeps running; restore copies the file's
  pages back over the database (stop the head-end first).
* PostgreSQL: pg_dump in its custom format (compressed, every table and
  partition, the triggers of the append-only tables); restore replays it
  with psql in ONE transaction that first empties the public schema, so a
  failed restore leaves the database as it was (pg_restore --clean cannot
  drop a partitioned table's indexes in its order). The tools are Debian's
  postgresql-client of the server's major version
  (/usr/lib/postgresql/<major>/bin when there, else the one on PATH, which
  must not be older than the server).

    backup(url, path, progress=None)      progress(done, total, what)
    restore(url, path, progress=None)
"""
import os
import re
import shutil
import sqlite3
import subprocess

from sqlalchemy import text
from sqlalchemy.engine import make_url

SQLITE_PAGES_PER_STEP = 256


class BackupError(RuntimeError):
    pass


def _sqlite_path(url):
    path = make_url(url).database
    if not path or path == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return path


def _sqlite_copy(src, dst, progress, what):
    def step(status, remaining, total):
        if progress:
            progress(total - remaining, total, what)
    src.backup(dst, pages=SQLITE_PAGES_PER_STEP, progress=step)


def sqlite_backup(url, path, progress=None):
    src = sqlite3.connect(_sqlite_path(url))
    tmp = path + ".partial"
    if os.path.exists(tmp):
        os.remove(tmp)
    dst = sqlite3.connect(tmp)
    try:
        _sqlite_copy(src, dst, progress, "pages")
        dst.execute("PRAGMA journal_mode=DELETE")     # a single self-contained file
    finally:
        dst.close()
        src.close()
    os.replace(tmp, path)


def sqlite_restore(url, path, progress=None):
    if not os.path.exists(path):
        raise BackupError("no backup file %s" % path)
    src = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        if src.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError("%s is not an intact SQLite database" % path)
        db_path = _sqlite_path(url)
        os.makedirs(os.path.dirname(os.path.abspath(db_path)), exist_ok=True)
        dst = sqlite3.connect(db_path)
        try:
            _sqlite_copy(src, dst, progress, "pages")
        finally:
            dst.close()
    except sqlite3.DatabaseError as e:
        raise BackupError("%s is not a SQLite database: %s" % (path, e))
    finally:
        src.close()


# ---------------------------------------------------------------- PostgreSQL
def libpq(url):
    """A SQLAlchemy URL -> (libpq connection URI without the password, environment with PGPASSWORD)."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    uri = u.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def server_major(engine):
    with engine.connect() as c:
        return int(c.execute(text("SHOW server_version_num")).scalar()) // 10000


def client_tool(name, major):
    """pg_dump / pg_restore of the server's major version."""
    exact = "/usr/lib/postgresql/%d/bin/%s" % (major, name)
    if os.path.exists(exact):
        return exact
    found = shutil.which(name)
    if not found:
        raise BackupError("%s is not installed (Debian: postgresql-client-%d; tools/bootstrap.sh)" % (name, major))
    out = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.", out)
    if m and int(m.group(1)) < major:
        raise BackupError("%s is version %s, older than the server (%d): install postgresql-client-%d"
                          % (found, m.group(1), major, major))
    return found


def _tables(engine):
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')")).scalar()


def _run(args, env, total, progress, pattern, stdout=subprocess.DEVNULL):
    """Run a pg tool with --verbose, counting the tables it reports; -> the process."""
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, stdout=stdout, text=True)
    done, tail = 0, []
    for line in proc.stderr:
        tail = (tail + [line.rstrip()])[-20:]
        m = re.search(pattern, line)
        if m:
            done += 1
            if progress:
                progress(min(done, total), total, m.group(1))
    if proc.wait() != 0:
        raise BackupError("%s failed:\n%s" % (os.path.basename(args[0]), _errors(tail)))
    return proc


def _errors(lines):
    return "\n".join(x for x in lines if "error" in x.lower()) or "\n".join(lines)


def pg_backup(engine, url, path, progress=None):
    uri, env = libpq(url)
    tool = client_tool("pg_dump", server_major(engine))
    tmp = path + ".partial"
    total = _tables(engine)
    _run([tool, "--format=custom", "--verbose", "--no-owner", "--file", tmp, "--dbname", uri], env,
         total, progress, r'dumping contents of table "?(?:public"?\.)?"?([\w]+)')
    if progress:
        progress(total, total, "done")
    os.replace(tmp, path)


def pg_restore(engine, url, path, progress=None):
    if not os.path.exists(path):
        raise BackupError("no backup file %s" % path)
    uri, env = libpq(url)
    tool = client_tool("pg_restore", server_major(engine))
    listing = subprocess.run([tool, "--list", path], capture_output=True, text=True, env=env)
    if listing.returncode != 0:
        raise BackupError("%s is not a pg_dump archive: %s" % (path, listing.stderr.strip()[:300]))
    total = sum(1 for line in listing.stdout.splitlines() if " TABLE DATA " in line) or 1
    psql = client_tool("psql", server_major(engine))
    engine.dispose()          # nothing of ours holds a connection while the tables are replaced
    replay = subprocess.Popen([psql, "--quiet", "--no-psqlrc", "--single-transaction", "-v", "ON_ERROR_STOP=1",
                               "-c", "DROP SCHEMA public CASCADE", "-c", "CREATE SCHEMA public",
                               "-f", "-", "--dbname", uri], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _run([tool, "--verbose", "--no-owner", "--file", "-", path], env, total, progress,
             r'processing data for table "?(?:public"?\.)?"?([\w]+)', stdout=replay.stdin)
    finally:
        replay.stdin.close()
        err = replay.stderr.read()
        rc = replay.wait()
    if rc != 0:
        raise BackupError("restore failed, the database is unchanged:\n%s" % _errors(err.splitlines()[-20:]))
    if progress:
        progress(total, total, "done")


# ------------------------------------------------------------------ entry points
def _on(url, sqlite_fn, pg_fn, path, progress):
    from .db import make_engine
    if url.startswith("sqlite"):
        return sqlite_fn(url, path, progress)
    engine = make_engine(url)
    try:
        return pg_fn(engine, url, path, progress)
    finally:
        engine.dispose()


def backup(url, path, progress=None):
    return _on(url, sqlite_backup, pg_backup, path, progress)


def restore(url, path, progress=None):
    return _on(url, sqlite_restore, pg_restore, path, progress)
