"""Journal records (`rd`): readings and events stored idempotently on
(concentrator, seq), new readings billed, the ack moved to the highest
contiguous committed sequence.

Set-based (docs/scale-design.md): the board's meters and accounts are read
once, every new reading is billed in memory (ingest/billing_run.py), and the
readings, the ledger entries, the balances and the meters are written with
one statement each (ingest/store.py). What is new is decided from the
batch and the board's `top_seq` (the highest seq stored): a batch above it
reads nothing from the readings table; only a resent batch looks its own
seqs up. The ack comes from the batch itself unless a gap holds it back."""
import collections
import json
import logging

from sqlmodel import select

from concentrator import protocol

from ..core.events import EV_BAD_RECORD, EV_LOW_BALANCE, EV_OUT_OF_RANGE, describe_event
from ..core.money import format_money
from ..models import Account, Event, Meter
from ..models.ledger import CONSUMPTION
from ..services import pushes, rollups
from ..services.accounts import vacancy_account
from ..transport import downlink
from . import board_check, bounds, store
from .envelope import Rejected, is_int

log = logging.getLogger("headend.ingest")

MAX_RECORDS = 64
REPLAY = protocol.REJECT_REASONS.index("replay")
READING, MISSING, RELAY_OPEN = protocol.KIND_READING, protocol.FLAG_MISSING, protocol.FLAG_RELAY_OPEN   # per record


class Work:
    """One transaction's records work, over one message or a batch of them
    (several boards, several messages of a board in sequence): the boards'
    meters read once (one SELECT for all), their accounts locked once, and
    the writes kept in memory until flush(): the readings, the ledger
    entries, the balances, the meters, the rollups in one statement each,
    the replies sealed with one counter reservation per board. flush() runs
    before anything reads them back (a resent batch's seqs, the ack's gap,
    another kind of message, a push to other boards) and before the commit;
    the messages in between cost no statement of their own."""

    def __init__(self, s, now, bill, stats):
        self.s, self.now, self.bill, self.stats = s, now, bill, stats
        self.meters = {}          # board id -> {index: store.MeterState}
        self.accounts = {}        # id -> store.AccountState (locked)
        self.vacancy = {}         # property id -> its vacancy account's id
        self.tariffs = {}         # property id -> Biller.tariff_cache
        self.tz_of_meter = {}     # meter id -> its property's UTC offset (the rollups' local hours, days, months)
        self.readings = []        # store.ReadingRow (each names its board)
        self.charges = []         # [(ReadingRow, LedgerRow)]
        self.deltas = {}          # account id -> mu
        self.seals = []           # [(conc, replies list, [(kind, fields)], n_meters)]
        self.entries_of = {}      # board id -> [LedgerRow] (alerts.after_ingest)
        self.bus_errors = {}      # meter id -> (its board's bus error counters, the board's boot): status messages
        self.unlocked = set()     # boards whose meters were read for a status only (their accounts not locked)

    # ---------------------------------------------------------------- reads
    def preload(self, concs, unlocked=()):
        """The meters of these boards (one SELECT) and their accounts,
        locked in id order (one SELECT ... FOR UPDATE): before any message
        of the batch is handled, so workers lock boards, then accounts.
        unlocked: boards whose meters only a status message needs (read,
        their accounts not locked)."""
        locked = {c.id: c for c in concs}
        concs = [c for c in list(locked.values()) + [c for c in unlocked if c.id not in locked]
                 if c.id not in self.meters or (c.id in locked and c.id in self.unlocked)]
        if not concs:
            return
        fresh = [c for c in concs if c.id not in self.meters]
        loaded = store.load_meters_of(self.s, [c.id for c in fresh]) if fresh else {}
        need = set()
        for c in concs:
            if c.id not in self.meters:
                self.meters[c.id] = loaded.get(c.id, {})
            if c.id not in locked:
                self.unlocked.add(c.id)
                continue
            self.unlocked.discard(c.id)
            for m in self.meters[c.id].values():
                need.add(m.account_id if m.account_id is not None else self.vacancy_of(c.property_id))
        self.lock(need)

    def meters_of(self, conc, lock=True):
        """The board's MeterStates (lock: its accounts locked too, what
        billing needs; a status needs only the meters)."""
        if conc.id not in self.meters or (lock and conc.id in self.unlocked):
            if self.s.dirty:
                self.s.flush()        # what an ORM path changed of the board's meters
            self.preload([conc] if lock else [], unlocked=() if lock else [conc])
        return self.meters[conc.id]

    def forget(self, conc_id):
        """The board's meters are read and changed through the ORM next
        (hello): load them again for its next records message."""
        self.meters.pop(conc_id, None)
        self.unlocked.discard(conc_id)

    def lock(self, ids):
        missing = set(ids) - set(self.accounts)
        if missing:
            self.accounts.update(store.lock_accounts(self.s, missing))

    def vacancy_of(self, property_id):
        if property_id not in self.vacancy:
            self.vacancy[property_id] = vacancy_account(self.s, property_id).id
        return self.vacancy[property_id]

    def tz_of(self, property_id):
        self.tariff_cache(property_id)     # the stamp it reads carries the property's UTC offset
        return self.bill.tz_of(self.s, property_id)

    def tariff_cache(self, property_id):
        if property_id not in self.tariffs:
            self.tariffs[property_id] = self.bill.tariff_cache(self.s, property_id)
        return self.tariffs[property_id]

    # --------------------------------------------------------------- writes
    def flush(self):
        """Write what is pending: rollups, readings, ledger entries,
        balances, meters, bus error counters (one statement each), then seal
        the pending replies (one counter reservation for all boards, each
        board's in message order)."""
        s = self.s
        dirty_meters = [m for ms in self.meters.values() for m in ms.values() if m.dirty]
        for m in dirty_meters:
            if m.board_run is not None:
                board_check.settle(s, m)       # the board's charges checked, its accumulator's copy final
        seen_meters = [m for ms in self.meters.values() for m in ms.values() if m.status_dirty and not m.dirty]
        if not (self.readings or self.charges or self.deltas or dirty_meters or seen_meters or self.seals
                or self.bus_errors):
            return
        if any(isinstance(o, (Meter, Account)) for o in s.dirty):
            s.flush()                 # ORM changes first: the Core writes below come after them
        if self.readings:
            # before the INSERT: the neighbours it reads are then only those stored before (bounded, indexed)
            rollups.after_billing(s, self.readings, tzs=self.tz_of_meter)
            store.insert_readings(s, self.readings)
        if self.charges:
            store.insert_ledger(s, [(e, "reading:%d/seq:%d" % (rd.id, rd.seq)) for rd, e in self.charges], self.now)
        store.add_to_accounts(s, self.deltas)
        store.update_meters(s, dirty_meters)
        store.update_meters(s, seen_meters, store.STATUS_COLUMNS)
        store.store_bus_errors(s, self.bus_errors, self.now)
        self.bus_errors = {}
        for m in dirty_meters + seen_meters:
            m.dirty = m.status_dirty = False
        wrote = bool(dirty_meters or seen_meters or self.deltas)
        self.readings, self.charges, self.deltas = [], [], {}
        seals, self.seals = self.seals, []
        by_conc = {}
        for item in seals:
            by_conc.setdefault(item[0].id, []).append(item)
        if by_conc:
            first = downlink.next_n_many(s, {cid: sum(len(items) for _c, _o, items, _n in todo)
                                             for cid, todo in by_conc.items()})
            for cid, todo in by_conc.items():
                conc, n = todo[0][0], first[cid]
                key = downlink.keys_of(conc).signing_key()
                for _c, out, items, n_meters in todo:
                    for kind, fields in items:
                        out.append(downlink.seal_n(conc, n, kind, self.now, fields, n_meters, key))
                        n += 1
        if wrote:
            self._expire()

    def _expire(self):
        # ORM objects read before these writes would show the old values
        s = self.s
        for o in list(s.identity_map.values()):
            if isinstance(o, (Meter, Account)) and o not in s.dirty:
                s.expire(o)


class Batch:
    """One message's view of the Work: what bill() reads and produces."""

    def __init__(self, work, conc, now, meters):
        self.s, self.conc, self.now = work.s, conc, now
        self.conc_id, self.property_id = conc.id, conc.property_id    # read once, not per reading
        self.prices = {}                # account tariff id -> Biller.prices
        self.billed = 0                 # readings billed (the stats, once per message)
        self.work = work
        self.meters = meters            # index -> store.MeterState
        self.accounts = work.accounts   # id -> store.AccountState (locked)
        self.vacancy_id = None
        self.cache = None               # tariffs (Biller.tariff_cache)
        self.events = []
        self.changed = set()            # accounts whose balance moved
        self.tell = set()               # meter indexes whose board cannot know the new balance itself

    def account(self, m):
        return self.accounts[m.account_id if m.account_id is not None else self.vacancy_id]

    def event(self, **kw):
        e = Event(concentrator_id=self.conc.id, **kw)
        self.s.add(e)
        self.events.append(e)
        return e


def check(conc, body, stats, now):
    """The records of a message, checked before anything is written
    (raises Rejected) -> (good records, [(bad record, error)], every storable seq)."""
    recs = body.get("recs")
    if not isinstance(recs, list) or len(recs) > MAX_RECORDS:
        raise Rejected("bad_fields", "recs", conc.id)
    good, bad = [], []
    seen = set()
    ts_bounds = bounds.ts_range(now)
    for r in recs:
        try:
            rec = bounds.check_record(r, now, ts_bounds)
        except protocol.ProtocolError as e:
            stats.inc("bad_records")
            if isinstance(r, list) and r and bounds.storable_seq(r[0]) and r[0] not in seen:
                seen.add(r[0])
                bad.append((r, e))
            log.warning("%s: bad record %s: %s", conc.dev, json.dumps(r)[:200], e)
            continue
        if rec[0] in seen:
            continue
        seen.add(rec[0])
        good.append(rec)
    return good, bad, seen


def records(work, conc, body, now, checked, out):
    """Store and bill one message's records (check()ed) in `work`; its
    replies go to `out`: at once, or when work.flush() seals them."""
    with work.s.no_autoflush:     # the board's row is written once, at the end
        _records(work, conc, body, now, checked, out)


def _records(work, conc, body, now, checked, out):
    s, stats, bill = work.s, work.stats, work.bill
    good, bad, seqs = checked
    acked, top, conc_id = conc.acked_seq, conc.top_seq, conc.id     # ORM attributes: read once
    maybe_stored = [x for x in seqs if acked < x <= top]
    existing = set()
    if maybe_stored:
        # a resent batch (its ack was lost): look up only its own seqs
        work.flush()                # an earlier message of this batch may have brought them
        tss = [r[3] for r in good if r[1] == READING and acked < r[0] <= top]
        existing = store.existing_seqs(s, conc_id, maybe_stored, (min(tss), max(tss)) if tss else None)
    meters = work.meters_of(conc)
    b = Batch(work, conc, now, meters)
    resync = False    # the board dropped a downlink of ours as a replay: send its state again
    readings = []     # [(ReadingRow, MeterState or None)]
    stored = set()
    for r, e in bad:
        if r[0] <= acked or r[0] in existing:
            continue
        if isinstance(e, bounds.OutOfRange):
            b.event(seq=r[0], code=EV_OUT_OF_RANGE, ts=now,
                    message=("record out of range (%s), not stored: %s" % (e, json.dumps(r)))[:500])
        else:
            b.event(seq=r[0], code=EV_BAD_RECORD, ts=now, message=("malformed record " + json.dumps(r))[:500])
        stored.add(r[0])
    for seq, kind, idx, ts, values in sorted(good):
        if seq <= acked or seq in existing:
            stats.inc("records_duplicate")
            continue
        m = meters.get(idx)
        stored.add(seq)
        if kind == READING:
            rd = store.ReadingRow(seq, idx, m.id if m else None, ts, values, now, conc_id)
            readings.append((rd, m))
            if m is not None and not (values[2] & MISSING) and seq > (m.last_seq or 0):
                m.last_seq, m.last_energy_wh, m.last_power_w, m.last_ts = seq, values[0], values[1], ts
                m.relay_closed = not (values[2] & RELAY_OPEN)
                m.online = True
                m.dirty = True
        else:
            code = values[0]
            detail = values[1] if len(values) > 1 else None
            b.event(seq=seq, meter_index=idx, meter_id=m.id if m else None, code=code, detail=detail,
                    values=list(values), ts=ts or now, message=describe_event(code, detail, values))
            resync = resync or (code == protocol.EV_MSG_REJECTED and detail == REPLAY)
            if m is not None and seq > (m.last_seq or 0):
                if code == protocol.EV_RELAY_OPEN:
                    m.relay_closed, m.dirty = False, True
                elif code == protocol.EV_RELAY_CLOSE:
                    m.relay_closed, m.dirty = True, True
                elif code == protocol.EV_METER_OFFLINE:
                    m.online, m.dirty = False, True
                elif code == protocol.EV_METER_ONLINE:
                    m.online, m.dirty = True, True
    stats.inc("records_stored", len(stored))
    charges = _bill(b, bill, readings)
    # the writes wait in `work` (one statement each at its flush)
    work.readings.extend(rd for rd, _m in readings)
    tz = work.tz_of(conc.property_id) if readings else None
    for rd, m in readings:
        if m is not None:
            work.tz_of_meter[m.id] = tz
    _ledger(b, charges)
    if stored:
        conc.top_seq = max(conc.top_seq or 0, max(stored))
    _advance(work, conc, body.get("after"), seqs, stored | existing)
    items = [(protocol.ACK, {"seq": conc.acked_seq})]
    if resync:
        from .status import board_state
        work.flush()
        s.flush()
        orm_meters = s.exec(select(Meter).where(Meter.concentrator_id == conc.id)).all()
        others = s.exec(select(Meter).where(Meter.account_id.in_(sorted(b.changed)))).all() if b.changed else []
        out.extend(downlink.seal_many(s, conc, items, ts=now, n_meters=len(meters))
                   + board_state(s, conc, orm_meters, now, extra_meters=others))
        return
    if any(m.elsewhere for m in meters.values() if m.account_id in b.changed):
        # an account with meters on other boards too: every board hears it
        work.flush()
        out.extend(downlink.seal_many(s, conc, items, ts=now, n_meters=len(meters))
                   + pushes.credit_for_accounts(s, b.changed, ts=now))
        return
    told = {m.account_id for m in meters.values() if m.index in b.tell}
    # an account with several meters on this board: no meter's own charge is all that moved it
    on_board = collections.Counter(m.account_id for m in meters.values() if m.account_id in b.changed)
    for m in sorted(meters.values(), key=lambda m: m.index):
        if m.account_id in b.changed and m.billed_energy_wh is not None and (
                m.account_id in told or on_board[m.account_id] > 1):
            a = b.accounts[m.account_id]
            items.append((protocol.CREDIT, pushes.credit_fields(m, a.balance_mu, a.recharge_count)))
    work.seals.append((conc, out, items, len(meters)))


def _bill(b, bill, readings):
    """Price the batch's new readings in memory -> [(ReadingRow, account id, mu)]."""
    todo = [(rd, m) for rd, m in readings if m is not None]
    if not todo:
        return []
    ids = {m.account_id for _rd, m in todo if m.account_id is not None}
    if any(m.account_id is None for _rd, m in todo):
        b.vacancy_id = b.work.vacancy_of(b.property_id)
        ids.add(b.vacancy_id)
    b.work.lock(ids)
    store.accumulators(m for _rd, m in todo)
    b.cache = b.work.tariff_cache(b.property_id)
    charges = []
    for rd, m in todo:
        amount = bill(b, m, rd)
        if amount:
            charges.append((rd, b.account(m).id, amount))
    if b.billed:
        b.work.stats.inc("readings_billed", b.billed)
    return charges


def _ledger(b, charges):
    """The consumption entries, their balance after each computed from the
    locked balances, the balances moved (at the flush: one INSERT, one
    UPDATE), low-balance events."""
    work = b.work
    mine = work.entries_of.setdefault(b.conc_id, [])
    for rd, aid, amount in charges:
        a = b.accounts[aid]
        before = a.balance_mu
        a.balance_mu -= amount
        work.deltas[aid] = work.deltas.get(aid, 0) - amount
        b.changed.add(aid)
        e = store.LedgerRow(aid, CONSUMPTION, -amount, a.balance_mu, b.conc_id)
        work.charges.append((rd, e))
        mine.append(e)
        thr = a.low_balance_threshold_mu
        if thr and a.balance_mu < thr <= before:
            m = b.meters.get(rd.meter_index)
            b.event(meter_index=m.index, meter_id=m.id, code=EV_LOW_BALANCE, detail=a.balance_mu, ts=b.now,
                    message="balance of %s below %s: %s" % (a.name, format_money(thr), format_money(a.balance_mu)))


def _advance(work, conc, after, seqs, known):
    """The ack: the contiguous run above acked_seq, from the batch (`known`:
    its seqs stored now or before); the stored window is read only when the
    board holds records the batch did not bring (a gap)."""
    if is_int(after) and seqs and after <= conc.acked_seq:
        # The board says this batch holds every record it still has above
        # `after`: sequence numbers missing from it were dropped by the
        # journal's full-flash thinning (and reported by event 7), so they
        # must not hold the ack back.
        top = max(seqs)
        if top > conc.acked_seq:
            conc.acked_seq = top
    cur = conc.acked_seq
    while cur + 1 in known:
        cur += 1
    conc.acked_seq = cur
    if cur < (conc.top_seq or 0):
        work.flush()          # the stored window is read: what this batch brought must be in it
        advance(work.s, conc)


def advance(s, conc):
    """Move acked_seq to the highest contiguous committed sequence (reads
    only the stored seqs between it and the board's top_seq)."""
    cur = conc.acked_seq
    top = conc.top_seq or 0
    if cur >= top:
        return
    seqs = store.stored_above(s, conc.id, cur, top)
    while cur + 1 in seqs:
        cur += 1
    conc.acked_seq = cur
