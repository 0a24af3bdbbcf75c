"""Set-wise reads and writes of one ingest message (ingest/records.py):
a handful of statements whatever the number of readings, none of whose
cost depends on how much history is stored.

    load_meters     the board's meters (one SELECT, plain MeterState rows; load_meters_of: several boards)
    lock_accounts   their accounts, locked in id order (SELECT ... FOR UPDATE)
    existing_seqs   which of a resent batch's seqs are stored (bounded by the batch)
    insert_readings COPY (PostgreSQL, ids from the sequence) / executemany (SQLite)
    insert_ledger   the same for the consumption entries
    add_to_accounts one UPDATE ... FROM (VALUES ...) (PostgreSQL) / executemany (SQLite)
    update_meters   one UPDATE ... FROM (VALUES ...) / executemany

Lock order (no deadlock between workers): the board's row, then its
accounts by id."""
import json

from sqlalchemy import Text, bindparam, cast, func, select, text

from ..core import bulk, jsonfast
from ..models import Account, Event, LedgerEntry, Meter, MeterSwap, Reading

READING = Reading.__table__
LEDGER = LedgerEntry.__table__
METER = Meter.__table__
ACCOUNT = Account.__table__

METER_COLUMNS = ("last_seq", "last_energy_wh", "last_power_w", "last_ts", "relay_closed", "online",
                 "billed_seq", "billed_energy_wh", "billed_ts", "tariff_state", "board_tariff_state",
                 "tariff_key", "board_charged_mu", "local_credit_mu")
_LOADED = ("id", "index", "meter_id", "account_id") + METER_COLUMNS
_PG_TYPES = {"relay_closed": "BOOLEAN", "online": "BOOLEAN", "tariff_state": "JSON", "board_tariff_state": "JSON",
             "tariff_key": "VARCHAR"}
_JSON = ("tariff_state", "board_tariff_state")
BUS_ERROR_KEYS = ("timeouts", "crc", "wrong_address", "exceptions", "offline")   # a status's bus rows, in order
STATUS_COLUMNS = ("online", "relay_closed", "local_credit_mu")     # what a status message changes of a meter


def _pg_meter_update(columns):
    return "UPDATE meter SET %s FROM unnest(CAST(:id AS INTEGER[]), %s) AS v (id, %s) WHERE meter.id = v.id" % (
        ", ".join("%s = v.%s" % (k, k) for k in columns),
        ", ".join("CAST(:%s AS %s[])" % (k, _PG_TYPES.get(k, "BIGINT")) for k in columns), ", ".join(columns))


_PG_METER_UPDATE = {cols: _pg_meter_update(cols) for cols in (METER_COLUMNS, STATUS_COLUMNS)}


class MeterState:
    """A meter of the batch's board, as plain attributes (no ORM object).
    tariff_state and board_tariff_state hold their JSON text (a str) until
    accumulators() decodes them: a fleet's messages are mostly status
    messages, which never read them."""
    __slots__ = _LOADED + ("swapped_ts", "elsewhere", "dirty", "status_dirty", "board_run")

    def __init__(self, row):
        for k, v in zip(_LOADED, row):
            setattr(self, k, v)
        self.swapped_ts, self.elsewhere = row[len(_LOADED)], row[len(_LOADED) + 1]
        self.dirty = False            # any of METER_COLUMNS changed (a reading, billing)
        self.status_dirty = False     # only STATUS_COLUMNS changed (a status message)
        self.board_run = None         # readings whose board charge waits for the check (board_check.Run)


class AccountState:
    __slots__ = ("id", "property_id", "tenant_id", "kind", "name", "balance_mu", "recharge_count",
                 "low_balance_threshold_mu", "tariff_id")

    def __init__(self, row):
        for k, v in zip(self.__slots__, row):
            setattr(self, k, v)


class ReadingRow:
    __slots__ = ("id", "concentrator_id", "seq", "meter_index", "meter_id", "ts", "energy_wh", "power_w", "flags", "bands",
                 "charged_mu", "billed_mu", "billed", "received")

    def __init__(self, seq, idx, meter_id, ts, values, now, conc_id=None):
        self.id, self.concentrator_id = None, conc_id
        self.seq, self.meter_index, self.meter_id, self.ts = seq, idx, meter_id, ts
        self.energy_wh, self.power_w, self.flags = values[0], values[1], values[2]
        self.charged_mu = values[3] if len(values) > 3 else None
        self.bands = values[4:]          # a new list (check_record let only lists through)
        self.billed_mu, self.billed, self.received = None, False, now


class LedgerRow:
    """A consumption entry as alerts.after_ingest reads it (seen.entries)."""
    __slots__ = ("id", "account_id", "kind", "amount_mu", "balance_after_mu", "concentrator_id")

    def __init__(self, account_id, kind, amount_mu, balance_after_mu, conc_id=None):
        self.id, self.account_id, self.kind = None, account_id, kind
        self.concentrator_id = conc_id
        self.amount_mu, self.balance_after_mu = amount_mu, balance_after_mu


def is_pg(s):
    return s.get_bind().dialect.name == "postgresql"


def load_meters(s, conc_id):
    """index -> MeterState of the board's meters, with the time of each
    one's latest swap and how many other boards' meters share its account."""
    return load_meters_of(s, [conc_id]).get(conc_id, {})


def _meters_query():
    c = METER.c
    swapped = (select(func.max(MeterSwap.__table__.c.ts)).where(MeterSwap.__table__.c.meter_id == c.id)
               .scalar_subquery())
    m2 = METER.alias("m2")
    elsewhere = (select(func.count()).select_from(m2)
                 .where(m2.c.account_id == c.account_id, m2.c.concentrator_id != c.concentrator_id)
                 .scalar_subquery())
    # the accumulators as their JSON text: decoded only for the meters a message bills (accumulators())
    cols = [cast(c[k], Text) if k in _JSON else c[k] for k in _LOADED]
    return select(*cols, swapped, elsewhere, c.concentrator_id).where(
        c.concentrator_id.in_(bindparam("concs", expanding=True)))


_METERS = _meters_query()    # built once: building it cost more than running it (~0.6 ms a message)


def accumulators(meters):
    """Decode the accumulators (tariff_state, board_tariff_state) of these
    MeterStates where they are still JSON text (a decoded one is a dict or None)."""
    for m in meters:
        for k in _JSON:
            v = getattr(m, k)
            if type(v) is str:
                setattr(m, k, jsonfast.loads(v))


def load_meters_of(s, conc_ids):
    """load_meters for several boards in one SELECT -> {board id: {index: MeterState}}."""
    out = {}
    for r in s.execute(_METERS, {"concs": sorted(conc_ids)}).all():
        out.setdefault(r[-1], {})[r[1]] = MeterState(r)
    return out


def lock_accounts(s, ids):
    """id -> AccountState, each row locked (PostgreSQL) in id order."""
    if not ids:
        return {}
    c = ACCOUNT.c
    q = (select(*[c[k] for k in AccountState.__slots__]).where(bulk.any_of(s, c.id, sorted(ids))).order_by(c.id)
         .with_for_update())
    return {r[0]: AccountState(r) for r in s.execute(q).all()}


def existing_seqs(s, conc_id, seqs, ts_range):
    """The seqs among `seqs` the board already stored (readings or events).
    ts_range (lo, hi) of the batch's readings lets PostgreSQL probe only the
    month partitions those readings fall in (a resent record has its ts)."""
    found = set()
    if not seqs:
        return found
    if ts_range is not None:
        found.update(s.execute(select(READING.c.seq).where(
            READING.c.concentrator_id == conc_id, READING.c.seq.in_(seqs),
            READING.c.ts >= ts_range[0], READING.c.ts <= ts_range[1])).scalars())
    ev = Event.__table__.c
    found.update(s.execute(select(ev.seq).where(ev.concentrator_id == conc_id, ev.seq.in_(seqs))).scalars())
    return found


def stored_above(s, conc_id, cur, top):
    """Seqs stored for the board in (cur, top] (readings and events): the
    journal's unacked window, read only when a gap holds the ack back."""
    ev = Event.__table__.c
    seqs = set(s.execute(select(READING.c.seq).where(READING.c.concentrator_id == conc_id, READING.c.seq > cur,
                                                     READING.c.seq <= top)).scalars())
    seqs.update(s.execute(select(ev.seq).where(ev.concentrator_id == conc_id, ev.seq > cur,
                                               ev.seq <= top)).scalars())
    return seqs


def insert_readings(s, rows):
    """One INSERT for the readings (ReadingRows of one or several boards,
    each naming its board); sets each row's id."""
    if not rows:
        return
    if is_pg(s):
        # COPY (a multi-row INSERT's parameters cost more to send and parse than the rows)
        ids = _pg_ids(s, "reading", len(rows))
        for r, rid in zip(rows, ids):
            r.id = rid
        _pg_copy(s, "reading", ("id", "concentrator_id", "seq", "meter_index", "meter_id", "ts", "energy_wh", "power_w",
                                "flags", "bands", "charged_mu", "billed_mu", "billed", "received"),
                 [(r.id, r.concentrator_id, r.seq, r.meter_index, r.meter_id, r.ts, r.energy_wh, r.power_w, r.flags,
                   _bands_json(r.bands), r.charged_mu, r.billed_mu, r.billed, r.received) for r in rows])
        return
    for r, rid in zip(rows, _sqlite_ids(s, READING, len(rows))):
        r.id = rid
    _sqlite_insert(s, READING, ("id", "concentrator_id", "seq", "meter_index", "meter_id", "ts", "energy_wh", "power_w",
                                "flags", "bands", "charged_mu", "billed_mu", "billed", "received"),
                   [(r.id, r.concentrator_id, r.seq, r.meter_index, r.meter_id, r.ts, r.energy_wh, r.power_w, r.flags,
                     _bands_json(r.bands), r.charged_mu, r.billed_mu, r.billed, r.received) for r in rows])


_SEQUENCES = {}      # (database url, table) -> its id sequence's name


def _bands_json(bands):
    """json.dumps of the band registers, byte for byte, without the encoder
    for the usual list of ints (bounds.check_record let only ints through)."""
    if type(bands) is list and _INT_ONLY.issuperset(map(type, bands)):
        return str(bands)        # a list of ints: what json.dumps writes
    return json.dumps(bands)


_INT_ONLY = frozenset((int,))     # not bool (json.dumps writes true, str 1)


def _pg_ids(s, table, n):
    """n new ids of the table's id sequence (one statement). The sequence's
    name is looked up once: pg_get_serial_sequence in the SELECT would run
    once per row (a catalog look-up each, ~5x the cost of the nextvals)."""
    key = (str(s.get_bind().url), table)
    seq = _SEQUENCES.get(key)
    if seq is None:
        seq = _SEQUENCES[key] = s.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar()
    return [r[0] for r in s.execute(text("SELECT nextval(CAST(:q AS regclass)) FROM generate_series(1, :n)"),
                                    {"q": seq, "n": n})]


def _pg_copy(s, table, columns, rows):
    bulk.copy_rows(s, table, columns, rows)


def _sqlite_ids(s, table, n):
    """n new ids of a SQLite table: the transaction holds the database's
    write lock (BEGIN IMMEDIATE), so the rows get max(id) + 1, + 2, ...
    (written explicitly)."""
    top = s.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar()
    return range(top + 1, top + 1 + n)


def _sqlite_insert(s, table, columns, rows):
    """executemany of plain tuples (in `columns` order) on SQLite's own cursor."""
    cur = s.connection().connection.cursor()
    try:
        cur.executemany("INSERT INTO %s (%s) VALUES (%s)" % (table.name, ", ".join(columns),
                                                           ", ".join("?" * len(columns))), rows)
    finally:
        cur.close()


def insert_ledger(s, entries, now):
    """entries: [(LedgerRow, reference)] (references unique; each row names
    its board) -> one INSERT; sets each row's id."""
    if not entries:
        return
    if is_pg(s):
        ids = _pg_ids(s, "ledger_entry", len(entries))
        for (e, _ref), eid in zip(entries, ids):
            e.id = eid
        _pg_copy(s, "ledger_entry", ("id", "account_id", "kind", "amount_mu", "balance_after_mu", "concentrator_id",
                                     "source", "reference", "note", "created"),
                 [(e.id, e.account_id, e.kind, e.amount_mu, e.balance_after_mu, e.concentrator_id, "ingest", ref[:200],
                   "", now) for e, ref in entries])
        return
    for (e, _ref), eid in zip(entries, _sqlite_ids(s, LEDGER, len(entries))):
        e.id = eid
    _sqlite_insert(s, LEDGER, ("id", "account_id", "kind", "amount_mu", "balance_after_mu", "concentrator_id", "source",
                               "reference", "note", "created"),
                   [(e.id, e.account_id, e.kind, e.amount_mu, e.balance_after_mu, e.concentrator_id, "ingest", ref[:200],
                     "", now) for e, ref in entries])


def add_to_accounts(s, deltas):
    """{account id: mu} added to the balances (the rows are locked already)."""
    if not deltas:
        return
    items = sorted(deltas.items())
    if is_pg(s):
        s.execute(text("UPDATE account SET balance_mu = account.balance_mu + v.d FROM unnest(CAST(:a AS INTEGER[]), "
                       "CAST(:d AS BIGINT[])) AS v (id, d) WHERE account.id = v.id"),
                  {"a": bulk.pg_array([a for a, _d in items]), "d": bulk.pg_array([d for _a, d in items])})
    else:
        s.execute(text("UPDATE account SET balance_mu = balance_mu + :d WHERE id = :a"),
                  [{"a": a, "d": d} for a, d in items])


_BUS_COLUMNS = ("meter_id",) + BUS_ERROR_KEYS + ("boot", "ts")
_BUS_KEPT = BUS_ERROR_KEYS + ("boot",)
_BUS_UPSERT = (" ON CONFLICT (meter_id) DO UPDATE SET %s WHERE (%s) IS DISTINCT FROM (%s)" % (
    ", ".join("%s = EXCLUDED.%s" % (k, k) for k in _BUS_KEPT + ("ts",)),
    ", ".join("meter_bus_errors.%s" % k for k in _BUS_KEPT), ", ".join("EXCLUDED.%s" % k for k in _BUS_KEPT)))
_PG_BUS = text("INSERT INTO meter_bus_errors (%s) SELECT * FROM unnest(CAST(:meter_id AS INTEGER[]), %s)" % (
    ", ".join(_BUS_COLUMNS), ", ".join("CAST(:%s AS BIGINT[])" % k for k in _BUS_COLUMNS[1:])) + _BUS_UPSERT)
_SQLITE_BUS = text("INSERT INTO meter_bus_errors (%s) VALUES (%s)" % (
    ", ".join(_BUS_COLUMNS), ", ".join(":" + k for k in _BUS_COLUMNS)) + _BUS_UPSERT)


def store_bus_errors(s, errs, now):
    """{meter pk: (counters in BUS_ERROR_KEYS order, the board's boot)} ->
    meter_bus_errors, one INSERT ... ON CONFLICT DO UPDATE for the batch
    (over arrays on PostgreSQL: a multi-row VALUES of thousands of rows
    cost more to compile than to run). A row whose counters and boot are
    what is stored is left as it is (no new row version: a healthy fleet's
    statuses write nothing); `ts` says since when the row holds what it holds."""
    if not errs:
        return
    rows = [(mid,) + tuple(v) + (boot, now) for mid, (v, boot) in sorted(errs.items())]
    if is_pg(s):
        s.execute(_PG_BUS, {k: bulk.pg_array([r[i] for r in rows]) for i, k in enumerate(_BUS_COLUMNS)})
    else:
        s.execute(_SQLITE_BUS, [dict(zip(_BUS_COLUMNS, r)) for r in rows])


def update_meters(s, meters, columns=METER_COLUMNS):
    """Write back these columns of the changed MeterStates (the board's row
    lock covers them): METER_COLUMNS for those a reading changed, only
    STATUS_COLUMNS for those only a status message changed (three small
    values, not the accumulators' JSON)."""
    meters = sorted(meters, key=lambda m: m.id)
    if not meters:
        return
    def val(m, k):
        v = getattr(m, k)      # an accumulator never decoded (a str) is written back as the text it was
        return jsonfast.dumps(v) if k in _JSON and v is not None and type(v) is not str else v
    if is_pg(s):
        params = {"id": bulk.pg_array([m.id for m in meters])}
        params.update({k: bulk.pg_array([val(m, k) for m in meters]) for k in columns})
        s.execute(text(_PG_METER_UPDATE[columns]), params)
    else:
        s.execute(text("UPDATE meter SET %s WHERE id = :id" % ", ".join("%s = :%s" % (k, k) for k in columns)),
                  [dict({k: val(m, k) for k in columns}, id=m.id) for m in meters])
