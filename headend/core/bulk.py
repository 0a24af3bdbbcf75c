"""COPY on PostgreSQL: many rows in the session's transaction, cheaper
to send and parse than a multi-row INSERT's parameters (the ingest's
readings, ledger entries and replies)."""
import io

from sqlalchemy import BigInteger, Integer, String, any_, bindparam, cast
from sqlalchemy.dialects.postgresql import ARRAY


def _text(v):
    t = type(v)
    if t is int:
        return str(v)
    if v is None:
        return "\\N"
    if t is bool:
        return "t" if v else "f"
    if t is bytes:
        return "\\\\x" + v.hex()          # bytea, hex format (the backslash escaped for COPY)
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_rows(session, table, columns, rows):
    """COPY rows (tuples in `columns` order: int, str, bool, bytes or None)
    into `table`, in the session's transaction."""
    if not rows:
        return
    # ints (most values) formatted inline: a call of _text per value cost more than the rest
    buf = io.StringIO("".join("\t".join([str(v) if type(v) is int else _text(v) for v in r]) + "\n" for r in rows))
    with session.connection().connection.cursor() as cur:
        cur.copy_expert("COPY %s (%s) FROM STDIN" % (table, ", ".join(columns)), buf)


def _elem(v):
    t = type(v)
    if t is int:
        return str(v)
    if v is None:
        return "NULL"
    if t is bool:
        return "t" if v else "f"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def pg_array(values):
    """A list of ints, strs, bools or None as one PostgreSQL array literal
    ('{1,2,NULL}'), for CAST(:p AS BIGINT[]) and the like: psycopg2 sends a
    Python list as ARRAY[1, 2, ...], one expression per element for the
    server to parse and plan; the literal is one constant (the ingest's
    rollup upsert of ~1,500 rows: ~2x faster)."""
    return "{" + ",".join([str(v) if type(v) is int else _elem(v) for v in values]) + "}"


_ITEM = {"INTEGER": Integer, "BIGINT": BigInteger, "VARCHAR": String}


def any_of(session, column, values, sql_type="INTEGER"):
    """`column IN values` for a batch's hundreds or thousands of ids: on
    PostgreSQL `column = ANY(CAST(:p AS type[]))` with one array literal
    (SQLAlchemy renders an IN list as one bind parameter per value, on every
    execution: ~1 ms per 1,000 values); elsewhere a plain IN."""
    values = list(values)
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(cast(bindparam(None, pg_array(values), type_=String), ARRAY(_ITEM[sql_type])))
