"""Journal records (`rd`): readings and events stored idempotently on
(concentrator, seq), new readings billed, the ack moved to the highest
contiguous committed sequence."""
import json
import logging

from sqlmodel import select

from concentrator import protocol

from ..core.events import EV_BAD_RECORD, EV_OUT_OF_RANGE, describe_event
from ..models import Event, Meter, Reading
from ..services import pushes, rollups
from ..transport import downlink
from . import bounds
from .envelope import Rejected, is_int

log = logging.getLogger("headend.ingest")

MAX_RECORDS = 64
REPLAY = protocol.REJECT_REASONS.index("replay")


def records(s, conc, body, now, stats, bill):
    """bill(s, conc, meter, reading, now, cache) -> account id or None."""
    recs = body.get("recs")
    if not isinstance(recs, list) or len(recs) > MAX_RECORDS:
        raise Rejected("bad_fields", "recs", conc.id)
    good, bad = [], []
    seen = set()
    for r in recs:
        try:
            rec = bounds.check_record(r, now)
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
    candidates = [x for x in seen if x > conc.acked_seq]
    existing = set()
    if candidates:
        existing.update(s.exec(select(Reading.seq).where(Reading.concentrator_id == conc.id,
                                                         Reading.seq.in_(candidates))).all())
        existing.update(s.exec(select(Event.seq).where(Event.concentrator_id == conc.id,
                                                       Event.seq.in_(candidates))).all())
    meters = {m.index: m for m in s.exec(select(Meter).where(Meter.concentrator_id == conc.id)).all()}
    resync = False    # the board dropped a downlink of ours as a replay: send its state again
    new_readings = []
    stored = 0
    for r, e in bad:
        if r[0] <= conc.acked_seq or r[0] in existing:
            continue
        if isinstance(e, bounds.OutOfRange):
            s.add(Event(concentrator_id=conc.id, seq=r[0], code=EV_OUT_OF_RANGE, ts=now,
                        message=("record out of range (%s), not stored: %s" % (e, json.dumps(r)))[:500]))
        else:
            s.add(Event(concentrator_id=conc.id, seq=r[0], code=EV_BAD_RECORD, ts=now,
                        message=("malformed record " + json.dumps(r))[:500]))
        stored += 1
    for seq, kind, idx, ts, values in sorted(good):
        if seq <= conc.acked_seq or seq in existing:
            stats.inc("records_duplicate")
            continue
        m = meters.get(idx)
        stored += 1
        if kind == protocol.KIND_READING:
            rd = Reading(concentrator_id=conc.id, seq=seq, meter_index=idx,
                         meter_id=m.id if m else None, ts=ts, energy_wh=values[0],
                         power_w=values[1], flags=values[2], bands=list(values[4:]),
                         charged_mu=values[3] if len(values) > 3 else None, received=now)
            s.add(rd)
            new_readings.append((rd, m))
            if m is not None and not (values[2] & protocol.FLAG_MISSING) and seq > (m.last_seq or 0):
                m.last_seq, m.last_energy_wh, m.last_power_w, m.last_ts = seq, values[0], values[1], ts
                m.relay_closed = not (values[2] & protocol.FLAG_RELAY_OPEN)
                m.online = True
                s.add(m)
        else:
            code = values[0]
            detail = values[1] if len(values) > 1 else None
            s.add(Event(concentrator_id=conc.id, seq=seq, meter_index=idx,
                        meter_id=m.id if m else None, code=code, detail=detail, values=list(values),
                        ts=ts or now, message=describe_event(code, detail, values)))
            resync = resync or (code == protocol.EV_MSG_REJECTED and detail == REPLAY)
            if m is not None and seq > (m.last_seq or 0):
                if code == protocol.EV_RELAY_OPEN:
                    m.relay_closed = False
                elif code == protocol.EV_RELAY_CLOSE:
                    m.relay_closed = True
                elif code == protocol.EV_METER_OFFLINE:
                    m.online = False
                elif code == protocol.EV_METER_ONLINE:
                    m.online = True
                s.add(m)
    stats.inc("records_stored", stored)
    s.flush()
    changed_accounts = set()
    cache = {}   # per batch (handle() may run in several threads)
    with s.no_autoflush:  # one flush for the whole batch, not one per ledger entry
        for rd, m in new_readings:
            acc = bill(s, conc, m, rd, now, cache)
            if acc is not None:
                changed_accounts.add(acc)
    s.flush()
    # interval rollups of what was just stored and billed (issue 11)
    rollups.after_billing(s, [(rd.meter_id, rd.ts, rd.seq, rd.energy_wh, rd.flags, rd.bands, rd.billed_mu)
                              for rd, _m in new_readings])
    after = body.get("after")
    if is_int(after) and seen and after <= conc.acked_seq:
        # The board says this batch holds every record it still has above
        # `after`: sequence numbers missing from it were dropped by the
        # journal's full-flash thinning (and reported by event 7), so they
        # must not hold the ack back.
        top = max(seen)
        if top > conc.acked_seq:
            conc.acked_seq = top
    advance(s, conc)
    out = [downlink.seal(s, conc, protocol.ACK, ts=now, seq=conc.acked_seq)]
    if resync:
        from .status import board_state
        others = s.exec(select(Meter).where(Meter.account_id.in_(sorted(changed_accounts)))).all() \
            if changed_accounts else []
        return out + board_state(s, conc, list(meters.values()), now, extra_meters=others)
    out += pushes.credit_for_accounts(s, changed_accounts, ts=now)
    return out


def advance(s, conc):
    """Move acked_seq to the highest contiguous committed sequence."""
    cur = conc.acked_seq
    seqs = set(s.exec(select(Reading.seq).where(Reading.concentrator_id == conc.id, Reading.seq > cur)).all())
    seqs.update(x for x in s.exec(select(Event.seq).where(Event.concentrator_id == conc.id,
                                                          Event.seq > cur)).all() if x is not None)
    while cur + 1 in seqs:
        cur += 1
    conc.acked_seq = cur
