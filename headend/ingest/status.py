"""hello (after every (re)connect) and st (periodic health) messages."""
import json
import logging

from sqlmodel import select

from concentrator import protocol

from ..core.events import EV_JOURNAL_RESET, EV_METER_LIST
from ..models import Event, Meter
from ..services import billing, pushes, tariffs
from ..transport import downlink
from . import store
from .envelope import is_int
from .records import advance

log = logging.getLogger("headend.ingest")

def hello(s, conc, body, now):
    if isinstance(body.get("fw"), str):
        conc.fw = body["fw"][:40]
    if isinstance(body.get("code"), str):
        conc.code = body["code"][:64]
    if is_int(body.get("boot")):
        conc.boot = body["boot"]
    last = body.get("last")
    if is_int(last):
        conc.journal_last = last
        if last < conc.acked_seq:
            s.add(Event(concentrator_id=conc.id, code=EV_JOURNAL_RESET, ts=now,
                        message="board journal last=%d is behind committed seq %d (journal wiped?)"
                        % (last, conc.acked_seq)))
    acked = body.get("acked")
    if is_int(acked) and acked > conc.acked_seq:
        # the board deleted everything <= acked: it will never send it again
        conc.acked_seq = acked
        advance(s, conc)
    meters = s.exec(select(Meter).where(Meter.concentrator_id == conc.id).order_by(Meter.index)).all()
    board_ids = body.get("meters")
    if isinstance(board_ids, list):
        ours = {m.index: m.meter_id for m in meters}
        theirs = {i: str(x) for i, x in enumerate(board_ids)}
        if ours != theirs:
            s.add(Event(concentrator_id=conc.id, code=EV_METER_LIST, ts=now,
                        message=("meter list differs: board %s, head-end %s"
                                 % (json.dumps(board_ids), json.dumps([ours[k] for k in sorted(ours)])))[:1000]))
    out = [downlink.seal(s, conc, protocol.ACK, ts=now, seq=conc.acked_seq)]
    return out + board_state(s, conc, meters, now)


def board_state(s, conc, meters, now, extra_meters=()):
    """What a board must hold: the property's tariff and a credit for each
    meter (after a (re)connect, or after the board dropped a message)."""
    out = []
    try:
        spec = billing.tariff_spec(tariffs.property_versions(s, conc.property_id))
    except ValueError:
        log.exception("%s: the property's tariff is invalid; not pushed", conc.dev)
        spec = None
    if spec is not None:
        out.append(downlink.tariff_message(s, conc, spec, ts=now))
    seen = {m.id for m in meters}
    return out + pushes.credit_for_meters(s, list(meters) + [m for m in extra_meters if m.id not in seen], ts=now)


def status(s, conc, body, now, work, out=None):
    """-> the replies (an ack repeated when the board missed one). work:
    the ingest's records.Work (one message or a batch): the meters' rows of
    the status (online, relay, the board's local credit) change the board's
    MeterStates it holds, written with the batch's other meter changes in
    one statement, and the bus error counters of the whole batch go in one
    upsert at its flush; the ack waits in it to be sealed with the batch's
    other replies (in counter order)."""
    out = [] if out is None else out
    if is_int(body.get("pending")):
        conc.pending = body["pending"]
    if is_int(body.get("last")):
        conc.journal_last = body["last"]
    rows = body.get("meters")
    if isinstance(rows, list):
        by_index = work.meters_of(conc, lock=False)
        for row in rows:
            if not isinstance(row, list) or len(row) < 4 or not is_int(row[0]):
                continue
            m = by_index.get(row[0])
            if m is None:
                continue
            online = bool(row[1]) if row[1] in (0, 1) else m.online
            relay = bool(row[2]) if row[2] in (0, 1) else m.relay_closed
            credit = row[3] if is_int(row[3]) else m.local_credit_mu
            if (online, relay, credit) != (m.online, m.relay_closed, m.local_credit_mu):
                m.online, m.relay_closed, m.local_credit_mu, m.status_dirty = online, relay, credit, True
        bus = body.get("bus")
        if isinstance(bus, list):
            # [[index, timeouts, crc, wrong_address, exceptions, offline], ...]
            # for the meters with any non-zero counter; the others are 0
            # (unless "bus_all" is false: the board cut the list short)
            errs = {}
            if body.get("bus_all", True) is not False:
                errs = {m.id: (0,) * len(store.BUS_ERROR_KEYS) for m in by_index.values()}
            for row in bus:
                if not isinstance(row, list) or len(row) != 1 + len(store.BUS_ERROR_KEYS) \
                        or not all(is_int(x) and x >= 0 for x in row):
                    continue
                m = by_index.get(row[0])
                if m is not None:
                    errs[m.id] = tuple(row[1:])
            work.bus_errors.update({mid: (v, conc.boot) for mid, v in errs.items()})
    acked = body.get("acked")
    if is_int(acked) and acked < conc.acked_seq:
        # the board missed an ack: repeat it
        work.seals.append((conc, out, [(protocol.ACK, {"seq": conc.acked_seq})], 0))
    return out
